"""Where the compiled libraries live and which instruction sets are built."""

from __future__ import annotations

import platform
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parents[2] / "cuda_ext"
LIB_DIR = Path(__file__).resolve().parent / "lib"
# Joseph projector and voxel-driven (FBP) back-projector, one library per instruction set.
CPU_SOURCES = [SRC_DIR / "xray_cpu.cpp", SRC_DIR / "vbp_cpu.cpp"]
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


def isa_flags() -> dict[str, list[str]]:
    """Instruction sets to build on this platform and their compiler flags."""
    if platform.machine() in ("x86_64", "AMD64"):
        return X86_ISAS
    return {"generic": []}


def library_name(isa: str) -> str:
    return f"libprxray_cpu_{isa}.so"
