"""The X-ray transform against independent references.

1. Exact analytic line integrals of ellipse/ellipsoid phantoms (``tests/analytic.py``,
   plain numpy written from the documented geometry conventions only), for every
   geometry family including vector geometries and curved detectors.
2. ASTRA's 2-D CPU projectors (``linear``: Joseph-type, ``line_fanflat``: line length).
3. ODL: its ``RayTransform`` (2-D parallel beam) and its geometry classes (2-D and 3-D
   pixel positions), with the convention mapping between ODL and us.

Convention mappings (verified by the tests below)
-------------------------------------------------
ASTRA 2-D: ASTRA's y axis points up (image row 0 at the top, ``y = max_y - (r + 1/2) h``),
ours grows with the row. Our ``ParallelBeam2D`` / ``FanBeam2D(detector="flat")`` with
angle ``t`` equal ASTRA ``parallel`` / ``fanflat`` with the *same* angle ``t`` (and
``origin_det = src_det - src_iso``); our per-view vectors map to ASTRA ``*_vec`` rows by
``(x, y) -> (x, -y)`` for every 2-vector (ray/source, detector centre, u). The volume
window is ``min_x, max_x = c_x -+ n_x h_x / 2`` and ``min_y, max_y = -c_y -+ n_y h_y / 2``.
Exactly: fan vectors equal ``astra.geom_2vec`` of the 'fanflat' geometry after the mirror;
parallel ones too except that the ray vector is reversed (ours points source side ->
detector like the fan's central ray), which no line integral sees. ASTRA's 2-D CPU
projectors need square pixels (see ``ASTRA_VOL``).

ODL: ODL's array axes are its (x, y(, z)) world axes in that order, so our tensor axis -2
(world y) is ODL's axis 0 and our axis -1 (world x) ODL's axis 1: ``X_odl = y``,
``Y_odl = x`` (``Z_odl = z`` in 3-D; the ODL array of a 3-D volume is our tensor
transposed by ``(1, 2, 0)``). With that mirror, ODL angle ``phi = t + pi / 2``. ODL's
detector parameter is ours (``u`` = our columns, ``v`` = our rows; the partition of a
curved detector is in radians, arc length / ``src_det``), ODL ``src_radius = src_iso``,
``det_radius = src_det - src_iso``, ``det_curvature_radius = src_det`` (3-D:
``(src_det, None)``). The 2-D array layouts then coincide: no transposes or flips.
ODL 1.0's ASTRA CPU backend drops a shifted detector partition in 2-D parallel beam
(see ``test_odl_parallel_ray_transform``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import analytic as an
import numpy as np
import pytest
import torch

import precisionrecon as pr

# Circular trajectories: a wide fan (half fan angle ~25 degrees) so that flat vs curved
# detectors and magnification errors are clearly visible.
SRC_ISO, SRC_DET = 80.0, 140.0
SRC_ISO_3D, SRC_DET_3D = 60.0, 110.0


# ---------------------------------------------------------------------------------------
# Geometry cases. `k` scales the resolution (voxels x k, voxel size / k, same physical
# field of view); every detector is 2x oversampled: pixel pitch projected back to the
# isocentre (or to the object for vector geometries) = half the smallest voxel size.
# ---------------------------------------------------------------------------------------


def _n_det(half_width: float, pitch: float) -> int:
    return 2 * math.ceil(half_width / pitch) + 2


# The phantoms stay within 90 % of the volume's half-extents about its centre.
FILL = 0.9


def _radius(vol: pr.Volume) -> float:
    """Radius of the circle about the z axis that holds the phantom."""
    (hy, hx), (cy, cx) = [FILL * e / 2 for e in vol.extent[-2:]], vol.center[-2:]
    return math.hypot(hx + abs(cx), hy + abs(cy))


def _fan_half_width(radius: float, src_iso: float, src_det: float) -> float:
    return src_det * radius / math.sqrt(src_iso**2 - radius**2)


def _rot2(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _vectors_parallel_2d(n: int, pitch: float, seed: int) -> np.ndarray:
    """Random directions; non-unit ray vectors; detector tilted by up to 0.35 rad from
    the perpendicular, with the pitch perpendicular to the ray kept at ``pitch``."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        ray = np.array([-math.sin(t), -math.cos(t)])
        tilt = rng.uniform(-0.35, 0.35)
        u = _rot2(tilt) @ np.array([math.cos(t), -math.sin(t)])
        u *= pitch / math.cos(tilt)
        d = rng.uniform(-3, 3) * u / np.linalg.norm(u) + rng.uniform(-20, 20) * ray
        rows.append([*(1.7 * ray), *d, *u])
    return np.asarray(rows)


def _vectors_cone_2d(n: int, pitch: float, seed: int, curved: bool) -> np.ndarray:
    """Source on a wobbly circle (radius 100..125 mm, shifted off the origin), detector at
    170..195 mm from it, turned off the central ray and, when flat, tilted."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        r, L = rng.uniform(100, 125), rng.uniform(170, 195)
        src = r * np.array([math.sin(t), math.cos(t)]) + rng.uniform(-2, 2, 2)
        axis = _rot2(rng.uniform(-0.05, 0.05)) @ (-src / np.linalg.norm(src))
        det = src + L * axis
        perp = np.array([-axis[1], axis[0]])
        tilt = 0.0 if curved else rng.uniform(-0.3, 0.3)
        u = _rot2(tilt) @ perp * (pitch * L / r) / (1.0 if curved else math.cos(tilt))
        rows.append([*src, *det, *u])
    return np.asarray(rows)


def _vectors_cone_3d(n: int, pitch: float, seed: int) -> np.ndarray:
    """A helix-like source path (z in +-8 mm), detector rolled/tilted and shifted."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        r, L = rng.uniform(75, 90), rng.uniform(135, 150)
        s, c = math.sin(t), math.cos(t)
        src = np.array([r * s, r * c, rng.uniform(-8, 8)])
        axis = -np.array([s, c, 0.0])
        det = src + L * axis + np.array([0.0, 0.0, -src[2]]) + rng.uniform(-2, 2, 3)
        roll = rng.uniform(-0.2, 0.2)
        u0, v0 = np.array([c, -s, 0.0]), np.array([0.0, 0.0, 1.0])
        u = math.cos(roll) * u0 + math.sin(roll) * v0
        v = -math.sin(roll) * u0 + math.cos(roll) * v0 + 0.1 * axis
        mag = L / r
        rows.append([*src, *det, *(pitch * mag * u), *(pitch * mag * v)])
    return np.asarray(rows)


