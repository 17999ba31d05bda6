"""3-D circular cone-beam geometry with flat or cylindrical detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import choice, fan_distances, geometry_angles, per_axis
from ._circular import circular_vectors
from .base import Geometry, repr_fields
from .parallel import _det_shape


@dataclass(frozen=True, init=False, repr=False)
class ConeBeam3D(Geometry):
    """Circular cone beam about the z axis (the mid-plane is the 2-D fan beam).

    Parameters
    ----------
    angles : 1-D array of float
        Source angles in radians; the source is at ``src_iso * (sin t, cos t, 0)``.
    det_shape : (int, int)
        ``(rows, cols)``; rows run along +z (v), columns along u.
    det_spacing : float or (float, float)
        ``(dv, du)`` pixel pitch in mm; for ``"cylindrical"`` ``du`` is the arc length on
        the cylinder of radius ``src_det`` about the source.
    src_iso, src_det : float
        Source-to-isocentre and source-to-detector distances (mm).
    detector : {"flat", "cylindrical"}
    det_offset : float or (float, float)
        ``(v, u)`` shift of the detector centre in mm; for ``"cylindrical"`` the u shift
        is an arc length on the cylinder (the detector rotates about the source).

    Notes
    -----
    Shape: projections ``(*batch, n_views, rows, cols)``.
    """

    angles: tuple[float, ...]
    det_shape: tuple[int, int]
    det_spacing: tuple[float, float]
    src_iso: float
    src_det: float
    detector: str
    det_offset: tuple[float, float]
    ndim = 3
    beam = "cone"

    def __init__(
        self,
        *,
        angles: Any,
        det_shape: Any,
        det_spacing: Any,
        src_iso: float,
        src_det: float,
        detector: str = "flat",
        det_offset: Any = 0.0,
    ) -> None:
        src_iso, src_det = fan_distances(src_iso, src_det)
        object.__setattr__(self, "angles", geometry_angles(angles))
        object.__setattr__(self, "det_shape", _det_shape(det_shape))
        object.__setattr__(self, "det_spacing", per_axis(det_spacing, 2, "det_spacing", positive=True))
        object.__setattr__(self, "src_iso", src_iso)
        object.__setattr__(self, "src_det", src_det)
        object.__setattr__(self, "detector", choice(detector, "detector", ("flat", "cylindrical")))
        object.__setattr__(self, "det_offset", per_axis(det_offset, 2, "det_offset", positive=False))

    @property
    def n_views(self) -> int:
        return len(self.angles)

    def _vectors(self) -> np.ndarray:
        (dv, du), (ov, ou) = self.det_spacing, self.det_offset
        return circular_vectors(
            self.angles, self.src_iso, self.src_det, du, ou, self.detector == "cylindrical", dv=dv, offset_v=ov
        ).numpy()

    def __repr__(self) -> str:
        return repr_fields(self)
