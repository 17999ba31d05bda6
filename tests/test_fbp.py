"""FBP and FDK against exact analytic projections; linearity, adjoint, batching, autograd.

The phantoms are the ellipses/ellipsoids of ``tests/analytic.py``: with sharp edges
(``power=0``) for the level of flat regions, and with the smooth profile ``(1 - r^2)^2``
(``power=2``) for relative L2 errors that measure the reconstruction rather than the
Gibbs ringing of the edges. The references are the voxel means of the phantom.
"""

from __future__ import annotations

import math

import analytic as an
import numpy as np
import pytest
import torch
from registry import REGISTRY, build
from scipy.ndimage import binary_erosion

import precisionrecon as pr
from precisionrecon.operators import ramp_response
from precisionrecon.operators.fbp import (
    FBP,
    arc_ramp_response,
    build_backprojector,
    design_filter,
    design_weights,
    fbp_scale,
    resolve_backprojector,
)
from precisionrecon.operators.weights import redundancy_weights

N = 128  # 2-D image size (pixels of 1 mm)


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def _sino(phantom: list[an.Ellipsoid], geom: pr.Geometry) -> torch.Tensor:
    beam = "parallel" if geom.beam == "parallel" else "cone"
    return torch.from_numpy(an.project(phantom, geom.to_vectors().numpy(), geom.det_shape, beam, geom.curved))


def _parallel(n_views: int = 180, angles: np.ndarray | None = None) -> pr.XRayTransform:
    # detector pitch half a pixel (2x oversampling), covering the image diagonal
    angles = pr.angles(n_views) if angles is None else angles
    return pr.XRayTransform(pr.Volume((N, N)), pr.ParallelBeam2D(angles=angles, det_count=366, det_spacing=0.5))


def _fan(detector: str, scan: str, det_offset: float = 0.0, n_views: int = 360) -> pr.XRayTransform:
    """Fan beam with half-pixel pitch at the isocentre and a fan angle of about 42 degrees."""
    src_iso, src_det = 2.0 * N, 3.5 * N
    radius = N / math.sqrt(2) + 1.0  # the whole image, corners included
    du = 0.5 * src_det / src_iso
    half = src_det * (math.asin(radius / src_iso) if detector == "arc" else radius / math.sqrt(src_iso**2 - radius**2))
    n_det = 2 * math.ceil((half + abs(det_offset)) / du) + 2
    geom = pr.FanBeam2D(angles=[0.0], det_count=n_det, det_spacing=du, src_iso=src_iso, src_det=src_det,
                        detector=detector, det_offset=det_offset)
    arc = 2 * math.pi if scan == "full" else math.pi + geom.fan_angle + 2 * abs(det_offset) / src_det + 0.02
    return pr.XRayTransform(pr.Volume((N, N)), geom.replace(angles=pr.angles(n_views, arc=arc, start=0.3)))


@pytest.fixture(scope="module")
def phantoms() -> dict[str, tuple[list[an.Ellipsoid], np.ndarray]]:
    sharp = an.phantom_2d(0.45 * N)
    smooth = an.with_power(sharp, 2)
    return {
        "sharp": (sharp, an.voxelise(sharp, (N, N), supersample=4)),
        "smooth": (smooth, an.voxelise(smooth, (N, N), supersample=4)),
    }


def _flat_region(ref: np.ndarray, level: float) -> np.ndarray:
    """Pixels of density ``level`` at least 3 pixels away from any edge."""
    return binary_erosion(np.abs(ref - level) < 1e-12, iterations=3)


