"""The reconstruction volume: a grid of voxels in world millimetres."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._validate import per_axis, positive_int


@dataclass(frozen=True, init=False)
class Volume:
    """A regular 2-D or 3-D voxel grid.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``, the tensor shape of an image.
    spacing : float or tuple of float
        Voxel size in mm, per axis in the order of ``shape``.
    center : float or tuple of float
        World coordinates (mm) of the grid centre, per axis in the order of ``shape``.

    Notes
    -----
    Shape: images are ``(*batch, ny, nx)`` or ``(*batch, nz, ny, nx)``.
    World axes x, y, z follow the tensor axes ``-1, -2, -3``; voxel ``i`` along an axis
    with ``n`` voxels is centred at ``center + (i - (n - 1) / 2) * spacing``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    center: tuple[float, ...]

    def __init__(self, shape: Any, spacing: Any = 1.0, center: Any = 0.0) -> None:
        if isinstance(shape, int) or not hasattr(shape, "__len__"):
            raise TypeError(f"shape must be a tuple (ny, nx) or (nz, ny, nx), got {shape!r}")
        if len(shape) not in (2, 3):
            raise ValueError(f"shape must have 2 or 3 entries (ny, nx) or (nz, ny, nx), got {tuple(shape)}")
        shp = tuple(positive_int(n, f"shape[{i}]") for i, n in enumerate(shape))
        object.__setattr__(self, "shape", shp)
        object.__setattr__(self, "spacing", per_axis(spacing, len(shp), "spacing", positive=True))
        object.__setattr__(self, "center", per_axis(center, len(shp), "center", positive=False))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def extent(self) -> tuple[float, ...]:
        """Physical size in mm per axis (order of ``shape``)."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))

    def kernel_params(self) -> tuple[list[int], list[float], list[float]]:
        """``(n, spacing, offset)`` per axis in tensor order, where the index coordinate
        of world point p is ``p / spacing + offset``."""
        offset = [(n - 1) / 2 - c / s for n, s, c in zip(self.shape, self.spacing, self.center, strict=True)]
        return list(self.shape), list(self.spacing), offset

    def __repr__(self) -> str:
        return f"Volume(shape={self.shape!r}, spacing={self.spacing!r}, center={self.center!r})"
