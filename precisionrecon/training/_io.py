"""File helpers of the trainer (atomic writes come from :mod:`precisionrecon._io`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, atomic_write_json

__all__ = ["atomic_write_bytes", "atomic_write_json", "json_close", "read_json"]


def read_json(path: str | Path, what: str) -> Any:
    """The JSON in ``path``; FileNotFoundError / ValueError naming ``what`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {exc}") from exc


def json_close(a: Any, b: Any, rel_tol: float = 1e-9) -> bool:
    """``a == b`` for JSON values, with floats equal to a relative ``rel_tol``: a model config
    holds computed numbers (``op_norm``, a power iteration whose last digits follow the
    thread count)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_close(a[k], b[k], rel_tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_close(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
    return type(a) is type(b) and a == b
