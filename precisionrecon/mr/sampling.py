"""Cartesian k-space sampling: multiplication by a (0/1 or weighted) mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validate import as_shape, batch_shape, check_tensor
from ..operators.base import LinearOperator
from ._common import as_complex, real_dtype


@dataclass(frozen=True, eq=False)
class Sampling(LinearOperator):
    r"""Cartesian undersampling ``y = m \odot x`` on the full k-space grid (fastMRI convention:
    unsampled entries are zero, the data keep the grid shape).

    The mask is real (boolean, 0/1 or non-negative weights), so the operator is self-adjoint;
    with a 0/1 mask it is an orthogonal projection. A floating-point mask that requires
    grad makes the sampling pattern learnable.

    Parameters
    ----------
    mask : Tensor
        Boolean or real mask, broadcastable to ``shape`` (e.g. ``(ny, nx)`` for
        ``shape = (n_coils, ny, nx)``).
    shape : tuple of int, optional
        Trailing shape of the k-space data; default ``mask.shape``.

    Notes
    -----
    Shape: ``(*batch, *shape) -> (*batch, *shape)``, complex.
    """

    mask: Tensor
    shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        m = self.mask
        check_tensor(m, "mask", dtype=None)
        if m.is_complex() or not (m.dtype == torch.bool or m.dtype.is_floating_point):
            raise TypeError(f"mask must be a boolean or real floating-point tensor, got {m.dtype}")
        if m.dim() == 0:
            raise ValueError("mask must have at least one dimension")
        check_tensor(m, "mask", dtype=None, finite=m.dtype.is_floating_point)
        shape = tuple(m.shape) if self.shape is None else as_shape(self.shape)
        try:
            ok = torch.broadcast_shapes(tuple(m.shape), shape) == shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"mask of shape {tuple(m.shape)} does not broadcast to shape {shape}")
        object.__setattr__(self, "shape", shape)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape  # type: ignore[return-value]

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.mask.device

    def _weights(self, x: Tensor) -> Tensor:
        return self.mask.to(device=x.device, dtype=real_dtype(x.dtype))

    def apply(self, x: Tensor) -> Tensor:
        """Zero the unsampled entries. Shape: ``(*batch, *shape) -> (*batch, *shape)``."""
        x = as_complex(x)
        batch_shape(x, self.shape, "x")  # type: ignore[arg-type]
        return x * self._weights(x)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        y = as_complex(y, "y")
        batch_shape(y, self.shape, "y")  # type: ignore[arg-type]
        return y * self._weights(y)

    def norm(self, **kwargs: object) -> float:
        return float(self.mask.detach().double().abs().max())

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    @property
    def acceleration(self) -> float:
        """Number of grid points over the number of sampled points (``inf`` for an empty mask)."""
        return acceleration(self.mask, self.shape)

    def __repr__(self) -> str:
        return f"Sampling(mask=<{tuple(self.mask.shape)} {self.mask.dtype}>, shape={self.shape})"


def acceleration(mask: Tensor, shape: Sequence[int] | None = None) -> float:
    """Undersampling factor ``N / (number of non-zero mask entries)`` of ``mask`` broadcast to ``shape``."""
    check_tensor(mask, "mask", dtype=None)
    full = mask.detach() if shape is None else torch.broadcast_to(mask.detach(), tuple(shape))
    n = int((full != 0).sum())
    return float("inf") if n == 0 else full.numel() / n
