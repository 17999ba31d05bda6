"""The voxel-driven (FBP/FDK) back-projector: transpose, reference, geometry, weights, autograd."""

from __future__ import annotations

import math

import pytest
import torch
from registry import VBP_GEOMETRIES

import precisionrecon as pr
from precisionrecon._kernels import ops, reference
from precisionrecon._kernels.ops import geometry_args
from precisionrecon.operators import VoxelBackprojection

GEOMETRIES = VBP_GEOMETRIES  # shared with the registry of the generic suite (test_operators.py)
CASES = [(name, w) for name in sorted(GEOMETRIES) for w in (False, True)]


def _op(name: str, weighted: bool) -> VoxelBackprojection:
    vol, geom = GEOMETRIES[name]()
    return VoxelBackprojection(vol, geom, distance_weight=weighted)


@pytest.mark.parametrize(("name", "weighted"), CASES)
def test_kernel_matches_reference(name: str, weighted: bool) -> None:
    op = _op(name, weighted)
    n, sp, off, det, beam, curved, w = op._args
    kn, ksp, koff, nu, nv = geometry_args(n, sp, off, det)
    q = torch.randn(2, *op.domain_shape, dtype=torch.float64)
    x = torch.randn(2, *op.range_shape, dtype=torch.float64)
    ref_b = reference.vbp_backproject(q.reshape(2, q.shape[1], -1), op._vectors, kn, ksp, koff, nu, nv, beam, curved, w)
    ref_p = reference.vbp_project(x.reshape(2, -1), op._vectors, kn, ksp, koff, nu, nv, beam, curved, w)
    torch.testing.assert_close(op(q), ref_b.reshape(2, *op.range_shape), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.T(x), ref_p.reshape(2, *op.domain_shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_voxel_on_a_ray_hits_its_pixel(name: str) -> None:
    """A single voxel placed on the ray of pixel k projects with weight 1 (x W) onto pixel k only."""
    _vol, geom = GEOMETRIES[name]()
    vec = geom.to_vectors()
    dim, nu = geom.ndim, geom.det_shape[-1]
    nv = geom.det_shape[0] if dim == 3 else 1
    pix = reference._pixel_positions(vec, dim, nu, nv, geom.curved_kind)  # (views, nv, nu, dim)
    view, iu, iv = 1, nu // 3, nv // 2
    s = vec[view, :dim]
    p = pix[view, iv, iu]
    x = p - 0.8 * s if geom.beam == "parallel" else s + 0.55 * (p - s)
    one_voxel = pr.Volume((1,) * dim, center=tuple(reversed(x.tolist())))
    op = VoxelBackprojection(one_voxel, geom[view : view + 1], distance_weight=False)
    proj = op.T(torch.ones(one_voxel.shape, dtype=torch.float64))[0]
    expected = torch.zeros_like(proj)
    expected[(iv, iu) if dim == 3 else iu] = 1.0
    torch.testing.assert_close(proj, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("detector", ["flat", "arc"])
def test_distance_weight_is_inverse_square_depth(detector: str) -> None:
    """At theta = 0 the source is at (0, src_iso); a voxel at (0, y0) has l = src_iso - y0."""
    src_iso, y0 = 40.0, 7.5
    geom = pr.FanBeam2D(angles=[0.0], det_count=21, det_spacing=1.3, src_iso=src_iso, src_det=70, detector=detector)
    vol = pr.Volume((1, 1), center=(y0, 0.0))
    proj = VoxelBackprojection(vol, geom, distance_weight=True).T(torch.ones(1, 1, dtype=torch.float64))
    assert proj.sum().item() == pytest.approx((src_iso / (src_iso - y0)) ** 2, rel=1e-12)
    assert proj[0, 10].item() == pytest.approx((src_iso / (src_iso - y0)) ** 2, rel=1e-12)


def test_parallel_beam_ignores_distance_weight() -> None:
    vol, geom = GEOMETRIES["parallel2d"]()
    q = torch.randn(geom.proj_shape, dtype=torch.float64)
    a = VoxelBackprojection(vol, geom, distance_weight=True)(q)
    b = VoxelBackprojection(vol, geom, distance_weight=False)(q)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["fan-arc", "cone-flat"])
def test_gradcheck_and_opcheck(name: str) -> None:
    vol, geom = GEOMETRIES[name]()
    tiny_vol = pr.Volume(tuple(max(3, s // 3) for s in vol.shape))
    op = VoxelBackprojection(tiny_vol, geom[:2], distance_weight=True)
    q = torch.randn(2, *op.domain_shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, *op.range_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (q,))
    assert torch.autograd.gradgradcheck(op, (q,))
    assert torch.autograd.gradcheck(op.T, (x,))
    vec, args = op._vectors, op._args
    q_nc = torch.randn(2, 2, *op.domain_shape, dtype=torch.float32).transpose(0, 1)
    for sample in (q, q_nc):
        torch.library.opcheck(ops.vbp_backproject, (sample, vec, *args))
    torch.library.opcheck(ops.vbp_project, (x, vec, *args))


def test_bad_input() -> None:
    op = _op("fan-flat", True)
    with pytest.raises(ValueError, match="q must have shape"):
        op(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="float32 or float64"):
        op(torch.zeros(op.domain_shape, dtype=torch.int64))
    with pytest.raises(TypeError, match="distance_weight"):
        VoxelBackprojection(op.volume, op.geometry, distance_weight=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3-D volume needs a 3-D geometry"):
        VoxelBackprojection(pr.Volume((3, 3, 3)), op.geometry)


@pytest.mark.parametrize("detector", ["flat", "cylindrical"])
@pytest.mark.parametrize("ffs", [False, True])
def test_skipping_unreached_rows_changes_nothing(detector: str, ffs: bool) -> None:
    """The CPU back-projector skips the image rows (and segments of 32 voxels) that a view's
    detector cannot reach in v (``row_segment_reaches``); flag bit 2 visits every row. A 4-turn
    helix over a tall volume, where each view misses most rows and many rows lie on the edge of
    a cone: both give the same result bit for bit, in both directions, with and without the
    distance weight (the reference, which never skips, agrees as well)."""
    n = 4 * 15
    g = pr.HelicalConeBeam(n_views=n, views_per_rotation=15, det_shape=(4, 24), det_spacing=(1.0, 2.0), src_iso=40,
                           src_det=70, pitch=1.0, z_start=-5.5, detector=detector,
                           ffs_angle=[0.01, -0.01] * (n // 2) if ffs else 0.0, ffs_z=[0.1] * n if ffs else 0.0)
    vol = pr.Volume((40, 20, 70), spacing=(0.25, 1.5, 0.7), center=(0.0, 1.0, -2.0))
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, *g.proj_shape, generator=gen, dtype=torch.float64)
    x = torch.randn(2, *vol.shape, generator=gen, dtype=torch.float64)
    for weighted in (False, True):
        op = VoxelBackprojection(vol, g, distance_weight=weighted)
        *args, flags = op._args
        assert flags & 4 == 0
        skip_b, all_b = (ops.vbp_backproject(q, op._vectors, *args, f) for f in (flags, flags | 4))
        skip_p, all_p = (ops.vbp_project(x, op._vectors, *args, f) for f in (flags, flags | 4))
        assert torch.equal(skip_b, all_b) and torch.equal(skip_p, all_p)
        assert float(all_b.abs().sum()) > 0 and float(all_p.abs().sum()) > 0
        kn, ksp, koff, nu, nv = geometry_args(*args[:4])
        ref = reference.vbp_backproject(q.reshape(2, n, -1), op._vectors, kn, ksp, koff, nu, nv, *args[4:], flags)
        torch.testing.assert_close(skip_b, ref.reshape(skip_b.shape), rtol=1e-12, atol=1e-12)


# --- pixel footprints (2-D) -------------------------------------------------------------------

FOOTPRINT_CASES = [(name, w) for name in ("fan-arc", "fan-flat", "parallel2d") for w in (False, True)]


def _footprint(name: str, weighted: bool, pitch: float | None = None) -> VoxelBackprojection:
    vol, geom = GEOMETRIES[name]()
    if pitch is not None:  # a detector finer than the pixels, covering the same width
        geom = geom.replace(det_spacing=pitch, det_count=math.ceil(geom.det_count * geom.det_spacing / pitch))
    return VoxelBackprojection(vol, geom, distance_weight=weighted, footprint=True)


@pytest.mark.parametrize(("name", "weighted"), FOOTPRINT_CASES)
def test_footprint_kernel_matches_reference(name: str, weighted: bool) -> None:
    op = _footprint(name, weighted, pitch=0.5)
    n, sp, off, det, beam, curved, flags = op._args
    assert flags == int(weighted) | 2
    kn, ksp, koff, nu, nv = geometry_args(n, sp, off, det)
    q = torch.randn(2, *op.domain_shape, dtype=torch.float64)
    x = torch.randn(2, *op.range_shape, dtype=torch.float64)
    ref_b = reference.vbp_backproject(q.reshape(2, q.shape[1], -1), op._vectors, kn, ksp, koff, nu, nv, beam, curved,
                                      flags)
    ref_p = reference.vbp_project(x.reshape(2, -1), op._vectors, kn, ksp, koff, nu, nv, beam, curved, flags)
    # the reference projects the corners directly, the kernel by the affine steps (rounding differs)
    torch.testing.assert_close(op(q), ref_b.reshape(2, *op.range_shape), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(op.T(x), ref_p.reshape(2, *op.domain_shape), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["parallel2d", "fan-flat", "fan-arc"])
def test_footprint_weights_sum_to_the_distance_weight(name: str) -> None:
    """Over a detector holding the whole shadow, the weights of a pixel sum to W (1 or (D/l)^2)."""
    op = _footprint(name, True, pitch=0.4)
    wide = op.replace(geometry=op.geometry.replace(det_count=op.geometry.det_count + 40))
    point = VoxelBackprojection(wide.volume, wide.geometry, distance_weight=True)
    ones = torch.ones(*wide.domain_shape, dtype=torch.float64)
    # the point back-projector's taps also sum to W (linear interpolation), at the pixel centre;
    # the footprint's divided differences of cubes round to about 1e-12 relative
    torch.testing.assert_close(wide(ones), point(ones), rtol=1e-10, atol=0)
    assert float(wide(ones).min()) > 0


def test_footprint_is_the_pixel_mean_of_the_point_backprojection() -> None:
    """Parallel beam: the exact area mean, i.e. the limit of the mean over s x s sub-pixels of
    the point back-projector (error O(1/s^2))."""
    vol = pr.Volume((9, 8), spacing=(1.0, 1.2), center=(0.3, -0.4))
    geom = pr.ParallelBeam2D(angles=pr.angles(11) + 0.05, det_count=40, det_spacing=0.45, det_offset=0.2)
    q = torch.randn(11, 40, dtype=torch.float64)
    fp = VoxelBackprojection(vol, geom, footprint=True)(q)
    errors = []
    for s in (8, 16):
        fine = pr.Volume((9 * s, 8 * s), spacing=(1.0 / s, 1.2 / s), center=(0.3, -0.4))
        mean = VoxelBackprojection(fine, geom)(q).reshape(9, s, 8, s).mean(dim=(1, 3))
        errors.append(float((mean - fp).norm() / fp.norm()))
    assert errors[1] < 2e-3  # measured 1.1e-3 (s = 8: 4.3e-3)
    assert errors[1] < 0.4 * errors[0]  # converges as 1/s^2


def test_footprint_gradcheck_and_opcheck() -> None:
    _vol, geom = GEOMETRIES["fan-flat"]()
    op = VoxelBackprojection(pr.Volume((4, 5)), geom[:2], distance_weight=True, footprint=True)
    q = torch.randn(2, *op.domain_shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, *op.range_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (q,))
    assert torch.autograd.gradcheck(op.T, (x,))
    torch.library.opcheck(ops.vbp_backproject, (q, op._vectors, *op._args))
    torch.library.opcheck(ops.vbp_project, (x, op._vectors, *op._args))


def test_footprint_bad_input() -> None:
    vol, geom = GEOMETRIES["parallel3d"]()
    with pytest.raises(ValueError, match="footprint=True needs a 2-D volume"):
        VoxelBackprojection(vol, geom, footprint=True)
    vol, geom = GEOMETRIES["parallel2d"]()
    with pytest.raises(TypeError, match="footprint must be a bool"):
        VoxelBackprojection(vol, geom, footprint=1)  # type: ignore[arg-type]
