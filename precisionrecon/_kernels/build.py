"""Compile the C ABI kernel libraries (no torch headers).

``python -m precisionrecon._kernels.build`` compiles into ``precisionrecon/_kernels/lib``:

- the CPU library (``cuda_ext/xray_cpu.cpp``, ``vbp_cpu.cpp``) once per instruction set
  (generic x86-64, AVX2, AVX-512; a single generic build elsewhere); the loader picks the
  best one the CPU supports at run time;
- the host emulation of the CUDA kernels (``xray_cuda_emu.cpp``, for the tests);
- the CUDA library (``xray_cuda.cu``) whenever nvcc is found (``CUDA_HOME`` or ``PATH``),
  for the visible GPUs or a default list of architectures (``PRECISIONRECON_CUDA_ARCHS``
  overrides). It links the CUDA runtime statically and needs no torch headers.

Rebuilds only when a source or a flag changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .._io import atomic_write_text
from .libinfo import (
    BASE_FLAGS,
    CPU_SOURCES,
    CUDA_LIBRARY,
    CUDA_SOURCES,
    DEFAULT_CUDA_ARCHS,
    EMU_LIBRARY,
    EMU_SOURCES,
    LIB_DIR,
    NVCC_FLAGS,
    SRC_DIR,
    isa_flags,
    library_name,
)


def _digest(files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    return h.hexdigest()


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX or install g++)")
    return cxx


def build_cpu(force: bool = False, verbose: bool = True) -> list[Path]:
    """Build the CPU libraries; returns their paths."""
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    sources = [SRC_DIR / "xray_math.h", SRC_DIR / "xray_cuda_kernels.h", *CPU_SOURCES]
    cxx = _compiler()
    out = []
    for isa, flags in isa_flags().items():
        target = LIB_DIR / library_name(isa)
        all_flags = BASE_FLAGS + flags
        digest = _digest(sources, [cxx, *all_flags])
        if force or not _up_to_date(target, digest):
            _compile([cxx, *all_flags, f"-I{SRC_DIR}", *map(str, CPU_SOURCES), "-o"], target, digest, all_flags,
                     verbose)
        out.append(target)
    return out


def _up_to_date(target: Path, digest: str) -> bool:
    stamp = target.with_suffix(".json")
    return target.exists() and stamp.exists() and json.loads(stamp.read_text()).get("digest") == digest


def _compile(cmd_before_output: list[str], target: Path, digest: str, flags: list[str], verbose: bool) -> Path:
    """Run ``cmd + [tmp]`` and rename the result onto ``target`` (never a half-written library)."""
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=LIB_DIR)
    os.close(fd)
    cmd = [*cmd_before_output, tmp]
    if verbose:
        print("[precisionrecon] " + " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    atomic_write_text(target.with_suffix(".json"), json.dumps({"digest": digest, "flags": flags}))
    return target


def build_emulator(force: bool = False, verbose: bool = True) -> Path:
    """Build the host emulation of the CUDA kernels (used by the tests)."""
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    cxx = _compiler()
    flags = ["-O2", "-fPIC", "-shared", "-std=c++17", "-ffp-contract=off", "-fno-math-errno"]
    target = LIB_DIR / EMU_LIBRARY
    digest = _digest(EMU_SOURCES, [cxx, *flags])
    if not force and _up_to_date(target, digest):
        return target
    return _compile([cxx, *flags, f"-I{SRC_DIR}", str(SRC_DIR / "xray_cuda_emu.cpp"), "-o"], target, digest, flags,
                    verbose)


def find_nvcc() -> str | None:
    """nvcc from CUDA_HOME or PATH, or None."""
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        return str(Path(cuda_home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def cuda_archs() -> list[str]:
    """``PRECISIONRECON_CUDA_ARCHS`` (e.g. "90;100"), else the visible GPUs, else a default list."""
    forced = os.environ.get("PRECISIONRECON_CUDA_ARCHS", "").replace(",", ";").strip()
    if forced:
        return [a.strip().replace(".", "") for a in forced.split(";") if a.strip()]
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
            ).stdout
            archs = sorted({line.strip().replace(".", "") for line in out.splitlines() if line.strip()})
            if archs:
                return archs
        except (OSError, subprocess.SubprocessError):
            pass
    return list(DEFAULT_CUDA_ARCHS)


def build_cuda(force: bool = False, verbose: bool = True) -> Path | None:
    """Build the CUDA library with nvcc (no torch headers); None when nvcc is absent."""
    nvcc = find_nvcc()
    if nvcc is None:
        if verbose:
            print("[precisionrecon] nvcc not found (CUDA_HOME or PATH): CUDA kernels not built", flush=True)
        return None
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    archs = cuda_archs()
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
    flags = [*NVCC_FLAGS, "--threads", "0", *gencode]
    target = LIB_DIR / CUDA_LIBRARY
    digest = _digest(CUDA_SOURCES, [nvcc, *flags])
    if not force and _up_to_date(target, digest):
        return target
    return _compile([nvcc, *flags, f"-I{SRC_DIR}", str(SRC_DIR / "xray_cuda.cu"), "-o"], target, digest, flags,
                    verbose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA library even if nvcc is found")
    args = parser.parse_args(argv)
    for path in build_cpu(force=args.force):
        print(f"[precisionrecon] built {path}")
    print(f"[precisionrecon] built {build_emulator(force=args.force)}")
    if not args.no_cuda:
        cuda = build_cuda(force=args.force)
        if cuda is not None:
            print(f"[precisionrecon] built {cuda}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
