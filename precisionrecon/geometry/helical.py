r"""Helical (spiral) cone-beam geometry of clinical CT, with a flying focal spot.

The source (focal spot) circles the z axis while the table moves: at angle ``t`` the
*detector focal centre* sits at

.. math:: c(t) = (R \sin t, \; R \cos t, \; z_0 + h \, t / (2 \pi)),

``R = src_iso`` and ``h = table_feed`` (mm per turn of ``t``, signed), the same angle
convention as :class:`ConeBeam3D` (whose mid-plane is :class:`FanBeam2D`). The detector
is fixed to ``c``: its centre lies at distance ``src_det`` beyond ``c`` through the
isocentre axis, rows along +z, columns along ``(cos t, -sin t, 0)``; a cylindrical
detector bends about the axis through ``c`` parallel to z (DICOM-CT-PD's "detector
focal centre").

A flying focal spot moves the source away from ``c`` per view by ``ffs_angle`` (radians,
in the sense of ``t``), ``ffs_z`` (mm) and ``ffs_radius`` (mm), i.e. to
``((R + dr) \sin(t + da), (R + dr) \cos(t + da), z(t) + dz)``, while the detector stays.

Vectors (:meth:`HelicalConeBeam.to_vectors`): exact for both detectors and any focal
spot. A flat detector needs nothing else: the source moves, the detector stays. A
cylindrical detector is the cylinder about the axis through ``c`` parallel to z: without
a flying focal spot the source is ``c`` (12 numbers per view, the cylinder about the
source); with one, every view carries ``c`` as well (15 numbers per view ``[s, d, u, v,
c]``, the kernels' cylinder about ``c``, see :class:`~precisionrecon.VectorGeometry`),
so each ray runs from the shifted source to the pixel on the cylinder about the focal
centre.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import as_float_tuple, choice, fan_distances, finite_float, geometry_angles, per_axis, positive_int
from .base import Geometry, _normalise_key, repr_fields
from .cone import ConeBeam3D
from .parallel import _det_shape

# the per-view fields, sliced together with the angles
_PER_VIEW = ("angles", "ffs_angle", "ffs_z", "ffs_radius")


def _per_view(value: Any, n: int, name: str) -> tuple[float, ...]:
    """A number (the same for every view) or ``n`` numbers, as a tuple of ``n`` floats."""
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return (finite_float(value, name),) * n
    out = as_float_tuple(value, name)
    if len(out) != n:
        raise ValueError(f"{name} must be a number or one value per view ({n}), got {len(out)} values")
    return out


@dataclass(frozen=True, init=False, repr=False)
class HelicalConeBeam(Geometry):
    """Helical cone beam with a flat or cylindrical detector and a flying focal spot.

    Parameters
    ----------
    angles : 1-D array of float, optional
        Angle ``t`` of the detector focal centre per view (radians, unwrapped: a helix of
        two turns spans ``4 pi``). Give either ``angles`` or ``n_views`` and
        ``views_per_rotation``.
    n_views, views_per_rotation : int, optional
        Equispaced views ``t_k = start_angle + 2 pi k / views_per_rotation``.
    start_angle : float
        First angle with ``n_views`` (radians).
    det_shape : (int, int)
        ``(rows, cols)``; rows run along +z (v), columns along u.
    det_spacing : float or (float, float)
        ``(dv, du)`` pixel pitch in mm at the detector; for ``"cylindrical"`` ``du`` is the
        arc length on the cylinder of radius ``src_det``.
    src_iso, src_det : float
        Focal centre to isocentre and focal centre to detector distances (mm).
    table_feed : float, optional
        z advance of the focal centre per turn of ``t`` (mm, signed). Give either this or
        ``pitch``.
    pitch : float, optional
        Table feed over the collimation at the isocentre, ``rows * dv * src_iso / src_det``
        (the spiral pitch factor); positive: z grows with ``t``.
    z_start : float
        z of the focal centre at ``t = 0`` (mm).
    detector : {"cylindrical", "flat"}
    det_offset : float or (float, float)
        ``(v, u)`` shift of the detector centre in mm (u as arc length if cylindrical), as
        for :class:`ConeBeam3D`: the central ray hits the detector at ``-det_offset``.
    ffs_angle, ffs_z, ffs_radius : float or 1-D array of float
        Flying focal spot: shift of the source from the focal centre per view, in angle
        (radians, sense of ``t``), along z (mm) and in radius (mm). 0: no flying focal spot.

    Notes
    -----
    Shape: projections ``(*batch, n_views, rows, cols)``.
    """

    angles: tuple[float, ...]
    det_shape: tuple[int, int]
    det_spacing: tuple[float, float]
    src_iso: float
    src_det: float
    table_feed: float
    z_start: float
    detector: str
    det_offset: tuple[float, float]
    ffs_angle: tuple[float, ...]
    ffs_z: tuple[float, ...]
    ffs_radius: tuple[float, ...]
    ndim = 3
    beam = "cone"

    def __init__(
        self,
        *,
        det_shape: Any,
        det_spacing: Any,
        src_iso: float,
        src_det: float,
        angles: Any = None,
        n_views: int | None = None,
        views_per_rotation: int | None = None,
        start_angle: float = 0.0,
        table_feed: float | None = None,
        pitch: float | None = None,
        z_start: float = 0.0,
        detector: str = "cylindrical",
        det_offset: Any = 0.0,
        ffs_angle: Any = 0.0,
        ffs_z: Any = 0.0,
        ffs_radius: Any = 0.0,
    ) -> None:
        if (angles is None) == (n_views is None and views_per_rotation is None):
            raise ValueError("give either angles or n_views and views_per_rotation")
        if angles is None:
            if n_views is None or views_per_rotation is None:
                raise ValueError("n_views and views_per_rotation go together (or give angles)")
            n = positive_int(n_views, "n_views")
            step = 2.0 * math.pi / positive_int(views_per_rotation, "views_per_rotation")
            angles = finite_float(start_angle, "start_angle") + step * np.arange(n)
        src_iso, src_det = fan_distances(src_iso, src_det)
        shape = _det_shape(det_shape)
        spacing = per_axis(det_spacing, 2, "det_spacing", positive=True)
        if (table_feed is None) == (pitch is None):
            raise ValueError("give exactly one of table_feed (mm per turn) and pitch (table feed over collimation)")
        if table_feed is None:
            table_feed = finite_float(pitch, "pitch") * shape[0] * spacing[0] * src_iso / src_det
        th = geometry_angles(angles)
        n = len(th)
        object.__setattr__(self, "angles", th)
        object.__setattr__(self, "det_shape", shape)
        object.__setattr__(self, "det_spacing", spacing)
        object.__setattr__(self, "src_iso", src_iso)
        object.__setattr__(self, "src_det", src_det)
        object.__setattr__(self, "table_feed", finite_float(table_feed, "table_feed"))
        object.__setattr__(self, "z_start", finite_float(z_start, "z_start"))
        object.__setattr__(self, "detector", choice(detector, "detector", ("cylindrical", "flat")))
        object.__setattr__(self, "det_offset", per_axis(det_offset, 2, "det_offset", positive=False))
        object.__setattr__(self, "ffs_angle", _per_view(ffs_angle, n, "ffs_angle"))
        object.__setattr__(self, "ffs_z", _per_view(ffs_z, n, "ffs_z"))
        object.__setattr__(self, "ffs_radius", _per_view(ffs_radius, n, "ffs_radius"))
        if max(abs(r) for r in self.ffs_radius) >= src_iso:
            raise ValueError(f"ffs_radius must stay below src_iso={src_iso} in magnitude")
        if max(abs(a) for a in self.ffs_angle) >= 0.5 * math.pi:
            raise ValueError("ffs_angle must stay below pi / 2 in magnitude (it is a small focal spot shift)")

    # ------------------------------------------------------------------------ facts
    @property
    def n_views(self) -> int:
        return len(self.angles)

    @property
    def pitch(self) -> float:
        """Spiral pitch factor: table feed over the collimation at the isocentre."""
        return self.table_feed / (self.det_shape[0] * self.det_spacing[0] * self.src_iso / self.src_det)

    @property
    def has_ffs(self) -> bool:
        """Whether any view's focal spot leaves the focal centre."""
        return any(any(v != 0.0 for v in getattr(self, f)) for f in _PER_VIEW[1:])

    def focal_centres(self) -> np.ndarray:
        """Detector focal centre per view ``(x, y, z)`` in mm. Shape: ``(n_views, 3)``, float64."""
        t = np.asarray(self.angles)
        z = self.z_start + self.table_feed * t / (2.0 * math.pi)
        return np.stack([self.src_iso * np.sin(t), self.src_iso * np.cos(t), z], axis=1)

    def sources(self) -> np.ndarray:
        """Source (focal spot) position per view, flying focal spot included. Shape: ``(n_views, 3)``."""
        t = np.asarray(self.angles) + np.asarray(self.ffs_angle)
        r = self.src_iso + np.asarray(self.ffs_radius)
        z = self.focal_centres()[:, 2] + np.asarray(self.ffs_z)
        return np.stack([r * np.sin(t), r * np.cos(t), z], axis=1)

    def z_range(self, radius: float = 0.0) -> tuple[float, float]:
        """The z interval in which every point within ``radius`` (mm) of the axis is seen over
        the whole angular range a helical FBP uses: the focal centres' z range shrunk at each
        end by the half detector height projected from the source to the far side
        (``rows * dv / 2 * (src_iso + radius) / src_det``) plus half a turn of table feed.

        Empty (``lo > hi``) when the scan is too short.
        """
        z = self.focal_centres()[:, 2]
        (rows, _), (dv, _) = self.det_shape, self.det_spacing
        margin = 0.5 * rows * dv * (self.src_iso + float(radius)) / self.src_det + 0.5 * abs(self.table_feed)
        return float(z.min()) + margin, float(z.max()) - margin

    def circular(self) -> ConeBeam3D:
        """The circular cone beam with the same angles and detector (no table feed, no flying
        focal spot): what the detector-domain facts (pixel coordinates, fan angles, cosine
        weights, ramp filter design) are computed on."""
        return ConeBeam3D(
            angles=self.angles,
            det_shape=self.det_shape,
            det_spacing=self.det_spacing,
            src_iso=self.src_iso,
            src_det=self.src_det,
            detector=self.detector,
            det_offset=self.det_offset,
        )

    # ------------------------------------------------------------------------ vectors
    def _vectors(self) -> np.ndarray:
        t = np.asarray(self.angles)
        s, c = np.sin(t), np.cos(t)
        zero = np.zeros_like(t)
        axis = np.stack([-s, -c, zero], axis=1)  # from the focal centre towards the isocentre
        uhat = np.stack([c, -s, zero], axis=1)
        zhat = np.stack([zero, zero, zero + 1.0], axis=1)
        (dv, du), (ov, ou) = self.det_spacing, self.det_offset
        centre = self.focal_centres()
        src = self.sources()
        D = self.src_det
        if self.detector == "flat":
            det = centre + D * axis + ou * uhat + ov * zhat
            return np.concatenate([src, det, du * uhat, dv * zhat], axis=1)
        beta = ou / D  # arc angle of the detector centre
        det = centre + D * (math.cos(beta) * axis + math.sin(beta) * uhat) + ov * zhat
        tangent = math.cos(beta) * uhat - math.sin(beta) * axis
        vec = np.concatenate([src, det, du * tangent, dv * zhat], axis=1)
        if self.vector_width == 15:  # the cylinder about the focal centre, not the moved source
            vec = np.concatenate([vec, centre], axis=1)
        return vec

    @property
    def vector_width(self) -> int:  # type: ignore[override]
        """15 for a cylindrical detector with a flying focal spot (the cylinder axis point ``c``
        is the focal centre), else 12."""
        return 15 if self.detector == "cylindrical" and self.has_ffs else 12

    # ------------------------------------------------------------------------ slicing, repr
    def __getitem__(self, key: Any) -> HelicalConeBeam:
        """Select views: ``geom[::2]``, ``geom[3]``, ``geom[[0, 5, 7]]`` (flying focal spot offsets follow)."""
        index = np.atleast_1d(np.arange(self.n_views)[_normalise_key(key)])
        if index.size == 0:
            raise ValueError(f"view selection {key!r} selects no view")
        return dataclasses.replace(
            self, **{name: [getattr(self, name)[i] for i in index] for name in _PER_VIEW}
        )

    def replace(self, **changes: Any) -> HelicalConeBeam:
        """A copy with some constructor arguments changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return repr_fields(self)

