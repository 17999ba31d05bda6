"""ASTRA and ODL interop: geometry conversions both ways, operators both ways.

ASTRA: our projector against ASTRA's CPU projectors run on :func:`to_astra` output
(``linear`` = Joseph for parallel beam, ``line_fanflat`` for fan beam; tolerances as in
``test_references.py``), round trips, ASTRA's own ``geom_2vec``, and the 3-D dicts read
with ASTRA's documented ``*_vec`` semantics (3-D ASTRA projections need a GPU: without
one any 3-D projector call kills the process, so they only run when
``astra.use_cuda()``). ODL: its geometry methods and its ``RayTransform`` (ASTRA CPU
backend, 2-D) on :func:`to_odl` output, round trips, general ODL geometries, and both
operator wrappers (adjoints, gradients, batches).
"""

from __future__ import annotations

import math
import sys

import analytic as an
import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.interop import (
    OdlOperator,
    as_odl_operator,
    from_astra,
    from_odl,
    from_odl_operator,
    to_astra,
    to_odl,
)

# same tolerances and reasoning as tests/test_references.py: 'linear' is Joseph's model
# in float32 (measured 4e-6), 'line_fanflat' a line-length model, O(h^2) apart on
# smooth images (measured 2.4e-3 .. 2.7e-3 there)
TOL_LINEAR = 1e-4
TOL_LINE = 5e-3

