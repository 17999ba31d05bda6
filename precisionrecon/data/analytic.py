"""Exact line integrals and voxelisations of ellipse/ellipsoid phantoms.

This module is an independent reference for the projectors: it is plain numpy, written
from the *documented* conventions only (``Geometry`` / ``VectorGeometry`` docstrings and
the header of ``cuda_ext/xray_math.h``), never from the kernels:

* world axes x, y, z are tensor axes -1, -2, -3; voxel ``i`` of an axis with ``n``
  voxels is centred at ``center + (i - (n - 1) / 2) * spacing``;
* a view is ``[s, d, u(, v)]``; detector pixel ``(iv, iu)`` of a flat detector sits at
  ``d + (iu - (nu - 1) / 2) u + (iv - (nv - 1) / 2) v``;
* a curved detector (arc in 2-D, cylinder in 3-D) bends in u around the axis through
  the source ``s`` parallel to ``v``: its radius ``R`` is the distance of ``d`` from
  that axis, ``|u|`` is the arc length between pixel centres and ``u`` the tangent at
  ``d``, so pixel column ``iu`` lies at arc angle ``(iu - (nu - 1) / 2) |u| / R``;
  a 15-number view ``[s, d, u, v, c]`` bends it around the axis through ``c`` instead;
* the ray of a pixel is the line through the pixel along ``s`` (parallel beam) or the
  line through the source ``s`` and the pixel (cone/fan beam).

The line integral of a constant-density ellipsoid along a line is density times the
length of the chord, from the roots of a quadratic. Optionally the density falls off as
``(1 - r^2)^k`` with the normalised radius ``r`` (``k = power``); the line integral is
then still closed-form (see :func:`chord_integrals`), and for ``k >= 1`` the phantom is
continuous, so the discretisation error of a voxelised copy is second order in the voxel
size instead of first order (sharp edges).

The torch-facing entry points are :func:`analytic_projection` (exact projections for any
geometry of the library, optionally averaged over each detector cell) and
:func:`rasterize` (the phantom on a :class:`~precisionrecon.Volume`); the numpy functions
below them are the building blocks, also used directly by the test suite.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import positive_int
from ..geometry import Geometry, Volume

# Rays / sub-samples evaluated at once: bounds the temporaries to a few hundred MB.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipse (2-D) or ellipsoid (3-D) in world mm with a constant or smooth density.

    Parameters
    ----------
    center : tuple of float
        Centre in world order ``(x, y)`` or ``(x, y, z)``, mm.
    semi_axes : tuple of float
        Positive semi-axis lengths in mm, one per column of ``rotation``.
    rotation : array of shape (D, D)
        Orthogonal matrix whose columns are the unit directions of the semi-axes in world
        coordinates (stored as a tuple of rows, so ellipsoids are hashable values).
    density : float
        Peak value (e.g. an attenuation coefficient in 1/mm).
    power : int
        Density profile: ``density * (1 - r^2)^power`` inside, ``r`` the normalised
        radius; 0 is the classic constant-density ellipse, ``power >= 1`` is continuous.

    Notes
    -----
    A point ``p`` is inside when ``r^2 = |diag(1 / semi_axes) R^T (p - center)|^2 <= 1``.
    """

    center: tuple[float, ...]
    semi_axes: tuple[float, ...]
    rotation: tuple[tuple[float, ...], ...]
    density: float
    power: int = 0

    def __post_init__(self) -> None:
        center = tuple(float(c) for c in np.asarray(self.center, dtype=np.float64).reshape(-1))
        ndim = len(center)
        if ndim not in (2, 3):
            raise ValueError(f"center must have 2 (x, y) or 3 (x, y, z) entries, got {ndim}")
        axes = np.asarray(self.semi_axes, dtype=np.float64).reshape(-1)
        if axes.shape != (ndim,):
            raise ValueError(f"semi_axes must have {ndim} entries like center, got {axes.size}")
        if not np.all(np.isfinite(axes) & (axes > 0)):
            raise ValueError(f"semi_axes must be positive and finite, got {tuple(axes.tolist())}")
        rot = np.asarray(self.rotation, dtype=np.float64)
        if rot.shape != (ndim, ndim):
            raise ValueError(f"rotation must be a {ndim}x{ndim} matrix, got shape {rot.shape}")
        if not np.all(np.isfinite(rot)) or np.abs(rot.T @ rot - np.eye(ndim)).max() > 1e-9:
            raise ValueError("rotation must be an orthogonal matrix (columns: unit semi-axis directions)")
        density = float(self.density)
        if not (math.isfinite(density) and all(math.isfinite(c) for c in center)):
            raise ValueError(f"center and density must be finite, got center={center}, density={density}")
        if isinstance(self.power, bool) or not isinstance(self.power, (int, np.integer)) or self.power < 0:
            raise ValueError(f"power must be a non-negative int, got {self.power!r}")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "semi_axes", tuple(float(a) for a in axes))
        object.__setattr__(self, "rotation", tuple(tuple(float(v) for v in row) for row in rot))
        object.__setattr__(self, "density", density)
        object.__setattr__(self, "power", int(self.power))

    @property
    def ndim(self) -> int:
        return len(self.center)


