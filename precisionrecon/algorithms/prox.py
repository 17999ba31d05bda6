r"""Proximal maps for :func:`fista` (and any other proximal algorithm).

A :class:`ProxOperator` ``R`` provides

* ``R(v, t)``: the proximal map ``prox_{tR}(v) = argmin_x 1/2 ||x - v||^2 + t R(x)``,
  applied to every problem of a batch ``(*batch, *shape)`` independently;
* ``R.value(x, ndim)``: ``R(x)`` per problem, summed over the last ``ndim`` axes, shape ``batch``.

All are immutable. Complex tensors work where the regulariser makes sense for them
(everything but :class:`NonNegativity` and ``TV(nonneg=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import check_operator, check_tensor, finite_float
from ..operators.base import LinearOperator
from ..operators.differences import FiniteDifferences


def _check_t(t: Any) -> float:
    return finite_float(t, "t", minimum=0.0)


def _sum_last(t: Tensor, ndim: int) -> Tensor:
    return t.sum(dim=tuple(range(-ndim, 0))) if ndim else t


def soft_threshold(v: Tensor, t: float) -> Tensor:
    r"""``v * max(1 - t / |v|, 0)``: the prox of ``t ||.||_1``; for complex ``v`` it shrinks
    the modulus and keeps the phase."""
    mag = v.abs()
    scale = torch.where(mag > t, 1.0 - t / torch.where(mag > 0, mag, 1.0), 0.0)
    return v * scale


class ProxOperator:
    """Base class of the proximal maps: subclasses implement ``__call__`` and ``value``."""

    def __call__(self, v: Tensor, t: float) -> Tensor:
        raise NotImplementedError

    def value(self, x: Tensor, ndim: int) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class NonNegativity(ProxOperator):
    """The indicator of ``x >= 0``; its prox is the projection ``max(v, 0)`` (any ``t``).

    ``value`` is 0 for a non-negative ``x`` and ``inf`` otherwise. Real tensors only.
    """

    def __call__(self, v: Tensor, t: float) -> Tensor:
        check_tensor(v, "v")
        _check_t(t)
        if v.is_complex():
            raise TypeError("NonNegativity needs a real tensor, got a complex one (x >= 0 is undefined)")
        return v.clamp(min=0.0)

    def value(self, x: Tensor, ndim: int) -> Tensor:
        feasible = (x >= 0).flatten(start_dim=x.dim() - ndim).all(dim=-1) if ndim else x >= 0
        return torch.where(feasible, 0.0, float("inf")).to(x.dtype)


@dataclass(frozen=True)
class L1(ProxOperator):
    r"""``R(x) = ||x||_1 = sum |x_i|`` (modulus for complex ``x``); prox: soft thresholding."""

    def __call__(self, v: Tensor, t: float) -> Tensor:
        check_tensor(v, "v")
        return soft_threshold(v, _check_t(t))

    def value(self, x: Tensor, ndim: int) -> Tensor:
        return _sum_last(x.abs(), ndim)


@dataclass(frozen=True)
class TransformL1(ProxOperator):
    r"""``R(x) = ||W x||_1`` for a unitary ``W`` (``W^H W = W W^H = I``: orthonormal
    wavelets, ``norm="ortho"`` FFTs); prox ``W^H soft(W v, t)``.

    For a merely tight frame (``W^H W = I`` only) this map is not the exact prox.

    Parameters
    ----------
    W : LinearOperator
        The unitary transform; its domain is the image shape.
    """

    W: LinearOperator

    def __post_init__(self) -> None:
        check_operator(self.W, "W")

    def __call__(self, v: Tensor, t: float) -> Tensor:
        check_tensor(v, "v")
        return self.W.T(soft_threshold(self.W(v), _check_t(t)))

    def value(self, x: Tensor, ndim: int) -> Tensor:
        if ndim != len(self.W.domain_shape):
            raise ValueError(f"ndim must be len(W.domain_shape) = {len(self.W.domain_shape)}, got {ndim}")
        return _sum_last(self.W(x).abs(), len(self.W.range_shape))


@dataclass(frozen=True, init=False)
class TV(ProxOperator):
    r"""Isotropic total variation ``R(x) = sum_i |(D x)_i|_2`` (``D`` =
    :class:`FiniteDifferences`, ``|.|_2`` over the gradient components of pixel ``i``),
    optionally plus the indicator of ``x >= 0``.

    The prox ``argmin_x 1/2 ||x - v||^2 + t R(x)`` has no closed form; it is computed by
    ``n_inner`` iterations of the fast gradient projection (FGP) of Beck & Teboulle (2009)
    on the dual (Chambolle 2004): with ``|q_i|_2 <= 1`` and ``x(q) = P(v - t D^T q)``,

    .. math:: q \leftarrow \Pi_{|q_i| \le 1}\left(r + \frac{1}{t\,\|D\|^2} D\, x(r)\right)

    plus Nesterov momentum on ``r``; the result is ``x(q)`` (``P`` projects onto
    ``x >= 0`` when ``nonneg``, the identity otherwise). ``||D||`` is exact
    (:meth:`FiniteDifferences.norm`). The dual starts at 0 on every call (no hidden state).

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)`` / ``(nz, ny, nx)``.
    dims, spacing
        As in :class:`FiniteDifferences` (axes and spacing of the gradient).
    n_inner : int
        Number of FGP iterations per prox evaluation.
    nonneg : bool
        Also constrain ``x >= 0`` (real tensors only).
    """

    grad: FiniteDifferences
    n_inner: int
    nonneg: bool

    def __init__(
        self, shape: Any, *, dims: Any = None, spacing: Any = None, n_inner: int = 50, nonneg: bool = False
    ) -> None:
        if isinstance(n_inner, bool) or not isinstance(n_inner, int) or n_inner < 1:
            raise ValueError(f"n_inner must be a positive int, got {n_inner!r}")
        if not isinstance(nonneg, bool):
            raise TypeError(f"nonneg must be a bool, got {type(nonneg).__name__}")
        object.__setattr__(self, "grad", FiniteDifferences(shape, dims=dims, spacing=spacing))
        object.__setattr__(self, "n_inner", n_inner)
        object.__setattr__(self, "nonneg", nonneg)

    def __repr__(self) -> str:
        D = self.grad
        return f"TV({D.shape}, dims={D.dims}, spacing={D.spacing}, n_inner={self.n_inner}, nonneg={self.nonneg})"

    def _project_primal(self, x: Tensor) -> Tensor:
        return x.clamp(min=0.0) if self.nonneg else x

    def _pixel_norm(self, q: Tensor) -> Tensor:
        """``|q_i|_2`` over the component axis (right before the spatial axes), kept as a size-1 axis."""
        axis = q.dim() - len(self.grad.shape) - 1
        sq = q.real.square() + q.imag.square() if q.is_complex() else q.square()
        return sq.sum(dim=axis, keepdim=True).sqrt()

    def __call__(self, v: Tensor, t: float) -> Tensor:
        check_tensor(v, "v")
        t = _check_t(t)
        if self.nonneg and v.is_complex():
            raise TypeError("TV(nonneg=True) needs a real tensor, got a complex one")
        if t == 0.0:
            return self._project_primal(v)
        D = self.grad
        step = 1.0 / (t * D.norm() ** 2)
        q = torch.zeros((*v.shape[: v.dim() - len(D.shape)], *D.range_shape), dtype=v.dtype, device=v.device)
        r, s = q, 1.0
        for _ in range(self.n_inner):
            z = r + step * D(self._project_primal(v - t * D.T(r)))
            q_new = z / self._pixel_norm(z).clamp(min=1.0)
            s_new = (1.0 + (1.0 + 4.0 * s * s) ** 0.5) / 2.0
            r = q_new + ((s - 1.0) / s_new) * (q_new - q)
            q, s = q_new, s_new
        return self._project_primal(v - t * D.T(q))

    def value(self, x: Tensor, ndim: int) -> Tensor:
        if ndim != len(self.grad.shape):
            raise ValueError(f"ndim must be len(shape) = {len(self.grad.shape)}, got {ndim}")
        tv = _sum_last(self._pixel_norm(self.grad(x)), ndim + 1)
        if self.nonneg:
            feasible = (x >= 0).flatten(start_dim=x.dim() - ndim).all(dim=-1)
            tv = torch.where(feasible, tv, float("inf"))
        return tv
