"""Gradients of the X-ray transform with respect to the geometry (analytic, kernel-side)."""

from __future__ import annotations

import math

import pytest
import torch

import precisionrecon as pr
from precisionrecon.geometry import circular_vectors, parallel_vectors


def smooth_image(shape: tuple[int, ...], batch: int = 2) -> torch.Tensor:
    """A C^2 bump (so the projection is smooth wherever no sample sits on a voxel edge)."""
    grids = torch.meshgrid(*[torch.linspace(-1, 1, s, dtype=torch.float64) for s in shape], indexing="ij")
    r2 = sum(g**2 for g in grids)
    img = torch.clamp(1 - r2 / 0.7, min=0) ** 3
    return torch.stack([img * (1 + 0.5 * b) for b in range(batch)])


CASES = {
    "parallel2d": lambda: (pr.Volume((12, 13)), pr.ParallelBeam2D(angles=pr.angles(3, start=0.1), det_count=9,
                                                                  det_spacing=1.7, det_offset=0.3)),
    "fan-flat": lambda: (pr.Volume((12, 13), spacing=(1.1, 0.9)),
                         pr.FanBeam2D(angles=pr.angles(3, arc=2 * math.pi, start=0.1), det_count=9, det_spacing=2.1,
                                      src_iso=30, src_det=50, det_offset=0.4)),
    "fan-arc": lambda: (pr.Volume((12, 13)),
                        pr.FanBeam2D(angles=pr.angles(3, arc=2 * math.pi, start=0.1), det_count=9, det_spacing=2.1,
                                     src_iso=30, src_det=50, detector="arc")),
    "parallel3d": lambda: (pr.Volume((6, 7, 8)), pr.ParallelBeam3D(angles=pr.angles(2, start=0.1), det_shape=(5, 7),
                                                                   det_spacing=1.6)),
    "cone-flat": lambda: (pr.Volume((6, 7, 8)),
                          pr.ConeBeam3D(angles=pr.angles(2, arc=2 * math.pi, start=0.1), det_shape=(5, 6),
                                        det_spacing=2.0, src_iso=30, src_det=50, det_offset=(0.3, -0.2))),
    "cone-cylindrical": lambda: (pr.Volume((6, 7, 8)),
                                 pr.ConeBeam3D(angles=pr.angles(2, arc=2 * math.pi, start=0.1), det_shape=(5, 6),
                                               det_spacing=2.0, src_iso=30, src_det=50, detector="cylindrical")),
}


