"""Find and load the compiled CPU library (ctypes), choosing the best instruction set.

``PRECISIONRECON_KERNELS=reference`` forces the pure-PyTorch reference; ``generic``,
``avx2`` or ``avx512`` forces one build.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings
from pathlib import Path

from .libinfo import CUDA_LIBRARY, EMU_LIBRARY, LIB_DIR, isa_flags, library_name

_REQUIRED_FLAGS = {
    "avx512": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma", "bmi2"},
    "avx2": {"avx2", "fma", "bmi1", "bmi2", "movbe", "f16c"},
    "generic": set(),
}

_SIGNATURE = [
    ctypes.c_void_p,  # input
    ctypes.c_void_p,  # output
    ctypes.c_int64,  # batch
    ctypes.c_int,  # ndim
    ctypes.POINTER(ctypes.c_int),  # vol_n (x, y, z)
    ctypes.POINTER(ctypes.c_double),  # vol_sp
    ctypes.POINTER(ctypes.c_double),  # vol_off
    ctypes.c_void_p,  # vectors (float64)
    ctypes.c_int,  # nviews
    ctypes.c_int,  # det_nu
    ctypes.c_int,  # det_nv
    ctypes.c_int,  # beam
    ctypes.c_int,  # curved
    ctypes.c_int,  # nthreads
]
FUNCTIONS = (
    "pr_xray_forward_f32",
    "pr_xray_forward_f64",
    "pr_xray_adjoint_f32",
    "pr_xray_adjoint_f64",
    "pr_xray_sensitivity_f32",
    "pr_xray_sensitivity_f64",
)
# The voxel-driven back-projector takes one more int (distance weighting) before nthreads.
_VBP_SIGNATURE = [*_SIGNATURE[:-1], ctypes.c_int, ctypes.c_int]
VBP_FUNCTIONS = ("pr_vbp_backproject_f32", "pr_vbp_backproject_f64", "pr_vbp_project_f32", "pr_vbp_project_f64")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def candidate_isas() -> list[str]:
    """Builds usable on this CPU, best first."""
    forced = os.environ.get("PRECISIONRECON_KERNELS", "").strip().lower()
    if forced == "reference":
        return []
    available = list(isa_flags())
    if forced:
        return [forced] if forced in available else []
    flags = _cpu_flags()
    order = [isa for isa in ("avx512", "avx2", "generic") if isa in available]
    return [isa for isa in order if _REQUIRED_FLAGS.get(isa, set()) <= flags]


@functools.cache
def cpu_library() -> tuple[ctypes.CDLL, str] | None:
    """``(library, isa)`` or None (then one warning and the pure-PyTorch reference)."""
    if os.environ.get("PRECISIONRECON_KERNELS", "").strip().lower() == "reference":
        return None
    for isa in candidate_isas():
        path = LIB_DIR / library_name(isa)
        if not path.exists():
            continue
        lib = ctypes.CDLL(str(path))
        for name in FUNCTIONS:
            fn = getattr(lib, name)
            fn.argtypes = _SIGNATURE
            fn.restype = ctypes.c_int
        for name in VBP_FUNCTIONS:
            fn = getattr(lib, name)
            fn.argtypes = _VBP_SIGNATURE
            fn.restype = ctypes.c_int
        lib.pr_set_cancel.argtypes = [ctypes.c_int]
        lib.pr_set_cancel.restype = None
        return lib, isa
    warnings.warn(
        "precisionrecon: compiled CPU kernels not found in "
        f"{LIB_DIR}; using the (slower) pure-PyTorch reference. "
        "Build them with `python -m precisionrecon._kernels.build`.",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


# pr_cuda_launch(op, dtype, in, out, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam,
#                curved, weighted, deterministic, stream)
_CUDA_SIGNATURE = [
    ctypes.c_int,
    ctypes.c_int,
    *_SIGNATURE[:-1],  # in, out, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved
    ctypes.c_int,  # weighted
    ctypes.c_int,  # deterministic
    ctypes.c_void_p,  # cudaStream_t
]
# pr_emu_{f32,f64}(op, in, out, ..., curved, weighted, deterministic)
_EMU_SIGNATURE = [ctypes.c_int, *_SIGNATURE[:-1], ctypes.c_int, ctypes.c_int]


@functools.cache
def cuda_library() -> ctypes.CDLL:
    """The compiled CUDA library; RuntimeError with a build hint when it is missing."""
    path = LIB_DIR / CUDA_LIBRARY
    if not path.exists():
        raise RuntimeError(
            f"precisionrecon: CUDA tensors need the CUDA kernels ({path} not found). Build them with "
            "`python -m precisionrecon._kernels.build` on a machine with nvcc (CUDA_HOME or PATH)."
        )
    lib = ctypes.CDLL(str(path))
    lib.pr_cuda_launch.argtypes = _CUDA_SIGNATURE
    lib.pr_cuda_launch.restype = ctypes.c_int
    lib.pr_cuda_error_string.argtypes = [ctypes.c_int]
    lib.pr_cuda_error_string.restype = ctypes.c_char_p
    lib.pr_cuda_device_count.argtypes = []
    lib.pr_cuda_device_count.restype = ctypes.c_int
    return lib


@functools.cache
def emulator_library() -> ctypes.CDLL | None:
    """Host emulation of the CUDA kernels (tests only), or None when it is not built."""
    path = LIB_DIR / EMU_LIBRARY
    if not path.exists():
        return None
    lib = ctypes.CDLL(str(path))
    for name in ("pr_emu_f32", "pr_emu_f64"):
        fn = getattr(lib, name)
        fn.argtypes = _EMU_SIGNATURE
        fn.restype = ctypes.c_int
    return lib
