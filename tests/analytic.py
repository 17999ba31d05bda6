"""Exact line integrals of ellipse/ellipsoid phantoms, independent of the library.

Everything here is plain numpy, written from the *documented* conventions only
(``Geometry`` / ``VectorGeometry`` docstrings and the header of ``cuda_ext/xray_math.h``),
never from the library's implementation:

* world axes x, y, z are tensor axes -1, -2, -3; voxel ``i`` of an axis with ``n``
  voxels is centred at ``center + (i - (n - 1) / 2) * spacing``;
* a view is ``[s, d, u(, v)]``; detector pixel ``(iv, iu)`` of a flat detector sits at
  ``d + (iu - (nu - 1) / 2) u + (iv - (nv - 1) / 2) v``;
* a curved detector (arc in 2-D, cylinder in 3-D) bends in u around the axis through
  the source ``s`` parallel to ``v``: its radius ``R`` is the distance of ``d`` from
  that axis, ``|u|`` is the arc length between pixel centres and ``u`` the tangent at
  ``d``, so pixel column ``iu`` lies at arc angle ``(iu - (nu - 1) / 2) |u| / R``;
* the ray of a pixel is the line through the pixel along ``s`` (parallel beam) or the
  line through the source ``s`` and the pixel (cone/fan beam).

The line integral of a constant-density ellipsoid along a line is density times the
length of the chord, from the roots of a quadratic. Optionally the density falls off as
``(1 - r^2)^k`` with the normalised radius ``r`` (``k = power``); the line integral is
then still closed-form (see :func:`chord_integrals`), and for ``k >= 1`` the phantom is
continuous, so the discretisation error of a voxelised copy is second order in the voxel
size instead of first order (sharp edges).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ellipsoid:
    """Constant-density ellipse (2-D) or ellipsoid (3-D) in world mm.

    ``center`` and ``semi_axes`` are in world order (x, y(, z)); the columns of
    ``rotation`` are the unit directions of the semi-axes in world coordinates. The
    density is ``density * (1 - r^2)^power`` inside (``r`` the normalised radius), so
    ``power=0`` is the classic constant-density ellipse.
    """

    center: tuple[float, ...]
    semi_axes: tuple[float, ...]
    rotation: np.ndarray
    density: float
    power: int = 0  # density profile (1 - r^2)**power of the normalised radius r; 0: constant

    @property
    def ndim(self) -> int:
        return len(self.center)


def ellipse(
    center: Sequence[float], semi_axes: Sequence[float], angle: float, density: float, power: int = 0
) -> Ellipsoid:
    """A 2-D ellipse; its first semi-axis points along ``(cos angle, sin angle)`` (x, y)."""
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


def _profile_integral(k: int) -> float:
    """``int_{-1}^{1} (1 - s^2)^k ds = sqrt(pi) Gamma(k + 1) / Gamma(k + 3/2)`` (2 for k = 0)."""
    return math.sqrt(math.pi) * math.gamma(k + 1) / math.gamma(k + 1.5)


def _local(e: Ellipsoid, points: np.ndarray) -> np.ndarray:
    """Points (..., D) in the frame where ``e`` is the unit ball."""
    return ((points - np.asarray(e.center)) @ e.rotation) / np.asarray(e.semi_axes)


def chord_integrals(phantom: Sequence[Ellipsoid], origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Line integrals of ``phantom`` along the (infinite) lines ``origins + t * directions``.

    ``origins`` and ``directions`` have shape ``(..., D)`` in world mm (directions need
    not be unit vectors). Returns shape ``(...)``, in density * mm.
    """
    origins = np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    dir_len = np.linalg.norm(directions, axis=-1)
    out = np.zeros(origins.shape[:-1])
    for e in phantom:
        o = _local(e, origins)
        d = (directions @ e.rotation) / np.asarray(e.semi_axes)
        # r^2(t) = |o + t d|^2 = a t^2 + 2 b t + c = a ((t - t0)^2 - h^2) with
        # h^2 = (b^2 - a c) / a^2: the chord is |t - t0| <= h, of length 2 h |dir|.
        a = np.sum(d * d, axis=-1)
        b = np.sum(o * d, axis=-1)
        c = np.sum(o * o, axis=-1) - 1.0
        h = np.sqrt(np.maximum(b * b - a * c, 0.0)) / a
        # int_{-h}^{h} (a (h^2 - tau^2))^k dtau = a^k h^(2k+1) * 2 int_0^1 (1 - s^2)^k ds
        k = e.power
        out += e.density * a**k * h ** (2 * k + 1) * _profile_integral(k) * dir_len
    return out


def voxel_centres(shape: Sequence[int], spacing: Sequence[float], center: Sequence[float]) -> list[np.ndarray]:
    """World coordinates of voxel centres per tensor axis (tensor order)."""
    return [c + (np.arange(n) - (n - 1) / 2) * s for n, s, c in zip(shape, spacing, center, strict=True)]