def ellipse(
    center: Sequence[float], semi_axes: Sequence[float], angle: float, density: float, power: int = 0
) -> Ellipsoid:
    """A 2-D ellipse; its first semi-axis points along ``(cos angle, sin angle)`` (world x, y)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return Ellipsoid(tuple(map(float, center)), tuple(map(float, semi_axes)), rot, float(density), power)


def ellipsoid(
    center: Sequence[float],
    semi_axes: Sequence[float],
    angles: Sequence[float] = (0.0, 0.0, 0.0),
    density: float = 1.0,
    power: int = 0,
) -> Ellipsoid:
    """A 3-D ellipsoid rotated by ``Rz(a) @ Ry(b) @ Rx(c)`` for ``angles = (a, b, c)``."""
    a, b, c = angles
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return Ellipsoid(tuple(map(float, center)), tuple(map(float, semi_axes)), rz @ ry @ rx, float(density), power)


def with_power(phantom: Sequence[Ellipsoid], power: int) -> list[Ellipsoid]:
    """The same ellipses/ellipsoids with density profile ``(1 - r^2)^power``."""
    return [dataclasses.replace(e, power=power) for e in phantom]


def profile_integral(k: int) -> float:
    """``int_{-1}^{1} (1 - s^2)^k ds = sqrt(pi) Gamma(k + 1) / Gamma(k + 3/2)`` (2 for k = 0)."""
    return math.sqrt(math.pi) * math.gamma(k + 1) / math.gamma(k + 1.5)


def local_coordinates(e: Ellipsoid, points: np.ndarray) -> np.ndarray:
    """Points (..., D) in the frame where ``e`` is the unit ball."""
    return ((points - np.asarray(e.center)) @ np.asarray(e.rotation)) / np.asarray(e.semi_axes)


def chord_integrals(phantom: Sequence[Ellipsoid], origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Line integrals of ``phantom`` along the (infinite) lines ``origins + t * directions``.

    ``origins`` and ``directions`` have shape ``(..., D)`` in world mm (directions need
    not be unit vectors). Returns shape ``(...)``, in density * mm.
    """
    origins = np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    dir_len = np.linalg.norm(directions, axis=-1)
    out = np.zeros(np.broadcast_shapes(origins.shape, directions.shape)[:-1])
    for e in phantom:
        o = local_coordinates(e, origins)
        d = (directions @ np.asarray(e.rotation)) / np.asarray(e.semi_axes)
        # r^2(t) = |o + t d|^2 = a t^2 + 2 b t + c = a ((t - t0)^2 - h^2) with
        # h^2 = (b^2 - a c) / a^2: the chord is |t - t0| <= h, of length 2 h |dir|.
        a = np.sum(d * d, axis=-1)
        b = np.sum(o * d, axis=-1)
        c = np.sum(o * o, axis=-1) - 1.0
        h = np.sqrt(np.maximum(b * b - a * c, 0.0)) / a
        # int_{-h}^{h} (a (h^2 - tau^2))^k dtau = a^k h^(2k+1) * 2 int_0^1 (1 - s^2)^k ds
        k = e.power
        out += e.density * a**k * h ** (2 * k + 1) * profile_integral(k) * dir_len
    return out


