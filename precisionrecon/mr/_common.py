"""Small shared helpers of the MR operators: dtype promotion and shape checks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_COMPLEX_OF = {
    torch.float16: torch.complex64,
    torch.bfloat16: torch.complex64,
    torch.float32: torch.complex64,
    torch.float64: torch.complex128,
    torch.complex64: torch.complex64,
    torch.complex128: torch.complex128,
}


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of the same precision (float32 -> complex64, float64 -> complex128)."""
    if dtype not in _COMPLEX_OF:
        raise TypeError(f"expected a floating-point or complex dtype, got {dtype}")
    return _COMPLEX_OF[dtype]


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of the same precision (complex64 -> float32, complex128 -> float64)."""
    return torch.empty((), dtype=complex_dtype(dtype)).real.dtype


def as_complex(x: Tensor, name: str = "x") -> Tensor:
    """``x`` as a complex tensor of its precision (real inputs are promoted, complex kept)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise TypeError(f"{name} must be a floating-point or complex tensor, got {x.dtype}")
    if x.dtype.is_complex:
        return x
    return x.to(complex_dtype(x.dtype))


def check_trailing(x: Tensor, shape: Sequence[int], name: str = "x") -> tuple[int, ...]:
    """Check that ``x`` has shape ``(*batch, *shape)``; return ``batch``."""
    shape = tuple(shape)
    k = len(shape)
    if x.dim() < k or tuple(x.shape[x.dim() - k :]) != shape:
        raise ValueError(f"{name} must have shape (*batch, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    return tuple(x.shape[: x.dim() - k])


def as_shape(shape: Sequence[int] | int, name: str = "shape") -> tuple[int, ...]:
    """A tuple of positive ints (an int is a 1-tuple)."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        out = tuple(int(n) for n in shape)
    except TypeError as exc:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from exc
    if any(n != m for n, m in zip(out, shape, strict=True)) or not out or min(out) <= 0:
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {tuple(shape)!r}")
    return out


def prod(shape: Sequence[int]) -> int:
    return math.prod(int(n) for n in shape)