def _parametric(vol: pr.Volume, geom: pr.Geometry) -> pr.ParametricXRayTransform:
    return pr.ParametricXRayTransform(vol, det_shape=geom.det_shape, beam=geom.beam,
                                      detector="curved" if geom.curved else "flat")


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_image_gradient_match_the_xray_transform(name: str) -> None:
    vol, geom = CASES[name]()
    P = _parametric(vol, geom)
    A = pr.XRayTransform(vol, geom)
    x = smooth_image(vol.shape).requires_grad_(True)
    y = P(x, geom.to_vectors())
    torch.testing.assert_close(y, A(x.detach()), rtol=0, atol=0)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad((y * g).sum(), x)
    torch.testing.assert_close(gx, A.T(g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_vectors(name: str) -> None:
    vol, geom = CASES[name]()
    P = _parametric(vol, geom)
    x = smooth_image(vol.shape)
    vec = geom.to_vectors().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: P(x, v), (vec,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_image_and_vectors_together() -> None:
    vol, geom = CASES["fan-flat"]()
    P = _parametric(vol, geom)
    x = smooth_image(vol.shape).requires_grad_(True)
    vec = geom.to_vectors().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, v: P(a, v), (x, vec), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("detector", ["flat", "arc"])
def test_gradcheck_circular_parameters_2d(detector: str) -> None:
    """angles, src_iso, src_det, detector offset and tilt through circular_vectors."""
    vol = pr.Volume((12, 13))
    P = pr.ParametricXRayTransform(vol, det_shape=9, beam="cone", detector="curved" if detector == "arc" else "flat")
    x = smooth_image(vol.shape)
    th = pr.angles(3, arc=2 * math.pi, start=0.1).clone().requires_grad_(True)
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (30.0, 50.0, 0.4, 0.05)]

    def project(th, src_iso, src_det, offset, tilt):
        vec = circular_vectors(th, src_iso, src_det, 2.1, offset, detector == "arc", tilt=tilt if detector == "flat"
                               else 0.0)
        return P(x, vec)

    assert torch.autograd.gradcheck(project, (th, *params), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_circular_parameters_3d() -> None:
    vol = pr.Volume((6, 7, 8))
    P = pr.ParametricXRayTransform(vol, det_shape=(5, 6), beam="cone")
    x = smooth_image(vol.shape)
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (30.0, 50.0, 0.3, -0.2, 0.04)]

    def project(src_iso, src_det, ou, ov, tilt):
        vec = circular_vectors(pr.angles(2, arc=2 * math.pi, start=0.1), src_iso, src_det, 2.0, ou, False, dv=2.0,
                               offset_v=ov, tilt=tilt)
        return P(x, vec)

    assert torch.autograd.gradcheck(project, tuple(params), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_unbatched_input() -> None:
    """No batch dimension: the same gradient as a batch of one."""
    vol, geom = CASES["fan-arc"]()
    P = _parametric(vol, geom)
    x = smooth_image(vol.shape, batch=1)
    vec = geom.to_vectors().clone().requires_grad_(True)
    g = torch.randn(geom.proj_shape, dtype=torch.float64)
    (one,) = torch.autograd.grad((P(x[0], vec) * g).sum(), vec)
    (batched,) = torch.autograd.grad((P(x, vec) * g).sum(), vec)
    assert one.abs().max() > 0
    torch.testing.assert_close(one, batched, rtol=1e-12, atol=1e-12)


def test_gradcheck_parallel_parameters() -> None:
    vol = pr.Volume((12, 13))
    P = pr.ParametricXRayTransform(vol, det_shape=9, beam="parallel")
    x = smooth_image(vol.shape)
    th = pr.angles(3, start=0.1).clone().requires_grad_(True)
    offset = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, o: P(x, parallel_vectors(t, 1.7, o)), (th, offset), eps=1e-6,
                                    atol=1e-5, rtol=1e-3)


def test_vector_functions_reproduce_the_geometry_classes() -> None:
    th = pr.angles(5, arc=2 * math.pi)
    fan = pr.FanBeam2D(angles=th, det_count=9, det_spacing=1.3, src_iso=30, src_det=50, det_offset=0.7)
    torch.testing.assert_close(circular_vectors(th, 30.0, 50.0, 1.3, 0.7), fan.to_vectors(), rtol=0, atol=1e-14)
    par = pr.ParallelBeam3D(angles=th, det_shape=(4, 6), det_spacing=(1.1, 0.9), det_offset=(0.2, -0.3))
    torch.testing.assert_close(parallel_vectors(th, 0.9, -0.3, dv=1.1, offset_v=0.2), par.to_vectors(), rtol=0,
                               atol=1e-14)


def test_tilt_rotates_the_detector() -> None:
    base = circular_vectors(pr.angles(4, arc=2 * math.pi), 30.0, 50.0, 1.0, 0.0, dv=1.0, tilt=0.0)
    tilted = circular_vectors(pr.angles(4, arc=2 * math.pi), 30.0, 50.0, 1.0, 0.0, dv=1.0, tilt=0.3)
    u0, v0, u1 = base[:, 6:9], base[:, 9:12], tilted[:, 6:9]
    torch.testing.assert_close((u1 * u0).sum(1), torch.full((4,), math.cos(0.3), dtype=torch.float64))
    torch.testing.assert_close((u1 * v0).sum(1), torch.full((4,), math.sin(0.3), dtype=torch.float64))


def test_bad_input() -> None:
    vol = pr.Volume((8, 8))
    P = pr.ParametricXRayTransform(vol, det_shape=9, beam="parallel")
    with pytest.raises(ValueError, match=r"vectors must have shape \(n_views, 6\)"):
        P(torch.zeros(8, 8), torch.zeros(3, 12))
    with pytest.raises(ValueError, match="finite"):
        P(torch.zeros(8, 8), torch.full((3, 6), float("nan")))
    with pytest.raises(TypeError, match=r"vectors must be a torch\.Tensor"):
        P(torch.zeros(8, 8), [[0.0] * 6])
    with pytest.raises(ValueError, match="det_shape"):
        pr.ParametricXRayTransform(vol, det_shape=(3, 4), beam="parallel")
    with pytest.raises(ValueError, match="beam must be one of"):
        pr.ParametricXRayTransform(vol, det_shape=9, beam="fan")
