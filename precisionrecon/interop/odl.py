"""ODL interop: spaces, geometries and operators in both directions.

Conventions (verified in ``tests/test_interop.py`` and ``tests/test_references.py``)
------------------------------------------------------------------------------------
ODL's array axes are its world axes ``(X, Y[, Z])`` in that order, ours are
``([z,] y, x)``. With ``X = y``, ``Y = x``, ``Z = z`` the 2-D arrays coincide (our
``(ny, nx)`` image is ODL's ``(X, Y)`` array) and a 3-D ODL array is our tensor
transposed by ``(1, 2, 0)``. That mirror turns our angle ``t`` into ODL's
``phi = t + pi / 2`` for every circular geometry (parallel, fan and cone beam). ODL's
detector parameter ``u`` is our column coordinate and ``v`` our row coordinate, so ODL
projections are ``(views, n_det)`` in 2-D, as ours, and ``(views, cols, rows)`` in 3-D
(ours ``(views, rows, cols)``). ODL's ``src_radius`` is our ``src_iso``, its
``det_radius`` our ``src_det - src_iso``; a curved detector's parameter is the angle
(arc length / ``src_det``) and its curvature radius ``src_det``.

ODL weights its inner products by cell volumes, so the ODL adjoint of an operator
between :func:`to_odl` spaces differs from our (Euclidean) ``A.T`` by the ratio of the
weights; :func:`as_odl_operator` and :func:`from_odl_operator` convert between the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import check_geometry_pair, check_operator, check_tensor
from ..geometry import (
    ConeBeam3D,
    FanBeam2D,
    Geometry,
    ParallelBeam2D,
    ParallelBeam3D,
    VectorGeometry,
    Volume,
)
from ..operators.base import LinearOperator
from ..operators.xray import XRayTransform

__all__ = ["OdlOperator", "as_odl_operator", "from_odl", "from_odl_operator", "to_odl"]

_INSTALL_HINT = "pip install precisionrecon[interop]"


def import_odl() -> tuple[Any, Any]:
    """``(odl, odl's tomography module)``; imported lazily because ``import odl`` sets
    ``SCIPY_ARRAY_API=1`` for the whole process."""
    try:
        import odl
    except ImportError as exc:
        raise ImportError(f"this function needs ODL (>= 1.0); install it with `{_INSTALL_HINT}`") from exc
    try:
        from odl.applications import tomo
    except ImportError:  # ODL < 1.0 kept it at odl.tomo
        tomo = odl.tomo
    return odl, tomo


def _numpy_dtype(dtype: Any) -> np.dtype:
    """A numpy dtype from a numpy/str/torch dtype (ValueError naming ``dtype`` otherwise)."""
    try:
        return np.dtype(str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else dtype)
    except TypeError as exc:
        raise ValueError(f"dtype must be a data type such as 'float32', got {dtype!r}") from exc


def _check_dtype(dtype: Any) -> str:
    name = str(_numpy_dtype(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


# ---------------------------------------------------------------------------------------
# to ODL
# ---------------------------------------------------------------------------------------


def _odl_space(odl: Any, volume: Volume, dtype: str) -> Any:
    n, h, c = volume.shape, volume.spacing, volume.center
    order = (0, 1) if volume.ndim == 2 else (1, 2, 0)  # ODL (X, Y[, Z]) = our (y, x[, z])
    lo = [c[i] - n[i] * h[i] / 2 for i in order]
    hi = [c[i] + n[i] * h[i] / 2 for i in order]
    return odl.uniform_discr(lo, hi, [n[i] for i in order], dtype=dtype)


def _angle_partition(odl: Any, angles: tuple[float, ...]) -> Any:
    phi = np.asarray(angles, dtype=np.float64) + math.pi / 2
    if phi.size > 1 and not np.all(np.diff(phi) > 0):
        raise ValueError(
            "ODL needs strictly increasing angles (a sorted partition without repeats); reorder the views, "
            "e.g. geometry[np.argsort(geometry.angles)]"
        )
    if phi.size == 1:
        # a single point has no extent, which would give ODL's projection space weight 0
        return odl.nonuniform_partition(phi, min_pt=phi[0] - 0.5, max_pt=phi[0] + 0.5)
    return odl.nonuniform_partition(phi)


def _det_partition(odl: Any, counts: list[int], spacing: list[float], offset: list[float]) -> Any:
    lo = [o - k * s / 2 for k, s, o in zip(counts, spacing, offset, strict=True)]
    hi = [o + k * s / 2 for k, s, o in zip(counts, spacing, offset, strict=True)]
    if len(counts) == 1:
        return odl.uniform_partition(lo[0], hi[0], counts[0])
    return odl.uniform_partition(lo, hi, counts)


def _odl_geometry(odl: Any, tomo: Any, geometry: Geometry) -> Any:
    apart = _angle_partition(odl, geometry.angles) if hasattr(geometry, "angles") else None
    if isinstance(geometry, ParallelBeam2D):
        dpart = _det_partition(odl, [geometry.det_count], [geometry.det_spacing], [geometry.det_offset])
        return tomo.Parallel2dGeometry(apart, dpart)
    if isinstance(geometry, ParallelBeam3D):
        (rows, cols), (dv, du), (ov, ou) = geometry.det_shape, geometry.det_spacing, geometry.det_offset
        dpart = _det_partition(odl, [cols, rows], [du, dv], [ou, ov])  # ODL (u, v) = our (cols, rows)
        return tomo.Parallel3dAxisGeometry(apart, dpart)
    if isinstance(geometry, FanBeam2D):
        arc = geometry.detector == "arc"
        scale = 1 / geometry.src_det if arc else 1.0  # ODL's arc parameter is the angle
        dpart = _det_partition(odl, [geometry.det_count], [geometry.det_spacing * scale], [geometry.det_offset * scale])
        return tomo.FanBeamGeometry(
            apart,
            dpart,
            src_radius=geometry.src_iso,
            det_radius=geometry.src_det - geometry.src_iso,
            det_curvature_radius=geometry.src_det if arc else None,
        )
    if isinstance(geometry, ConeBeam3D):
        cyl = geometry.detector == "cylindrical"
        scale = 1 / geometry.src_det if cyl else 1.0
        (rows, cols), (dv, du), (ov, ou) = geometry.det_shape, geometry.det_spacing, geometry.det_offset
        dpart = _det_partition(odl, [cols, rows], [du * scale, dv], [ou * scale, ov])
        return tomo.ConeBeamGeometry(
            apart,
            dpart,
            src_radius=geometry.src_iso,
            det_radius=geometry.src_det - geometry.src_iso,
            det_curvature_radius=(geometry.src_det, None) if cyl else None,
        )
    raise ValueError(
        f"{type(geometry).__name__} has no ODL equivalent (ODL 1.0 has no vector geometries); "
        "supported: ParallelBeam2D, ParallelBeam3D, FanBeam2D, ConeBeam3D"
    )


def to_odl(volume: Volume, geometry: Geometry, *, dtype: Any = "float32") -> tuple[Any, Any]:
    r"""An ODL reconstruction space and tomography geometry equal to ours.

    Parameters
    ----------
    volume : Volume
        2-D or 3-D voxel grid (any spacing and centre).
    geometry : ParallelBeam2D, ParallelBeam3D, FanBeam2D or ConeBeam3D
        Flat or curved (``"arc"``, ``"cylindrical"``) detectors, with offsets. The angles
        must be strictly increasing (ODL partitions are sorted).
    dtype : {"float32", "float64"}
        Data type of the ODL space.

    Returns
    -------
    space : odl.DiscretizedSpace
        ``odl.uniform_discr`` over the volume with ODL axes ``(X, Y[, Z]) = (y, x[, z])``.
    odl_geometry : odl.applications.tomo.Geometry
        ``Parallel2dGeometry``, ``Parallel3dAxisGeometry``, ``FanBeamGeometry`` or
        ``ConeBeamGeometry`` with angles :math:`\varphi = t + \pi / 2` (a non-uniform
        partition through exactly these points; a single view gets a cell of 1 rad).

    Raises
    ------
    ValueError
        For a :class:`VectorGeometry` (ODL has no vector geometries), unsorted or
        repeated angles, or mismatched dimensions.
    ImportError
        When ODL is not installed.

    Notes
    -----
    Shape: our image ``(ny, nx)`` is ODL's array as it is; ``(nz, ny, nx)`` is ODL's
    array transposed by ``(1, 2, 0)``. ODL projections are ``(views, n_det)`` (2-D,
    ours) and ``(views, cols, rows)`` (3-D; ours ``(views, rows, cols)``).
    """
    check_geometry_pair(volume, geometry)
    odl, tomo = import_odl()
    return _odl_space(odl, volume, _check_dtype(dtype)), _odl_geometry(odl, tomo, geometry)


# ---------------------------------------------------------------------------------------
# from ODL
# ---------------------------------------------------------------------------------------


def _volume_from_space(odl: Any, space: Any) -> Volume:
    if not isinstance(space, odl.DiscretizedSpace):
        raise TypeError(f"space must be an odl.DiscretizedSpace, got {type(space).__name__}")
    if space.ndim not in (2, 3):
        raise ValueError(f"space must be 2-D or 3-D, got {space.ndim}-D")
    if not space.partition.is_uniform:
        raise ValueError("space must have a uniform partition (a regular voxel grid)")
    n = [int(k) for k in space.shape]
    h = [float(s) for s in space.partition.cell_sides]
    c = [float(m) for m in space.partition.mid_pt]
    order = (0, 1) if space.ndim == 2 else (2, 0, 1)  # our (y, x) / (z, y, x) from ODL (X, Y[, Z])
    return Volume(tuple(n[i] for i in order), spacing=[h[i] for i in order], center=[c[i] for i in order])


def _swap_xy(a: np.ndarray) -> np.ndarray:
    """World vectors (last axis) between ODL's (X, Y[, Z]) and our (x, y[, z]) = (Y, X[, Z])."""
    out = a.copy()
    out[..., [0, 1]] = a[..., [1, 0]]
    return out


def _odl_vectors(tomo: Any, geometry: Any, parallel: bool) -> np.ndarray:
    """Per-view vectors ``[s, d, u(, v)]`` of an ODL geometry, in our world axes."""
    ndim = geometry.ndim
    angles = np.asarray(geometry.angles, dtype=np.float64).reshape(-1)
    n = angles.size
    dpart = geometry.det_partition
    mid, cell = np.asarray(dpart.mid_pt, dtype=np.float64), np.asarray(dpart.cell_sides, dtype=np.float64)
    dparam: Any = float(mid[0]) if ndim == 2 else tuple(float(m) for m in mid)
    det = np.asarray(geometry.det_point_position(angles, dparam), dtype=np.float64).reshape(n, ndim)
    # det_point_position = det_refpoint + rotation(angle) . surface(param), so the detector
    # steps are the rotated surface derivatives (tangents for a curved detector)
    rot = np.asarray(geometry.rotation_matrix(angles), dtype=np.float64).reshape(n, ndim, ndim)
    deriv = np.asarray(geometry.detector.surface_deriv(dparam), dtype=np.float64).reshape(-1, ndim)
    steps = [np.einsum("nij,j->ni", rot, deriv[k]) * cell[k] for k in range(ndim - 1)]
    if parallel:
        src = -np.asarray(geometry.det_to_src(angles, dparam), dtype=np.float64).reshape(n, ndim)
    else:
        src = np.asarray(geometry.src_position(angles), dtype=np.float64).reshape(n, ndim)
    return np.concatenate([_swap_xy(a) for a in (src, det, *steps)], axis=1)


def _pixel_positions(vectors: np.ndarray, curved: bool, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pixel centres ``(views, len(rows), len(cols), ndim)`` of our vectors at *centred*
    row/column coordinates (``index - (n - 1) / 2``); 2-D: ``rows`` is ignored (``[0]``)."""
    ndim = 2 if vectors.shape[1] == 6 else 3
    s, d, u = (vectors[:, k * ndim : (k + 1) * ndim][:, None, None, :] for k in range(3))
    v = vectors[:, 9:12][:, None, None, :] if ndim == 3 else np.zeros_like(u)
    r, c = rows[None, :, None, None], cols[None, None, :, None]
    if not curved:
        return d + c * u + r * v
    # arc about the axis through s along v, radius |w|, w = (d - s) without its v part
    vhat = v / np.linalg.norm(v, axis=-1, keepdims=True) if ndim == 3 else v
    w = d - s
    w = w - np.sum(w * vhat, axis=-1, keepdims=True) * vhat
    radius = np.linalg.norm(w, axis=-1, keepdims=True)
    a = c * np.linalg.norm(u, axis=-1, keepdims=True) / radius
    uhat = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return d - w + radius * (np.cos(a) * w / radius + np.sin(a) * uhat) + r * v


def _check_pixels(geometry: Any, ours: VectorGeometry) -> None:
    """Our pixel centres (corners and middle of the detector) equal ODL's, and so do the
    sources (cone beam); else the ODL geometry has no precisionrecon equivalent."""
    dpart = geometry.det_partition
    angles = np.asarray(geometry.angles, dtype=np.float64).reshape(-1)
    lo, cell, shape = np.asarray(dpart.min_pt), np.asarray(dpart.cell_sides), dpart.shape
    idx = [np.unique([0, k // 2, k - 1]) for k in shape]  # per ODL detector axis (u[, v])
    params = [lo[k] + (idx[k] + 0.5) * cell[k] for k in range(len(shape))]
    centred = [idx[k] - (shape[k] - 1) / 2 for k in range(len(shape))]
    vectors = ours.to_vectors().numpy()
    # one view at a time: ODL's shift functions do not broadcast over extra angle axes
    if geometry.ndim == 2:
        theirs = np.stack([geometry.det_point_position(a, params[0]) for a in angles])[:, None]
        mine = _pixel_positions(vectors, ours.curved, np.zeros(1), centred[0])
    else:
        # flat parameter lists: ODL's cylindrical detector and its rotation do not broadcast
        uu, vv = np.meshgrid(params[0], params[1], indexing="ij")
        flat = (uu.ravel(), vv.ravel())
        theirs = np.stack([geometry.det_point_position(a, flat).reshape(*uu.shape, 3) for a in angles])
        theirs = np.swapaxes(theirs, 1, 2)  # ODL (u, v) -> our (rows, cols)
        mine = _pixel_positions(vectors, ours.curved, centred[1], centred[0])
    theirs = _swap_xy(np.asarray(theirs, dtype=np.float64).reshape(mine.shape))
    scale = max(1.0, float(np.max(np.abs(theirs))))
    if not np.allclose(mine, theirs, rtol=0.0, atol=1e-9 * scale):
        raise ValueError(
            f"the ODL geometry {type(geometry).__name__} has no precisionrecon equivalent: its detector pixels "
            "are not where per-view vectors put them (a curved detector must be centred on the source, "
            f"i.e. det_curvature_radius == src_radius + det_radius); largest deviation "
            f"{float(np.max(np.abs(mine - theirs))):.3g} mm"
        )


def _named_candidate(tomo: Any, geometry: Any, curved: bool) -> Geometry | None:
    """The circular precisionrecon geometry with ODL's parameters (checked by the caller)."""
    angles = np.asarray(geometry.angles, dtype=np.float64).reshape(-1) - math.pi / 2
    dpart = geometry.det_partition
    shape = dpart.shape
    mid = [float(m) for m in dpart.mid_pt]
    cell = [float(s) for s in dpart.cell_sides]
    try:
        if isinstance(geometry, tomo.Parallel2dGeometry):
            return ParallelBeam2D(angles=angles, det_count=shape[0], det_spacing=cell[0], det_offset=mid[0])
        if isinstance(geometry, tomo.Parallel3dAxisGeometry):
            return ParallelBeam3D(
                angles=angles, det_shape=(shape[1], shape[0]), det_spacing=cell[::-1], det_offset=mid[::-1]
            )
        if isinstance(geometry, (tomo.FanBeamGeometry, tomo.ConeBeamGeometry)):
            src_iso, src_det = float(geometry.src_radius), float(geometry.src_radius + geometry.det_radius)
            k = src_det if curved else 1.0
            if geometry.ndim == 2:
                return FanBeam2D(
                    angles=angles,
                    det_count=shape[0],
                    det_spacing=cell[0] * k,
                    src_iso=src_iso,
                    src_det=src_det,
                    detector="arc" if curved else "flat",
                    det_offset=mid[0] * k,
                )
            return ConeBeam3D(
                angles=angles,
                det_shape=(shape[1], shape[0]),
                det_spacing=(cell[1], cell[0] * k),
                src_iso=src_iso,
                src_det=src_det,
                detector="cylindrical" if curved else "flat",
                det_offset=(mid[1], mid[0] * k),
            )
    except ValueError:  # e.g. src_radius 0: not one of our circular geometries
        return None
    return None


def _same_rays(a: np.ndarray, b: np.ndarray, parallel: bool) -> bool:
    """Equal per-view vectors; for parallel beam only the rays matter (unit direction,
    u, v and the detector centre up to a shift along the ray)."""
    scale = max(1.0, float(np.max(np.abs(b))))
    atol = 1e-9 * scale
    if not parallel:
        return bool(np.allclose(a, b, rtol=0.0, atol=atol))
    ndim = 2 if a.shape[1] == 6 else 3
    ra = a[:, :ndim] / np.linalg.norm(a[:, :ndim], axis=1, keepdims=True)
    rb = b[:, :ndim] / np.linalg.norm(b[:, :ndim], axis=1, keepdims=True)
    diff = a[:, ndim : 2 * ndim] - b[:, ndim : 2 * ndim]
    perp = diff - np.sum(diff * rb, axis=1, keepdims=True) * rb
    return bool(
        np.allclose(ra, rb, rtol=0.0, atol=1e-12)
        and np.allclose(a[:, 2 * ndim :], b[:, 2 * ndim :], rtol=0.0, atol=atol)
        and np.allclose(perp, 0.0, rtol=0.0, atol=atol)
    )


def from_odl(space: Any, geometry: Any) -> tuple[Volume, Geometry]:
    r"""The precisionrecon volume and geometry equal to an ODL space and geometry.

    The geometry is read through ODL's own methods (``det_point_position``,
    ``rotation_matrix``, ``detector.surface_deriv``, ``src_position`` /
    ``det_to_src``), so shifted, translated, helical or tilted ODL geometries convert too.
    When the result is one of our circular geometries with ODL's parameters
    (:math:`t = \varphi - \pi / 2`) that class is returned, else a
    :class:`VectorGeometry`. Every result is checked against ODL's pixel positions.

    Parameters
    ----------
    space : odl.DiscretizedSpace
        2-D or 3-D, uniform.
    geometry : odl.applications.tomo.Geometry
        One motion parameter (angle), uniform detector partition, flat or curved
        detector (circular/cylindrical, centred on the source).

    Returns
    -------
    volume : Volume
    geometry : Geometry
        ``ParallelBeam2D``, ``ParallelBeam3D``, ``FanBeam2D``, ``ConeBeam3D`` or
        ``VectorGeometry``.

    Raises
    ------
    TypeError
        If the arguments are not an ODL space and geometry.
    ValueError
        For Euler (2-parameter) geometries, non-uniform detectors, spherical detectors,
        curved detectors whose centre of curvature is not the source, or mismatched
        dimensions.
    ImportError
        When ODL is not installed.

    Notes
    -----
    Shape: ODL projections ``(views, n_det)`` are ours; 3-D ``(views, u, v)`` are our
    ``(views, rows, cols)`` transposed in the last two axes.
    """
    odl, tomo = import_odl()
    volume = _volume_from_space(odl, space)
    if not isinstance(geometry, tomo.Geometry):
        raise TypeError(f"geometry must be an ODL tomography Geometry, got {type(geometry).__name__}")
    if geometry.ndim != volume.ndim:
        raise ValueError(f"the space is {volume.ndim}-D but the geometry {geometry.ndim}-D")
    if geometry.motion_partition.ndim != 1:
        raise ValueError(
            f"geometry must have one motion parameter (an angle), got {geometry.motion_partition.ndim} "
            "(Euler-angle geometries have no precisionrecon equivalent)"
        )
    if not geometry.det_partition.is_uniform:
        raise ValueError("geometry must have a uniform detector partition (equally spaced pixels)")
    detector = geometry.detector
    if isinstance(detector, tomo.SphericalDetector):
        raise ValueError("spherical detectors have no precisionrecon equivalent")
    curved = isinstance(detector, (tomo.CircularDetector, tomo.CylindricalDetector))
    if isinstance(geometry, tomo.ParallelBeamGeometry):
        parallel = True
    elif isinstance(geometry, tomo.DivergentBeamGeometry):
        parallel = False
    else:
        raise ValueError(f"{type(geometry).__name__} is neither a parallel-beam nor a divergent-beam geometry")
    vectors = _odl_vectors(tomo, geometry, parallel)
    shape = geometry.det_partition.shape
    det_shape = shape[0] if geometry.ndim == 2 else (shape[1], shape[0])
    try:
        ours = VectorGeometry(
            vectors=vectors,
            det_shape=det_shape,
            beam="parallel" if parallel else "cone",
            detector="curved" if curved else "flat",
        )
    except ValueError as exc:
        raise ValueError(f"the ODL geometry {type(geometry).__name__} has no precisionrecon equivalent: {exc}") from exc
    _check_pixels(geometry, ours)
    named = _named_candidate(tomo, geometry, curved)
    if named is not None and _same_rays(named.to_vectors().numpy(), vectors, parallel):
        return volume, named
    return volume, ours


# ---------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------


def _as_numpy(element: Any) -> np.ndarray:
    arr = element.asarray() if hasattr(element, "asarray") else element
    if isinstance(arr, Tensor):
        return arr.detach().cpu().numpy()
    return np.asarray(arr)


def _const_weight(space: Any, name: str) -> float:
    """The constant weight of an ODL space's inner product (1 when unweighted)."""
    weighting = getattr(space, "weighting", None)
    if weighting is None or not getattr(space, "is_weighted", True):
        return 1.0
    const = getattr(weighting, "const", None)
    if const is None:
        raise TypeError(f"{name} must have a constant weighting, got {type(weighting).__name__}")
    return float(const)


def _projection_space(odl: Any, space: Any, geometry: Any) -> Any:
    """The range ODL's ``RayTransform(space, geometry)`` builds: the geometry's partition,
    weighted by its mean cell volume when ``space`` is weighted."""
    weighting = None
    if space.is_weighted:
        weighting = float(np.prod(geometry.partition.extent)) / geometry.partition.size
    tspace = space.tspace_type(geometry.partition.shape, weighting=weighting, dtype=space.dtype, device=space.device)
    labels = ["$\\varphi$", "$s$"] if geometry.ndim == 2 else ["$\\varphi$", "$u$", "$v$"]
    return odl.DiscretizedSpace(geometry.partition, tspace, axis_labels=labels)


_OPERATOR_CLASS: dict[int, type] = {}


def _operator_class(odl: Any) -> type:
    """The ODL operator class (defined lazily: it subclasses ``odl.Operator``)."""
    cls = _OPERATOR_CLASS.get(id(odl))
    if cls is not None:
        return cls

    class PrecisionReconOperator(odl.Operator):  # type: ignore[misc, name-defined]
        """An ODL operator that applies a precisionrecon :class:`LinearOperator`.

        ``op`` is applied to the input converted by ``to_pr`` (array layout), the
        result converted back by ``from_pr`` and multiplied by ``scale``.
        """

        def __init__(
            self,
            op: LinearOperator,
            domain: Any,
            range: Any,  # ODL's keyword
            to_pr: Callable[[Tensor], Tensor],
            from_pr: Callable[[Tensor], Tensor],
            scale: float,
        ) -> None:
            super().__init__(domain=domain, range=range, linear=True)
            self.pr_operator = op
            self._to_pr, self._from_pr, self._scale = to_pr, from_pr, scale
            self._adjoint: Any = None

        def _call(self, x: Any) -> np.ndarray:
            t = torch.tensor(_as_numpy(x), device=self.pr_operator.device)
            with torch.no_grad():
                out = self._from_pr(self.pr_operator(self._to_pr(t)))
            if self._scale != 1.0:
                out = out * self._scale
            return out.cpu().numpy()

        @property
        def adjoint(self) -> Any:
            if self._adjoint is None:
                raise NotImplementedError("adjoint not linked")
            return self._adjoint

        def __repr__(self) -> str:
            return f"PrecisionReconOperator({self.pr_operator!r})"

    _OPERATOR_CLASS[id(odl)] = PrecisionReconOperator
    return PrecisionReconOperator


def _identity(t: Tensor) -> Tensor:
    return t


def _volume_to_pr(t: Tensor) -> Tensor:
    """ODL 3-D volume ``(ny, nx, nz)`` -> ours ``(nz, ny, nx)``."""
    return t.permute(2, 0, 1)


def _volume_to_odl(t: Tensor) -> Tensor:
    return t.permute(1, 2, 0)


def _swap_last(t: Tensor) -> Tensor:
    """3-D projections ``(views, cols, rows)`` <-> ``(views, rows, cols)`` (its own inverse)."""
    return t.transpose(-1, -2)


def as_odl_operator(A: LinearOperator, *, dtype: Any = "float32") -> Any:
    r"""Wrap a precisionrecon operator as a linear ``odl.Operator``.

    For an :class:`XRayTransform` the domain is the space of :func:`to_odl` and the range
    the projection space ODL's ``RayTransform`` would build on that geometry (so the two
    are interchangeable); arrays are transposed between ODL's and our layout. Any other
    operator maps between unweighted ``odl.rn`` (``odl.cn`` for complex ``dtype``)
    spaces of its own shapes.

    ODL adjoints are taken with respect to the spaces' weighted inner products
    :math:`\langle a, b\rangle_w = w \sum a \bar b`, so ``.adjoint`` applies
    :math:`(w_\mathrm{range} / w_\mathrm{domain})\, A^T`; it is again a wrapped operator
    whose ``.adjoint`` is the original.

    Parameters
    ----------
    A : LinearOperator
    dtype : {"float32", "float64"} or complex dtype for non-X-ray operators
        Data type of the ODL spaces (the wrapped operator is applied in this dtype).

    Returns
    -------
    odl.Operator
        Linear; ``op(x)`` accepts anything ``op.domain.element`` accepts.

    Raises
    ------
    TypeError
        If ``A`` is not a precisionrecon :class:`LinearOperator`.
    ImportError
        When ODL is not installed.

    Notes
    -----
    Shape: 2-D ODL arrays are ours; 3-D volumes are ODL ``(ny, nx, nz)`` and projections
    ``(views, cols, rows)``, transposed to ``(nz, ny, nx)`` / ``(views, rows, cols)``
    for ``A``.
    """
    check_operator(A, "A")
    odl, _ = import_odl()
    cls = _operator_class(odl)
    if isinstance(A, XRayTransform):
        domain, geometry = to_odl(A.volume, A.geometry, dtype=dtype)
        rng = _projection_space(odl, domain, geometry)
        if A.volume.ndim == 3:
            dom_to, dom_from, ran_to, ran_from = _volume_to_pr, _volume_to_odl, _swap_last, _swap_last
        else:
            dom_to = dom_from = ran_to = ran_from = _identity
        ratio = _const_weight(rng, "range") / _const_weight(domain, "domain")
    else:
        np_dtype = _numpy_dtype(dtype)
        if np_dtype.kind not in "fc":
            raise ValueError(f"dtype must be a floating or complex dtype, got {dtype!r}")
        space = odl.cn if np_dtype.kind == "c" else odl.rn
        domain = space(tuple(A.domain_shape), dtype=str(np_dtype))
        rng = space(tuple(A.range_shape), dtype=str(np_dtype))
        dom_to = dom_from = ran_to = ran_from = _identity
        ratio = 1.0
    forward = cls(A, domain, rng, dom_to, ran_from, 1.0)
    adjoint = cls(A.T, rng, domain, ran_to, dom_from, ratio)
    forward._adjoint, adjoint._adjoint = adjoint, forward
    return forward


class _OdlFunction(torch.autograd.Function):
    """Applies an ODL operator (or its Euclidean adjoint); the backward of one is the
    other, itself through this Function, so double backward works."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, wrapper: OdlOperator, adjoint: bool) -> Tensor:  # type: ignore[override]
        ctx.wrapper, ctx.adjoint = wrapper, adjoint
        return wrapper._evaluate(x.detach(), adjoint)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _OdlFunction.apply(grad, ctx.wrapper, not ctx.adjoint), None, None


def _weights(space: Any, name: str) -> float | np.ndarray:
    weighting = getattr(space, "weighting", None)
    if weighting is None or not getattr(space, "is_weighted", True):
        return 1.0
    if getattr(weighting, "const", None) is not None:
        return float(weighting.const)
    array = getattr(weighting, "array", None)
    if array is not None:
        return _as_numpy(array).astype(np.float64)
    raise TypeError(f"{name} has an unsupported weighting {type(weighting).__name__} (constant or array expected)")


class OdlOperator(LinearOperator):
    r"""A linear ``odl.Operator`` as a precisionrecon :class:`LinearOperator`.

    ``A(x)`` evaluates the ODL operator on each item of the batch (a Python loop over the
    leading dims, through numpy on the CPU); ``A.T(y)`` is the Euclidean adjoint
    :math:`W_D\, A^*\, W_R^{-1} y`, with ODL's adjoint :math:`A^*` (w.r.t. the weighted
    inner products) and the weights :math:`W_D, W_R` of the domain and range, so that
    :math:`\sum (A x) y = \sum x (A^T y)`. Both are differentiable (the gradient of one is
    the other). Arrays keep ODL's layout.

    Parameters
    ----------
    op : odl.Operator
        Linear, between tensor spaces (``DiscretizedSpace``, ``rn``, ``cn``) with constant
        or array weightings; ``op.adjoint`` is needed for ``A.T`` and gradients.

    Notes
    -----
    Shape: ``(*batch, *op.domain.shape) -> (*batch, *op.range.shape)``; computed in the
    ODL spaces' dtype and returned in the input's dtype and device.
    """

    def __init__(self, op: Any) -> None:
        odl, _ = import_odl()
        if not isinstance(op, odl.Operator):
            raise TypeError(f"op must be an odl.Operator, got {type(op).__name__}")
        if not op.is_linear:
            raise ValueError(f"op must be linear, got the non-linear {op!r}")
        try:
            from odl.core.space.base_tensors import TensorSpace
        except ImportError:  # ODL < 1.0
            from odl.space.base_tensors import TensorSpace
        for name, space in (("op.domain", op.domain), ("op.range", op.range)):
            if not isinstance(space, TensorSpace):
                raise TypeError(f"{name} must be a tensor space (rn, cn, DiscretizedSpace), got {type(space).__name__}")
        self.op = op
        self.domain_shape = tuple(int(n) for n in op.domain.shape)
        self.range_shape = tuple(int(n) for n in op.range.shape)
        self._w_domain = _weights(op.domain, "op.domain")
        self._w_range = _weights(op.range, "op.range")
        self._complex = np.dtype(op.domain.dtype).kind == "c" or np.dtype(op.range.dtype).kind == "c"

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128 if self._complex else torch.float64

    def _check(self, t: Any, name: str, trailing: tuple[int, ...]) -> None:
        allowed = (torch.complex64, torch.complex128) if self._complex else (torch.float32, torch.float64)
        check_tensor(t, name, dtype=allowed, shape_suffix=trailing)

    def _evaluate(self, x: Tensor, adjoint: bool) -> Tensor:
        in_shape, out_shape = self.domain_shape, self.range_shape
        if adjoint:
            in_shape, out_shape = out_shape, in_shape
        in_space = self.op.range if adjoint else self.op.domain
        batch = x.shape[: x.dim() - len(in_shape)]
        items = x.detach().reshape(-1, *in_shape).cpu().numpy()
        outs = []
        for item in items:  # ODL operators take one element at a time
            arr = np.asarray(item, dtype=np.dtype(in_space.dtype))
            if adjoint:
                out = _as_numpy(self.op.adjoint(arr / self._w_range)) * self._w_domain
            else:
                out = _as_numpy(self.op(arr))
            outs.append(np.asarray(out).reshape(out_shape))
        result = np.stack(outs) if outs else np.zeros((0, *out_shape))
        return (
            torch.from_numpy(np.ascontiguousarray(result))
            .to(device=x.device, dtype=x.dtype)
            .reshape(*batch, *out_shape)
        )

    def apply(self, x: Tensor) -> Tensor:
        """``A x``. Shape: ``(*batch, *domain_shape) -> (*batch, *range_shape)``."""
        self._check(x, "x", self.domain_shape)
        return _OdlFunction.apply(x, self, False)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """``A^T y`` (Euclidean). Shape: ``(*batch, *range_shape) -> (*batch, *domain_shape)``."""
        self._check(y, "y", self.range_shape)
        return _OdlFunction.apply(y, self, True)

    def __repr__(self) -> str:
        return f"OdlOperator({self.op!r})"


def from_odl_operator(op: Any) -> OdlOperator:
    """Wrap a linear ``odl.Operator`` as a differentiable precisionrecon operator.

    See :class:`OdlOperator`. Shape: ``(*batch, *op.domain.shape) ->
    (*batch, *op.range.shape)``, ODL's array layout (for a ``RayTransform`` on a
    :func:`to_odl` space, 2-D layouts equal ours).
    """
    return OdlOperator(op)
