"""Public helpers to test operators (used by the project's own suite too)."""

from __future__ import annotations

import torch

from .operators.base import LinearOperator


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b> = sum(conj(a) * b)`` over all entries (batch dims included)."""
    return torch.vdot(a.reshape(-1), b.reshape(-1))


def adjoint_error(
    op: LinearOperator,
    *,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    batch_shape: tuple[int, ...] = (),
) -> float:
    r"""Normalized dot-product test of an operator and its adjoint.

    .. math:: \frac{|\langle A x, y\rangle - \langle x, A^T y\rangle|}{\|A\|\,\|x\|\,\|y\|}

    with ``x`` and ``y`` seeded standard normal (complex normal for complex dtypes) of
    shapes ``(*batch_shape, *op.domain_shape)`` and ``(*batch_shape, *op.range_shape)``.
    ``||A||`` comes from :meth:`LinearOperator.norm` in float64 (complex128 for complex
    dtypes). Exact adjoints give about machine epsilon of ``dtype``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((*batch_shape, *op.domain_shape), generator=gen, dtype=dtype).to(op.device)
    y = torch.randn((*batch_shape, *op.range_shape), generator=gen, dtype=dtype).to(op.device)
    with torch.no_grad():
        lhs = _inner(op(x), y)
        rhs = _inner(x, op.T(y))
    norm_dtype = torch.complex128 if dtype.is_complex else torch.float64
    scale = op.norm(dtype=norm_dtype) * float(torch.linalg.vector_norm(x)) * float(torch.linalg.vector_norm(y))
    if scale == 0.0:
        return 0.0
    return float(abs(lhs - rhs)) / scale
