"""Where the compiled libraries live and which instruction sets are built."""

from __future__ import annotations

import platform
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parents[2] / "cuda_ext"
LIB_DIR = Path(__file__).resolve().parent / "lib"
# Joseph projector, voxel-driven (FBP) back-projector and geometry sensitivities, one
# library per instruction set.
CPU_SOURCES = [SRC_DIR / "xray_cpu.cpp", SRC_DIR / "vbp_cpu.cpp", SRC_DIR / "geometry_cpu.cpp"]
# -ffp-contract=off: no FMA contraction, so the forward and adjoint call sites (and the
# pure-torch reference) evaluate the weights with the same roundings.
# -fno-trapping-math: lets floor() vectorise (vrndscalepd) in the Joseph tap loop.
BASE_FLAGS = [
    "-O3",
    "-fopenmp",
    "-fPIC",
    "-shared",
    "-std=c++17",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-Wno-psabi",
]
X86_ISAS = {
    "generic": ["-march=x86-64", "-mtune=generic"],
    "avx2": ["-march=haswell", "-mtune=generic"],
    "avx512": ["-march=skylake-avx512", "-mtune=generic", "-mprefer-vector-width=512"],
}


CUDA_SOURCES = [SRC_DIR / "xray_math.h", SRC_DIR / "xray_cuda_kernels.h", SRC_DIR / "xray_cuda.cu"]
CUDA_LIBRARY = "libprxray_cuda.so"
# Host emulation of the CUDA kernels (tests only): the same per-thread bodies in loops.
EMU_SOURCES = [SRC_DIR / "xray_math.h", SRC_DIR / "xray_cuda_kernels.h", SRC_DIR / "xray_cuda_emu.cpp"]
EMU_LIBRARY = "libprxray_cuda_emu.so"
# Architectures when no GPU is visible: Turing to Blackwell, plus PTX of the newest so
# later GPUs can JIT-compile. --fmad=false: the forward and the gather adjoint must round
# the shared weights identically (no contraction into FMAs at different call sites).
DEFAULT_CUDA_ARCHS = ["75", "80", "86", "89", "90", "100", "120"]
NVCC_FLAGS = ["-std=c++17", "-O3", "--fmad=false", "-Xcompiler", "-fPIC", "-shared"]


def isa_flags() -> dict[str, list[str]]:
    """Instruction sets to build on this platform and their compiler flags."""
    if platform.machine() in ("x86_64", "AMD64"):
        return X86_ISAS
    return {"generic": []}


def library_name(isa: str) -> str:
    return f"libprxray_cpu_{isa}.so"
