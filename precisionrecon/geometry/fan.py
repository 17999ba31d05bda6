"""2-D fan-beam geometry with flat or arc (equiangular) detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import choice, fan_distances, finite_float, geometry_angles, positive_float, positive_int
from ._circular import circular_vectors
from .base import Geometry, repr_fields


@dataclass(frozen=True, init=False, repr=False)
class FanBeam2D(Geometry):
    """2-D fan beam, source on a circle of radius ``src_iso`` about the origin.

    Parameters
    ----------
    angles : 1-D array of float
        Source angles in radians; the source is at ``src_iso * (sin t, cos t)``.
    det_count : int
        Detector pixels.
    det_spacing : float
        Pixel pitch in mm; for ``detector="arc"`` the arc length between pixel centres
        on the circle of radius ``src_det`` about the source.
    src_iso, src_det : float
        Source-to-isocentre and source-to-detector distances (mm), ``src_det > src_iso``.
    detector : {"flat", "arc"}
        Flat (equispaced) or arc (equiangular) detector.
    det_offset : float
        Shift of the detector centre along u in mm (along the arc for ``"arc"``).

    Notes
    -----
    Shape: sinograms ``(*batch, n_views, det_count)``.
    """

    angles: tuple[float, ...]
    det_count: int
    det_spacing: float
    src_iso: float
    src_det: float
    detector: str
    det_offset: float
    ndim = 2
    beam = "cone"

    def __init__(
        self,
        *,
        angles: Any,
        det_count: int,
        det_spacing: float,
        src_iso: float,
        src_det: float,
        detector: str = "flat",
        det_offset: float = 0.0,
    ) -> None:
        src_iso, src_det = fan_distances(src_iso, src_det)
        object.__setattr__(self, "angles", geometry_angles(angles))
        object.__setattr__(self, "det_count", positive_int(det_count, "det_count"))
        object.__setattr__(self, "det_spacing", positive_float(det_spacing, "det_spacing"))
        object.__setattr__(self, "src_iso", src_iso)
        object.__setattr__(self, "src_det", src_det)
        object.__setattr__(self, "detector", choice(detector, "detector", ("flat", "arc")))
        object.__setattr__(self, "det_offset", finite_float(det_offset, "det_offset"))

    @property
    def det_shape(self) -> tuple[int, ...]:
        return (self.det_count,)

    @property
    def n_views(self) -> int:
        return len(self.angles)

    @property
    def fan_angle(self) -> float:
        """Full fan angle (radians) covered by the detector, offsets ignored."""
        half = 0.5 * self.det_count * self.det_spacing
        if self.detector == "arc":
            return 2.0 * half / self.src_det
        return 2.0 * float(np.arctan(half / self.src_det))

    def _vectors(self) -> np.ndarray:
        return circular_vectors(
            self.angles, self.src_iso, self.src_det, self.det_spacing, self.det_offset, self.detector == "arc"
        ).numpy()

    def __repr__(self) -> str:
        return repr_fields(self)