SRC_ISO, SRC_DET = 80.0, 140.0


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def _ours(vol: pr.Volume, geom: pr.Geometry, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return pr.XRayTransform(vol, geom)(torch.from_numpy(image)).numpy()


def _image(vol: pr.Volume, smooth: bool) -> np.ndarray:
    """Shepp-Logan-like constant-density phantom, or three large (1 - r^2) blobs."""
    half = [0.95 * e / 2 for e in reversed(vol.extent)]
    center = list(reversed(vol.center))
    phantom = an.with_power(an.blobs_2d(*half, center, 1), 1) if smooth else an.phantom_2d(*half, center)
    return an.voxelise(phantom, vol.shape, vol.spacing, vol.center)


def _angles(n: int = 45) -> np.ndarray:
    # avoids axis-aligned views, where the line model aliases (see test_references.py)
    return pr.angles(n, 2 * math.pi, 0.1).numpy()


def _random_parallel_2d(n: int, pitch: float, seed: int) -> np.ndarray:
    """Random directions, non-unit rays, detectors tilted off the perpendicular."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        ray = np.array([-math.sin(t), -math.cos(t)])
        tilt = rng.uniform(-0.3, 0.3)
        u = np.array([math.cos(t + tilt), -math.sin(t + tilt)]) * pitch / math.cos(tilt)
        rows.append([*(1.7 * ray), *(rng.uniform(-2, 2) * u + rng.uniform(-9, 9) * ray), *u])
    return np.asarray(rows)


def _random_cone_2d(n: int, pitch: float, seed: int) -> np.ndarray:
    """Wobbly source circle, tilted flat detectors at 170..190 mm from the source."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        src = rng.uniform(100, 120) * np.array([math.sin(t), math.cos(t)]) + rng.uniform(-2, 2, 2)
        axis = -src / np.linalg.norm(src)
        det = src + rng.uniform(170, 190) * axis
        tilt = rng.uniform(-0.3, 0.3)
        perp = np.array([-axis[1], axis[0]])
        u = (math.cos(tilt) * perp + math.sin(tilt) * axis) * pitch * 1.6 / math.cos(tilt)
        rows.append([*src, *det, *u])
    return np.asarray(rows)


def _random_cone_3d(n: int, seed: int, curved: bool = False) -> np.ndarray:
    """A helix-like source path; flat detectors rolled and tilted, or cylinders."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        s, c = math.sin(t), math.cos(t)
        src = np.array([60 * s, 60 * c, rng.uniform(-5, 5)])
        axis = -np.array([s, c, 0.0])
        det = src + 110 * axis + rng.uniform(-2, 2, 3) * np.array([1.0, 1.0, 1.0])
        u0, v0 = np.array([c, -s, 0.0]), np.array([0.0, 0.0, 1.0])
        if curved:
            w = det - src
            w[2] = 0.0
            u = np.array([-w[1], w[0], 0.0]) / np.linalg.norm(w) * 1.3
            v = v0 * 1.1
        else:
            roll = rng.uniform(-0.2, 0.2)
            u = 1.3 * (math.cos(roll) * u0 + math.sin(roll) * v0)
            v = 1.1 * (-math.sin(roll) * u0 + math.cos(roll) * v0 + 0.1 * axis)
        rows.append([*src, *det, *u, *v])
    return np.asarray(rows)


def _random_parallel_3d(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.sort(rng.uniform(0, 2 * math.pi, n)):
        s, c = math.sin(t), math.cos(t)
        el = rng.uniform(-0.5, 0.5)
        ray = np.array([-s * math.cos(el), -c * math.cos(el), math.sin(el)])
        u = np.array([c, -s, 0.0])
        v = np.cross(ray, u)
        rows.append([*ray, *(rng.uniform(-2, 2) * u + rng.uniform(-2, 2) * v), *(0.9 * u), *(1.2 * v)])
    return np.asarray(rows)


VOL_2D = pr.Volume((14, 19), spacing=(0.8, 1.1), center=(1.5, -0.7))
VOL_3D = pr.Volume((7, 9, 11), spacing=(1.2, 0.9, 1.05), center=(0.4, -1.1, 0.6))
T = pr.angles(7, 2 * math.pi, 0.3)

# every geometry family, with offsets (3-D: round trips and positions only)
GEOMETRIES: dict[str, tuple[pr.Volume, pr.Geometry]] = {
    "parallel2d": (VOL_2D, pr.ParallelBeam2D(angles=T, det_count=23, det_spacing=0.9, det_offset=0.6)),
    "fan-flat": (
        VOL_2D,
        pr.FanBeam2D(angles=T, det_count=25, det_spacing=1.6, src_iso=40, src_det=70, det_offset=-1.3),
    ),
    "vector2d-parallel": (
        VOL_2D,
        pr.VectorGeometry(vectors=_random_parallel_2d(6, 0.8, 1), det_shape=21, beam="parallel"),
    ),
    "vector2d-cone": (VOL_2D, pr.VectorGeometry(vectors=_random_cone_2d(6, 0.8, 2), det_shape=21, beam="cone")),
    "parallel3d": (
        VOL_3D,
        pr.ParallelBeam3D(angles=T, det_shape=(9, 13), det_spacing=(1.1, 0.8), det_offset=(0.4, -0.9)),
    ),
    "cone-flat": (
        VOL_3D,
        pr.ConeBeam3D(
            angles=T, det_shape=(9, 13), det_spacing=(1.4, 1.5), src_iso=40, src_det=70, det_offset=(0.7, -1.2)
        ),
    ),
    "cone-cylindrical": (
        VOL_3D,
        pr.ConeBeam3D(
            angles=T,
            det_shape=(9, 13),
            det_spacing=(1.4, 1.5),
            src_iso=40,
            src_det=70,
            detector="cylindrical",
            det_offset=(0.7, -1.2),
        ),
    ),
    "vector3d-cone": (VOL_3D, pr.VectorGeometry(vectors=_random_cone_3d(5, 3), det_shape=(8, 10), beam="cone")),
    "vector3d-cone-curved": (
        VOL_3D,
        pr.VectorGeometry(
            vectors=_random_cone_3d(5, 4, curved=True), det_shape=(8, 10), beam="cone", detector="curved"
        ),
    ),
    "vector3d-parallel": (
        VOL_3D,
        pr.VectorGeometry(vectors=_random_parallel_3d(5, 5), det_shape=(8, 10), beam="parallel"),
    ),
    # a cylinder about the focal centre with the source moved off it (15-number views)
    "helical-cylindrical-ffs": (
        VOL_3D,
        pr.HelicalConeBeam(
            n_views=6, views_per_rotation=5, det_shape=(9, 13), det_spacing=(1.4, 1.5), src_iso=40, src_det=70,
            pitch=0.8, z_start=-3.0, det_offset=(0.0, -1.2), ffs_angle=[0.01, -0.01] * 3,
            ffs_radius=[0.5, -0.5] * 3, ffs_z=[0.3, 0.3, -0.3, -0.3, 0.3, 0.3],
        ),
    ),
}


def _detector(geom: pr.Geometry) -> str:
    return "curved" if geom.curved else "flat"


def _assert_same_volume(a: pr.Volume, b: pr.Volume) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=1e-13)
    np.testing.assert_allclose(a.center, b.center, rtol=0, atol=1e-12)


def _assert_same_vectors(a: pr.Geometry, b: pr.Geometry) -> None:
    assert a.det_shape == b.det_shape and a.beam == b.beam and a.curved == b.curved
    va, vb = a.to_vectors().numpy(), b.to_vectors().numpy()
    np.testing.assert_allclose(va, vb, rtol=0, atol=1e-12 * max(1.0, np.abs(vb).max()))


# =======================================================================================
# ASTRA
# =======================================================================================


@pytest.fixture(scope="module")
def astra():
    return pytest.importorskip("astra")


def _astra_run(astra, vol_geom: dict, proj_geom: dict, projector: str, image: np.ndarray) -> np.ndarray:
    pid = astra.create_projector(projector, proj_geom, vol_geom)
    try:
        sid, sino = astra.create_sino(image.astype(np.float32), pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    return np.asarray(sino, dtype=np.float64)


# ASTRA's 2-D CPU projectors need square pixels: non-square images, off-centre, detector
# offsets here; anisotropic pixels in test_astra_anisotropic_pixels.
ASTRA_VOL = pr.Volume((48, 80), spacing=0.7, center=(3.0, -2.0))

ASTRA_CASES = {
    "parallel-offset": (
        pr.ParallelBeam2D(angles=_angles(), det_count=150, det_spacing=0.45, det_offset=1.7),
        "linear",
        TOL_LINEAR,
    ),
    "parallel-vector": (
        pr.VectorGeometry(vectors=_random_parallel_2d(40, 0.35, seed=3), det_shape=240, beam="parallel"),
        "linear",
        TOL_LINEAR,
    ),
    "fan-offset": (
        pr.FanBeam2D(
            angles=_angles(),
            det_count=240,
            det_spacing=0.35 * SRC_DET / SRC_ISO,
            src_iso=SRC_ISO,
            src_det=SRC_DET,
            det_offset=-2.4,
        ),
        "line_fanflat",
        TOL_LINE,
    ),
    "fan-vector": (
        pr.VectorGeometry(vectors=_random_cone_2d(40, 0.35, seed=4), det_shape=300, beam="cone"),
        "line_fanflat",
        TOL_LINE,
    ),
}


@pytest.mark.parametrize("name", sorted(ASTRA_CASES))
def test_astra_projection_matches(astra, name: str) -> None:
    """ASTRA's projector on the dicts of to_astra reproduces our sinogram."""
    geom, projector, tol = ASTRA_CASES[name]
    image = _image(ASTRA_VOL, smooth=projector == "line_fanflat")
    vol_geom, proj_geom = to_astra(ASTRA_VOL, geom)
    ref = _astra_run(astra, vol_geom, proj_geom, projector, image)
    ours = _ours(ASTRA_VOL, geom, image)
    assert ref.shape == ours.shape
    assert _rel(ours, ref) <= tol
    # sensitivity: without the 2-D y mirror the same dicts are far off
    flipped = dict(proj_geom, Vectors=geom.to_vectors().numpy())
    assert _rel(ours, _astra_run(astra, vol_geom, flipped, projector, image)) > 10 * tol


@pytest.mark.parametrize("beam", ["parallel", "fan"])
def test_astra_anisotropic_pixels(astra, beam: str) -> None:
    """Anisotropic pixels (ASTRA's CPU projectors reject or mis-project them): stretch x
    in the dicts of to_astra so the pixels become square (lines stay lines, Joseph's
    samples stay at the same grid positions) and divide out the stretch of each ray's
    length, |S r| / |r|; the result must be our sinogram."""
    vol = pr.Volume((60, 96), spacing=(0.6, 0.4), center=(2.0, -1.5))
    if beam == "parallel":
        geom = pr.ParallelBeam2D(angles=_angles(), det_count=200, det_spacing=0.4, det_offset=0.7)
        projector, tol = "linear", TOL_LINEAR
    else:
        geom = pr.FanBeam2D(
            angles=_angles(), det_count=300, det_spacing=0.5, src_iso=SRC_ISO, src_det=SRC_DET, det_offset=-1.1
        )
        projector, tol = "line_fanflat", TOL_LINE
    image = _image(vol, smooth=beam == "fan")
    vol_geom, proj_geom = to_astra(vol, geom)
    # measured: parallel 4.9e-6, fan 2.4e-3; with the spacings swapped 0.43 / 0.32
    (hy, hx) = vol.spacing
    stretch = hy / hx
    opt = vol_geom["option"]
    square_vol = dict(
        vol_geom, option=dict(opt, WindowMinX=opt["WindowMinX"] * stretch, WindowMaxX=opt["WindowMaxX"] * stretch)
    )
    vec = proj_geom["Vectors"].copy()
    vec[:, 0::2] *= stretch
    ref = _astra_run(astra, square_vol, dict(proj_geom, Vectors=vec), projector, image)
    s, d, u = proj_geom["Vectors"][:, 0:2], proj_geom["Vectors"][:, 2:4], proj_geom["Vectors"][:, 4:6]
    k = (np.arange(geom.det_count) - (geom.det_count - 1) / 2)[None, :, None]
    if beam == "parallel":
        rays = np.broadcast_to(s[:, None], (len(s), geom.det_count, 2))
    else:
        rays = d[:, None] + k * u[:, None] - s[:, None]  # source -> pixel
    length = np.linalg.norm(rays, axis=-1) / np.linalg.norm(rays * np.array([stretch, 1.0]), axis=-1)
    ours = _ours(vol, geom, image)
    assert _rel(ours, ref * length) <= tol
    # the anisotropy matters: the spacing swapped gives a far worse match
    swapped = pr.Volume(vol.shape, spacing=(hx, hy), center=vol.center)
    assert _rel(_ours(swapped, geom, image), ref * length) > 10 * tol


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_astra_round_trip(name: str) -> None:
    vol, geom = GEOMETRIES[name]
    vol_geom, proj_geom = to_astra(vol, geom)
    vol2, geom2 = from_astra(vol_geom, proj_geom)
    assert isinstance(geom2, pr.VectorGeometry)
    _assert_same_volume(vol2, vol)
    _assert_same_vectors(geom2, geom)
    expected = {
        ("parallel", 2): "parallel_vec",
        ("cone", 2): "fanflat_vec",
        ("parallel", 3): "parallel3d_vec",
        ("cone", 3): "cyl_cone_vec" if geom.curved else "cone_vec",
    }[(geom.beam, geom.ndim)]
    assert proj_geom["type"] == expected


@pytest.mark.parametrize("name", ["parallel2d", "fan-flat", "vector2d-cone"])
def test_astra_accepts_2d_dicts(astra, name: str) -> None:
    """ASTRA builds data objects from the dicts and returns geometries we read back."""
    vol, geom = GEOMETRIES[name]
    vol_geom, proj_geom = to_astra(vol, geom)
    vid = astra.data2d.create("-vol", vol_geom)
    sid = astra.data2d.create("-sino", proj_geom)
    try:
        assert astra.data2d.get(sid).shape == geom.proj_shape
        assert astra.data2d.get(vid).shape == vol.shape
        vol2, geom2 = from_astra(astra.data2d.get_geometry(vid), astra.data2d.get_geometry(sid))
    finally:
        astra.data2d.delete([vid, sid])
    # ASTRA keeps windows and vectors in float32
    np.testing.assert_allclose(vol2.spacing, vol.spacing, rtol=1e-6)
    np.testing.assert_allclose(vol2.center, vol.center, atol=1e-5)
    assert geom2.det_shape == geom.det_shape and geom2.beam == geom.beam
    vec = geom.to_vectors().numpy()
    np.testing.assert_allclose(geom2.to_vectors().numpy(), vec, rtol=0, atol=1e-6 * np.abs(vec).max())


def _classic(astra, kind: str) -> tuple[dict, dict]:
    t = _angles(9)
    if kind == "parallel":
        return astra.create_vol_geom(30, 40), astra.create_proj_geom("parallel", 0.8, 50, t)
    if kind == "fanflat":
        return astra.create_vol_geom(30, 40), astra.create_proj_geom("fanflat", 1.3, 60, t, 70.0, 45.0)
    if kind == "parallel3d":
        return astra.create_vol_geom(20, 30, 10), astra.create_proj_geom("parallel3d", 0.9, 1.1, 12, 25, t)
    return astra.create_vol_geom(20, 30, 10), astra.create_proj_geom("cone", 1.3, 1.2, 12, 25, t, 70.0, 45.0)


@pytest.mark.parametrize("kind", ["parallel", "fanflat", "parallel3d", "cone"])
def test_from_astra_classic_is_geom_2vec(astra, kind: str) -> None:
    """Parametric ASTRA geometries convert as ASTRA's own geom_2vec does (2-D mirrored)."""
    vol_geom, proj_geom = _classic(astra, kind)
    vol, geom = from_astra(vol_geom, proj_geom)
    vec_geom = astra.geom_2vec(proj_geom)
    theirs = np.asarray(vec_geom["Vectors"])
    mirror = np.array([1.0, -1.0] * 3) if geom.ndim == 2 else np.ones(12)
    np.testing.assert_allclose(geom.to_vectors().numpy(), theirs * mirror, rtol=0, atol=1e-12)
    _assert_same_vectors(from_astra(vol_geom, vec_geom)[1], geom)
    # ASTRA's default window: one unit per voxel about the origin
    assert vol.spacing == (1.0,) * vol.ndim and vol.center == (0.0,) * vol.ndim
    assert vol.shape == ((30, 40) if geom.ndim == 2 else (10, 20, 30))


def test_from_astra_parallel3d_is_our_negated_angles(astra) -> None:
    """ASTRA 3-D has no y mirror, so 'parallel3d' with angle theta is ParallelBeam3D(-theta)."""
    t = _angles(9)
    _, geom = from_astra(astra.create_vol_geom(8, 8, 8), astra.create_proj_geom("parallel3d", 0.9, 1.1, 6, 7, t))
    ours = pr.ParallelBeam3D(angles=-t, det_shape=(6, 7), det_spacing=(1.1, 0.9))
    _assert_same_vectors(geom, ours)


@pytest.mark.parametrize("kind", ["parallel", "fanflat"])
def test_from_astra_classic_projection(astra, kind: str) -> None:
    """Our projector on from_astra's geometry reproduces ASTRA on its parametric dict."""
    t = _angles()
    vol_geom = astra.create_vol_geom(48, 80, -30.0, 26.0, -20.0, 13.6)  # off-centre, 0.7 mm pixels
    if kind == "parallel":
        proj_geom, projector, tol = astra.create_proj_geom("parallel", 0.45, 150, t), "linear", TOL_LINEAR
    else:
        proj_geom = astra.create_proj_geom("fanflat", 0.6, 240, t, SRC_ISO, SRC_DET - SRC_ISO)
        projector, tol = "line_fanflat", TOL_LINE
    vol, geom = from_astra(vol_geom, proj_geom)
    _assert_same_volume(vol, pr.Volume((48, 80), spacing=0.7, center=(3.2, -2.0)))
    image = _image(vol, smooth=kind == "fanflat")
    assert _rel(_ours(vol, geom, image), _astra_run(astra, vol_geom, proj_geom, projector, image)) <= tol


def _astra_pixels_3d(proj_geom: dict) -> tuple[np.ndarray, np.ndarray]:
    """Sources (cone) or ray directions (parallel), shape (views, 3), and pixel centres
    (views, rows, cols, 3), read from a 3-D ASTRA dict with ASTRA's semantics: cone_vec /
    parallel3d_vec pixel (r, c) at ``d + (c - n_c/2 + 1/2) u + (r - n_r/2 + 1/2) v`` (the
    kernels start at the corner ``d - n_c/2 u - n_r/2 v`` plus half a pixel);
    cyl_cone_vec at ``cylc + cyla cos(a) + cylb sin(a) + (r - n_r/2 + 1/2) v`` with
    ``a = (c - n_c/2 + 1/2) |u| / R``, ``cyla = -(u x v) R / (|u| |v|)`` flipped to put
    the centre ``cylc = d - cyla`` on the source side, ``cylb = u R / |u|``
    (astra::getCylConeAxes and cone_cyl.cu)."""
    vec = np.asarray(proj_geom["Vectors"], dtype=np.float64)
    nr, nc = proj_geom["DetectorRowCount"], proj_geom["DetectorColCount"]
    s, d, u, v = vec[:, 0:3], vec[:, 3:6], vec[:, 6:9], vec[:, 9:12]
    c = (np.arange(nc) - nc / 2 + 0.5)[None, None, :, None]
    r = (np.arange(nr) - nr / 2 + 0.5)[None, :, None, None]
    if proj_geom["type"] != "cyl_cone_vec":
        return s, d[:, None, None] + c * u[:, None, None] + r * v[:, None, None]
    radius = vec[:, 12]
    nu, nv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    cyla = -np.cross(u, v) * (radius / (nu * nv))[:, None]
    flip = np.linalg.norm(d - cyla - s, axis=1) > np.linalg.norm(d + cyla - s, axis=1)
    cyla[flip] *= -1
    cylc, cylb = d - cyla, u * (radius / nu)[:, None]
    a = c * (nu / radius)[:, None, None, None]
    pix = cylc[:, None, None] + np.cos(a) * cyla[:, None, None] + np.sin(a) * cylb[:, None, None]
    return s, pix + r * v[:, None, None]


@pytest.mark.parametrize(
    "name",
    ["parallel3d", "cone-flat", "cone-cylindrical", "vector3d-cone", "vector3d-cone-curved", "vector3d-parallel",
     "helical-cylindrical-ffs"],
)
def test_astra_3d_dicts_describe_our_rays(name: str) -> None:
    """Without running ASTRA's 3-D code: the pixels, sources and voxel centres that ASTRA's
    3-D semantics give for to_astra's dicts are ours (analytic.detector_rays, Volume)."""
    vol, geom = GEOMETRIES[name]
    vol_geom, proj_geom = to_astra(vol, geom)
    src, pix = _astra_pixels_3d(proj_geom)
    origins, directions = an.detector_rays(geom.to_vectors().numpy(), geom.det_shape, geom.beam, geom.curved)
    if geom.beam == "cone":
        np.testing.assert_allclose(pix, origins + directions, atol=1e-9)
        np.testing.assert_allclose(src, origins[:, 0, 0], atol=1e-12)
    else:
        np.testing.assert_allclose(pix, origins, atol=1e-9)
        unit = directions[:, 0, 0] / np.linalg.norm(directions[:, 0, 0], axis=1, keepdims=True)
        np.testing.assert_allclose(src / np.linalg.norm(src, axis=1, keepdims=True), unit, atol=1e-12)
    # ASTRA 3-D voxel (slice, row, col) is centred at min + (index + 1/2) * size per axis,
    # and its array (slices, rows, cols) is our (nz, ny, nx) tensor
    opt = vol_geom["option"]
    n = (vol_geom["GridSliceCount"], vol_geom["GridRowCount"], vol_geom["GridColCount"])
    assert n == vol.shape
    for axis, key in zip(range(3), "ZYX", strict=True):
        lo, hi = opt[f"WindowMin{key}"], opt[f"WindowMax{key}"]
        centres = lo + (np.arange(n[axis]) + 0.5) * (hi - lo) / n[axis]
        np.testing.assert_allclose(centres, an.voxel_centres(vol.shape, vol.spacing, vol.center)[axis], atol=1e-12)


def test_astra_2d_window_is_mirrored() -> None:
    """ASTRA 2-D pixel (r, c) is centred at (min_x + (c + 1/2) h_x, max_y - (r + 1/2) h_y):
    with to_astra's window that is our voxel centre with y negated."""
    vol_geom, _ = to_astra(VOL_2D, GEOMETRIES["parallel2d"][1])
    opt = vol_geom["option"]
    (ny, nx), (hy, hx) = VOL_2D.shape, VOL_2D.spacing
    ys, xs = an.voxel_centres(VOL_2D.shape, VOL_2D.spacing, VOL_2D.center)
    np.testing.assert_allclose(opt["WindowMinX"] + (np.arange(nx) + 0.5) * hx, xs, atol=1e-12)
    np.testing.assert_allclose(opt["WindowMaxY"] - (np.arange(ny) + 0.5) * hy, -ys, atol=1e-12)
    assert opt["WindowMaxY"] - opt["WindowMinY"] == pytest.approx(ny * hy)


@pytest.mark.gpu
@pytest.mark.parametrize("detector", ["parallel", "flat", "cylindrical"])
def test_astra_3d_projection_matches_on_gpu(astra, detector: str) -> None:
    """ASTRA's CUDA 3-D projectors on to_astra's dicts (only where ASTRA has CUDA; never
    run so far: no machine with ASTRA and a GPU). Isotropic voxels, as ASTRA's
    cylindrical kernel samples anisotropic ones approximately. ASTRA interpolates with
    the GPU's texture units (fractional weights in 1/256 steps), so 1 % rather than the
    2-D 1e-4."""
    if not astra.use_cuda():
        pytest.skip("ASTRA without CUDA: its 3-D projectors would kill the process")
    vol = pr.Volume((24, 32, 28), spacing=0.8, center=(0.5, -1.0, 0.8))
    t = _angles(12)
    if detector == "parallel":
        geom = pr.ParallelBeam3D(angles=t, det_shape=(40, 60), det_spacing=0.6, det_offset=(0.4, -0.9))
    else:
        geom = pr.ConeBeam3D(
            angles=t,
            det_shape=(48, 80),
            det_spacing=0.9,
            src_iso=60,
            src_det=110,
            detector=detector,
            det_offset=(0.7, -1.2),
        )
    vol_geom, proj_geom = to_astra(vol, geom)
    half = [0.9 * e / 2 for e in reversed(vol.extent)]
    image = an.voxelise(an.blobs_3d(half, list(reversed(vol.center)), 1), vol.shape, vol.spacing, vol.center)
    sid, data = astra.create_sino3d_gpu(image.astype(np.float32), proj_geom, vol_geom)
    astra.data3d.delete(sid)
    ours = _ours(vol, geom, image)
    assert _rel(ours, np.swapaxes(np.asarray(data, dtype=np.float64), 0, 1)) <= 1e-2


def test_astra_bad_input() -> None:
    vol, fan = GEOMETRIES["fan-flat"]
    with pytest.raises(ValueError, match="ASTRA has no curved 2-D detector"):
        to_astra(vol, fan.replace(detector="arc"))
    with pytest.raises(ValueError, match="3-D geometry"):
        to_astra(VOL_3D, fan)
    with pytest.raises(TypeError, match="volume must be a precisionrecon Volume"):
        to_astra((14, 19), fan)
    with pytest.raises(TypeError, match="geometry must be a precisionrecon geometry"):
        to_astra(vol, {"type": "fanflat"})
    vol_geom, proj_geom = to_astra(vol, fan)
    with pytest.raises(ValueError, match=r"proj_geom\['type'\] must be one of"):
        from_astra(vol_geom, dict(proj_geom, type="fanarc"))
    with pytest.raises(ValueError, match="3-D"):
        from_astra(to_astra(*GEOMETRIES["cone-flat"])[0], proj_geom)
    with pytest.raises(ValueError, match=r"Vectors'\] of a 'fanflat_vec' geometry must have shape"):
        from_astra(vol_geom, dict(proj_geom, Vectors=proj_geom["Vectors"][:, :4]))
    with pytest.raises(ValueError, match="no 'DetectorCount' entry"):
        from_astra(vol_geom, {k: v for k, v in proj_geom.items() if k != "DetectorCount"})
    with pytest.raises(ValueError, match="must be a positive integer"):
        from_astra(dict(vol_geom, GridRowCount=0), proj_geom)
    with pytest.raises(TypeError, match="vol_geom must be an ASTRA volume geometry dict"):
        from_astra(vol, proj_geom)
    with pytest.raises(ValueError, match="must be below"):
        from_astra(dict(vol_geom, option=dict(vol_geom["option"], WindowMaxX=-100.0)), proj_geom)
    with pytest.raises(ValueError, match="ExtraDetectorOffset"):
        from_astra(vol_geom, dict(proj_geom, option={"ExtraDetectorOffset": np.full(7, 0.5)}))
    vol3, cyl = GEOMETRIES["cone-cylindrical"]
    vol_geom3, cyl_geom = to_astra(vol3, cyl)
    # another radius: a cylinder about a point c on the line through d and the source (15 numbers)
    wide = cyl_geom["Vectors"].copy()
    wide[:, 12] *= 1.5
    _, geom_wide = from_astra(vol_geom3, dict(cyl_geom, Vectors=wide))
    vec = geom_wide.to_vectors().numpy()
    assert geom_wide.curved_kind == 2 and vec.shape == (cyl.n_views, 15)
    np.testing.assert_allclose(vec[:, :12], cyl.to_vectors().numpy(), rtol=0, atol=1e-12)
    s, d, c = vec[:, 0:3], vec[:, 3:6], vec[:, 12:15]
    np.testing.assert_allclose(np.linalg.norm(d - c, axis=1), 1.5 * np.linalg.norm((d - s)[:, :2], axis=1),
                               rtol=1e-12)
    # ... whose cylinder must hold the source
    narrow = cyl_geom["Vectors"].copy()
    narrow[:, 12] *= 0.4
    with pytest.raises(ValueError, match="source must lie inside the detector cylinder"):
        from_astra(vol_geom3, dict(cyl_geom, Vectors=narrow))
    with pytest.raises(ValueError, match="radius must be positive"):
        from_astra(vol_geom3, dict(cyl_geom, Vectors=np.concatenate([narrow[:, :12], -narrow[:, 12:]], axis=1)))


# =======================================================================================
# ODL
# =======================================================================================


@pytest.fixture(scope="module")
def odl():
    # imported lazily: `import odl` sets SCIPY_ARRAY_API=1 for the whole process
    return pytest.importorskip("odl")


@pytest.fixture(scope="module")
def tomo(odl):
    from odl.applications import tomo

    return tomo


ODL_NAMES = ["parallel2d", "fan-flat", "fan-arc", "parallel3d", "cone-flat", "cone-cylindrical"]


def _odl_case(name: str) -> tuple[pr.Volume, pr.Geometry]:
    if name == "fan-arc":
        vol, g = GEOMETRIES["fan-flat"]
        return vol, g.replace(detector="arc")
    return GEOMETRIES[name]


def _odl_pixels(geometry, det_shape: tuple[int, ...]) -> np.ndarray:
    """ODL's pixel centres at its partition's cell centres, in our layout and world order."""
    params = [np.asarray(c) for c in geometry.det_partition.grid.coord_vectors]
    if len(params) == 1:
        pts = np.stack([geometry.det_point_position(a, params[0]) for a in geometry.angles])
        return pts[..., ::-1]
    uu, vv = np.meshgrid(*params, indexing="ij")
    flat = (uu.ravel(), vv.ravel())
    pts = np.stack([geometry.det_point_position(a, flat).reshape(*uu.shape, 3) for a in geometry.angles])
    return np.swapaxes(pts, 1, 2)[..., [1, 0, 2]]  # ODL (u, v) / (X, Y, Z) -> our (rows, cols) / (x, y, z)


@pytest.mark.parametrize("name", ODL_NAMES)
def test_to_odl_describes_our_rays(odl, name: str) -> None:
    """ODL's own geometry methods on to_odl's output give our pixels, sources and rays,
    and ODL's cell centres are our voxel centres (ODL axes X = y, Y = x, Z = z)."""
    vol, geom = _odl_case(name)
    space, geometry = to_odl(vol, geom)
    origins, directions = an.detector_rays(geom.to_vectors().numpy(), geom.det_shape, geom.beam, geom.curved)
    pixels = _odl_pixels(geometry, geom.det_shape)
    assert pixels.shape == origins.shape
    if geom.beam == "cone":
        np.testing.assert_allclose(pixels, origins + directions, atol=1e-9)
        src = np.asarray(geometry.src_position(geometry.angles))
        src = src[:, [1, 0, 2]] if geom.ndim == 3 else src[:, ::-1]
        np.testing.assert_allclose(src, origins.reshape(len(T), -1, geom.ndim)[:, 0], atol=1e-9)
    else:
        # ODL's parallel detector sits 1 mm behind the origin: same lines, not same points
        unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
        diff = pixels - origins
        np.testing.assert_allclose(diff - np.sum(diff * unit, axis=-1, keepdims=True) * unit, 0.0, atol=1e-9)
    grid = [np.asarray(c) for c in space.partition.grid.coord_vectors]
    ours = an.voxel_centres(vol.shape, vol.spacing, vol.center)  # per tensor axis (z,) y, x
    order = [0, 1] if vol.ndim == 2 else [1, 2, 0]
    for odl_axis, our_axis in enumerate(order):
        np.testing.assert_allclose(grid[odl_axis], ours[our_axis], atol=1e-12)
    assert space.shape == tuple(vol.shape[i] for i in order)


@pytest.mark.parametrize("name", ODL_NAMES)
def test_odl_round_trip(odl, name: str) -> None:
    vol, geom = _odl_case(name)
    vol2, geom2 = from_odl(*to_odl(vol, geom, dtype="float64"))
    assert type(geom2) is type(geom)
    _assert_same_volume(vol2, vol)
    assert geom2.det_shape == geom.det_shape
    np.testing.assert_allclose(geom2.angles, geom.angles, atol=1e-14)
    np.testing.assert_allclose(geom2.to_vectors().numpy(), geom.to_vectors().numpy(), atol=1e-12)


def test_odl_single_view_and_angle_order(odl) -> None:
    vol, geom = GEOMETRIES["parallel2d"]
    space, geometry = to_odl(vol, geom[2])
    assert geometry.partition.extent[0] > 0  # a 0-extent cell would weight the range by 0
    _, back = from_odl(space, geometry)
    np.testing.assert_allclose(back.angles, geom[2].angles, atol=1e-14)
    with pytest.raises(ValueError, match="strictly increasing angles"):
        to_odl(vol, geom[[3, 1, 2]])


def test_from_odl_general_geometries(odl, tomo) -> None:
    """ODL geometries our classes cannot express become vector geometries with ODL's rays:
    a helical cone beam with a translated system and a fan beam with a shifted source and
    detector (flying focal spot)."""
    apart = odl.uniform_partition(0.2, 4.0, 6)
    helix = tomo.ConeBeamGeometry(
        apart, odl.uniform_partition([-6, -4], [6, 4], (12, 8)), 50.0, 30.0, pitch=9.0, translation=(1.0, -2.0, 0.5)
    )
    fan = tomo.FanBeamGeometry(
        apart,
        odl.uniform_partition(-8, 8, 16),
        50.0,
        30.0,
        src_shift_func=lambda a: np.stack(np.broadcast_arrays(0.3, -0.4 * np.cos(a)), axis=-1),
        det_shift_func=lambda a: np.stack(np.broadcast_arrays(0.5, 0.7 + 0 * np.asarray(a)), axis=-1),
    )
    for geometry, space in (
        (helix, odl.uniform_discr([-5, -5, -3], [5, 5, 3], (10, 10, 6))),
        (fan, odl.uniform_discr([-5, -6], [5, 6], (10, 12))),
    ):
        _, geom = from_odl(space, geometry)
        assert isinstance(geom, pr.VectorGeometry)
        origins, directions = an.detector_rays(geom.to_vectors().numpy(), geom.det_shape, geom.beam, geom.curved)
        np.testing.assert_allclose(origins + directions, _odl_pixels(geometry, geom.det_shape), atol=1e-9)
        src = np.asarray(geometry.src_position(geometry.angles))
        src = src[:, [1, 0, 2]] if geom.ndim == 3 else src[:, ::-1]
        np.testing.assert_allclose(origins.reshape(6, -1, geom.ndim)[:, 0], src, atol=1e-9)
    # a plain circular one is recognised as our class
    _, circ = from_odl(
        odl.uniform_discr([-5, -6], [5, 6], (10, 12)), tomo.FanBeamGeometry(apart, fan.det_partition, 50.0, 30.0)
    )
    assert isinstance(circ, pr.FanBeam2D)
    np.testing.assert_allclose(circ.angles, np.asarray(apart.grid.coord_vectors[0]) - math.pi / 2, atol=1e-15)


def test_from_odl_rejects_what_we_cannot_express(odl, tomo) -> None:
    apart = odl.uniform_partition(0, 3, 5)
    space2 = odl.uniform_discr([-5, -5], [5, 5], (8, 8))
    # an arc whose centre of curvature is not the source
    off_centre = tomo.FanBeamGeometry(apart, odl.uniform_partition(-0.2, 0.2, 9), 50.0, 30.0, det_curvature_radius=60.0)
    with pytest.raises(ValueError, match="no precisionrecon equivalent"):
        from_odl(space2, off_centre)
    euler = tomo.Parallel3dEulerGeometry(
        odl.uniform_partition([0, 0], [1, 1], (2, 3)), odl.uniform_partition([-1, -1], [1, 1], (4, 4))
    )
    with pytest.raises(ValueError, match="one motion parameter"):
        from_odl(odl.uniform_discr([-1] * 3, [1] * 3, (4, 4, 4)), euler)
    nonuniform = tomo.Parallel2dGeometry(apart, odl.nonuniform_partition([-1.0, 0.0, 0.5, 2.0]))
    with pytest.raises(ValueError, match="uniform detector partition"):
        from_odl(space2, nonuniform)
    with pytest.raises(ValueError, match="space is 2-D but the geometry 3-D"):
        from_odl(space2, tomo.Parallel3dAxisGeometry(apart, odl.uniform_partition([-1, -1], [1, 1], (4, 4))))
    with pytest.raises(TypeError, match=r"space must be an odl\.DiscretizedSpace"):
        from_odl(VOL_2D, off_centre)
    with pytest.raises(TypeError, match="geometry must be an ODL tomography Geometry"):
        from_odl(space2, GEOMETRIES["fan-flat"][1])


def test_to_odl_bad_input(odl) -> None:
    vol, vec = GEOMETRIES["vector2d-cone"]
    with pytest.raises(ValueError, match="no ODL equivalent"):
        to_odl(vol, vec)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        to_odl(*GEOMETRIES["fan-flat"], dtype="int32")
    with pytest.raises(ValueError, match="dtype must be a data type"):
        to_odl(*GEOMETRIES["fan-flat"], dtype="floaty")
    with pytest.raises(ValueError, match="3-D geometry"):
        to_odl(VOL_3D, GEOMETRIES["fan-flat"][1])


# ODL's RayTransform with its ASTRA CPU backend (float32, square pixels, 2-D). ODL 1.0's
# backend drops a shifted detector partition for 2-D parallel beam (it builds an
# offset-free ASTRA 'parallel' geometry), so the parallel detector is centred.
ODL_RAY_CASES = {
    "parallel": (pr.ParallelBeam2D(angles=_angles(), det_count=150, det_spacing=0.45), TOL_LINEAR),
    "fan-offset": (ASTRA_CASES["fan-offset"][0], TOL_LINE),
}


@pytest.mark.parametrize("name", sorted(ODL_RAY_CASES))
def test_odl_ray_transform_matches(odl, tomo, name: str) -> None:
    pytest.importorskip("astra")
    geom, tol = ODL_RAY_CASES[name]
    space, geometry = to_odl(ASTRA_VOL, geom)
    ray = tomo.RayTransform(space, geometry, impl="astra_cpu")
    image = _image(ASTRA_VOL, smooth=geom.beam == "cone")
    ref = np.asarray(ray(image.astype(np.float32)).asarray(), dtype=np.float64)
    ours = _ours(ASTRA_VOL, geom, image)
    assert _rel(ours, ref) <= tol
    # the wrapped operator lives on the same spaces and gives the same forward projection
    wrapped = as_odl_operator(pr.XRayTransform(ASTRA_VOL, geom))
    assert wrapped.domain == ray.domain and wrapped.range == ray.range
    np.testing.assert_allclose(
        wrapped(image.astype(np.float32)).asarray(), ours, rtol=0, atol=1e-5 * np.abs(ours).max()
    )


def test_as_odl_operator_adjoint_is_odl_ray_adjoint(odl, tomo) -> None:
    """Parallel beam: the same Joseph model on both sides, so ODL's weighted adjoint
    (back-projection scaled by w_range / w_domain) must agree, on white noise."""
    pytest.importorskip("astra")
    geom = ODL_RAY_CASES["parallel"][0]
    space, geometry = to_odl(ASTRA_VOL, geom)
    ray = tomo.RayTransform(space, geometry, impl="astra_cpu")
    wrapped = as_odl_operator(pr.XRayTransform(ASTRA_VOL, geom))
    y = np.random.default_rng(0).normal(size=geom.proj_shape).astype(np.float32)
    ref = ray.adjoint(y).asarray()
    assert _rel(np.asarray(wrapped.adjoint(y).asarray(), np.float64), np.asarray(ref, np.float64)) <= 2e-4
    # and the weights are not 1 here (else this would not test them)
    assert wrapped.range.weighting.const / wrapped.domain.weighting.const == pytest.approx(
        (2 * math.pi / 45) * 0.45 / 0.49
    )


def _odl_inner_error(op, x: np.ndarray, y: np.ndarray) -> float:
    ax, aty = op(x), op.adjoint(y)
    lhs, rhs = op.range.inner(ax, op.range.element(y)), op.domain.inner(op.domain.element(x), aty)
    return abs(lhs - rhs) / (op.range.norm(ax) * op.range.norm(op.range.element(y)))


@pytest.mark.parametrize("name", ["fan-flat", "cone-cylindrical", "parallel3d"])
def test_as_odl_operator_adjoint_and_layout(odl, name: str) -> None:
    """ODL's dot-product test with its weighted inner products; the 3-D layout transposes
    (ODL volume (y, x, z), projections (views, cols, rows)); adjoint of adjoint."""
    vol, geom = _odl_case(name)
    A = pr.XRayTransform(vol, geom)
    op = as_odl_operator(A, dtype="float64")
    assert op.is_linear and op.adjoint.adjoint is op
    rng = np.random.default_rng(1)
    x = rng.normal(size=op.domain.shape)
    y = rng.normal(size=op.range.shape)
    assert _odl_inner_error(op, x, y) < 1e-13
    xt = torch.from_numpy(x if vol.ndim == 2 else x.transpose(2, 0, 1).copy())
    expect = A(xt).numpy()
    got = np.asarray(op(x).asarray())
    if vol.ndim == 3:
        got = got.transpose(0, 2, 1)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12 * np.abs(expect).max())
    ratio = op.range.weighting.const / op.domain.weighting.const
    yt = torch.from_numpy(y if vol.ndim == 2 else y.transpose(0, 2, 1).copy())
    back = A.T(yt).numpy() * ratio
    got = np.asarray(op.adjoint(y).asarray())
    if vol.ndim == 3:
        got = got.transpose(2, 0, 1)
    np.testing.assert_allclose(got, back, rtol=0, atol=1e-12 * np.abs(back).max())


