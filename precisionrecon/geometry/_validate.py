"""Argument validation shared by the geometry classes (one place for the messages)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def as_float_array(value: Any, name: str, *, ndim: int = 1) -> np.ndarray:
    """Convert a sequence, array or tensor of finite real numbers to a float64 array."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        value = value.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(arr.shape)}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return arr


def as_float_tuple(value: Any, name: str) -> tuple[float, ...]:
    """A 1-D sequence, array or tensor of finite real numbers as a tuple of floats."""
    return tuple(float(v) for v in as_float_array(value, name))


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def finite_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def positive_float(value: Any, name: str) -> float:
    out = finite_float(value, name)
    if out <= 0.0:
        raise ValueError(f"{name} must be positive, got {out}")
    return out


def per_axis(value: Any, n: int, name: str, *, positive: bool) -> tuple[float, ...]:
    """A scalar broadcast to `n` axes, or a sequence of exactly `n` numbers."""
    check = positive_float if positive else finite_float
    if isinstance(value, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(value, str):
        items = list(value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else value)
        if len(items) != n:
            raise ValueError(f"{name} must be a number or {n} numbers, got {len(items)}")
        return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(items))
    return (check(value, name),) * n


def angles_tuple(angles: Any) -> tuple[float, ...]:
    out = as_float_tuple(angles, "angles")
    if len(out) == 0:
        raise ValueError("angles must hold at least one view, got 0")
    return out


def fan_distances(src_iso: Any, src_det: Any) -> tuple[float, float]:
    s = positive_float(src_iso, "src_iso")
    d = positive_float(src_det, "src_det")
    if d <= s:
        raise ValueError(f"src_det must exceed src_iso (detector beyond the isocentre), got src_det={d} <= src_iso={s}")
    return s, d


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return str(value)
