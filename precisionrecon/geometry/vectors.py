"""Geometries given directly by per-view vectors (arbitrary trajectories)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import as_float_array, choice, positive_int
from .base import Geometry, repr_fields


def _first(bad: np.ndarray) -> int:
    """The index of the first true entry (the view an error message names)."""
    return int(np.flatnonzero(bad)[0])


@dataclass(frozen=True, init=False, repr=False)
class VectorGeometry(Geometry):
    """A geometry given view by view, as ASTRA's ``parallel_vec``/``fanflat_vec``/``cone_vec``.

    Parameters
    ----------
    vectors : array of shape (n_views, 6), (n_views, 12) or (n_views, 15)
        2-D rows ``[s_x, s_y, d_x, d_y, u_x, u_y]``; 3-D rows
        ``[s_x, s_y, s_z, d_x, d_y, d_z, u_x, u_y, u_z, v_x, v_y, v_z]``: ``s`` the ray
        direction (``beam="parallel"``) or the source position (``beam="cone"``), ``d``
        the detector centre, ``u``/``v`` the vectors between neighbouring pixels. 15
        columns (3-D, ``detector="curved"``) append a point ``c = (c_x, c_y, c_z)`` of the
        cylinder axis: the detector bends about the axis through ``c`` parallel to ``v``
        instead of the axis through the source (a clinical CT detector is a cylinder about
        the focal centre, from which a flying focal spot moves the source); the source must
        lie inside that cylinder. This is ASTRA's ``cyl_cone_vec``, whose axis lies at the
        cylinder radius from ``d`` towards the source.
    det_shape : int or (int, int)
        ``n_det`` in 2-D, ``(rows, cols)`` in 3-D (rows along v, columns along u).
    beam : {"parallel", "cone"}
    detector : {"flat", "curved"}
        ``"curved"`` bends the detector in u around an axis through the source (or through
        ``c``, 15 columns) parallel to v (arc in 2-D, cylinder in 3-D); ``|u|`` is then the
        arc length between pixels and ``u`` the tangent at ``d``. Cone beam only.

    Notes
    -----
    Shape: projections ``(*batch, n_views, *det_shape)``.
    """

    vectors: tuple[tuple[float, ...], ...]
    det_shape: tuple[int, ...]
    beam: str
    detector: str

    def __init__(self, *, vectors: Any, det_shape: Any, beam: str, detector: str = "flat") -> None:
        arr = as_float_array(vectors, "vectors", ndim=2)
        if arr.shape[0] == 0:
            raise ValueError("vectors must hold at least one view, got 0")
        if arr.shape[1] not in (6, 12, 15):
            raise ValueError(
                f"vectors must have 6 (2-D), 12 (3-D) or 15 (3-D, cylinder axis point) columns, got shape {arr.shape}"
            )
        ndim = 2 if arr.shape[1] == 6 else 3
        if isinstance(det_shape, (int, np.integer)):
            det_shape = (det_shape,)
        if not hasattr(det_shape, "__len__") or len(det_shape) != ndim - 1:
            expected = "an int (n_det)" if ndim == 2 else "(rows, cols)"
            raise ValueError(f"det_shape must be {expected} for {ndim}-D vectors, got {det_shape!r}")
        shape = tuple(positive_int(n, f"det_shape[{i}]") for i, n in enumerate(det_shape))
        beam = choice(beam, "beam", ("parallel", "cone"))
        detector = choice(detector, "detector", ("flat", "curved"))
        if detector == "curved" and beam != "cone":
            raise ValueError("detector='curved' needs beam='cone'")
        if arr.shape[1] == 15 and detector != "curved":
            raise ValueError("15-column vectors (a cylinder axis point c) need detector='curved' and beam='cone'")
        d = ndim
        s, det, u = arr[:, :d], arr[:, d : 2 * d], arr[:, 2 * d : 3 * d]
        if beam == "parallel" and np.any(np.linalg.norm(s, axis=1) == 0):
            raise ValueError("vectors: the ray direction of a parallel-beam view is zero")
        if beam == "cone" and np.any(np.linalg.norm(det - s, axis=1) == 0):
            raise ValueError("vectors: the source coincides with the detector centre")
        if np.any(np.linalg.norm(u, axis=1) == 0) or (d == 3 and np.any(np.linalg.norm(arr[:, 9:12], axis=1) == 0)):
            raise ValueError("vectors: a detector axis u or v is zero")
        # a detector axis along the ray (2-D), or u parallel to v or a detector plane that
        # contains the ray (3-D), has no extent across the rays: every pixel would see one line
        ray = s if beam == "parallel" else det - s
        if d == 2:
            cross = np.abs(u[:, 0] * ray[:, 1] - u[:, 1] * ray[:, 0])
            bad = cross <= 1e-9 * np.linalg.norm(u, axis=1) * np.linalg.norm(ray, axis=1)
            if np.any(bad):
                raise ValueError(f"vectors: view {_first(bad)}: the detector axis u is parallel to the ray")
        else:
            v = arr[:, 9:12]
            normal = np.cross(u, v)
            scale = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
            bad = np.linalg.norm(normal, axis=1) <= 1e-9 * scale
            if np.any(bad):
                raise ValueError(f"vectors: view {_first(bad)}: the detector axes u and v are parallel")
            bad = np.abs(np.sum(normal * ray, axis=1)) <= 1e-9 * scale * np.linalg.norm(ray, axis=1)
            if np.any(bad):
                raise ValueError(f"vectors: view {_first(bad)}: the detector plane (u, v) contains the ray")
        if detector == "curved":
            # the arc is parametrised by its tangent at d: u must be perpendicular to d - s
            # (d - c) and to v, else pixels would silently leave the circle about the axis
            axis = arr[:, 12:15] if arr.shape[1] == 15 else s
            w = det - axis
            if d == 3:
                v = arr[:, 9:12]
                vhat = v / np.linalg.norm(v, axis=1, keepdims=True)
                w = w - np.sum(w * vhat, axis=1, keepdims=True) * vhat
                if np.any(np.abs(np.sum(u * vhat, axis=1)) > 1e-9 * np.linalg.norm(u, axis=1)):
                    raise ValueError("vectors: for a curved detector u must be perpendicular to v")
            radius = np.linalg.norm(w, axis=1)
            if np.any(radius == 0):
                raise ValueError(f"vectors: view {_first(radius == 0)}: the detector centre lies on the cylinder axis")
            cos = np.abs(np.sum(u * w, axis=1)) / (np.linalg.norm(u, axis=1) * radius)
            if np.any(cos > 1e-9):
                what = "d - c" if arr.shape[1] == 15 else "d - s"
                raise ValueError(f"vectors: for a curved detector u must be perpendicular to {what} (the arc tangent)")
            if arr.shape[1] == 15:
                a = s - axis
                a = a - np.sum(a * vhat, axis=1, keepdims=True) * vhat
                bad = np.linalg.norm(a, axis=1) >= radius
                if np.any(bad):
                    raise ValueError(f"vectors: view {_first(bad)}: the source must lie inside the detector cylinder "
                                     "(closer to its axis through c than the detector centre)")
        object.__setattr__(self, "vectors", tuple(tuple(float(v) for v in row) for row in arr))
        object.__setattr__(self, "det_shape", shape)
        object.__setattr__(self, "beam", beam)
        object.__setattr__(self, "detector", detector)

    @property
    def ndim(self) -> int:  # type: ignore[override]
        return 2 if len(self.vectors[0]) == 6 else 3

    @property
    def vector_width(self) -> int:  # type: ignore[override]
        return len(self.vectors[0])

    @property
    def n_views(self) -> int:
        return len(self.vectors)

    def _view_field(self) -> str:
        return "vectors"

    def _vectors(self) -> np.ndarray:
        return np.asarray(self.vectors, dtype=np.float64)

    def __repr__(self) -> str:
        return repr_fields(self)