def _vectors_parallel_3d(n: int, pitch: float, seed: int) -> np.ndarray:
    """Rays tilted out of the x-y plane by 0.2..0.6 rad (laminography-like), so the
    Joseph main axis is sometimes z."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        s, c = math.sin(t), math.cos(t)
        el = rng.uniform(0.2, 0.6) * rng.choice([-1, 1])
        ray = np.array([-s * math.cos(el), -c * math.cos(el), math.sin(el)])
        u = np.array([c, -s, 0.0])
        v = np.cross(ray, u)
        d = rng.uniform(-2, 2) * u + rng.uniform(-2, 2) * v
        rows.append([*ray, *d, *(pitch * u), *(pitch * v)])
    return np.asarray(rows)


def _case_parallel2d(k: float) -> tuple[pr.Volume, pr.Geometry]:
    vol = pr.Volume((round(64 * k), round(64 * k)), spacing=1 / k)
    pitch = 0.5 / k
    geom = pr.ParallelBeam2D(
        angles=pr.angles(60, math.pi, 0.05), det_count=_n_det(_radius(vol), pitch), det_spacing=pitch, det_offset=1.3
    )
    return vol, geom


def _case_fan(detector: str) -> Callable[[float], tuple[pr.Volume, pr.Geometry]]:
    def make(k: float) -> tuple[pr.Volume, pr.Geometry]:
        vol = pr.Volume((round(64 * k), round(64 * k)), spacing=1 / k)
        pitch = 0.5 / k * SRC_DET / SRC_ISO
        half = _fan_half_width(_radius(vol), SRC_ISO, SRC_DET)
        geom = pr.FanBeam2D(
            angles=pr.angles(60, 2 * math.pi, 0.1),
            det_count=_n_det(half + 4, pitch),
            det_spacing=pitch,
            src_iso=SRC_ISO,
            src_det=SRC_DET,
            detector=detector,
            det_offset=-2.1,
        )
        return vol, geom

    return make


def _case_vector2d(beam: str, detector: str = "flat") -> Callable[[float], tuple[pr.Volume, pr.Geometry]]:
    def make(k: float) -> tuple[pr.Volume, pr.Geometry]:
        vol = pr.Volume((round(64 * k), round(64 * k)), spacing=1 / k)
        pitch = 0.5 / k
        if beam == "parallel":
            vec = _vectors_parallel_2d(50, pitch, seed=7)
            n = _n_det(_radius(vol) / math.cos(0.35) + 4, pitch)
        else:
            vec = _vectors_cone_2d(50, pitch, seed=8, curved=detector == "curved")
            # <= 125 mm half-width on the detector (fan, tilt, turn), magnification >= 170 / 125
            n = _n_det(125 / (170 / 125), pitch)
        return vol, pr.VectorGeometry(vectors=vec, det_shape=n, beam=beam, detector=detector)

    return make


def _case_aniso2d(beam: str) -> Callable[[float], tuple[pr.Volume, pr.Geometry]]:
    def make(k: float) -> tuple[pr.Volume, pr.Geometry]:
        vol = pr.Volume((round(40 * k), round(80 * k)), spacing=(1.2 / k, 0.7 / k), center=(3.0, -2.0))
        pitch = 0.35 / k
        if beam == "parallel":
            geom = pr.ParallelBeam2D(
                angles=pr.angles(60, math.pi, 0.2), det_count=_n_det(_radius(vol), pitch), det_spacing=pitch
            )
        else:
            pitch *= SRC_DET / SRC_ISO
            half = _fan_half_width(_radius(vol), SRC_ISO, SRC_DET)
            geom = pr.FanBeam2D(
                angles=pr.angles(60, 2 * math.pi),
                det_count=_n_det(half, pitch),
                det_spacing=pitch,
                src_iso=SRC_ISO,
                src_det=SRC_DET,
                det_offset=0.8,
            )
        return vol, geom

    return make


def _case_parallel3d(k: float) -> tuple[pr.Volume, pr.Geometry]:
    n = round(48 * k)
    vol = pr.Volume((n, n, n), spacing=1 / k)
    pitch = 0.5 / k
    rows, cols = _n_det(FILL * vol.extent[0] / 2, pitch), _n_det(_radius(vol), pitch)
    geom = pr.ParallelBeam3D(
        angles=pr.angles(20, math.pi, 0.05), det_shape=(rows, cols), det_spacing=pitch, det_offset=(0.7, -1.1)
    )
    return vol, geom


def _case_cone(detector: str, aniso: bool = False) -> Callable[[float], tuple[pr.Volume, pr.Geometry]]:
    def make(k: float) -> tuple[pr.Volume, pr.Geometry]:
        if aniso:
            shape, spacing, center = (40, 44, 56), (1.2, 1.0, 0.8), (2.0, -1.5, 3.0)
        else:
            shape, spacing, center = (48, 48, 48), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
        vol = pr.Volume(tuple(round(n * k) for n in shape), [s / k for s in spacing], center)
        pitch = 0.5 * min(vol.spacing) * SRC_DET_3D / SRC_ISO_3D
        radius = _radius(vol)
        half_u = _fan_half_width(radius, SRC_ISO_3D, SRC_DET_3D)
        half_v = (FILL * vol.extent[0] / 2 + abs(center[0])) * SRC_DET_3D / (SRC_ISO_3D - radius)
        geom = pr.ConeBeam3D(
            angles=pr.angles(20, 2 * math.pi, 0.3),
            det_shape=(_n_det(half_v + 2, pitch), _n_det(half_u + 3, pitch)),
            det_spacing=pitch,
            src_iso=SRC_ISO_3D,
            src_det=SRC_DET_3D,
            detector=detector,
            det_offset=(1.2, -2.3),
        )
        return vol, geom

    return make


def _case_vector3d(beam: str) -> Callable[[float], tuple[pr.Volume, pr.Geometry]]:
    def make(k: float) -> tuple[pr.Volume, pr.Geometry]:
        n = round(48 * k)
        vol = pr.Volume((n, n, n), spacing=1 / k)
        pitch = 0.5 / k
        if beam == "cone":
            vec = _vectors_cone_3d(20, pitch, seed=9)
            det_shape = (_n_det(45, pitch), _n_det(45, pitch))
        else:
            vec = _vectors_parallel_3d(20, pitch, seed=10)
            det_shape = (_n_det(44, pitch), _n_det(38, pitch))
        return vol, pr.VectorGeometry(vectors=vec, det_shape=det_shape, beam=beam)

    return make


CASES_2D: dict[str, Callable[[float], tuple[pr.Volume, pr.Geometry]]] = {
    "parallel2d-offset": _case_parallel2d,
    "fan-flat": _case_fan("flat"),
    "fan-arc": _case_fan("arc"),
    "vector2d-parallel": _case_vector2d("parallel"),
    "vector2d-cone-flat": _case_vector2d("cone"),
    "vector2d-cone-curved": _case_vector2d("cone", "curved"),
    "parallel2d-aniso-nonsquare": _case_aniso2d("parallel"),
    "fan-flat-aniso-nonsquare": _case_aniso2d("cone"),
}
CASES_3D: dict[str, Callable[[float], tuple[pr.Volume, pr.Geometry]]] = {
    "parallel3d-offset": _case_parallel3d,
    "cone-flat": _case_cone("flat"),
    "cone-cylindrical": _case_cone("cylindrical"),
    "cone-flat-aniso-noncubic": _case_cone("flat", aniso=True),
    "vector3d-cone": _case_vector3d("cone"),
    "vector3d-parallel-tilted": _case_vector3d("parallel"),
}
CASES = {**CASES_2D, **CASES_3D}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _phantom(vol: pr.Volume, power: int, large: bool = False) -> list[an.Ellipsoid]:
    """Ellipses/ellipsoids filling 95% of the volume's box, about its centre: Shepp-Logan
    like (features down to ~1.5 voxels) or, with ``large``, three large blobs."""
    half = [0.95 * e / 2 for e in reversed(vol.extent)]  # world order x, y(, z)
    center = list(reversed(vol.center))
    if large:
        return an.blobs_2d(*half, center, power) if vol.ndim == 2 else an.blobs_3d(half, center, power)
    ph = an.phantom_2d(half[0], half[1], center) if vol.ndim == 2 else an.phantom_3d(half, center)
    return an.with_power(ph, power)


def _curved(geom: pr.Geometry) -> bool:
    return getattr(geom, "detector", "flat") != "flat"


def _analytic(phantom: list[an.Ellipsoid], geom: pr.Geometry) -> np.ndarray:
    return an.project(phantom, geom.to_vectors().numpy(), geom.det_shape, geom.beam, _curved(geom))


def _ours(vol: pr.Volume, geom: pr.Geometry, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return pr.XRayTransform(vol, geom)(torch.from_numpy(image)).numpy()


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def _analytic_error(
    vol: pr.Volume, geom: pr.Geometry, power: int, ref_geom: pr.Geometry | None = None, large: bool = False
) -> float:
    phantom = _phantom(vol, power, large)
    image = an.voxelise(phantom, vol.shape, vol.spacing, vol.center, supersample=4 if vol.ndim == 2 else 3)
    ref = _analytic(phantom, ref_geom or geom)
    assert np.count_nonzero(ref) > 0.1 * ref.size  # the detector sees the phantom
    return _rel(_ours(vol, geom, image), ref)


# ---------------------------------------------------------------------------------------
# 0. the reference itself
# ---------------------------------------------------------------------------------------


def test_chord_integrals_against_quadrature() -> None:
    rng = np.random.default_rng(0)
    for power in (0, 1, 2):
        e = an.ellipsoid((1.0, 2.0, -1.0), (5.0, 3.0, 4.0), (0.3, 0.5, -0.2), 2.0, power)
        for _ in range(3):
            o, d = np.array(e.center) + rng.normal(size=3), rng.normal(size=3)
            t = np.linspace(-25, 25, 200_001)
            q = ((o + t[:, None] * d - np.array(e.center)) @ e.rotation) / np.array(e.semi_axes)
            f = 2.0 * np.maximum(1.0 - np.sum(q * q, axis=1), 0.0) ** power * (np.sum(q * q, axis=1) <= 1.0)
            exact = an.chord_integrals([e], o, d)
            # trapezoid rule: O(step) at the jump of power 0, O(step^2) for the kink of power 1
            tol = {0: 1e-4, 1: 1e-7, 2: 1e-8}[power]
            assert exact == pytest.approx(np.trapezoid(f, t) * np.linalg.norm(d), rel=tol, abs=1e-9)


def test_voxelise_mass_and_axes() -> None:
    # x is the last tensor axis, y the one before; voxel centres as documented by Volume
    e = an.ellipse((3.0, -2.0), (10.0, 5.0), 0.3, 2.0)
    img = an.voxelise([e], (64, 80), 0.5, (1.0, 2.0), supersample=8)
    ys, xs = an.voxel_centres((64, 80), (0.5, 0.5), (1.0, 2.0))
    mass = img.sum() * 0.25
    assert mass == pytest.approx(2.0 * math.pi * 50.0, rel=2e-3)
    assert (img * xs[None, :]).sum() * 0.25 / mass == pytest.approx(3.0, abs=1e-3)
    assert (img * ys[:, None]).sum() * 0.25 / mass == pytest.approx(-2.0, abs=1e-3)


def test_documented_circular_geometries() -> None:
    """Pixel centres of the circular geometries where their docstrings put them.

    Checks the analytic helper's reading of the vectors and each class's vectors against
    the parameters: source at ``src_iso (sin t, cos t)``, flat detector perpendicular to
    the central ray at ``src_det`` from the source, u along ``(cos t, -sin t)``, rows
    along +z; the arc/cylinder at radius ``src_det`` about the source (axis along z) with
    pixels ``du`` of arc apart and the u offset measured along the arc.
    """
    t = np.array([0.0, 0.4, 2.9])
    du, dv, ou, ov, nu, nv = 1.3, 1.1, 0.9, -0.4, 9, 5
    cu = (np.arange(nu) - (nu - 1) / 2) * du + ou
    cv = (np.arange(nv) - (nv - 1) / 2) * dv + ov
    src = SRC_ISO * np.stack([np.sin(t), np.cos(t)], 1)
    ax = -np.stack([np.sin(t), np.cos(t)], 1)
    uh = np.stack([np.cos(t), -np.sin(t)], 1)
    for detector in ("flat", "arc"):
        g = pr.FanBeam2D(
            angles=t, det_count=nu, det_spacing=du, src_iso=SRC_ISO, src_det=SRC_DET, detector=detector, det_offset=ou
        )
        o, d = an.detector_rays(g.to_vectors().numpy(), g.det_shape, g.beam, _curved(g))
        if detector == "flat":
            expect = src[:, None] + SRC_DET * ax[:, None] + cu[None, :, None] * uh[:, None]
        else:
            a = cu / SRC_DET
            expect = src[:, None] + SRC_DET * (
                np.cos(a)[None, :, None] * ax[:, None] + np.sin(a)[None, :, None] * uh[:, None]
            )
        np.testing.assert_allclose(o, np.broadcast_to(src[:, None], o.shape), atol=1e-12)
        np.testing.assert_allclose(o + d, expect, atol=1e-10)
    for detector in ("flat", "cylindrical"):
        g = pr.ConeBeam3D(
            angles=t,
            det_shape=(nv, nu),
            det_spacing=(dv, du),
            src_iso=SRC_ISO,
            src_det=SRC_DET,
            detector=detector,
            det_offset=(ov, ou),
        )
        o, d = an.detector_rays(g.to_vectors().numpy(), g.det_shape, g.beam, _curved(g))
        pix = o + d  # (views, rows, cols, 3)
        rel_xy = pix[..., :2] - src[:, None, None]
        if detector == "flat":
            np.testing.assert_allclose(np.einsum("vrcx,vx->vrc", rel_xy, ax), SRC_DET, atol=1e-10)
            np.testing.assert_allclose(
                np.einsum("vrcx,vx->vrc", rel_xy, uh), np.broadcast_to(cu, (3, nv, nu)), atol=1e-10
            )
        else:
            np.testing.assert_allclose(np.linalg.norm(rel_xy, axis=-1), SRC_DET, atol=1e-10)
            ang = np.arctan2(np.einsum("vrcx,vx->vrc", rel_xy, uh), np.einsum("vrcx,vx->vrc", rel_xy, ax))
            np.testing.assert_allclose(ang, np.broadcast_to(cu / SRC_DET, (3, nv, nu)), atol=1e-12)
        np.testing.assert_allclose(pix[..., 2], np.broadcast_to(cv[:, None], (3, nv, nu)), atol=1e-10)
    g = pr.ParallelBeam3D(angles=t, det_shape=(nv, nu), det_spacing=(dv, du), det_offset=(ov, ou))
    o, d = an.detector_rays(g.to_vectors().numpy(), g.det_shape, g.beam)
    np.testing.assert_allclose(d[:, 0, 0, :2], ax, atol=1e-12)
    np.testing.assert_allclose(np.einsum("vrcx,vx->vrc", o[..., :2], uh), np.broadcast_to(cu, (3, nv, nu)), atol=1e-10)
    np.testing.assert_allclose(o[..., 2], np.broadcast_to(cv[:, None], (3, nv, nu)), atol=1e-10)


# ---------------------------------------------------------------------------------------
# 1. analytic line integrals
# ---------------------------------------------------------------------------------------

# Smooth phantom ((1 - r^2)^2 profile, Shepp-Logan-like layout with features down to
# ~1.5 voxels): voxel averaging + Joseph interpolation err by O(h^2); measured 0.48 ..
# 0.69 % on 64^2 / 48^3-ish grids with a 2x oversampled detector, while half a detector
# pixel (2.2 % .. 2.7 %), a 1 % magnification error (1.3 %, 1.8 %), flat vs curved
# (1.7 %, 1.8 %), a mirrored trajectory or a flipped y axis (7 % .. 17 %) all exceed it.
TOL_SMOOTH = 0.01


@pytest.mark.parametrize("name", sorted(CASES))
def test_analytic_smooth(name: str) -> None:
    vol, geom = CASES[name](1)
    err = _analytic_error(vol, geom, power=2)
    assert err <= TOL_SMOOTH, f"{name}: relative L2 error {err:.4%}"


# Constant-density ellipses (sharp edges): the error is first order in the voxel size,
# from the blur of the sqrt-shaped edge of every chord-length profile by voxel averaging
# + linear interpolation (Shepp-Logan-like layout: 2.6 % / 1.3 % / 0.64 % on 64^2 /
# 128^2 / 256^2). 1 % therefore needs large features and 128^2: measured 0.59 .. 0.74 %
# for three large ellipses on 128^2 (80 x 160 for the anisotropic volume), all 2-D cases.
TOL_CONSTANT = 0.01


@pytest.mark.parametrize("name", sorted(CASES_2D))
def test_analytic_constant_density_2d(name: str) -> None:
    vol, geom = CASES_2D[name](2)
    err = _analytic_error(vol, geom, power=0, large=True)
    assert err <= TOL_CONSTANT, f"{name}: relative L2 error {err:.4%}"


@pytest.mark.parametrize("name", ["parallel3d-offset", "cone-flat", "cone-cylindrical"])
def test_analytic_constant_density_3d_converges(name: str) -> None:
    """Sharp ellipsoids in 3-D: 1 % would need ~100^3 voxels, so check instead that the
    error is the first-order discretisation error: it halves from 24^3 to 48^3 (measured
    4.7 -> 2.3 %, 4.9 -> 2.5 %, 4.8 -> 2.4 %; an O(1) geometry error would not shrink) and
    is <= 3 % at 48^3."""
    coarse = _analytic_error(*CASES_3D[name](0.5), power=0, large=True)
    fine = _analytic_error(*CASES_3D[name](1), power=0, large=True)
    assert fine <= 0.6 * coarse, f"{name}: {coarse:.4%} -> {fine:.4%}, not first order"
    assert fine <= 0.03, f"{name}: {fine:.4%}"


@pytest.mark.parametrize("name", ["parallel3d-offset", "cone-flat", "cone-cylindrical"])
def test_analytic_constant_density_3d(name: str) -> None:
    """Sharp ellipsoids at 144^3 (scale 3), 2x detector oversampling: measured 0.80 %
    (parallel), 0.83 % (cone flat), 0.81 % (cone cylindrical); about 7 s each."""
    err = _analytic_error(*CASES_3D[name](3), power=0, large=True)
    assert err <= TOL_CONSTANT, f"{name}: relative L2 error {err:.4%}"


def _mirror_vectors(geom: pr.Geometry) -> pr.Geometry:
    """The classic convention error: world y flipped ((x, y) -> (x, -y))."""
    vec = geom.to_vectors().numpy().copy()
    d = geom.ndim
    vec[:, 1::d] *= -1
    return pr.VectorGeometry(
        vectors=vec, det_shape=geom.det_shape, beam=geom.beam, detector="curved" if _curved(geom) else "flat"
    )


def _perturb(name: str, kind: str) -> tuple[pr.Volume, pr.Geometry, pr.Geometry]:
    vol, g = CASES[name](1)
    if kind == "half-pixel-u":
        off = g.det_offset
        bad = g.replace(det_offset=off + g.det_spacing / 2 if g.ndim == 2 else (off[0], off[1] + g.det_spacing[1] / 2))
    elif kind == "half-pixel-v":
        bad = g.replace(det_offset=(g.det_offset[0] + g.det_spacing[0] / 2, g.det_offset[1]))
    elif kind == "magnification-1%":
        bad = g.replace(src_iso=g.src_iso * 1.01)
    elif kind == "mirrored-angles":
        bad = g.replace(angles=[-a for a in g.angles])
    elif kind == "y-flip":
        bad = _mirror_vectors(g)
    elif kind == "flat-vs-curved":
        bad = g.replace(detector={"flat": "arc" if g.ndim == 2 else "cylindrical"}.get(g.detector, "flat"))
    else:
        raise AssertionError(kind)
    return vol, g, bad


NEGATIVE = [
    ("parallel2d-offset", "half-pixel-u"),
    ("parallel2d-offset", "mirrored-angles"),
    ("parallel2d-offset", "y-flip"),
    ("fan-flat", "half-pixel-u"),
    ("fan-flat", "magnification-1%"),
    ("fan-flat", "flat-vs-curved"),
    ("fan-arc", "flat-vs-curved"),
    ("fan-arc", "y-flip"),
    ("cone-cylindrical", "half-pixel-u"),
    ("cone-cylindrical", "half-pixel-v"),
    ("cone-cylindrical", "magnification-1%"),
    ("cone-cylindrical", "flat-vs-curved"),
    ("cone-flat", "y-flip"),
]


@pytest.mark.parametrize(("name", "kind"), NEGATIVE)
def test_analytic_negative(name: str, kind: str) -> None:
    """A deliberately wrong reference geometry must exceed the tolerance (sensitivity)."""
    vol, geom, bad = _perturb(name, kind)
    err = _analytic_error(vol, geom, power=2, ref_geom=bad)
    assert err > 1.2 * TOL_SMOOTH, f"{name} / {kind}: only {err:.4%}"


# ---------------------------------------------------------------------------------------
# 2. ASTRA (2-D CPU projectors only: ASTRA's 3-D code needs a GPU)
# ---------------------------------------------------------------------------------------

# ASTRA's 2-D CPU projectors take square pixels only (non-square ones are silently
# mis-projected by ~45 %, and ODL refuses them for that reason), so the ASTRA and ODL
# volumes below are non-square, off-centre and non-unit but isotropic.
ASTRA_VOL = pr.Volume((48, 80), spacing=0.7, center=(3.0, -2.0))

# 'linear' is Joseph's model too (one sample per row/column, linear interpolation, zero
# outside): the only differences are ASTRA's float32 arithmetic (weights stepped along the
# ray in float32, up to ~1e-4 relative per weight; measured 3.9e-6 .. 4.3e-6 relative L2
# on the phantom, 5e-5 on white noise). Half a detector pixel gives 4.4e-2, a mirrored
# geometry 0.5.
TOL_ASTRA_LINEAR = 1e-4
# 'line_fanflat' weights each pixel by the length of the ray inside it (piecewise-constant
# image) instead of interpolating: a different discretisation, O(h) apart on sharp edges
# (1.4e-2 on a constant-density phantom) but O(h^2) on smooth images. On the smooth,
# large-featured phantom below ours is 1.9e-3 and ASTRA 2.9e-3 from the exact line
# integrals, and the two are 2.4e-3 .. 2.7e-3 apart; a 1 % magnification error gives
# 1.16e-2, half a detector pixel 1.8e-2, a mirrored geometry 0.39. The views avoid
# axis-aligned angles: there rays run along grid lines and the line model aliases
# (single views at t = 0 / pi / 2 on 32^2: ASTRA 2.2 % / 1.4 % from the exact integrals,
# ours 0.7 %).
TOL_ASTRA_LINE = 5e-3


@pytest.fixture(scope="module")
def astra():
    return pytest.importorskip("astra")


def _astra_vectors(geom: pr.Geometry) -> np.ndarray:
    """Our 2-D vectors as ASTRA ``parallel_vec`` / ``fanflat_vec`` rows: y -> -y."""
    return geom.to_vectors().numpy() * np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


def _astra_forward(astra, vol: pr.Volume, proj_geom: dict, projector: str, image: np.ndarray) -> np.ndarray:
    (ny, nx), (hy, hx), (cy, cx) = vol.shape, vol.spacing, vol.center
    assert hx == hy, "ASTRA 2-D CPU projectors need square pixels"
    vol_geom = astra.create_vol_geom(ny, nx, cx - nx * hx / 2, cx + nx * hx / 2, -cy - ny * hy / 2, -cy + ny * hy / 2)
    pid = astra.create_projector(projector, proj_geom, vol_geom)
    try:
        sid, sino = astra.create_sino(image.astype(np.float32), pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    return np.asarray(sino, dtype=np.float64)


def _big_smooth_phantom(vol: pr.Volume) -> list[an.Ellipsoid]:
    """Three large, overlapping (1 - r^2) ellipses: small discretisation error of both
    models, while any geometry error shows to first order."""
    return _phantom(vol, power=1, large=True)


def _astra_angles() -> np.ndarray:
    return pr.angles(45, 2 * math.pi, 0.1).numpy()


def _astra_parallel_geometry(offset: float = 0.0) -> pr.ParallelBeam2D:
    return pr.ParallelBeam2D(angles=_astra_angles(), det_count=150, det_spacing=0.45, det_offset=offset)


def _astra_fan_geometry(offset: float = 0.0, src_iso: float = SRC_ISO) -> pr.FanBeam2D:
    return pr.FanBeam2D(
        angles=_astra_angles(),
        det_count=240,
        det_spacing=0.35 * SRC_DET / SRC_ISO,
        src_iso=src_iso,
        src_det=SRC_DET,
        det_offset=offset,
    )


def test_astra_parallel_linear(astra) -> None:
    vol = ASTRA_VOL
    g = _astra_parallel_geometry()
    image = an.voxelise(_phantom(vol, 0), vol.shape, vol.spacing, vol.center)
    ours = _ours(vol, g, image)
    # same angle, same detector: our convention is ASTRA's in row-major image coordinates
    ref = _astra_forward(
        astra, vol, astra.create_proj_geom("parallel", g.det_spacing, g.det_count, g.angles), "linear", image
    )
    assert _rel(ours, ref) <= TOL_ASTRA_LINEAR
    ref_vec = _astra_forward(
        astra, vol, astra.create_proj_geom("parallel_vec", g.det_count, _astra_vectors(g)), "linear", image
    )
    assert _rel(ours, ref_vec) <= TOL_ASTRA_LINEAR


@pytest.mark.parametrize("which", ["offset", "random-vectors"])
def test_astra_parallel_vec_linear(astra, which: str) -> None:
    vol = ASTRA_VOL
    if which == "offset":
        g = _astra_parallel_geometry(offset=1.7)
    else:
        g = pr.VectorGeometry(vectors=_vectors_parallel_2d(40, 0.35, seed=3), det_shape=240, beam="parallel")
    image = an.voxelise(_phantom(vol, 0), vol.shape, vol.spacing, vol.center)
    ours = _ours(vol, g, image)
    ref = _astra_forward(
        astra, vol, astra.create_proj_geom("parallel_vec", g.det_shape[0], _astra_vectors(g)), "linear", image
    )
    assert _rel(ours, ref) <= TOL_ASTRA_LINEAR


def test_astra_fanflat_line(astra) -> None:
    vol = ASTRA_VOL
    g = _astra_fan_geometry()
    image = an.voxelise(_big_smooth_phantom(vol), vol.shape, vol.spacing, vol.center)
    ours = _ours(vol, g, image)
    pg = astra.create_proj_geom("fanflat", g.det_spacing, g.det_count, g.angles, g.src_iso, g.src_det - g.src_iso)
    assert _rel(ours, _astra_forward(astra, vol, pg, "line_fanflat", image)) <= TOL_ASTRA_LINE
    pg = astra.create_proj_geom("fanflat_vec", g.det_count, _astra_vectors(g))
    assert _rel(ours, _astra_forward(astra, vol, pg, "line_fanflat", image)) <= TOL_ASTRA_LINE


@pytest.mark.parametrize("which", ["offset", "random-vectors"])
def test_astra_fanflat_vec_line(astra, which: str) -> None:
    vol = ASTRA_VOL
    if which == "offset":
        g = _astra_fan_geometry(offset=-2.4)
    else:
        g = pr.VectorGeometry(vectors=_vectors_cone_2d(40, 0.35, seed=4, curved=False), det_shape=360, beam="cone")
    image = an.voxelise(_big_smooth_phantom(vol), vol.shape, vol.spacing, vol.center)
    ours = _ours(vol, g, image)
    pg = astra.create_proj_geom("fanflat_vec", g.det_shape[0], _astra_vectors(g))
    assert _rel(ours, _astra_forward(astra, vol, pg, "line_fanflat", image)) <= TOL_ASTRA_LINE


def test_astra_vector_mapping(astra) -> None:
    """Our vectors are ASTRA's ``geom_2vec`` of the same parametric geometry, y mirrored.

    Fan beam: identical. Parallel beam: same detector centre and u, but the ray vector is
    reversed (ours points like the fan's central ray, source side -> detector; ASTRA's
    'parallel' -> 'parallel_vec' conversion uses the opposite sign), which no line
    integral can see.
    """
    g = _astra_fan_geometry(offset=0.0)
    pg = astra.create_proj_geom("fanflat", g.det_spacing, g.det_count, g.angles, g.src_iso, g.src_det - g.src_iso)
    np.testing.assert_allclose(_astra_vectors(g), astra.geom_2vec(pg)["Vectors"], atol=1e-9)
    g = _astra_parallel_geometry()
    their = astra.geom_2vec(astra.create_proj_geom("parallel", g.det_spacing, g.det_count, g.angles))["Vectors"]
    np.testing.assert_allclose(_astra_vectors(g)[:, 2:], their[:, 2:], atol=1e-12)
    np.testing.assert_allclose(_astra_vectors(g)[:, :2], -their[:, :2], atol=1e-12)


ASTRA_NEGATIVE = [
    ("parallel", "half-pixel"),
    ("parallel", "no-y-flip"),
    ("parallel", "mirrored-angles"),
    ("fan", "half-pixel"),
    ("fan", "magnification-1%"),
    ("fan", "no-y-flip"),
    ("fan", "mirrored-angles"),
]


@pytest.mark.parametrize(("beam", "kind"), ASTRA_NEGATIVE)
def test_astra_negative(astra, beam: str, kind: str) -> None:
    """A deliberately wrong ASTRA geometry exceeds the tolerance, so the tolerances can
    catch a half-pixel offset, a wrong magnification or a flipped axis."""
    vol = ASTRA_VOL
    if beam == "parallel":
        g, tol, projector, kind_vec = _astra_parallel_geometry(0.6), TOL_ASTRA_LINEAR, "linear", "parallel_vec"
        image = an.voxelise(_phantom(vol, 0), vol.shape, vol.spacing, vol.center)
    else:
        g, tol, projector, kind_vec = _astra_fan_geometry(0.6), TOL_ASTRA_LINE, "line_fanflat", "fanflat_vec"
        image = an.voxelise(_big_smooth_phantom(vol), vol.shape, vol.spacing, vol.center)
    ours = _ours(vol, g, image)
    if kind == "half-pixel":
        vec = _astra_vectors(g.replace(det_offset=0.6 + g.det_spacing / 2))
    elif kind == "magnification-1%":
        vec = _astra_vectors(g.replace(src_iso=g.src_iso * 1.01))
    elif kind == "no-y-flip":
        vec = g.to_vectors().numpy()
    else:
        vec = _astra_vectors(g.replace(angles=[-a for a in g.angles]))
    ref = _astra_forward(astra, vol, astra.create_proj_geom(kind_vec, g.det_count, vec), projector, image)
    assert _rel(ours, ref) > 1.5 * tol


# ---------------------------------------------------------------------------------------
# 3. ODL
# ---------------------------------------------------------------------------------------


def _odl():
    # imported lazily: `import odl` sets SCIPY_ARRAY_API=1 for the whole process
    odl = pytest.importorskip("odl")
    from odl.applications import tomo

    return odl, tomo


def test_odl_parallel_ray_transform() -> None:
    """ODL's RayTransform (its ASTRA CPU backend: ODL converts to ASTRA 'parallel' with
    angle ``phi - pi / 2``, i.e. our ``t``) on the mirrored axes ``X = y, Y = x``.

    ODL 1.0's CPU backend ignores a shifted detector partition for 2-D parallel beam
    (``astra_setup.astra_projection_geometry`` builds an offset-free 'parallel'
    geometry), so the detector is centred here; offsets are checked against ODL's
    geometry classes in ``test_odl_geometry_pixel_positions``.
    """
    pytest.importorskip("astra")
    odl, tomo = _odl()
    vol = ASTRA_VOL
    g = _astra_parallel_geometry()
    (ny, nx), (hy, hx), (cy, cx) = vol.shape, vol.spacing, vol.center
    space = odl.uniform_discr(
        [cy - ny * hy / 2, cx - nx * hx / 2], [cy + ny * hy / 2, cx + nx * hx / 2], (ny, nx), dtype="float32"
    )
    width = g.det_count * g.det_spacing
    apart = odl.nonuniform_partition(np.asarray(g.angles) + math.pi / 2)
    dpart = odl.uniform_partition(-width / 2, width / 2, g.det_count)
    ray = tomo.RayTransform(space, tomo.Parallel2dGeometry(apart, dpart), impl="astra_cpu")
    image = an.voxelise(_phantom(vol, 0), vol.shape, vol.spacing, vol.center)
    out = ray(image.astype(np.float32))
    ref = np.asarray(getattr(out, "data", out), dtype=np.float64)  # ODL array: (angles, detector), as ours
    ours = _ours(vol, g, image)
    # the same Joseph model through ASTRA 'linear' (see TOL_ASTRA_LINEAR)
    assert _rel(ours, ref) <= TOL_ASTRA_LINEAR
    # and the mapping is not trivially satisfied: without the mirror/rotation it fails
    ray_bad = tomo.RayTransform(
        space, tomo.Parallel2dGeometry(odl.nonuniform_partition(np.asarray(g.angles)), dpart), impl="astra_cpu"
    )
    out = ray_bad(image.astype(np.float32))
    assert _rel(ours, np.asarray(getattr(out, "data", out), dtype=np.float64)) > 100 * TOL_ASTRA_LINEAR


def _odl_points(geom, params: list[np.ndarray]) -> np.ndarray:
    """ODL detector points of all views at the partition's cell centres, our layout and
    our world order: ``(views, [rows,] cols, ndim)`` with ``(x, y[, z]) = (Y, X[, Z])``."""
    mesh = np.meshgrid(*params, indexing="ij")
    flat = tuple(m.ravel() for m in mesh)
    out = []
    for phi in geom.angles:
        p = np.asarray(geom.det_point_position(phi, flat if len(flat) > 1 else flat[0]))
        p = p.reshape(*mesh[0].shape, -1)
        if p.shape[-1] == 3:
            p = np.swapaxes(p, 0, 1)[..., [1, 0, 2]]  # ODL (u, v) -> our (rows=v, cols=u)
        else:
            p = p[..., ::-1]
        out.append(p)
    return np.asarray(out)


def _centres(lo: float, n: int, step: float) -> np.ndarray:
    return lo + (np.arange(n) + 0.5) * step


@pytest.mark.parametrize("name", ["parallel2d", "fan-flat", "fan-arc", "parallel3d", "cone-flat", "cone-cylindrical"])
def test_odl_geometry_pixel_positions(name: str) -> None:
    """Our geometries (with detector offsets, via their vectors and the analytic helper)
    put every detector pixel on the same ray as ODL's equivalent geometry."""
    odl, tomo = _odl()
    t = np.array([0.1, 0.8, 2.3, 4.0])
    apart = odl.nonuniform_partition(t + math.pi / 2)
    nu, nv, du, dv, ou, ov = 11, 7, 1.3, 1.1, 0.9, -0.6
    s_radius, d_radius = SRC_ISO, SRC_DET - SRC_ISO
    curved = name.endswith(("arc", "cylindrical"))
    scale = 1 / SRC_DET if curved else 1.0  # ODL's curved-detector parameter is the angle
    u_lo, v_lo = (ou - nu * du / 2) * scale, ov - nv * dv / 2
    u_par = odl.uniform_partition(u_lo, u_lo + nu * du * scale, nu)
    uv_par = odl.uniform_partition([u_lo, v_lo], [u_lo + nu * du * scale, v_lo + nv * dv], (nu, nv))
    params_2d = [_centres(u_lo, nu, du * scale)]
    params_3d = [_centres(u_lo, nu, du * scale), _centres(v_lo, nv, dv)]
    if name == "parallel2d":
        ours = pr.ParallelBeam2D(angles=t, det_count=nu, det_spacing=du, det_offset=ou)
        theirs, params = tomo.Parallel2dGeometry(apart, u_par), params_2d
    elif name.startswith("fan"):
        ours = pr.FanBeam2D(
            angles=t,
            det_count=nu,
            det_spacing=du,
            src_iso=SRC_ISO,
            src_det=SRC_DET,
            detector="arc" if curved else "flat",
            det_offset=ou,
        )
        kw = {"det_curvature_radius": SRC_DET} if curved else {}
        theirs, params = tomo.FanBeamGeometry(apart, u_par, s_radius, d_radius, **kw), params_2d
    elif name == "parallel3d":
        ours = pr.ParallelBeam3D(angles=t, det_shape=(nv, nu), det_spacing=(dv, du), det_offset=(ov, ou))
        theirs, params = tomo.Parallel3dAxisGeometry(apart, uv_par), params_3d
    else:
        ours = pr.ConeBeam3D(
            angles=t,
            det_shape=(nv, nu),
            det_spacing=(dv, du),
            src_iso=SRC_ISO,
            src_det=SRC_DET,
            detector="cylindrical" if curved else "flat",
            det_offset=(ov, ou),
        )
        kw = {"det_curvature_radius": (SRC_DET, None)} if curved else {}
        theirs, params = tomo.ConeBeamGeometry(apart, uv_par, s_radius, d_radius, **kw), params_3d
    origins, directions = an.detector_rays(ours.to_vectors().numpy(), ours.det_shape, ours.beam, curved)
    points = _odl_points(theirs, params)
    assert points.shape == origins.shape
    if ours.beam == "cone":
        # same source and the same pixel centres (ODL's det_radius = src_det - src_iso)
        np.testing.assert_allclose(points, origins + directions, atol=1e-9)
        src = np.array([theirs.src_position(phi) for phi in theirs.angles])
        src = src[:, [1, 0, 2]] if ours.ndim == 3 else src[:, ::-1]
        np.testing.assert_allclose(src, origins.reshape(len(t), -1, ours.ndim)[:, 0], atol=1e-9)
    else:
        # parallel: ODL's detector sits 1 mm behind the isocentre, ours through it, so
        # compare lines: ODL's pixel lies on our ray, and the ray directions agree
        unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
        diff = points - origins
        perp = diff - np.sum(diff * unit, axis=-1, keepdims=True) * unit
        np.testing.assert_allclose(perp, 0.0, atol=1e-9)
        odl_dir = np.array(
            [
                -theirs.det_to_src(phi, params[0][0] if ours.ndim == 2 else (params[0][0], params[1][0]))
                for phi in theirs.angles
            ]
        )
        odl_dir = odl_dir[:, [1, 0, 2]] if ours.ndim == 3 else odl_dir[:, ::-1]
        np.testing.assert_allclose(odl_dir, unit.reshape(len(t), -1, ours.ndim)[:, 0], atol=1e-12)
