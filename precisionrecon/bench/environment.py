"""One home for the facts about the machine that results are recorded with.

``precisionrecon info``, the ``bench`` record and the scripts in ``benchmarks/`` all take
their machine, version and kernel facts from here, and their millisecond formatting.
"""

from __future__ import annotations

import importlib
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, pretrained
from .._kernels import libinfo, loader

OPTIONAL_DEPENDENCIES: tuple[str, ...] = (
    "astra", "odl", "finufft", "h5py", "pydicom", "matplotlib", "skimage", "torchkbnufft", "safetensors", "yaml",
    "tqdm", "scipy")
ENV_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS",
                             "PRECISIONRECON_KERNELS")
"""Environment variables that change the timings (threads, OpenMP waiting, kernel choice)."""


def format_ms(ms: float) -> str:
    """A time in milliseconds with about three significant digits (``0.123``, ``4.56``, ``78.9``, ``1234``)."""
    if ms < 1:
        return f"{ms:.3f}"
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (rounded to 0.01), or ``None`` where unknown."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def kernel_info() -> dict[str, Any]:
    """The compiled kernel libraries: folder, CPU variants built / usable here / selected, CUDA ones."""
    lib_dir = libinfo.LIB_DIR
    built = sorted(isa for isa in libinfo.isa_flags() if (lib_dir / libinfo.library_name(isa)).exists())
    usable = loader.candidate_isas()
    chosen = next((isa for isa in usable if isa in built), None)
    return {
        "lib_dir": str(lib_dir),
        "cpu": {"built": built, "usable_on_this_cpu": usable, "selected": chosen or "reference (pure PyTorch)"},
        "cuda_library": (lib_dir / libinfo.CUDA_LIBRARY).exists(),
        "cuda_emulator": (lib_dir / libinfo.EMU_LIBRARY).exists(),
    }


def _loaded_kernel_isa() -> str:
    try:
        found = loader.cpu_library()
    except Exception as exc:  # a broken library must not stop a benchmark from recording the fact
        return f"unknown ({type(exc).__name__}: {exc})"
    return found[1] if found is not None else "reference (pure PyTorch, no compiled library)"


def machine_info(packages: Sequence[str] = ()) -> dict[str, Any]:
    """The machine a benchmark ran on: CPU model, cores, load, versions, threads, kernel ISA,
    the timing-relevant environment variables and the versions of ``packages`` (peers
    such as ``"finufft"``; ``None`` for those that do not import)."""
    info = {
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_count": os.cpu_count(),
        "cpus_usable": _usable_cpus(),
        "loadavg_at_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "precisionrecon": __version__,
        "kernel_isa": _loaded_kernel_isa(),
        "env": {k: os.environ.get(k) for k in ENV_VARS},
    }
    for name in packages:
        info[name] = _version(name)
    return info


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # any import failure means "not usable"
        return None
    return str(getattr(mod, "__version__", "present"))


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The environment a ``bench`` run records: versions, CPU, threads, device, CPU kernels."""
    device = torch.device(device)
    return {
        "precisionrecon": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "kernels": kernel_info()["cpu"],
    }


def info() -> dict[str, Any]:
    """Everything ``precisionrecon info`` prints: versions, platform, CPU and threads, GPUs,
    compiled kernels, optional dependencies (version or ``None``) and pretrained weights."""
    cuda = torch.cuda.is_available()
    return {
        "precisionrecon": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "kernels": kernel_info(),
        "optional_dependencies": {name: _version(name) for name in OPTIONAL_DEPENDENCIES},
        "pretrained_weights_dir": str(pretrained.weights_dir()),
        "pretrained_weights": [f"{t}/{m}" for t, m in pretrained.available()],
    }
