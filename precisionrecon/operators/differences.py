"""Forward finite differences (the discrete gradient) and their adjoint (minus the divergence)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import REAL_OR_COMPLEX, check_tensor, per_axis, positive_int
from .base import LinearOperator


@dataclass(frozen=True, init=False, eq=False)
class FiniteDifferences(LinearOperator):
    r"""Discrete gradient by forward differences with a Neumann boundary.

    Along each differentiated axis ``a`` with ``n`` samples and spacing ``h``:

    .. math:: (D_a x)_i = (x_{i+1} - x_i) / h \quad (i < n - 1), \qquad (D_a x)_{n-1} = 0,

    and the components are stacked on a new axis placed right before the spatial axes.
    The adjoint is minus the divergence of Chambolle (2004):
    ``(D_a^T g)_i = (g_{i-1} - g_i) / h`` with ``g_{-1} = 0`` and ``g_{n-1}`` replaced by 0.
    Real and complex tensors both work (the operator has real coefficients).

    Parameters
    ----------
    shape : tuple of int
        The spatial shape of one image, e.g. ``(ny, nx)`` or ``(nz, ny, nx)``.
    dims : tuple of int, optional
        Axes of ``shape`` to differentiate (negative indices count from the end); default
        all of them. ``dims=(-2, -1)`` on a 3-D shape gives the in-plane gradient.
    spacing : float or tuple of float, optional
        Sample spacing (e.g. mm), a scalar or one value per axis of ``shape`` (tensor
        order, as :attr:`Volume.spacing`); default 1 (differences per sample).

    Notes
    -----
    Shape: ``(*batch, *shape) -> (*batch, len(dims), *shape)``. The operator norm is known
    in closed form (:meth:`norm`): ``||D||^2 = sum_a 4 sin^2(pi (n_a - 1) / (2 n_a)) / h_a^2
    <= 4 len(dims) / min(h)^2``.
    """

    shape: tuple[int, ...]
    dims: tuple[int, ...]
    spacing: tuple[float, ...]

    def __init__(self, shape: Any, dims: Any = None, spacing: Any = None) -> None:
        if isinstance(shape, int) or not hasattr(shape, "__len__") or len(shape) == 0:
            raise TypeError(f"shape must be a non-empty tuple of ints such as (ny, nx), got {shape!r}")
        shp = tuple(positive_int(n, f"shape[{i}]") for i, n in enumerate(shape))
        nd = len(shp)
        if dims is None:
            axes = tuple(range(nd))
        else:
            if isinstance(dims, int) or not hasattr(dims, "__len__") or len(dims) == 0:
                raise TypeError(f"dims must be a non-empty tuple of axes of shape, got {dims!r}")
            axes = []
            for d in dims:
                if isinstance(d, bool) or not isinstance(d, int):
                    raise TypeError(f"dims must hold ints, got {type(d).__name__}")
                if not -nd <= d < nd:
                    raise ValueError(f"dims entry {d} is out of range for a {nd}-D shape")
                axes.append(d % nd)
            axes = tuple(axes)
            if len(set(axes)) != len(axes):
                raise ValueError(f"dims must not repeat an axis, got {tuple(dims)}")
        sp = (1.0,) * nd if spacing is None else per_axis(spacing, nd, "spacing", positive=True)
        object.__setattr__(self, "shape", shp)
        object.__setattr__(self, "dims", axes)
        object.__setattr__(self, "spacing", sp)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (len(self.dims), *self.shape)

    def apply(self, x: Tensor) -> Tensor:
        """Gradient. Shape: ``(*batch, *shape) -> (*batch, len(dims), *shape)``."""
        check_tensor(x, "x", dtype=REAL_OR_COMPLEX, shape_suffix=self.shape)
        lead = x.dim() - len(self.shape)
        comps = []
        for a in self.dims:
            ax = lead + a
            d = torch.diff(x, dim=ax) / self.spacing[a]
            zero = torch.zeros_like(x.narrow(ax, 0, 1))
            comps.append(torch.cat([d, zero], dim=ax))  # Neumann: last difference is 0
        return torch.stack(comps, dim=lead)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Minus the divergence. Shape: ``(*batch, len(dims), *shape) -> (*batch, *shape)``."""
        check_tensor(y, "y", dtype=REAL_OR_COMPLEX, shape_suffix=self.range_shape)
        lead = y.dim() - len(self.shape) - 1
        out = None
        for j, a in enumerate(self.dims):
            g = y.select(lead, j)
            ax = lead + a
            n = self.shape[a]
            gi = g.narrow(ax, 0, n - 1) / self.spacing[a]  # the differences that exist (last one is 0)
            zero = torch.zeros_like(g.narrow(ax, 0, 1))
            term = torch.cat([zero, gi], dim=ax) - torch.cat([gi, zero], dim=ax)  # g_{i-1} - g_i
            out = term if out is None else out + term
        assert out is not None
        return out

    def norm(self, **kwargs: Any) -> float:
        """Exact operator norm: ``sqrt(sum_a 4 sin^2(pi (n_a - 1) / (2 n_a)) / h_a^2)``.

        The 1-D Neumann Laplacian ``D_a^T D_a`` has eigenvalues ``4 sin^2(pi k / (2 n))``,
        ``k = 0..n-1``, with cosine eigenvectors; the axes share them, so the largest
        eigenvalue of ``D^T D`` is the sum of the per-axis largest ones.
        """
        total = 0.0
        for a in self.dims:
            n, h = self.shape[a], self.spacing[a]
            total += 4.0 * math.sin(math.pi * (n - 1) / (2 * n)) ** 2 / h**2
        return math.sqrt(total)

    def __repr__(self) -> str:
        return f"FiniteDifferences(shape={self.shape}, dims={self.dims}, spacing={self.spacing})"
