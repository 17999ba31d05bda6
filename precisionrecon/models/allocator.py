"""Keeping freed memory in the process during training (issue 17, item 4).

A training step of an unrolled model allocates its activations afresh (tens of MB each for
LPD on multi-coil MR: 12 coils x 32 channels x 128²) and frees them in the backward. With
glibc's defaults every allocation above the mmap threshold (at most 32 MB) is a fresh
``mmap`` and the top of the heap is returned to the system when more than twice that is
free, so each step faults all of its memory in again page by page: measured on a 2-core CPU
(LPD, ``mr-4x``, 128², batch 2) 2.5 million page faults and 6.9 s of system time in a
16.9 s (CPU time) step, half of it. :func:`retain_freed_memory` tells glibc to serve every
allocation from the heap and to keep what is freed, so later steps reuse the same pages
(no faults, the step took 8.7 s of CPU time). The price: the resident memory of the process
stays at its peak (the memory of one training step) instead of shrinking between steps.

:class:`~precisionrecon.models.ReconModel` calls it once, the first time a model runs
with autograd recording (a training forward), unless it was called before with
``enable=False``. Without glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

__all__ = ["retain_freed_memory"]

# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1

# None: not decided yet; True/False: the setting applied (or declined) in this process
_state: dict[str, bool | None] = {"applied": None}


def _mallopt() -> object | None:
    """glibc's ``mallopt``, or None on another C library."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    fn = getattr(libc, "mallopt", None)
    if fn is None:
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def retain_freed_memory(enable: bool = True) -> bool:
    """Serve large allocations from the heap and keep freed memory in the process (glibc).

    Parameters
    ----------
    enable : bool
        ``True``: set glibc's ``M_MMAP_MAX`` to 0 (no ``mmap`` per large tensor) and
        ``M_TRIM_THRESHOLD`` to 2 GiB - 1 (the heap is returned to the system only beyond
        that). ``False``: change nothing and stop the models from doing it automatically.

    Returns
    -------
    bool
        Whether the setting is in effect in this process (``False`` without glibc).

    Notes
    -----
    Process-wide and not undone: the resident memory stays at its peak. Called
    automatically by the first training forward of a :class:`ReconModel` (see the module
    docstring); call ``retain_freed_memory(False)`` before training to opt out.
    """
    if not isinstance(enable, bool):
        raise TypeError(f"enable must be a bool, got {type(enable).__name__}")
    if not enable:
        if not _state["applied"]:
            _state["applied"] = False
        return bool(_state["applied"])
    if _state["applied"]:
        return True
    fn = _mallopt()
    ok = fn is not None and bool(fn(_M_MMAP_MAX, 0)) and bool(fn(_M_TRIM_THRESHOLD, _INT_MAX))  # type: ignore[operator]
    _state["applied"] = ok
    return ok


def retain_for_training() -> None:
    """The automatic call of a training forward: :func:`retain_freed_memory` unless the
    process decided already (either way)."""
    if _state["applied"] is None:
        retain_freed_memory(True)