# --- accuracy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backprojector", "l2_sharp", "l2_smooth"),
    [("voxel", 0.075, 0.003), ("voxel-mean", 0.035, 0.0015), ("footprint", 0.035, 0.001), ("adjoint", 0.04, 0.007)],
)
def test_parallel_fbp_returns_the_density(phantoms, backprojector: str, l2_sharp: float, l2_smooth: float) -> None:
    # measured: voxel 0.066 / 0.0018, voxel-mean 0.032 / 0.0011, footprint 0.031 / 0.0005, adjoint 0.037 / 0.0054;
    # flat level within 0.05 %
    A = _parallel()
    fbp = FBP(A, backprojector=backprojector)
    (sharp, ref), (smooth, ref_smooth) = phantoms["sharp"], phantoms["smooth"]
    rec = fbp(_sino(sharp, A.geometry)).numpy()
    flat = _flat_region(ref, 0.4)  # inside the two large ellipses: 1.0 - 0.6
    assert flat.sum() > 1000
    assert rec[flat].mean() == pytest.approx(0.4, rel=0.005)
    assert _rel(rec, ref) < l2_sharp
    assert _rel(fbp(_sino(smooth, A.geometry)).numpy(), ref_smooth) < l2_smooth


def test_parallel_scale_with_anisotropic_pixels_and_any_pitch() -> None:
    # the scale tau / pixel area of the adjoint back-projector, and dtheta per view
    vol = pr.Volume((40, 56), spacing=(1.3, 0.9))
    geom = pr.ParallelBeam2D(angles=pr.angles(150, arc=2 * math.pi), det_count=150, det_spacing=0.45, det_offset=0.7)
    phantom = an.with_power(an.blobs_2d(0.45 * 56 * 0.9, 0.45 * 40 * 1.3), 2)
    ref = an.voxelise(phantom, vol.shape, vol.spacing, supersample=4)
    sino = _sino(phantom, geom)
    for backprojector in ("voxel", "adjoint"):
        rec = FBP(pr.XRayTransform(vol, geom), backprojector=backprojector)(sino).numpy()
        assert rec.sum() == pytest.approx(ref.sum(), rel=0.005)
        assert _rel(rec, ref) < 0.02  # measured 0.004 (voxel) and 0.010 (adjoint)


def test_quadrature_weights_handle_irregular_angles(phantoms) -> None:
    angles = np.sort(np.random.default_rng(1).uniform(0, math.pi, 180))
    A = _parallel(angles=angles)
    smooth, ref = phantoms["smooth"]
    sino = _sino(smooth, A.geometry)
    fbp = FBP(A)
    err = _rel(fbp(sino).numpy(), ref)
    assert err < 0.035  # measured 0.025 (auto: voxel-mean)
    equal = fbp.replace(weights=torch.full_like(fbp.designed_weights, math.pi / 180))
    assert _rel(equal(sino).numpy(), ref) > 3 * err  # measured 0.125


def test_parallel3d_fbp() -> None:
    vol = pr.Volume((10, 40, 40), spacing=(1.2, 1.0, 1.0))
    geom = pr.ParallelBeam3D(angles=pr.angles(90), det_shape=(26, 120), det_spacing=(0.6, 0.5))
    phantom = an.with_power(an.blobs_3d((18.0, 18.0, 5.0)), 2)
    ref = an.voxelise(phantom, vol.shape, vol.spacing, supersample=2)
    sino = _sino(phantom, geom)
    # measured 0.0015 and 0.032: the adjoint's bilinear footprint blurs the thin phantom along z
    for backprojector, bound in (("voxel", 0.003), ("adjoint", 0.04)):
        rec = FBP(pr.XRayTransform(vol, geom), backprojector=backprojector)(sino).numpy()
        assert rec.sum() == pytest.approx(ref.sum(), rel=1e-3)
        assert _rel(rec[3:7], ref[3:7]) < bound


