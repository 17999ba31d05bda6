"""File helpers of the trainer (atomic writes come from :mod:`precisionrecon._io`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, atomic_write_json

__all__ = ["atomic_write_bytes", "atomic_write_json", "read_json"]


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
