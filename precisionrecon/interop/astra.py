"""ASTRA Toolbox geometry dicts from and to precisionrecon volumes and geometries.

Conventions (verified in ``tests/test_interop.py``)
---------------------------------------------------
ASTRA's *2-D* code puts image row 0 at the top: the centre of pixel ``(r, c)`` is
``(WindowMinX + (c + 1/2) h_x, WindowMaxY - (r + 1/2) h_y)``, so its y axis points
against our y (which grows with the row). Every 2-D vector therefore maps by
``(x, y) -> (x, -y)`` (ray/source, detector centre, u) and the window is
``y in [-c_y - n_y h_y / 2, -c_y + n_y h_y / 2]``.

ASTRA's *3-D* code (the CUDA kernels move the vectors into voxel units by
``(p - window centre) / voxel size`` and sample voxel ``(slice, row, col)`` at
``(col, row, slice) + 1/2 - n / 2``) has x, y, z growing with column, row and slice,
exactly as ours: 3-D vectors and windows map unchanged, and an ASTRA 3-D volume array
``(slices, rows, cols)`` is our ``(nz, ny, nx)`` tensor. ASTRA's 3-D projection arrays
are ``(rows, views, cols)``, ours ``(views, rows, cols)``: ``np.swapaxes(p, 0, 1)``.
(Hence ASTRA's 3-D ``parallel3d`` / ``cone`` geometries are the mirror images of its 2-D
``parallel`` / ``fanflat`` ones in our frame; ``parallel3d`` with angle ``theta`` is our
``ParallelBeam3D`` with angle ``-theta``.)

In all ``*_vec`` layouts the detector vector ``d`` is the detector centre and pixel
``(r, c)`` sits at ``d + (c - (n_cols - 1) / 2) u + (r - (n_rows - 1) / 2) v``, as ours.
A cylindrical detector maps to ASTRA's ``cyl_cone_vec`` (ASTRA >= 2.4): ``u`` is the
tangent at the detector centre with ``|u|`` the arc length between columns, and the
13th number is the cylinder radius ``R``; ASTRA puts the cylinder axis (along ``v``) at
``d - R n`` with ``n`` the unit normal of ``(u, v)`` on the side away from the source.
For our cylinder about the source ``R`` is the distance of ``d`` from the axis through
``s``; for a cylinder about ``c`` (15-number views, e.g. a helical scan with a flying
focal spot) it is the distance of ``d`` from the axis through ``c``, and an ASTRA radius
that is not the source's distance reads back as such a cylinder. ASTRA has no curved
2-D (fan) detector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validate import check_geometry_pair
from ..geometry import Geometry, VectorGeometry, Volume

__all__ = ["from_astra", "to_astra"]

# (x, y) -> (x, -y) for the three 2-vectors of a 2-D view [s, d, u]
_MIRROR_2D = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])

_TYPES_2D = ("parallel", "parallel_vec", "fanflat", "fanflat_vec")
_TYPES_3D = ("parallel3d", "parallel3d_vec", "cone", "cone_vec", "cyl_cone_vec")


def _cylinder_radii(vectors: np.ndarray) -> np.ndarray:
    """Distance of the detector centre from the cylinder axis along ``v``: through the source,
    or through ``c`` for 15-number views."""
    axis = vectors[:, 12:15] if vectors.shape[1] == 15 else vectors[:, 0:3]
    w = vectors[:, 3:6] - axis
    vhat = vectors[:, 9:12] / np.linalg.norm(vectors[:, 9:12], axis=1, keepdims=True)
    w_perp = w - np.sum(w * vhat, axis=1, keepdims=True) * vhat
    return np.linalg.norm(w_perp, axis=1)


def _astra_axis_points(vectors: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """ASTRA's cylinder axis point of ``cyl_cone_vec`` views (``getCylConeAxes``): ``d - a`` with
    ``a = -(u x v) R / (|u| |v|)``, negated when ``d + a`` is nearer the source than ``d - a``."""
    s, d, u, v = (vectors[:, 3 * k : 3 * k + 3] for k in range(4))
    scale = radius / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    a = -np.cross(u, v) * scale[:, None]
    flip = np.linalg.norm(d - a - s, axis=1) > np.linalg.norm(d + a - s, axis=1)
    a[flip] *= -1.0
    return d - a


def to_astra(volume: Volume, geometry: Geometry) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""ASTRA volume and projection geometry dicts that describe ``volume`` and ``geometry``.

    The projection geometry is always one of ASTRA's vector geometries, so any
    precisionrecon geometry maps exactly: ``parallel_vec`` / ``fanflat_vec`` in 2-D
    (every vector mirrored, :math:`(x, y) \mapsto (x, -y)`), ``parallel3d_vec`` /
    ``cone_vec`` in 3-D (vectors unchanged) and ``cyl_cone_vec`` for a cylindrical
    cone-beam detector. No ASTRA import is needed; the dicts have the layout of
    ``astra.create_vol_geom`` / ``astra.create_proj_geom``.

    Parameters
    ----------
    volume : Volume
        2-D or 3-D voxel grid.
    geometry : Geometry
        A geometry of the same dimension (any class, including :class:`VectorGeometry`).

    Returns
    -------
    vol_geom, proj_geom : dict
        ASTRA geometry dicts (``Vectors`` float64 arrays).

    Raises
    ------
    ValueError
        For a curved 2-D (fan-beam arc) detector, which ASTRA cannot describe, or a
        volume and geometry of different dimensions.

    Notes
    -----
    Shape: our image ``(ny, nx)`` is ASTRA's ``(GridRowCount, GridColCount)``, our
    ``(nz, ny, nx)`` ASTRA's ``(GridSliceCount, GridRowCount, GridColCount)``; 2-D
    sinograms ``(n_views, n_det)`` coincide; ASTRA 3-D projections are
    ``(rows, n_views, cols)`` (ours ``(n_views, rows, cols)``). ASTRA's 2-D CPU projectors
    accept square pixels only (its GPU code and the dicts describe any spacing).
    """
    check_geometry_pair(volume, geometry)
    vectors = geometry.to_vectors().numpy().copy()
    if volume.ndim == 2:
        (ny, nx), (hy, hx), (cy, cx) = volume.shape, volume.spacing, volume.center
        vol_geom: dict[str, Any] = {
            "GridRowCount": ny,
            "GridColCount": nx,
            "option": {
                "WindowMinX": cx - nx * hx / 2,
                "WindowMaxX": cx + nx * hx / 2,
                # ASTRA 2-D: y points up (row 0 at the top), ours grows with the row
                "WindowMinY": -cy - ny * hy / 2,
                "WindowMaxY": -cy + ny * hy / 2,
            },
        }
        if geometry.curved:
            raise ValueError(
                "geometry has a curved (arc) 2-D detector; ASTRA has no curved 2-D detector "
                "(fanflat/fanflat_vec are flat), so it has no ASTRA equivalent"
            )
        kind = "parallel_vec" if geometry.beam == "parallel" else "fanflat_vec"
        proj_geom: dict[str, Any] = {
            "type": kind,
            "DetectorCount": geometry.det_shape[0],
            "Vectors": vectors * _MIRROR_2D,
        }
        return vol_geom, proj_geom
    (nz, ny, nx), (hz, hy, hx), (cz, cy, cx) = volume.shape, volume.spacing, volume.center
    vol_geom = {
        "GridRowCount": ny,
        "GridColCount": nx,
        "GridSliceCount": nz,
        "option": {
            "WindowMinX": cx - nx * hx / 2,
            "WindowMaxX": cx + nx * hx / 2,
            "WindowMinY": cy - ny * hy / 2,
            "WindowMaxY": cy + ny * hy / 2,
            "WindowMinZ": cz - nz * hz / 2,
            "WindowMaxZ": cz + nz * hz / 2,
        },
    }
    rows, cols = geometry.det_shape
    if geometry.curved:
        radius = _cylinder_radii(vectors)
        if vectors.shape[1] == 15:
            # ASTRA derives the axis from d, u, v and R: it must be ours (c moved along v to d's height)
            c, d, vhat = vectors[:, 12:15], vectors[:, 3:6], vectors[:, 9:12]
            vhat = vhat / np.linalg.norm(vhat, axis=1, keepdims=True)
            foot = c + np.sum((d - c) * vhat, axis=1, keepdims=True) * vhat
            gap = np.linalg.norm(_astra_axis_points(vectors[:, :12], radius) - foot, axis=1)
            if np.any(gap > 1e-9 * np.maximum(radius, 1.0)):
                worst = int(np.argmax(gap))
                raise ValueError(
                    "geometry: ASTRA's cyl_cone_vec puts the cylinder axis on the source side of the detector; "
                    f"view {worst} has its axis point c on the other side ({gap[worst]:.3g} mm away), so it has "
                    "no ASTRA equivalent"
                )
        vectors = np.concatenate([vectors[:, :12], radius[:, None]], axis=1)
        kind = "cyl_cone_vec"
    else:
        kind = "parallel3d_vec" if geometry.beam == "parallel" else "cone_vec"
    proj_geom = {"type": kind, "DetectorRowCount": rows, "DetectorColCount": cols, "Vectors": vectors}
    return vol_geom, proj_geom