@pytest.mark.parametrize("detector", ["flat", "arc"])
@pytest.mark.parametrize("scan", ["full", "short"])
def test_fan_fbp_returns_the_density(phantoms, detector: str, scan: str) -> None:
    # measured relative L2 (auto: footprint): 0.0008 (full scans), 0.0002 (short scans), flat and arc
    # alike; 0.0013 and 0.0010 with "voxel-mean", 0.0021 and 0.0017 with "voxel"
    A = _fan(detector, scan)
    smooth, ref = phantoms["smooth"]
    fbp = FBP(A)
    assert fbp.backprojector_used == "footprint"
    rec = fbp(_sino(smooth, A.geometry)).numpy()
    assert _rel(rec, ref) < 0.0015
    centre = slice(N // 2 - 8, N // 2 + 8)
    assert rec[centre, centre].mean() == pytest.approx(ref[centre, centre].mean(), rel=0.003)


@pytest.mark.parametrize("detector", ["flat", "arc"])
def test_fan_fbp_with_detector_offset(phantoms, detector: str) -> None:
    # 40 mm: the arc detector turns by 5 degrees about the source (a 0.8 % scale if ignored)
    A = _fan(detector, "full", det_offset=40.0)
    smooth, ref = phantoms["smooth"]
    rec = FBP(A)(_sino(smooth, A.geometry)).numpy()
    assert _rel(rec, ref) < 0.003  # measured 0.0013 (0.0021 with "voxel")
    centre = slice(N // 2 - 8, N // 2 + 8)
    assert rec[centre, centre].mean() == pytest.approx(ref[centre, centre].mean(), rel=0.003)


def test_fan_fbp_flat_region_level(phantoms) -> None:
    A = _fan("flat", "short")
    sharp, ref = phantoms["sharp"]
    rec = FBP(A)(_sino(sharp, A.geometry)).numpy()
    flat = _flat_region(ref, 0.4)
    assert rec[flat].mean() == pytest.approx(0.4, rel=0.005)
    assert _rel(rec, ref) < 0.07  # measured 0.031 (edges; 0.059 with "voxel"), level within 0.01 %


def test_short_scan_without_parker_weights_is_worse(phantoms) -> None:
    A = _fan("flat", "short")
    smooth, ref = phantoms["smooth"]
    sino = _sino(smooth, A.geometry)
    with_parker = _rel(FBP(A)(sino).numpy(), ref)
    without = _rel(FBP(A, parker=False)(sino).numpy(), ref)
    assert with_parker < 0.003 and without > 20 * with_parker  # measured 0.0010 and 0.25


@pytest.mark.parametrize("detector", ["flat", "arc"])
def test_limited_angle_fan_fbp_with_extended_parker_weights(phantoms, detector: str) -> None:
    """A scan shorter than pi plus the detector's fan angle (limited angle), but longer than pi
    plus the fan angle of the object: the extended Parker weights are Parker's weights for the
    rays through the object, so it is reconstructed as well as from a short scan."""
    short = _fan(detector, "short")
    g = short.geometry
    arc = math.pi + g.fan_angle - 0.3  # the phantom (radius 0.45 N) subtends about 24 of the 42 degrees
    A = pr.XRayTransform(short.volume, g.replace(angles=pr.angles(g.n_views, arc=arc, start=0.3)))
    assert pr.geometry.scan_type(A.geometry) == "limited"
    with pytest.raises(ValueError, match="parker='extended'"):
        FBP(A)
    smooth, ref = phantoms["smooth"]
    fbp = FBP(A, parker="extended")
    torch.testing.assert_close(fbp.designed_weights, redundancy_weights(A.geometry, parker="extended")
                               * pr.operators.cosine_weights(A.geometry), rtol=1e-15, atol=0)
    assert _rel(fbp(_sino(smooth, A.geometry)).numpy(), ref) < 0.001  # measured 0.00023 (flat), as the short scan
    # shorter than pi plus the object's fan angle: the missing wedge shows
    cut = A.replace(geometry=g.replace(angles=pr.angles(g.n_views, arc=math.pi + g.fan_angle - 0.6, start=0.3)))
    assert _rel(FBP(cut, parker="extended")(_sino(smooth, cut.geometry)).numpy(), ref) > 0.01  # measured 0.035


def test_arc_detector_needs_the_modified_kernel(phantoms) -> None:
    A = _fan("arc", "full")
    smooth, ref = phantoms["smooth"]
    sino = _sino(smooth, A.geometry)
    fbp = FBP(A)
    plain = fbp.replace(response=ramp_response(A.geometry.det_count, fbp.ramp.det_spacing))
    assert _rel(plain(sino).numpy(), ref) > 2 * _rel(fbp(sino).numpy(), ref)  # measured 0.0069 vs 0.0013
    # the modification is (gamma / sin gamma)^2 on the kernel, which vanishes for small angles
    r0 = ramp_response(50, 0.7)
    torch.testing.assert_close(arc_ramp_response(50, 1e-9, 0.7), r0, rtol=0, atol=1e-12)
    k = torch.fft.irfft(arc_ramp_response(50, 0.02, 0.7), n=128)
    k0 = torch.fft.irfft(r0, n=128)
    torch.testing.assert_close(k[1:50], k0[1:50] * (0.02 * torch.arange(1, 50) / torch.sin(0.02 * torch.arange(1, 50)))
                               ** 2)


@pytest.mark.parametrize(
    ("filter", "det_spacing", "expected"),
    [
        ("ram-lak", 0.5, "footprint"),
        ("shepp-logan", 0.5, "footprint"),
        ("cosine", 0.5, "voxel"),
        ("hann", 0.5, "voxel"),
        ("hann", 0.25, "footprint"),
    ],
)
def test_auto_backprojector_takes_the_better_one_on_sharp_edges(
    phantoms, filter: str, det_spacing: float, expected: str
) -> None:
    # Relative L2 on the sharp phantom, voxel / voxel-mean / footprint (measured): half-pixel pitch
    # Ram-Lak 0.066 / 0.032 / 0.031, Shepp-Logan 0.049 / 0.034 / 0.031, cosine 0.032 / 0.043 / 0.038,
    # Hann 0.043 / 0.056 / 0.052; quarter-pixel pitch Hann 0.050 / 0.027 / 0.025.
    geom = pr.ParallelBeam2D(angles=pr.angles(180), det_count=math.ceil(183 / det_spacing), det_spacing=det_spacing)
    A = pr.XRayTransform(pr.Volume((N, N)), geom)
    sharp, ref = phantoms["sharp"]
    sino = _sino(sharp, geom)
    auto = FBP(A, filter)
    assert auto.backprojector_used == expected
    errors = {kind: _rel(FBP(A, filter, backprojector=kind)(sino).numpy(), ref) for kind in ("voxel", "footprint")}
    other = "voxel" if expected == "footprint" else "footprint"
    assert errors[expected] < 0.9 * errors[other]
    torch.testing.assert_close(auto(sino), FBP(A, filter, backprojector=expected)(sino), rtol=0, atol=0)


def test_auto_backprojector_rule() -> None:
    vol = pr.Volume((N, N))
    par = pr.ParallelBeam2D(angles=pr.angles(8), det_count=366, det_spacing=0.5)
    fbp = FBP(pr.XRayTransform(vol, par))
    assert fbp.backprojector_used == "footprint"
    # decided on the design: a learned response never switches the back-projector
    assert fbp.replace(response=torch.zeros_like(fbp.designed_response)).backprojector_used == "footprint"
    # a fine detector with a window or cutoff that ends the band at the image's Nyquist
    assert FBP(pr.XRayTransform(vol, par), cutoff=0.5).backprojector_used == "voxel"
    assert FBP(pr.XRayTransform(vol, par), "hamming").backprojector_used == "voxel"
    # a detector as coarse as the pixels: footprints whatever the window
    for spacing in (1.0, 0.75):
        for window in ("ram-lak", "hann"):
            coarse = FBP(pr.XRayTransform(vol, par.replace(det_spacing=spacing)), window)
            assert coarse.backprojector_used == "footprint"
    # pixels of 2 mm: a 1 mm detector is finer
    assert FBP(pr.XRayTransform(pr.Volume((N, N), spacing=2.0), par.replace(det_spacing=1.0))).backprojector_used == (
        "footprint"
    )
    # fan beam: the pitch at the isocentre counts (1.0 mm at the detector, magnification 2)
    fan = pr.FanBeam2D(angles=pr.angles(8, arc=2 * math.pi), det_count=400, det_spacing=1.0, src_iso=300.0,
                       src_det=600.0)
    assert FBP(pr.XRayTransform(vol, fan)).backprojector_used == "footprint"
    assert FBP(pr.XRayTransform(vol, fan), backprojector="voxel").backprojector_used == "voxel"
    # 3-D keeps the voxel centres unless asked (the mean would cost s^3)
    cone = pr.ConeBeam3D(angles=pr.angles(8, arc=2 * math.pi), det_shape=(20, 40), det_spacing=1.0, src_iso=300.0,
                         src_det=600.0)
    vol3 = pr.Volume((8, 16, 16))
    assert FBP(pr.XRayTransform(vol3, cone)).backprojector_used == "voxel"
    mean = FBP(pr.XRayTransform(vol3, cone), backprojector="voxel-mean")
    assert mean.backprojector_used == "voxel-mean"
    assert mean.backprojection.domain_shape == cone.proj_shape and mean.backprojection.range_shape == vol3.shape
    with pytest.raises(ValueError, match="'footprint' is for 2-D geometries"):
        FBP(pr.XRayTransform(vol3, cone), backprojector="footprint")


def test_voxel_mean_is_the_mean_over_sub_voxels() -> None:
    vol = pr.Volume((6, 5), spacing=(1.0, 1.5), center=(0.3, -0.2))
    geom = pr.ParallelBeam2D(angles=pr.angles(7), det_count=31, det_spacing=0.5)
    y = torch.randn(7, 31, dtype=torch.float64)
    fbp = FBP(pr.XRayTransform(vol, geom), backprojector="voxel-mean")
    fine = pr.Volume((12, 15), spacing=(0.5, 0.5), center=(0.3, -0.2))  # 2 x 3 sub-voxels of 0.5 mm
    ref = FBP(pr.XRayTransform(fine, geom), backprojector="voxel")(y).reshape(6, 2, 5, 3).mean(dim=(1, 3))
    torch.testing.assert_close(fbp(y), ref, rtol=1e-12, atol=1e-12)


def _cone(detector: str, scan: str) -> tuple[pr.XRayTransform, list[an.Ellipsoid], np.ndarray]:
    n, nz = 40, 24
    vol = pr.Volume((nz, n, n))
    src_iso, src_det = 100.0, 175.0
    radius = n / math.sqrt(2) + 1.0
    du = src_det / src_iso / 1.5
    half = src_det * (math.asin(radius / src_iso) if detector == "cylindrical" else radius / math.sqrt(
        src_iso**2 - radius**2))
    cols = 2 * math.ceil(half / du) + 2
    rows = 2 * math.ceil(0.5 * nz * src_det / (src_iso - radius) / du) + 2
    geom = pr.ConeBeam3D(angles=[0.0], det_shape=(rows, cols), det_spacing=du, src_iso=src_iso, src_det=src_det,
                         detector=detector)
    fan = 2 * math.atan(cols * du / 2 / src_det) if detector == "flat" else cols * du / src_det
    arc = 2 * math.pi if scan == "full" else math.pi + fan + 0.02
    geom = geom.replace(angles=pr.angles(144, arc=arc))
    phantom = an.with_power(an.blobs_3d((0.45 * n, 0.45 * n, 0.4 * nz)), 2)
    return pr.XRayTransform(vol, geom), phantom, an.voxelise(phantom, vol.shape, supersample=2)


@pytest.mark.parametrize("detector", ["flat", "cylindrical"])
@pytest.mark.parametrize("scan", ["full", "short"])
def test_fdk(detector: str, scan: str) -> None:
    # measured: central slices 0.0016-0.0018 (full), 0.0045 (short); whole volume 0.013-0.015 (full)
    A, phantom, ref = _cone(detector, scan)
    rec = FBP(A)(_sino(phantom, A.geometry)).numpy()
    mid = slice(11, 13)  # the two slices next to the mid-plane (z = -/+ 0.5 mm)
    assert _rel(rec[mid], ref[mid]) < (0.0025 if scan == "full" else 0.006)
    if scan == "full":
        assert _rel(rec, ref) < 0.02


@pytest.mark.parametrize("detector", ["flat", "cylindrical"])
def test_short_scan_fdk_off_the_mid_plane(detector: str) -> None:
    # Off the mid-plane FDK is approximate, and more so with Parker weights, where the
    # redundant rays cross z at different heights; for an object that does not change
    # along z, every slice is as good as the mid-plane (measured 0.0016 at most).
    A, _, _ = _cone(detector, "short")
    phantom = an.with_power([an.ellipsoid((2.0, -1.0, 0.0), (15.0, 13.0, 200.0), (0.3, 0.0, 0.0), 1.0),
                             an.ellipsoid((-5.0, 3.0, 0.0), (5.0, 7.0, 200.0), (0.0, 0.0, 0.0), 0.5)], 2)
    ref = an.voxelise(phantom, A.volume.shape, supersample=2)
    rec = FBP(A)(_sino(phantom, A.geometry)).numpy()
    assert max(_rel(rec[k], ref[k]) for k in range(A.volume.shape[0])) < 0.0025


# --- operator properties -----------------------------------------------------------------

# the small FBP / FDK operators of the generic suite (tests/registry.py, tests/test_operators.py)
TINY = sorted(name for name in REGISTRY if name.startswith(("fbp-", "fdk-")) and name != "fbp-after-xray")


@pytest.mark.parametrize("name", TINY)
def test_fbp_is_the_composition_of_its_parts(name: str) -> None:
    fbp = build(name)
    assert fbp.domain_shape == fbp.A.range_shape and fbp.range_shape == fbp.A.domain_shape
    y = torch.randn(*fbp.domain_shape, dtype=torch.float64)
    # the documented composition B @ H @ P
    torch.testing.assert_close(fbp(y), fbp.backprojection(fbp.ramp(fbp.pre(y))))


@pytest.mark.parametrize("name", TINY)
def test_fbp_is_built_from_its_named_steps(name: str) -> None:
    """resolve_backprojector, design_filter, design_weights and build_backprojector give FBP's parts."""
    fbp = build(name)
    A = fbp.A
    vol, geom = A.volume, A.geometry
    window, cutoff = fbp.filter, fbp.cutoff
    kind = resolve_backprojector(fbp.backprojector, vol, geom, window, cutoff)
    assert kind == fbp.backprojector_used != "auto"
    auto = FBP(A, window, cutoff=cutoff, short_scan=fbp.short_scan, parker=fbp.parker).backprojector_used
    assert resolve_backprojector("auto", vol, geom, window, cutoff) == auto
    tau, response = design_filter(geom, window, cutoff)
    assert tau == fbp.ramp.det_spacing
    assert torch.equal(response, fbp.designed_response)
    view, det = design_weights(vol, geom, kind, short_scan=fbp.short_scan, parker=fbp.parker)
    assert torch.equal(view, redundancy_weights(geom, short_scan=fbp.short_scan, parker=fbp.parker))
    assert torch.equal(det, pr.operators.cosine_weights(geom) * fbp_scale(vol, geom, kind))
    assert torch.equal(fbp.designed_weights, view * det)
    y = torch.randn(2, *geom.proj_shape, dtype=torch.float64)
    assert torch.equal(build_backprojector(kind, A, tau)(y), fbp.backprojection(y))


@pytest.mark.parametrize("name", ["fbp-parallel-voxel", "fbp-fan-arc-offset-hann", "fdk-cone-flat"])
def test_gradcheck_input_and_response(name: str) -> None:
    fbp = build(name)
    y = torch.randn(*fbp.domain_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fbp, (y,))
    response = fbp.designed_response.clone().requires_grad_(True)
    # the operator is rebuilt per call here; fast mode checks a random projection of the Jacobian
    assert torch.autograd.gradcheck(lambda r: fbp.replace(response=r)(y.detach()), (response,), fast_mode=True)
    weights = fbp.designed_weights.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: fbp.replace(weights=w)(y.detach()), (weights,), fast_mode=True)


@pytest.mark.parametrize("name", ["fbp-parallel-voxel", "fbp-fan-flat-short", "fdk-cone-cylindrical-short"])
def test_learnable_filter_and_weights_start_at_fbp(name: str) -> None:
    fbp = build(name)
    y = torch.randn(2, *fbp.domain_shape, dtype=torch.float64)
    # a learnable filter initialised to the design reproduces FBP exactly
    response = torch.nn.Parameter(fbp.designed_response.clone())
    learned = fbp.replace(response=response)
    assert torch.equal(learned(y), fbp(y))
    learned(y).pow(2).sum().backward()
    assert response.grad is not None and torch.count_nonzero(response.grad) > 0
    with torch.no_grad():
        response.mul_(1.1)
    assert not torch.allclose(learned(y), fbp(y))
    # learnable pre-weights: the designed ones are applied as two factors, so equal up to rounding
    weights = torch.nn.Parameter(fbp.designed_weights.clone())
    learned = fbp.replace(weights=weights)
    assert torch.equal(learned(y), fbp.replace(weights=fbp.designed_weights)(y))
    torch.testing.assert_close(learned(y), fbp(y), rtol=1e-14, atol=1e-14)
    learned(y).pow(2).sum().backward()
    assert weights.grad is not None and torch.count_nonzero(weights.grad) > 0


def test_designed_weights_are_redundancy_times_cosine() -> None:
    fbp = build("fbp-fan-flat-short")
    g = fbp.A.geometry
    gamma = torch.atan((torch.arange(11, dtype=torch.float64) - 5) * 1.5 / 45)
    torch.testing.assert_close(fbp.designed_weights, redundancy_weights(g) * torch.cos(gamma))
    assert fbp.ramp.det_spacing == pytest.approx(1.5 * 25 / 45)  # filtered at the isocentre
    par = build("fbp-parallel-adjoint")
    torch.testing.assert_close(par.designed_weights, torch.full((4, 1), math.pi / 4, dtype=torch.float64))


def test_bad_input() -> None:
    fan = build("fbp-fan-flat-short").A
    with pytest.raises(ValueError, match="backprojector='adjoint' is for parallel beams only"):
        FBP(fan, backprojector="adjoint")
    with pytest.raises(ValueError, match="backprojector must be one of"):
        FBP(fan, backprojector="ray")
    with pytest.raises(ValueError, match="filter must be one of"):
        FBP(fan, "butterworth")
    with pytest.raises(ValueError, match="cutoff must be in"):
        FBP(fan, cutoff=1.5)
    with pytest.raises(TypeError, match="A must be an XRayTransform"):
        FBP(fan.T)  # type: ignore[arg-type]
    vec = pr.XRayTransform(pr.Volume((4, 4)), pr.VectorGeometry(vectors=[[0, 1, 0, -1, 1, 0]], det_shape=4,
                                                                 beam="parallel"))
    with pytest.raises(TypeError, match="circular scan"):
        FBP(vec)
    with pytest.raises(ValueError, match="response must be a tensor of shape"):
        FBP(fan, response=torch.ones(5))
    with pytest.raises(ValueError, match="do not broadcast"):
        FBP(fan, weights=torch.ones(3, 1))
    with pytest.raises(ValueError, match="short_scan=False needs views around the full circle"):
        FBP(fan, short_scan=False)
    with pytest.raises(ValueError, match="short_scan applies to fan and cone beams"):
        FBP(build("fbp-parallel-voxel").A, short_scan=True)
    too_short = pr.XRayTransform(pr.Volume((8, 8)), pr.FanBeam2D(angles=pr.angles(9, arc=math.pi), det_count=15,
                                                                  det_spacing=1.5, src_iso=25, src_det=45))
    with pytest.raises(ValueError, match="pi \\+ fan angle"):
        FBP(too_short)
    fbp = FBP(fan)
    with pytest.raises(ValueError, match="must have shape"):
        fbp(torch.zeros(3, 11))
    with pytest.raises(TypeError, match="real floating-point"):
        fbp(torch.zeros(fbp.domain_shape, dtype=torch.int32))
