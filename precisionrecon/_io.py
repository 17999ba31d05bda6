"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

Every file the library, its benchmarks and its examples write goes through here, so a
reader sees the old file or the new one, never a partial one. New files get the
permissions any file the user creates gets (``0o666`` less the umask), not ``mkstemp``'s
private 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(mode: int | None = None, *, folder: bool = False) -> int:
    """``mode``, or what ``open``/``mkdir`` would give a new file (``0o666``) or folder
    (``0o777``) under the current umask."""
    if mode is not None:
        return mode
    return (0o777 if folder else 0o666) & ~umask()


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, flushed,
    renamed over ``path``); creates the folder. ``mode``: permissions of the new file
    (default: ``0o666`` less the umask, as for any file the user creates)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_mode(mode))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """``text`` (UTF-8), written atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | Path, obj: Any, *, mode: int | None = None) -> Path:
    """``obj`` as indented JSON, written atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n", mode=mode)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, mode: int | None = None) -> Iterator[Path]:
    """A temporary path for writers that need a file name (h5py, ``savefig``), in the folder of
    ``path``: renamed over ``path`` when the block ends normally, deleted when it raises.
    Creates the folder; ``mode`` as in :func:`atomic_write_bytes`.

    Example::

        with atomic_path("out.h5") as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, default_mode(mode))
        finally:
            os.close(fd)  # the writer opens the file by name
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)  # the writer closed its handle: flush what it wrote to disk
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
