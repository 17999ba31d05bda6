"""Small shared helpers of the MR operators: dtype promotion."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .._validate import REAL_OR_COMPLEX, check_tensor

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
    check_tensor(x, name, dtype=REAL_OR_COMPLEX)
    if x.dtype.is_complex:
        return x
    return x.to(complex_dtype(x.dtype))


def prod(shape: Sequence[int]) -> int:
    return math.prod(int(n) for n in shape)