def voxelise(
    phantom: Sequence[Ellipsoid],
    shape: Sequence[int],
    spacing: float | Sequence[float] = 1.0,
    center: float | Sequence[float] = 0.0,
    supersample: int = 4,
) -> np.ndarray:
    """Mean density of ``phantom`` over each voxel, from ``supersample**D`` sub-samples.

    ``shape``, ``spacing`` and ``center`` are in tensor order (as :class:`pr.Volume`).
    Returns a float64 array of shape ``shape``.
    """
    ndim = len(shape)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,))
    center = np.broadcast_to(np.asarray(center, dtype=np.float64), (ndim,))
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5  # sub-sample offsets in voxels
    fine_axes = []  # sub-sample coordinates along each tensor axis, world mm
    for k in range(ndim):
        base = voxel_centres([shape[k]], [spacing[k]], [center[k]])[0]
        fine_axes.append((base[:, None] + sub[None, :] * spacing[k]).reshape(-1))
    out = np.empty(tuple(shape))
    for i0 in range(shape[0]):  # one slab of the first tensor axis at a time (bounded memory)
        axes = [fine_axes[0][i0 * supersample : (i0 + 1) * supersample], *fine_axes[1:]]
        # world coordinate k (x, y, z) lives on tensor axis ndim - 1 - k
        world = []
        for k in range(ndim):
            t = ndim - 1 - k
            world.append(axes[t].reshape([-1 if a == t else 1 for a in range(ndim)]))
        fine = np.zeros([len(a) for a in axes])
        for e in phantom:
            r2 = 0.0
            for j in range(ndim):  # local coordinate j = sum_k (p_k - c_k) R_kj / a_j
                qj = sum((world[k] - e.center[k]) * e.rotation[k, j] for k in range(ndim)) / e.semi_axes[j]
                r2 = r2 + qj * qj
            if e.power == 0:
                fine += e.density * (r2 <= 1.0)
            else:
                fine += e.density * np.maximum(1.0 - r2, 0.0) ** e.power
        split = [1, supersample]
        for n in shape[1:]:
            split += [n, supersample]
        out[i0] = fine.reshape(split).mean(axis=tuple(range(1, 2 * ndim, 2)))[0]
    return out


def detector_rays(
    vectors: np.ndarray, det_shape: Sequence[int], beam: str, curved: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(origins, directions)`` of every detector pixel's ray, world mm.

    ``vectors`` as returned by ``Geometry.to_vectors()``. Shapes ``(n_views, n_det, 2)``
    in 2-D and ``(n_views, rows, cols, 3)`` in 3-D, matching the projection layout.
    """
    vec = np.asarray(vectors, dtype=np.float64)
    dim = 2 if vec.shape[1] == 6 else 3
    s, d, u = vec[:, :dim], vec[:, dim : 2 * dim], vec[:, 2 * dim : 3 * dim]
    nu = det_shape[-1]
    nv = det_shape[0] if dim == 3 else 1
    cu = np.arange(nu) - (nu - 1) / 2  # (nu,)
    cv = np.arange(nv) - (nv - 1) / 2  # (nv,)
    v = vec[:, 9:12] if dim == 3 else np.zeros_like(u)
    # broadcast to (views, nv, nu, dim)
    s4, d4, u4, v4 = (a[:, None, None, :] for a in (s, d, u, v))
    cu4 = cu[None, None, :, None]
    cv4 = cv[None, :, None, None]
    if not curved:
        pix = d4 + cu4 * u4 + cv4 * v4
    else:
        if beam != "cone":
            raise ValueError("a curved detector needs a cone/fan beam")
        # The arc/cylinder axis goes through the source along v; its foot in the plane
        # of d (perpendicular to v) is the circle's centre.
        if dim == 3:
            vhat = v / np.linalg.norm(v, axis=1, keepdims=True)
            centre = s + np.sum((d - s) * vhat, axis=1, keepdims=True) * vhat
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
    if dim == 2:
        origins, directions = origins[:, 0], directions[:, 0]
    return np.ascontiguousarray(origins), np.ascontiguousarray(directions)


def project(
    phantom: Sequence[Ellipsoid], vectors: np.ndarray, det_shape: Sequence[int], beam: str, curved: bool = False
) -> np.ndarray:
    """Exact projections of ``phantom``, shape ``(n_views, *det_shape)``."""
    origins, directions = detector_rays(vectors, det_shape, beam, curved)
    return chord_integrals(phantom, origins, directions)


def with_power(phantom: Sequence[Ellipsoid], power: int) -> list[Ellipsoid]:
    """The same ellipses/ellipsoids with density profile ``(1 - r^2)^power``."""
    return [dataclasses.replace(e, power=power) for e in phantom]


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
