"""Phantoms and their exact projections (``precisionrecon.data``).

Closed forms are written here from the documented geometry conventions (README): at
angle t the source of a fan/cone geometry sits at ``src_iso (sin t, cos t)``, the central
ray points along ``w = (-sin t, -cos t)``, the detector u axis along ``(cos t, -sin t)``,
rows along +z; parallel rays travel along ``w``; an arc/cylinder detector lies at radius
``src_det`` about the source with the u coordinate measured along the arc.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.data import (
    Ellipsoid,
    analytic_projection,
    ellipse,
    ellipsoid,
    random_ellipse_images,
    random_ellipses,
    rasterize,
    shepp_logan_2d,
    shepp_logan_3d,
    shepp_logan_image,
    with_power,
)
from precisionrecon.data.analytic import blobs_2d, blobs_3d

T = np.array([0.0, 0.35, 1.9, 3.8])  # view angles of the closed-form tests
SRC_ISO, SRC_DET = 60.0, 100.0


def _frames(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central ray direction w and detector axis u per view, (views, 2)."""
    return np.stack([-np.sin(t), -np.cos(t)], 1), np.stack([np.cos(t), -np.sin(t)], 1)


def _coords(n: int, spacing: float, offset: float) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2) * spacing + offset


def _ball_integral(origins: np.ndarray, directions: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """``2 rho sqrt(R^2 - dist^2)`` (rho = 1) for lines ``origins + s directions``, any dimension."""
    unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    rel = centre - origins
    along = np.sum(rel * unit, axis=-1)
    dist2 = np.sum(rel * rel, axis=-1) - along**2
    return 2.0 * np.sqrt(np.maximum(radius**2 - dist2, 0.0))


def _pad(a: np.ndarray) -> np.ndarray:
    """(…, 2) -> (…, 3) with z = 0."""
    return np.concatenate([a, np.zeros((*a.shape[:-1], 1))], -1)


# ---------------------------------------------------------------------------------------
# analytic_projection: closed forms of a disc / ball
# ---------------------------------------------------------------------------------------

DISC_C, DISC_R, DISC_RHO = np.array([4.0, -7.0]), 11.0, 0.7
BALL_C, BALL_R = np.array([-3.0, 5.0, 2.5]), 9.0


def test_disc_parallel_2d() -> None:
    n, du, off = 41, 0.9, 1.3
    g = pr.ParallelBeam2D(angles=T, det_count=n, det_spacing=du, det_offset=off)
    p = analytic_projection([ellipse(DISC_C, (DISC_R, DISC_R), 0.4, DISC_RHO)], g)
    _, u = _frames(T)
    s = _coords(n, du, off)[None, :] - (u @ DISC_C)[:, None]  # signed distance of the ray from the centre
    expect = DISC_RHO * 2.0 * np.sqrt(np.maximum(DISC_R**2 - s**2, 0.0))
    assert p.shape == (len(T), n) and p.dtype == torch.float64
    assert np.count_nonzero(expect) > p.numel() // 3
    np.testing.assert_allclose(p.numpy(), expect, rtol=0, atol=1e-11)


@pytest.mark.parametrize("detector", ["flat", "arc"])
def test_disc_fan_2d(detector: str) -> None:
    n, du, off = 45, 1.1, -0.8
    g = pr.FanBeam2D(
        angles=T, det_count=n, det_spacing=du, src_iso=SRC_ISO, src_det=SRC_DET, detector=detector, det_offset=off
    )
    p = analytic_projection([ellipse(DISC_C, (DISC_R, DISC_R), 0.0, DISC_RHO)], g)
    w, u = _frames(T)
    src = -SRC_ISO * w
    c = _coords(n, du, off)[None, :, None]
    if detector == "flat":
        direction = SRC_DET * w[:, None] + c * u[:, None]
    else:
        gamma = c / SRC_DET
        direction = np.cos(gamma) * w[:, None] + np.sin(gamma) * u[:, None]
    expect = DISC_RHO * _ball_integral(src[:, None], direction, DISC_C, DISC_R)
    assert np.count_nonzero(expect) > p.numel() // 3
    np.testing.assert_allclose(p.numpy(), expect, rtol=0, atol=1e-11)


@pytest.mark.parametrize("detector", ["flat", "cylindrical"])
def test_ball_cone_3d(detector: str) -> None:
    (nv, nu), (dv, du), (ov, ou) = (13, 17), (1.2, 1.5), (0.6, -1.1)
    g = pr.ConeBeam3D(
        angles=T,
        det_shape=(nv, nu),
        det_spacing=(dv, du),
        src_iso=SRC_ISO,
        src_det=SRC_DET,
        detector=detector,
        det_offset=(ov, ou),
    )
    p = analytic_projection([ellipsoid(BALL_C, (BALL_R,) * 3, (0.3, 0.2, 0.1), 1.0)], g, dtype=torch.float32)
    w, u = _pad(_frames(T)[0]), _pad(_frames(T)[1])
    src = -SRC_ISO * w
    cu = _coords(nu, du, ou)[None, None, :, None]
    cv = _coords(nv, dv, ov)[None, :, None, None] * np.array([0.0, 0.0, 1.0])
    if detector == "flat":
        direction = SRC_DET * w[:, None, None] + cu * u[:, None, None] + cv
    else:
        gamma = cu / SRC_DET
        direction = SRC_DET * (np.cos(gamma) * w[:, None, None] + np.sin(gamma) * u[:, None, None]) + cv
    expect = _ball_integral(src[:, None, None], direction, BALL_C, BALL_R)
    assert p.shape == (len(T), nv, nu) and p.dtype == torch.float32
    assert np.count_nonzero(expect) > p.numel() // 4
    np.testing.assert_allclose(p.numpy(), expect, rtol=0, atol=1e-5)  # float32 result


def test_ball_parallel_3d_and_vector_geometry() -> None:
    (nv, nu), (dv, du), (ov, ou) = (11, 15), (1.3, 1.4), (-0.4, 0.9)
    g = pr.ParallelBeam3D(angles=T, det_shape=(nv, nu), det_spacing=(dv, du), det_offset=(ov, ou))
    phantom = [ellipsoid(BALL_C, (BALL_R,) * 3)]
    p = analytic_projection(phantom, g)
    _, u = _frames(T)
    su = _coords(nu, du, ou)[None, None, :] - (u @ BALL_C[:2])[:, None, None]
    sv = _coords(nv, dv, ov)[None, :, None] - BALL_C[2]
    expect = 2.0 * np.sqrt(np.maximum(BALL_R**2 - su**2 - sv**2, 0.0))
    np.testing.assert_allclose(p.numpy(), expect, rtol=0, atol=1e-11)
    # the same geometry given as per-view vectors
    torch.testing.assert_close(analytic_projection(phantom, g.to_vector_geometry()), p, rtol=0, atol=1e-12)


def _cell_average(s0: np.ndarray, width: float, radius: float) -> np.ndarray:
    """Mean of ``2 sqrt(R^2 - s^2)`` over ``[s0 - width/2, s0 + width/2]`` (exact)."""

    def antiderivative(s: np.ndarray) -> np.ndarray:
        s = np.clip(s, -radius, radius)
        return s * np.sqrt(radius**2 - s**2) + radius**2 * np.arcsin(s / radius)

    return (antiderivative(s0 + width / 2) - antiderivative(s0 - width / 2)) / width


def test_oversampling_converges_to_the_cell_average_2d() -> None:
    """Sub-rays average the line integral over the detector cell: the error against the
    exact cell average falls with the number of sub-rays (midpoint rule on a profile with
    square-root edges; measured 1.6e-1, 4.0e-3, 8.9e-4, 7.6e-5 of the peak for m = 1, 4, 16, 64)."""
    n, du = 31, 2.5
    g = pr.ParallelBeam2D(angles=[0.0], det_count=n, det_spacing=du)
    # at t = 0 the u coordinate of a point is its x
    exact = _cell_average(_coords(n, du, 0.0) - DISC_C[0], du, DISC_R)
    errors = []
    for m in (1, 4, 16, 64):
        p = analytic_projection([ellipse(DISC_C, (DISC_R, DISC_R), 0.0, 1.0)], g, oversample=m)[0].numpy()
        errors.append(np.abs(p - exact).max() / exact.max())
    assert all(b < 0.5 * a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 2e-4, errors


@pytest.mark.parametrize("axis", ["u", "v"])
def test_oversampling_3d_averages_along_u_and_v(axis: str) -> None:
    """A long cylinder (an ellipsoid with a 1e5 mm axis) along z projects to a profile in u
    only, one along x to a profile in v only (parallel beam at t = 0: rays along -y, u = x,
    v = z): the oversampled 3-D projection is the exact 1-D cell average in that axis."""
    long = 1e5
    centre = (2.0, -1.0, 3.0)
    if axis == "u":
        phantom = [ellipsoid(centre, (DISC_R, DISC_R, long))]
        along = 0
    else:
        phantom = [ellipsoid(centre, (long, DISC_R, DISC_R))]
        along = 2
    (nv, nu), spacing = (15, 17), 2.2
    g = pr.ParallelBeam3D(angles=[0.0], det_shape=(nv, nu), det_spacing=spacing)
    p = analytic_projection(phantom, g, oversample=64)[0].numpy()
    exact = _cell_average(_coords(nu if axis == "u" else nv, spacing, 0.0) - centre[along], spacing, DISC_R)
    expect = np.broadcast_to(exact[None, :] if axis == "u" else exact[:, None], (nv, nu))
    # 64 sub-rays: measured 1.1e-4 (u) / 9.9e-5 (v) of the peak; one ray per pixel: 0.11 / 0.045
    np.testing.assert_allclose(p, expect, rtol=0, atol=5e-4 * expect.max())


# ---------------------------------------------------------------------------------------
# rasterize against projection with the library's projector
# ---------------------------------------------------------------------------------------


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


CONSISTENCY_2D = {
    "parallel": pr.ParallelBeam2D(angles=pr.angles(30), det_count=96, det_spacing=2.0),
    "fan-arc": pr.FanBeam2D(
        angles=pr.angles(30, arc=2 * math.pi), det_count=128, det_spacing=2.0, src_iso=200, src_det=400, detector="arc"
    ),
}


@pytest.mark.parametrize("name", sorted(CONSISTENCY_2D))
def test_rasterize_matches_projection_2d(name: str) -> None:
    """A(rasterize(f)) against the exact line integrals of f: the smooth ((1 - r^2)^2)
    Shepp-Logan on 64^2 of 2 mm, measured 0.31 % (parallel) / 0.46 % (fan); constant-density
    blobs on 128^2 of 1 mm (the error is first order in the voxel size there), 0.34 % /
    0.42 %. Half a detector pixel off gives 4.4 % / 2.3 %."""
    g = CONSISTENCY_2D[name]
    vol = pr.Volume((64, 64), spacing=2.0)
    smooth = with_power(shepp_logan_2d(vol, half_extent=0.95 * 64), 2)
    A = pr.XRayTransform(vol, g)
    err = _rel(A(rasterize(smooth, vol, oversample=4)), analytic_projection(smooth, g, oversample=2))
    assert err < 0.01, f"{name}: {err:.4%}"
    fine = pr.Volume((128, 128), spacing=1.0)
    sharp = blobs_2d(0.9 * 64, 0.9 * 64)
    A = pr.XRayTransform(fine, g)
    err = _rel(A(rasterize(sharp, fine, oversample=4)), analytic_projection(sharp, g, oversample=2))
    assert err < 0.01, f"{name}: {err:.4%}"


@pytest.mark.parametrize("detector", ["flat", "cylindrical"])
def test_rasterize_matches_projection_cone(detector: str) -> None:
    """32^3 of 2 mm, smooth blobs, cone beam with 10 views: measured 0.49 % (flat and
    cylindrical); parallel beam 0.23 %."""
    vol = pr.Volume((32, 32, 32), spacing=2.0)
    g = pr.ConeBeam3D(
        angles=pr.angles(10, arc=2 * math.pi),
        det_shape=(51, 64),
        det_spacing=10 / 3,
        src_iso=150,
        src_det=250,
        detector=detector,
    )
    phantom = blobs_3d((0.9 * 32,) * 3, power=2)
    err = _rel(pr.XRayTransform(vol, g)(rasterize(phantom, vol)), analytic_projection(phantom, g, oversample=2))
    assert err < 0.01, f"{detector}: {err:.4%}"


def test_rasterize_oversampling_and_dtype() -> None:
    """The mean over a voxel: the mass of an ellipse is pi a b rho to 2e-3 with 8^2
    sub-samples, and its centroid is where Volume puts the voxels (x along the last axis;
    a half-voxel shift would move it by 0.4 mm)."""
    e = ellipse((3.0, -2.0), (10.0, 6.0), 0.3, 2.0)
    vol = pr.Volume((30, 40), spacing=(0.9, 0.8), center=(-1.5, 2.0))
    img = rasterize([e], vol, oversample=8, dtype=torch.float32)
    assert img.shape == vol.shape and img.dtype == torch.float32
    img = img.double().numpy()
    assert img.sum() * 0.72 == pytest.approx(2.0 * math.pi * 60.0, rel=2e-3)
    ys = -1.5 + (np.arange(30) - 14.5) * 0.9
    xs = 2.0 + (np.arange(40) - 19.5) * 0.8
    assert (img * xs).sum() / img.sum() == pytest.approx(3.0, abs=0.01)
    assert (img * ys[:, None]).sum() / img.sum() == pytest.approx(-2.0, abs=0.01)
    # one sample per voxel: the value at the voxel centre
    centre = rasterize([e], pr.Volume((1, 1), center=(-2.0, 3.0)))
    assert float(centre.reshape(())) == 2.0


# ---------------------------------------------------------------------------------------
# Shepp-Logan
# ---------------------------------------------------------------------------------------

# (x, y) in the table's normalised coordinates (y up) -> modified Shepp-Logan value
KNOWN_POINTS = [
    ((0.0, 0.0), 0.2),  # brain
    ((0.0, 0.35), 0.3),  # the large top ellipse
    ((0.0, -0.1), 0.3),  # small disc below the centre
    ((0.22, 0.0), 0.0),  # right dark ellipse
    ((-0.22, 0.0), 0.0),  # left dark ellipse
    ((0.0, 0.9), 1.0),  # skull, top
    ((0.0, -0.9), 1.0),  # skull, bottom
    ((0.68, 0.0), 1.0),  # skull, side
    ((0.0, -0.606), 0.3),  # the small bottom disc
    ((0.9, 0.9), 0.0),  # outside
]


def _value_at(phantom: list[Ellipsoid], world: tuple[float, ...]) -> float:
    """The phantom at one world point (a one-voxel volume centred there)."""
    vol = pr.Volume((1,) * len(world), center=tuple(reversed(world)))
    return float(rasterize(phantom, vol).reshape(()))


@pytest.mark.parametrize(("point", "value"), KNOWN_POINTS)
def test_shepp_logan_known_points(point: tuple[float, float], value: float) -> None:
    """Values at known points of the table, mapped to the box (half-extent 50 x 40 mm
    about (10, -5)) with the table's y pointing to smaller rows (up in imshow)."""
    half, centre, scale = (50.0, 40.0), (10.0, -5.0), 0.02
    world2 = (centre[0] + point[0] * half[0], centre[1] - point[1] * half[1])
    ph2 = shepp_logan_2d(half_extent=half, center=centre, scale=scale)
    assert _value_at(ph2, world2) == pytest.approx(value * scale, abs=1e-15)
    ph3 = shepp_logan_3d(half_extent=(*half, 30.0), center=(*centre, 4.0), scale=scale)
    assert _value_at(ph3, (*world2, 4.0)) == pytest.approx(value * scale, abs=1e-15)


def test_shepp_logan_3d_along_z() -> None:
    """The skull's z semi-axes 0.81 (outer) and 0.78 (inner); slice z = 0 is the 2-D phantom."""
    ph = shepp_logan_3d()
    assert _value_at(ph, (0.0, 0.0, 0.7)) == pytest.approx(0.2)
    assert _value_at(ph, (0.0, 0.0, 0.8)) == pytest.approx(1.0)
    assert _value_at(ph, (0.0, 0.0, -0.85)) == 0.0
    vol2, vol3 = pr.Volume((48, 40), spacing=0.05), pr.Volume((1, 48, 40), spacing=0.05)
    slice0 = rasterize(shepp_logan_3d(vol3, half_extent=(1.0, 1.2, 1.0)), vol3)[0]
    torch.testing.assert_close(slice0, rasterize(shepp_logan_2d(vol2), vol2), rtol=0, atol=1e-15)


@pytest.mark.parametrize("scale", [1.0, 0.02])
def test_shepp_logan_image_levels(scale: float) -> None:
    """The image takes exactly the modified Shepp-Logan levels (point samples), never a
    rounding-error negative in the dark ellipses."""
    img = shepp_logan_image(pr.Volume((128, 128), spacing=0.7), scale=scale, dtype=torch.float64)
    levels = np.unique(np.round(img.numpy() / scale, 9))
    np.testing.assert_array_equal(levels, [0.0, 0.1, 0.2, 0.3, 0.4, 1.0])
    assert float(img.min()) == 0.0


def test_shepp_logan_matches_scikit_image() -> None:
    """scikit-image's 400 x 400 phantom (8-bit quantised levels, outermost pixel centres at
    +-1): equal to within the quantisation, so orientation and every ellipse agree."""
    data = pytest.importorskip("skimage.data")
    ref = data.shepp_logan_phantom()
    vol = pr.Volume((400, 400))
    ours = rasterize(shepp_logan_2d(vol, half_extent=399 / 2), vol).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1 / 255)


def test_shepp_logan_matches_odl() -> None:
    """ODL's modified Shepp-Logan (2-D anisotropic, 3-D): ODL's array axes are (x, y(, z))
    with the table's y, ours (z,) y, x with y flipped; ODL also puts the outermost voxel
    centres at +-1. Equal voxel for voxel."""
    odl = pytest.importorskip("odl")
    for shape, spacing in (((50, 64), (0.9, 0.7)), ((20, 24, 28), (1.0, 0.8, 0.7))):
        vol = pr.Volume(shape, spacing=spacing)
        half = [(n - 1) / 2 * s for n, s in zip(reversed(shape), reversed(spacing), strict=True)]
        fn = shepp_logan_2d if len(shape) == 2 else shepp_logan_3d
        ours = rasterize(fn(vol, half_extent=half), vol).numpy()
        ext = [n * s / 2 for n, s in zip(reversed(shape), reversed(spacing), strict=True)]
        space = odl.uniform_discr([-e for e in ext], ext, list(reversed(shape)), dtype="float64")
        ref = np.asarray(odl.phantom.shepp_logan(space, modified=True).data).T
        np.testing.assert_array_equal(ours, np.flip(ref, axis=-2))


def test_shepp_logan_fits_the_volume() -> None:
    """Default box: the volume's (anisotropic, off-centre) extent. The skull touches the
    box at 0.92 of the half-height and 0.69 of the half-width."""
    vol = pr.Volume((40, 80), spacing=(1.5, 0.5), center=(3.0, -2.0))  # 60 mm x 40 mm
    ph = shepp_logan_2d(vol)
    assert ph[0].center == pytest.approx((-2.0, 3.0))
    assert sorted(ph[0].semi_axes) == pytest.approx(sorted((0.69 * 20, 0.92 * 30)))
    bad = pr.Volume((4, 4, 4))
    with pytest.raises(ValueError, match="volume"):
        shepp_logan_2d(bad)


def test_anisotropic_box_maps_rotated_ellipses_exactly() -> None:
    """Stretching a rotated ellipse by diag(sx, sy) is another ellipse: a point inside /
    outside in normalised coordinates stays inside / outside after the map."""
    rng = np.random.default_rng(0)
    half, centre = np.array([30.0, 12.0]), np.array([5.0, -3.0])
    ph = shepp_logan_2d(half_extent=tuple(half), center=tuple(centre))
    table = shepp_logan_2d()
    for e, t in zip(ph[2:4], table[2:4], strict=True):  # the two rotated ellipses
        q = np.asarray(t.center) + rng.uniform(-0.5, 0.5, size=(2000, 2))
        inside_t = np.sum(((q - t.center) @ np.asarray(t.rotation) / t.semi_axes) ** 2, 1) <= 1
        p = centre + half * q
        inside_e = np.sum(((p - e.center) @ np.asarray(e.rotation) / e.semi_axes) ** 2, 1) <= 1
        assert 0.05 < inside_t.mean() < 0.95
        np.testing.assert_array_equal(inside_e, inside_t)


# ---------------------------------------------------------------------------------------
# random ellipses
# ---------------------------------------------------------------------------------------


def test_random_ellipses_reproducible() -> None:
    a = random_ellipses(20, seed=3)
    assert a == random_ellipses(20, seed=3)
    g = torch.Generator().manual_seed(3)
    assert a == random_ellipses(20, generator=g)
    assert a != random_ellipses(20, seed=4)
    torch.manual_seed(0)
    b = random_ellipses(20)
    torch.manual_seed(0)
    assert b == random_ellipses(20)  # no seed: torch's global generator


def test_random_ellipses_distribution() -> None:
    """Adler & Öktem's law: Poisson count, value (U - 1/2) Exp(0.4) (mean 0, variance
    0.32 / 12), semi-axes 0.2 Exp(1), centres uniform in [-1, 1]^2 ([-1/2, 1/2]^2 interior)."""
    g = torch.Generator().manual_seed(0)
    phantoms = [random_ellipses(30, generator=g) for _ in range(200)]
    counts = np.array([len(p) for p in phantoms])
    assert counts.mean() == pytest.approx(30, abs=5 * math.sqrt(30 / 200))
    assert counts.var() == pytest.approx(30, rel=0.35)
    es = [e for p in phantoms for e in p]
    values = np.array([e.density for e in es])
    axes = np.array([e.semi_axes for e in es])
    centres = np.array([e.center for e in es])
    n = len(es)
    # moments of V = (U - 1/2) 0.4 E: E V^2 = 0.16 * 2 / 12, E|V| = 0.4 / 4,
    # E V^4 = 0.4^4 * 24 / 80 (heavy tail); bounds of 5 standard errors
    v2, v4 = 0.32 / 12, 0.4**4 * 24 / 80
    assert values.mean() == pytest.approx(0.0, abs=5 * math.sqrt(v2 / n))
    assert np.abs(values).mean() == pytest.approx(0.1, abs=5 * math.sqrt((v2 - 0.01) / n))
    assert np.mean(values**2) == pytest.approx(v2, abs=5 * math.sqrt((v4 - v2**2) / n))
    assert axes.mean() == pytest.approx(0.2, rel=5 / math.sqrt(2 * n))
    assert np.abs(centres).max() <= 1.0 and np.abs(centres).max() > 0.99
    inner = np.array([e.center for e in random_ellipses(200, seed=1, interior=True)])
    assert np.abs(inner).max() <= 0.5 and np.abs(inner).max() > 0.49
    angles = np.array([math.atan2(e.rotation[1][0], e.rotation[0][0]) for e in es])
    assert np.histogram(angles, bins=4, range=(-math.pi, math.pi))[0].min() > 0.2 * n


def test_random_ellipses_in_a_volume_and_3d() -> None:
    vol = pr.Volume((20, 30, 40), spacing=(1.0, 2.0, 0.5), center=(1.0, 2.0, 3.0))  # box 20 x 60 x 20 mm
    es = random_ellipses(40, volume=vol, seed=0)
    centres = np.array([e.center for e in es])
    lo, hi = np.array([-7.0, -28.0, -9.0]), np.array([13.0, 32.0, 11.0])  # world x, y, z
    assert np.all(centres >= lo) and np.all(centres <= hi)
    assert all(e.ndim == 3 and abs(np.linalg.det(np.asarray(e.rotation)) - 1) < 1e-12 for e in es)
    assert len(random_ellipses(0, seed=0)) == 0


def test_random_ellipse_images() -> None:
    vol = pr.Volume((32, 24))
    x = random_ellipse_images(vol, 4, seed=5)
    assert x.shape == (4, 32, 24) and x.dtype == torch.float32
    torch.testing.assert_close(random_ellipse_images(vol, 2, seed=5), x[:2], rtol=0, atol=0)
    assert not torch.equal(x[0], x[1])
    assert not torch.equal(random_ellipse_images(vol, 1, seed=6)[0], x[0])
    one = rasterize(random_ellipses(volume=vol, seed=5), vol, dtype=torch.float32)
    torch.testing.assert_close(x[0], one, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


def test_bad_input() -> None:
    rot = np.eye(2)
    with pytest.raises(ValueError, match="semi_axes"):
        Ellipsoid((0.0, 0.0), (1.0, 0.0), rot, 1.0)
    with pytest.raises(ValueError, match="semi_axes"):
        Ellipsoid((0.0, 0.0), (1.0, 1.0, 1.0), rot, 1.0)
    with pytest.raises(ValueError, match="orthogonal"):
        Ellipsoid((0.0, 0.0), (1.0, 1.0), [[1.0, 0.5], [0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match="power"):
        Ellipsoid((0.0, 0.0), (1.0, 1.0), rot, 1.0, power=-1)
    g2 = pr.ParallelBeam2D(angles=[0.0], det_count=4)
    disc = [ellipse((0, 0), (1, 1), 0, 1)]
    with pytest.raises(ValueError, match="3-D"):
        analytic_projection(disc, pr.ParallelBeam3D(angles=[0.0], det_shape=(3, 3)))
    with pytest.raises(TypeError, match="geometry"):
        analytic_projection(disc, pr.Volume((4, 4)))
    with pytest.raises(TypeError, match="phantom"):
        analytic_projection([1.0], g2)
    with pytest.raises(ValueError, match="oversample"):
        analytic_projection(disc, g2, oversample=0)
    with pytest.raises(TypeError, match="dtype"):
        analytic_projection(disc, g2, dtype=torch.int64)
    with pytest.raises(TypeError, match="volume"):
        rasterize(disc, g2)
    with pytest.raises(ValueError, match="half_extent"):
        shepp_logan_2d(half_extent=-1.0)
    with pytest.raises(ValueError, match="seed or generator"):
        random_ellipses(seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="seed"):
        random_ellipses(seed=1.5)
    with pytest.raises(ValueError, match="n_ellipses"):
        random_ellipses(-1)
    with pytest.raises(ValueError, match="batch"):
        random_ellipse_images(pr.Volume((4, 4)), 0, seed=0)


@pytest.mark.parametrize(("shape"), [(40, 48), (20, 24, 28)])
def test_contained_random_ellipses_stay_inside_the_volume(shape: tuple[int, ...]) -> None:
    vol = pr.Volume(shape)
    big = pr.Volume(tuple(2 * s for s in shape))  # the same pixels, twice the box
    inner = tuple(slice(s // 2, s // 2 + s) for s in shape)
    kept = drawn = 0
    for seed in range(6):
        every = pr.data.random_ellipses(50, volume=vol, seed=seed)
        inside = pr.data.random_ellipses(50, volume=vol, seed=seed, contained=True)
        assert all(any(e == f for f in every) for e in inside)  # a subset of the same draws
        kept, drawn = kept + len(inside), drawn + len(every)
        img = pr.data.rasterize(inside, big, oversample=2).abs()
        outside = torch.ones_like(img, dtype=torch.bool)
        outside[inner] = False
        assert float(img[outside].sum()) == 0.0
    assert 0.3 * drawn < kept < drawn  # measured about 64 % (2-D) and 46 % (3-D) kept