def test_as_odl_operator_generic(odl) -> None:
    """A non-X-ray operator maps between unweighted rn spaces; the adjoint is A.T."""
    R = pr.RampFilter((5, 16), det_spacing=0.7)
    op = as_odl_operator(R, dtype="float64")
    assert op.domain == odl.rn((5, 16), dtype="float64")
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    np.testing.assert_allclose(op(x).asarray(), R(torch.from_numpy(x)).numpy(), atol=1e-13)
    np.testing.assert_allclose(op.adjoint(y).asarray(), R.T(torch.from_numpy(y)).numpy(), atol=1e-13)
    with pytest.raises(TypeError, match="A must be a precisionrecon LinearOperator"):
        as_odl_operator(np.eye(3))
    with pytest.raises(ValueError, match="floating or complex dtype"):
        as_odl_operator(R, dtype="int64")


def _tiny(name: str) -> pr.XRayTransform:
    if name == "2d":
        return pr.XRayTransform(
            pr.Volume((3, 4), spacing=(0.9, 1.2), center=(0.2, -0.3)),
            pr.FanBeam2D(angles=pr.angles(2, 2 * math.pi, 0.2), det_count=5, det_spacing=1.5, src_iso=20, src_det=35),
        )
    return pr.XRayTransform(
        pr.Volume((3, 4, 4), spacing=(1.1, 0.9, 1.0)),
        pr.ConeBeam3D(angles=pr.angles(2, 2 * math.pi), det_shape=(4, 5), det_spacing=1.6, src_iso=20, src_det=35),
    )


