"""Compile the C ABI kernel libraries (no torch headers, seconds to build).

``python -m precisionrecon._kernels.build`` compiles ``cuda_ext/xray_cpu.cpp`` once per
instruction set (generic x86-64, AVX2, AVX-512; a single generic build elsewhere) into
``precisionrecon/_kernels/lib``; the loader picks the best one the CPU supports at run
time. ``--cuda-check`` also compiles the shared header with nvcc (compile only) when nvcc
is found. Rebuilds only when a source or a flag changed.
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

from .libinfo import BASE_FLAGS, CPU_SOURCES, LIB_DIR, SRC_DIR, isa_flags, library_name


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
    sources = [SRC_DIR / "xray_math.h", *CPU_SOURCES]
    cxx = _compiler()
    out = []
    for isa, flags in isa_flags().items():
        target = LIB_DIR / library_name(isa)
        stamp = target.with_suffix(".json")
        all_flags = BASE_FLAGS + flags
        digest = _digest(sources, [cxx, *all_flags])
        if not force and target.exists() and stamp.exists() and json.loads(stamp.read_text()).get("digest") == digest:
            out.append(target)
            continue
        # Compile to a temporary name and rename: a half-written library is never loaded.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=LIB_DIR)
        os.close(fd)
        cmd = [cxx, *all_flags, f"-I{SRC_DIR}", *map(str, CPU_SOURCES), "-o", tmp]
        if verbose:
            print("[precisionrecon] " + " ".join(cmd), flush=True)
        try:
            subprocess.run(cmd, check=True)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _atomic_write(stamp, json.dumps({"digest": digest, "flags": all_flags, "compiler": cxx}))
        out.append(target)
    return out


def cuda_check(verbose: bool = True) -> bool:
    """Compile the shared header with nvcc (compile only). False when nvcc is absent."""
    nvcc = shutil.which("nvcc")
    cuda_home = os.environ.get("CUDA_HOME")
    if nvcc is None and cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        nvcc = str(Path(cuda_home) / "bin" / "nvcc")
    if nvcc is None:
        if verbose:
            print("[precisionrecon] nvcc not found: CUDA header check skipped", flush=True)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [nvcc, "-std=c++17", "-c", str(SRC_DIR / "header_check.cu"), "-o", str(Path(tmp) / "check.o")]
        if verbose:
            print("[precisionrecon] " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return True


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--cuda-check", action="store_true", help="also compile the header with nvcc")
    args = parser.parse_args(argv)
    for path in build_cpu(force=args.force):
        print(f"[precisionrecon] built {path}")
    if args.cuda_check:
        cuda_check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