# ---------------------------------------------------------------------------------------
# from ASTRA
# ---------------------------------------------------------------------------------------


def _get(d: Mapping[str, Any], key: str, name: str) -> Any:
    if key not in d:
        raise ValueError(f"{name} has no {key!r} entry (keys: {sorted(d)})")
    return d[key]


def _count(d: Mapping[str, Any], key: str, name: str) -> int:
    value = _get(d, key, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}[{key!r}] must be a positive integer, got {type(value).__name__}")
    if not np.isfinite(value) or int(value) != value or value <= 0:
        raise ValueError(f"{name}[{key!r}] must be a positive integer, got {value!r}")
    return int(value)


def _number(d: Mapping[str, Any], key: str, name: str) -> float:
    value = _get(d, key, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}[{key!r}] must be a real number, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name}[{key!r}] must be finite, got {value}")
    return float(value)


def _options(d: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The ``option`` sub-dict (ASTRA's ``get_geometry`` calls it ``options``)."""
    option = d.get("option", d.get("options")) or {}
    if not isinstance(option, Mapping):
        raise TypeError(f"{name}['option'] must be a dict, got {type(option).__name__}")
    return option


def _volume_from_astra(vol_geom: Any) -> Volume:
    if not isinstance(vol_geom, Mapping):
        raise TypeError(f"vol_geom must be an ASTRA volume geometry dict, got {type(vol_geom).__name__}")
    rows = _count(vol_geom, "GridRowCount", "vol_geom")
    cols = _count(vol_geom, "GridColCount", "vol_geom")
    slices = _count(vol_geom, "GridSliceCount", "vol_geom") if "GridSliceCount" in vol_geom else None
    option = _options(vol_geom, "vol_geom")
    # ASTRA's defaults: one unit per voxel, centred on the origin
    counts = {"X": cols, "Y": rows, "Z": slices}
    window = {}
    for axis in ("X", "Y") if slices is None else ("X", "Y", "Z"):
        lo_key, hi_key = f"WindowMin{axis}", f"WindowMax{axis}"
        n = counts[axis]
        lo = _number(option, lo_key, "vol_geom['option']") if lo_key in option else -n / 2
        hi = _number(option, hi_key, "vol_geom['option']") if hi_key in option else n / 2
        if not hi > lo:
            raise ValueError(f"vol_geom window {lo_key}={lo} must be below {hi_key}={hi}")
        window[axis] = (lo, hi)
    (x0, x1), (y0, y1) = window["X"], window["Y"]
    if slices is None:
        # ASTRA 2-D: y up, ours down
        return Volume(
            (rows, cols), spacing=((y1 - y0) / rows, (x1 - x0) / cols), center=(-(y0 + y1) / 2, (x0 + x1) / 2)
        )
    z0, z1 = window["Z"]
    return Volume(
        (slices, rows, cols),
        spacing=((z1 - z0) / slices, (y1 - y0) / rows, (x1 - x0) / cols),
        center=((z0 + z1) / 2, (y0 + y1) / 2, (x0 + x1) / 2),
    )


def _angles(proj_geom: Mapping[str, Any]) -> np.ndarray:
    angles = np.asarray(_get(proj_geom, "ProjectionAngles", "proj_geom"), dtype=np.float64).reshape(-1)
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError("proj_geom['ProjectionAngles'] must hold at least one finite angle")
    return angles


def _classic_vectors(proj_geom: Mapping[str, Any], kind: str) -> np.ndarray:
    """ASTRA's own conversion of a parametric geometry to its ``*_vec`` rows
    (``astra.geom_2vec``), in ASTRA's coordinates."""
    th = _angles(proj_geom)
    s, c, z = np.sin(th), np.cos(th), np.zeros_like(th)
    if kind == "parallel":
        w = _number(proj_geom, "DetectorWidth", "proj_geom")
        return np.stack([s, -c, z, z, c * w, s * w], axis=1)
    if kind == "fanflat":
        w = _number(proj_geom, "DetectorWidth", "proj_geom")
        dso = _number(proj_geom, "DistanceOriginSource", "proj_geom")
        dod = _number(proj_geom, "DistanceOriginDetector", "proj_geom")
        return np.stack([s * dso, -c * dso, -s * dod, c * dod, c * w, s * w], axis=1)
    sx = _number(proj_geom, "DetectorSpacingX", "proj_geom")  # between columns (u)
    sy = _number(proj_geom, "DetectorSpacingY", "proj_geom")  # between rows (v)
    if kind == "parallel3d":
        return np.stack([s, -c, z, z, z, z, c * sx, s * sx, z, z, z, z + sy], axis=1)
    dso = _number(proj_geom, "DistanceOriginSource", "proj_geom")
    dod = _number(proj_geom, "DistanceOriginDetector", "proj_geom")
    return np.stack([s * dso, -c * dso, z, -s * dod, c * dod, z, c * sx, s * sx, z, z, z, z + sy], axis=1)


def _vec_vectors(proj_geom: Mapping[str, Any], ncols: int) -> np.ndarray:
    raw = _get(proj_geom, "Vectors", "proj_geom")
    try:
        vectors = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"proj_geom['Vectors'] must be a numeric array, got {type(raw).__name__}") from exc
    if vectors.ndim != 2 or vectors.shape[1] != ncols or vectors.shape[0] == 0:
        raise ValueError(
            f"proj_geom['Vectors'] of a {proj_geom['type']!r} geometry must have shape (n_views, {ncols}), "
            f"got {vectors.shape}"
        )
    if not np.all(np.isfinite(vectors)):
        raise ValueError("proj_geom['Vectors'] must be finite")
    return vectors


def from_astra(vol_geom: Mapping[str, Any], proj_geom: Mapping[str, Any]) -> tuple[Volume, VectorGeometry]:
    r"""The precisionrecon volume and geometry described by ASTRA geometry dicts.

    Accepts ASTRA's ``parallel``, ``parallel_vec``, ``fanflat``, ``fanflat_vec``,
    ``parallel3d``, ``parallel3d_vec``, ``cone``, ``cone_vec`` and ``cyl_cone_vec``
    projection geometries; parametric ones are converted to vectors as ``astra.geom_2vec``
    does. The inverse of :func:`to_astra` (up to rounding of the window arithmetic).

    Parameters
    ----------
    vol_geom : dict
        From ``astra.create_vol_geom`` (missing windows take ASTRA's defaults,
        one unit per voxel about the origin).
    proj_geom : dict
        From ``astra.create_proj_geom``.

    Returns
    -------
    volume : Volume
    geometry : VectorGeometry
        2-D vectors mirrored :math:`(x, y) \mapsto (x, -y)` into our frame, 3-D ones as
        they are; ``beam="parallel"`` for the parallel types, ``"cone"`` otherwise. A
        ``cyl_cone_vec`` whose radius is the distance of the detector centre from the axis
        through the source gives 12-number views (the cylinder about the source), any
        other radius 15-number views with ASTRA's axis point ``c``.

    Raises
    ------
    TypeError
        If an argument is not a dict.
    ValueError
        For an unknown or unsupported type, missing entries, a 2-D projection geometry
        with a 3-D volume (or the reverse), ASTRA's per-view ``ExtraDetectorOffset``
        option, or a ``cyl_cone_vec`` cylinder that does not hold the source inside.

    Notes
    -----
    Shape: the ``(n_views, n_det)`` sinogram layout is shared; for 3-D, reorder ASTRA's
    ``(rows, n_views, cols)`` projections to our ``(n_views, rows, cols)``.
    """
    volume = _volume_from_astra(vol_geom)
    if not isinstance(proj_geom, Mapping):
        raise TypeError(f"proj_geom must be an ASTRA projection geometry dict, got {type(proj_geom).__name__}")
    kind = _get(proj_geom, "type", "proj_geom")
    if kind not in _TYPES_2D + _TYPES_3D:
        raise ValueError(f"proj_geom['type'] must be one of {_TYPES_2D + _TYPES_3D}, got {kind!r}")
    ndim = 2 if kind in _TYPES_2D else 3
    if ndim != volume.ndim:
        raise ValueError(f"a {kind!r} projection geometry is {ndim}-D, but vol_geom describes a {volume.ndim}-D volume")
    option = _options(proj_geom, "proj_geom")
    if np.any(np.asarray(option.get("ExtraDetectorOffset", 0.0)) != 0):
        raise ValueError("proj_geom option 'ExtraDetectorOffset' is not supported; convert to a *_vec geometry")
    beam = "parallel" if kind.startswith("parallel") else "cone"
    detector = "flat"
    if ndim == 2:
        n_det = _count(proj_geom, "DetectorCount", "proj_geom")
        vectors = _vec_vectors(proj_geom, 6) if kind.endswith("_vec") else _classic_vectors(proj_geom, kind)
        vectors = vectors * _MIRROR_2D
        return volume, VectorGeometry(vectors=vectors, det_shape=n_det, beam=beam)
    det_shape = (_count(proj_geom, "DetectorRowCount", "proj_geom"), _count(proj_geom, "DetectorColCount", "proj_geom"))
    if kind == "cyl_cone_vec":
        vectors = _vec_vectors(proj_geom, 13)
        radius, vectors = vectors[:, 12], vectors[:, :12]
        if np.any(~(radius > 0)):
            raise ValueError(f"cyl_cone_vec: the cylinder radius must be positive, got {radius.min()}")
        expected = _cylinder_radii(vectors)
        if np.any(np.abs(radius - expected) > 1e-9 * np.maximum(expected, 1.0)):
            # not the cylinder about the source: keep ASTRA's axis as the point c
            vectors = np.concatenate([vectors, _astra_axis_points(vectors, radius)], axis=1)
        detector = "curved"
    elif kind.endswith("_vec"):
        vectors = _vec_vectors(proj_geom, 12)
    else:
        vectors = _classic_vectors(proj_geom, kind)
    return volume, VectorGeometry(vectors=vectors, det_shape=det_shape, beam=beam, detector=detector)