def voxel_centres(shape: Sequence[int], spacing: Sequence[float], center: Sequence[float]) -> list[np.ndarray]:
    """World coordinates of voxel centres per tensor axis (tensor order)."""
    return [c + (np.arange(n) - (n - 1) / 2) * s for n, s, c in zip(shape, spacing, center, strict=True)]


def _half_widths(e: Ellipsoid) -> np.ndarray:
    """Half-extent of ``e``'s bounding box along each world axis: ``sqrt(sum_j (R_kj a_j)^2)``."""
    return np.sqrt(np.sum((np.asarray(e.rotation) * np.asarray(e.semi_axes)) ** 2, axis=1))


def voxelise(
    phantom: Sequence[Ellipsoid],
    shape: Sequence[int],
    spacing: float | Sequence[float] = 1.0,
    center: float | Sequence[float] = 0.0,
    supersample: int = 4,
) -> np.ndarray:
    """Mean density of ``phantom`` over each voxel, from ``supersample**D`` sub-samples.

    ``shape``, ``spacing`` and ``center`` are in tensor order (as :class:`pr.Volume`);
    the sub-samples sit at the centres of a regular ``supersample**D`` split of each voxel
    (``supersample=1``: the voxel centre). Returns a float64 array of shape ``shape``.
    """
    ndim = len(shape)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,))
    center = np.broadcast_to(np.asarray(center, dtype=np.float64), (ndim,))
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5  # sub-sample offsets in voxels
    fine_axes = []  # sub-sample coordinates along each tensor axis, world mm (increasing)
    for k in range(ndim):
        base = voxel_centres([shape[k]], [spacing[k]], [center[k]])[0]
        fine_axes.append((base[:, None] + sub[None, :] * spacing[k]).reshape(-1))
    out = np.empty(tuple(shape))
    per_slab = supersample * int(np.prod([len(a) for a in fine_axes[1:]]))
    step = max(1, _CHUNK // per_slab)  # slabs of the first tensor axis at a time (bounded memory)
    boxes = [(e, _half_widths(e) * (1 + 1e-9) + 1e-12) for e in phantom]
    for i0 in range(0, shape[0], step):
        i1 = min(shape[0], i0 + step)
        axes = [fine_axes[0][i0 * supersample : i1 * supersample], *fine_axes[1:]]
        fine = np.zeros([len(a) for a in axes])
        for e, half in boxes:
            # only the sub-samples inside the bounding box can be inside the ellipsoid
            index = []
            for t in range(ndim):
                k = ndim - 1 - t  # world coordinate k (x, y, z) lives on tensor axis ndim - 1 - k
                lo = np.searchsorted(axes[t], e.center[k] - half[k], side="left")
                hi = np.searchsorted(axes[t], e.center[k] + half[k], side="right")
                index.append(slice(lo, hi))
            if any(s.start >= s.stop for s in index):
                continue
            world = []
            for k in range(ndim):
                t = ndim - 1 - k
                world.append(axes[t][index[t]].reshape([-1 if a == t else 1 for a in range(ndim)]))
            r2 = 0.0
            for j in range(ndim):  # local coordinate j = sum_k (p_k - c_k) R_kj / a_j
                qj = sum((world[k] - e.center[k]) * e.rotation[k][j] for k in range(ndim)) / e.semi_axes[j]
                r2 = r2 + qj * qj
            if e.power == 0:
                fine[tuple(index)] += e.density * (r2 <= 1.0)
            else:
                fine[tuple(index)] += e.density * np.maximum(1.0 - r2, 0.0) ** e.power
        split = [i1 - i0, supersample]
        for n in shape[1:]:
            split += [n, supersample]
        out[i0:i1] = fine.reshape(split).mean(axis=tuple(range(1, 2 * ndim, 2)))
    return out


def _pixel_rays(
    vec: np.ndarray, cu: np.ndarray, cv: np.ndarray, beam: str, curved: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rays through detector points at pixel coordinates ``cu`` (columns) and ``cv`` (rows),
    counted in pixels from the detector centre; shapes ``(views, len(cv), len(cu), D)``."""
    dim = 2 if vec.shape[1] == 6 else 3
    s, d, u = vec[:, :dim], vec[:, dim : 2 * dim], vec[:, 2 * dim : 3 * dim]
    v = vec[:, 9:12] if dim == 3 else np.zeros_like(u)
    s4, d4, u4, v4 = (a[:, None, None, :] for a in (s, d, u, v))
    cu4 = np.asarray(cu, dtype=np.float64)[None, None, :, None]
    cv4 = np.asarray(cv, dtype=np.float64)[None, :, None, None]
    if not curved:
        pix = d4 + cu4 * u4 + cv4 * v4
    else:
        if beam != "cone":
            raise ValueError("a curved detector needs a cone/fan beam")
        # The arc/cylinder axis goes through the source (15-column vectors: through c)
        # along v; its foot in the plane of d (perpendicular to v) is the circle's centre.
        if dim == 3:
            vhat = v / np.linalg.norm(v, axis=1, keepdims=True)
            axis = vec[:, 12:15] if vec.shape[1] == 15 else s
            centre = axis + np.sum((d - axis) * vhat, axis=1, keepdims=True) * vhat
        else:
            centre = s
        radial = d - centre
        radius = np.linalg.norm(radial, axis=1, keepdims=True)
        rhat = radial / radius
        ulen = np.linalg.norm(u, axis=1, keepdims=True)
        uhat = u / ulen
        alpha = cu4 * (ulen / radius)[:, None, None, :]  # arc angle of each column
        pix = (
            centre[:, None, None, :]
            + radius[:, None, None, :]
            * (np.cos(alpha) * rhat[:, None, None, :] + np.sin(alpha) * uhat[:, None, None, :])
            + cv4 * v4
        )
    if beam == "parallel":
        origins, directions = pix, np.broadcast_to(s4, pix.shape)
    else:
        origins, directions = np.broadcast_to(s4, pix.shape), pix - s4
    return origins, directions


def detector_rays(
    vectors: np.ndarray, det_shape: Sequence[int], beam: str, curved: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(origins, directions)`` of every detector pixel's ray, world mm.

    ``vectors`` as returned by ``Geometry.to_vectors()``. Shapes ``(n_views, n_det, 2)``
    in 2-D and ``(n_views, rows, cols, 3)`` in 3-D, matching the projection layout.
    """
    vec = np.asarray(vectors, dtype=np.float64)
    nu = det_shape[-1]
    nv = det_shape[0] if vec.shape[1] != 6 else 1
    origins, directions = _pixel_rays(vec, np.arange(nu) - (nu - 1) / 2, np.arange(nv) - (nv - 1) / 2, beam, curved)
    if vec.shape[1] == 6:
        origins, directions = origins[:, 0], directions[:, 0]
    return np.ascontiguousarray(origins), np.ascontiguousarray(directions)


def project(
    phantom: Sequence[Ellipsoid], vectors: np.ndarray, det_shape: Sequence[int], beam: str, curved: bool = False
) -> np.ndarray:
    """Exact projections of ``phantom``, shape ``(n_views, *det_shape)``."""
    origins, directions = detector_rays(vectors, det_shape, beam, curved)
    return chord_integrals(phantom, origins, directions)


def _check_phantom(phantom: Any, ndim: int) -> list[Ellipsoid]:
    if isinstance(phantom, Ellipsoid):
        phantom = [phantom]
    if not isinstance(phantom, (list, tuple)) or not all(isinstance(e, Ellipsoid) for e in phantom):
        raise TypeError("phantom must be a list of Ellipsoid (see shepp_logan_2d, ellipse, ellipsoid)")
    bad = [e.ndim for e in phantom if e.ndim != ndim]
    if bad:
        raise ValueError(f"phantom must hold {ndim}-D ellipsoids for a {ndim}-D geometry/volume, got {bad[0]}-D ones")
    return list(phantom)


def _check_dtype(dtype: Any) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a real floating torch dtype (torch.float32, torch.float64), got {dtype!r}")
    return dtype


def _sub_offsets(oversample: int) -> np.ndarray:
    """Centres of ``oversample`` equal parts of one pixel, in pixels from its centre."""
    return (np.arange(oversample) + 0.5) / oversample - 0.5


def analytic_projection(
    phantom: Sequence[Ellipsoid],
    geometry: Geometry,
    *,
    oversample: int = 1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Exact line integrals of an ellipse/ellipsoid phantom for any geometry.

    ``p(ray) = \sum_e \int_{ray} \rho_e (1 - r_e^2)^{k_e}``, in density * mm, in closed
    form (no discretisation of the object). With ``oversample = m > 1`` each detector
    pixel is the mean of ``m`` sub-rays along u (``m * m`` along u and v in 3-D) through
    the centres of ``m`` equal parts of the pixel (along the arc for curved detectors):
    a box-shaped detector cell of finite width instead of a point detector.

    Parameters
    ----------
    phantom : list of Ellipsoid
        In world mm, with the dimension of ``geometry``.
    geometry : Geometry
        Any 2-D or 3-D geometry of the library (parallel, fan, cone, flat or curved
        detector, :class:`~precisionrecon.VectorGeometry`); read only through
        ``geometry.to_vectors()`` and the conventions in the module docstring.
    oversample : int
        Sub-rays per pixel and detector axis (1: one ray through the pixel centre).
    dtype : torch.dtype
        Result dtype; the computation is float64.
    device : torch.device or str, optional
        Result device (default CPU).

    Returns
    -------
    Tensor
        Shape: ``(n_views, *det_shape)``, i.e. ``geometry.proj_shape``.
    """
    if not isinstance(geometry, Geometry):
        raise TypeError(f"geometry must be a precisionrecon geometry, got {type(geometry).__name__}")
    phantom = _check_phantom(phantom, geometry.ndim)
    m = positive_int(oversample, "oversample")
    dtype = _check_dtype(dtype)
    vec = geometry.to_vectors().numpy()
    det = geometry.det_shape
    nu = det[-1]
    nv = det[0] if geometry.ndim == 3 else 1
    mv = m if geometry.ndim == 3 else 1
    sub = _sub_offsets(m)
    cu = ((np.arange(nu) - (nu - 1) / 2)[:, None] + sub[None, :]).reshape(-1)
    cv = ((np.arange(nv) - (nv - 1) / 2)[:, None] + _sub_offsets(mv)[None, :]).reshape(-1)
    out = np.empty((vec.shape[0], nv, nu))
    step = max(1, _CHUNK // (cu.size * cv.size))  # views per chunk (bounded memory)
    for i0 in range(0, vec.shape[0], step):
        origins, directions = _pixel_rays(vec[i0 : i0 + step], cu, cv, geometry.beam, geometry.curved)
        fine = chord_integrals(phantom, origins, directions)  # (views, nv * mv, nu * m)
        out[i0 : i0 + step] = fine.reshape(-1, nv, mv, nu, m).mean(axis=(2, 4))
    out = out.reshape(geometry.proj_shape)
    return torch.from_numpy(out).to(dtype=dtype, device=device)


def rasterize(
    phantom: Sequence[Ellipsoid],
    volume: Volume,
    *,
    oversample: int = 1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The phantom on the voxel grid of ``volume``: mean density over each voxel.

    ``x_i = m^{-D} \sum_{s} f(p_{i,s})``: the density is sampled at the centres of a
    regular ``m^D`` split of voxel ``i`` (``m = oversample``; 1 samples the voxel centre,
    as ODL's and MATLAB's phantoms do) and averaged, which models the partial-volume effect
    at edges.

    Parameters
    ----------
    phantom : list of Ellipsoid
        In world mm, with the dimension of ``volume``.
    volume : Volume
    oversample : int
        Sub-samples per voxel and axis.
    dtype : torch.dtype
        Result dtype; the computation is float64.
    device : torch.device or str, optional
        Result device (default CPU).

    Returns
    -------
    Tensor
        Shape: ``volume.shape``, i.e. ``(ny, nx)`` or ``(nz, ny, nx)``.
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    phantom = _check_phantom(phantom, volume.ndim)
    m = positive_int(oversample, "oversample")
    dtype = _check_dtype(dtype)
    image = voxelise(phantom, volume.shape, volume.spacing, volume.center, supersample=m)
    return torch.from_numpy(image).to(dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------
# Test phantoms: dense layouts of overlapping ellipses that fill a given box
# ---------------------------------------------------------------------------------------


def phantom_2d(
    half_width: float, half_height: float | None = None, center: Sequence[float] = (0.0, 0.0)
) -> list[Ellipsoid]:
    """A Shepp-Logan-like set of overlapping ellipses filling a box of the given
    half-extents (x, y) about ``center`` (world x, y)."""
    hx = half_width
    hy = half_width if half_height is None else half_height
    cx, cy = center
    spec = [  # (x, y, a, b, angle, density) in units of the half-extents
        (0.0, 0.0, 0.69, 0.88, 0.0, 1.0),
        (0.0, -0.02, 0.62, 0.80, 0.0, -0.6),
        (0.22, 0.05, 0.11, 0.31, -0.31, -0.2),
        (-0.22, 0.02, 0.16, 0.41, 0.31, -0.2),
        (0.0, 0.35, 0.21, 0.25, 0.0, 0.3),
        (0.06, -0.45, 0.08, 0.05, 0.5, 0.4),
        (-0.3, -0.4, 0.12, 0.06, 1.0, 0.5),
    ]
    return [ellipse((cx + x * hx, cy + y * hy), (a * hx, b * hy), ang, rho) for x, y, a, b, ang, rho in spec]


def phantom_3d(half_extent: Sequence[float], center: Sequence[float] = (0.0, 0.0, 0.0)) -> list[Ellipsoid]:
    """A few rotated, overlapping ellipsoids filling a box of half-extents (x, y, z)
    about ``center`` (world x, y, z)."""
    hx, hy, hz = half_extent
    cx, cy, cz = center
    spec = [  # (x, y, z, a, b, c, angles, density) in units of the half-extents
        (0.0, 0.0, 0.0, 0.69, 0.85, 0.8, (0.0, 0.0, 0.0), 1.0),
        (0.0, -0.02, 0.0, 0.6, 0.76, 0.72, (0.0, 0.0, 0.0), -0.6),
        (0.2, 0.1, -0.2, 0.15, 0.35, 0.25, (-0.4, 0.3, 0.1), -0.25),
        (-0.25, 0.0, 0.15, 0.18, 0.3, 0.3, (0.5, -0.2, 0.4), 0.3),
        (0.05, -0.4, 0.3, 0.12, 0.15, 0.2, (1.0, 0.7, -0.3), 0.5),
    ]
    return [
        ellipsoid((cx + x * hx, cy + y * hy, cz + z * hz), (a * hx, b * hy, c * hz), ang, rho)
        for x, y, z, a, b, c, ang, rho in spec
    ]


def blobs_2d(
    half_width: float, half_height: float, center: Sequence[float] = (0.0, 0.0), power: int = 0
) -> list[Ellipsoid]:
    """Three large, overlapping ellipses (no feature smaller than a quarter of the box):
    the phantom with the smallest discretisation error for a given grid."""
    hx, hy, (cx, cy) = half_width, half_height, center
    return [
        ellipse((cx + 0.1 * hx, cy), (0.8 * hx, 0.9 * hy), 0.2, 1.0, power),
        ellipse((cx - 0.2 * hx, cy + 0.1 * hy), (0.4 * hx, 0.5 * hy), -0.4, -0.5, power),
        ellipse((cx + 0.3 * hx, cy - 0.3 * hy), (0.3 * hx, 0.25 * hy), 0.7, 0.6, power),
    ]


def blobs_3d(
    half_extent: Sequence[float], center: Sequence[float] = (0.0, 0.0, 0.0), power: int = 0
) -> list[Ellipsoid]:
    """Three large, overlapping, rotated ellipsoids (3-D analogue of :func:`blobs_2d`)."""
    hx, hy, hz = half_extent
    cx, cy, cz = center
    return [
        ellipsoid((cx + 0.1 * hx, cy, cz + 0.05 * hz), (0.8 * hx, 0.9 * hy, 0.85 * hz), (0.2, 0.1, 0.0), 1.0, power),
        ellipsoid(
            (cx - 0.2 * hx, cy + 0.1 * hy, cz - 0.1 * hz),
            (0.4 * hx, 0.5 * hy, 0.45 * hz),
            (-0.4, 0.3, 0.2),
            -0.5,
            power,
        ),
        ellipsoid(
            (cx + 0.3 * hx, cy - 0.3 * hy, cz + 0.2 * hz),
            (0.3 * hx, 0.25 * hy, 0.35 * hz),
            (0.7, -0.2, 0.5),
            0.6,
            power,
        ),
    ]
