"""Parallel-beam geometries (2-D and 3-D)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import finite_float, geometry_angles, per_axis, positive_float, positive_int
from ._circular import parallel_vectors
from .base import Geometry, repr_fields


def _det_shape(value: Any) -> tuple[int, int]:
    if isinstance(value, int) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"det_shape must be (rows, cols), got {value!r}")
    return positive_int(value[0], "det_shape[0]"), positive_int(value[1], "det_shape[1]")


@dataclass(frozen=True, init=False, repr=False)
class ParallelBeam2D(Geometry):
    """2-D parallel beam with a flat detector.

    At angle ``theta`` the rays travel along ``(-sin theta, -cos theta)`` and detector
    pixel ``k`` sits at ``(k - (n - 1) / 2) * det_spacing + det_offset`` along
    ``u = (cos theta, -sin theta)`` (world x, y; y grows with the image row). These are
    the rays of ASTRA's ``parallel`` geometry in row-major image coordinates (ASTRA's ray
    vector points the other way, which does not change a line integral).

    Shape: sinograms ``(*batch, n_views, det_count)``.
    """

    angles: tuple[float, ...]
    det_count: int
    det_spacing: float
    det_offset: float
    ndim = 2
    beam = "parallel"

    def __init__(self, *, angles: Any, det_count: int, det_spacing: float = 1.0, det_offset: float = 0.0) -> None:
        object.__setattr__(self, "angles", geometry_angles(angles))
        object.__setattr__(self, "det_count", positive_int(det_count, "det_count"))
        object.__setattr__(self, "det_spacing", positive_float(det_spacing, "det_spacing"))
        object.__setattr__(self, "det_offset", finite_float(det_offset, "det_offset"))

    @property
    def det_shape(self) -> tuple[int, ...]:
        return (self.det_count,)

    @property
    def n_views(self) -> int:
        return len(self.angles)

    def _vectors(self) -> np.ndarray:
        return parallel_vectors(self.angles, self.det_spacing, self.det_offset).numpy()

    def __repr__(self) -> str:
        return repr_fields(self)


@dataclass(frozen=True, init=False, repr=False)
class ParallelBeam3D(Geometry):
    """3-D parallel beam rotating about the z axis, flat detector.

    As :class:`ParallelBeam2D` in the x-y plane; detector rows run along +z.
    ``det_spacing`` and ``det_offset`` are ``(rows, cols)`` pairs (or scalars).

    Shape: projections ``(*batch, n_views, rows, cols)``.
    """

    angles: tuple[float, ...]
    det_shape: tuple[int, int]
    det_spacing: tuple[float, float]
    det_offset: tuple[float, float]
    ndim = 3
    beam = "parallel"

    def __init__(self, *, angles: Any, det_shape: Any, det_spacing: Any = 1.0, det_offset: Any = 0.0) -> None:
        object.__setattr__(self, "angles", geometry_angles(angles))
        object.__setattr__(self, "det_shape", _det_shape(det_shape))
        object.__setattr__(self, "det_spacing", per_axis(det_spacing, 2, "det_spacing", positive=True))
        object.__setattr__(self, "det_offset", per_axis(det_offset, 2, "det_offset", positive=False))

    @property
    def n_views(self) -> int:
        return len(self.angles)

    def _vectors(self) -> np.ndarray:
        (dv, du), (ov, ou) = self.det_spacing, self.det_offset
        return parallel_vectors(self.angles, du, ou, dv=dv, offset_v=ov).numpy()

    def __repr__(self) -> str:
        return repr_fields(self)