@pytest.mark.parametrize("name", ["2d", "3d"])
def test_from_odl_operator_round_trip(odl, name: str) -> None:
    """from_odl_operator(as_odl_operator(A)) is A (ODL layout in 3-D): the weights of the
    ODL spaces cancel, so the Euclidean adjoint is A.T, for batches too; gradients."""
    A = _tiny(name)
    B = from_odl_operator(as_odl_operator(A, dtype="float64"))
    assert isinstance(B, OdlOperator) and B.T.T is B

    def vol_to_odl(t: torch.Tensor) -> torch.Tensor:  # ours (..., z, y, x) -> ODL (..., y, x, z)
        return t if name == "2d" else t.movedim(-3, -1)

    def proj_swap(t: torch.Tensor) -> torch.Tensor:  # (views, rows, cols) <-> (views, cols, rows)
        return t if name == "2d" else t.transpose(-1, -2)

    x = torch.randn(2, 3, *A.domain_shape, dtype=torch.float64)
    y = torch.randn(2, 3, *A.range_shape, dtype=torch.float64)
    np.testing.assert_allclose(proj_swap(B(vol_to_odl(x))).numpy(), A(x).numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(B.T(proj_swap(y)).numpy(), vol_to_odl(A.T(y)).numpy(), rtol=0, atol=1e-12)
    if name == "2d":  # (the same autograd.Function in 3-D; gradcheck is slow through ODL)
        xg = torch.randn(B.domain_shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(B, (xg,))


def test_from_odl_operator_ray_transform(odl, tomo) -> None:
    """ODL's RayTransform (float32, weighted spaces) as our operator: forward and
    Euclidean adjoint are our Joseph projector's; float32 dot-product test."""
    pytest.importorskip("astra")
    geom = ODL_RAY_CASES["parallel"][0]
    A = pr.XRayTransform(ASTRA_VOL, geom)
    B = from_odl_operator(tomo.RayTransform(*to_odl(ASTRA_VOL, geom), impl="astra_cpu"))
    x = torch.from_numpy(_image(ASTRA_VOL, smooth=False)).float()
    y = torch.randn(2, *geom.proj_shape)
    assert _rel(B(x).double().numpy(), A(x).double().numpy()) <= TOL_LINEAR
    assert _rel(B.T(y).double().numpy(), A.T(y).double().numpy()) <= 2e-4
    assert pr.testing.adjoint_error(B, dtype=torch.float32) < 1e-5


def test_from_odl_operator_weightings(odl) -> None:
    """Array-weighted and complex spaces: the Euclidean adjoint undoes ODL's weights."""

    class Weighted(odl.Operator):
        """``x -> m x`` with its true adjoint for the weighted inner products,
        ``W_D^{-1} m^T W_R`` (ODL's MatrixOperator ignores array weights)."""

        def __init__(self, m: np.ndarray, dom, ran, w_dom: np.ndarray, w_ran: float) -> None:
            super().__init__(dom, ran, linear=True)
            self.m, self.w = m, (w_dom, w_ran)

        def _call(self, x):
            return self.m @ x.asarray()

        @property
        def adjoint(self):
            w_dom, w_ran = self.w
            return Weighted(self.m.T * w_ran / w_dom[:, None], self.range, self.domain, w_dom, w_ran)

    rng = np.random.default_rng(3)
    m = rng.normal(size=(4, 3))
    w_dom = np.array([0.5, 2.0, 3.0])
    dom = odl.rn(3, dtype="float64", weighting=w_dom)
    ran = odl.rn(4, dtype="float64", weighting=1.7)
    op = Weighted(m, dom, ran, w_dom, 1.7)
    xe, ye = dom.element(rng.normal(size=3)), ran.element(rng.normal(size=4))
    assert ran.inner(op(xe), ye) == pytest.approx(dom.inner(xe, op.adjoint(ye)), rel=1e-13)
    B = from_odl_operator(op)
    x = torch.from_numpy(rng.normal(size=(2, 5, 3)))
    np.testing.assert_allclose(B(x).numpy(), x.numpy() @ m.T, atol=1e-13)
    y = torch.from_numpy(rng.normal(size=(5, 4)))
    np.testing.assert_allclose(B.T(y).numpy(), y.numpy() @ m, atol=1e-13)
    assert pr.testing.adjoint_error(B) < 1e-14
    assert pr.testing.adjoint_error(B, dtype=torch.float32, batch_shape=(2,)) < 1e-6
    xg = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(B, (xg,))
    assert torch.autograd.gradgradcheck(B, (xg,))
    yg = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(B.T, (yg,))
    mc = m + 1j * rng.normal(size=(4, 3))
    C = from_odl_operator(odl.MatrixOperator(mc, domain=odl.cn(3), range=odl.cn(4)))
    assert pr.testing.adjoint_error(C, dtype=torch.complex128) < 1e-14
    xc = torch.randn(3, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(C, (xc,))


def test_from_odl_operator_bad_input(odl) -> None:
    B = from_odl_operator(as_odl_operator(_tiny("2d"), dtype="float64"))
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 3, 4\)"):
        B(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        B(torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        B(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 2, 5\)"):
        B.T(torch.zeros(2, 6, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"op must be an odl\.Operator"):
        from_odl_operator(_tiny("2d"))
    with pytest.raises(ValueError, match="op must be linear"):
        from_odl_operator(odl.PowerOperator(odl.rn(3), 2))
    with pytest.raises(TypeError, match=r"op\.domain must be a tensor space"):
        from_odl_operator(odl.IdentityOperator(odl.ProductSpace(odl.rn(3), 2)))


def test_missing_odl_raises_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "odl", None)
    with pytest.raises(ImportError, match=r"pip install precisionrecon\[interop\]"):
        to_odl(*GEOMETRIES["fan-flat"])
    with pytest.raises(ImportError, match=r"precisionrecon\[interop\]"):
        as_odl_operator(_tiny("2d"))
