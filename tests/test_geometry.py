"""Geometry values: vectors, repr round trip, slicing, immutability, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon import ConeBeam3D, FanBeam2D, ParallelBeam2D, ParallelBeam3D, VectorGeometry  # noqa: F401

GEOMETRIES = [
    pr.ParallelBeam2D(angles=pr.angles(6), det_count=9, det_spacing=0.5, det_offset=0.25),
    pr.FanBeam2D(angles=pr.angles(5, arc=2 * math.pi), det_count=7, det_spacing=1.5, src_iso=10, src_det=25,
                 detector="arc", det_offset=0.4),
    pr.ParallelBeam3D(angles=pr.angles(4), det_shape=(3, 5), det_spacing=(1.0, 0.5), det_offset=(0.1, -0.2)),
    pr.ConeBeam3D(angles=pr.angles(4), det_shape=(3, 5), det_spacing=(1.0, 0.5), src_iso=10, src_det=30,
                  detector="cylindrical"),
    pr.VectorGeometry(vectors=np.arange(24, dtype=float).reshape(4, 6) + 1, det_shape=5, beam="cone"),
]


def test_angles_helper() -> None:
    a = pr.angles(4, arc=math.pi, start=0.5)
    assert a.dtype == torch.float64
    torch.testing.assert_close(a, torch.tensor([0.5, 0.5 + math.pi / 4, 0.5 + math.pi / 2, 0.5 + 3 * math.pi / 4],
                                               dtype=torch.float64))


@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: type(g).__name__)
def test_repr_rebuilds(geom: pr.Geometry) -> None:
    rebuilt = eval(repr(geom))
    assert rebuilt == geom
    assert torch.equal(rebuilt.to_vectors(), geom.to_vectors())


@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: type(g).__name__)
def test_vectors_shape_and_slicing(geom: pr.Geometry) -> None:
    vec = geom.to_vectors()
    assert vec.dtype == torch.float64
    assert vec.shape == (geom.n_views, 6 if geom.ndim == 2 else 12)
    sub = geom[::2]
    assert type(sub) is type(geom)
    assert torch.equal(sub.to_vectors(), vec[::2])
    assert torch.equal(geom[1].to_vectors(), vec[1:2])
    assert torch.equal(geom[[0, 2]].to_vectors(), vec[[0, 2]])
    assert geom.proj_shape == (geom.n_views, *geom.det_shape)
    with pytest.raises(ValueError, match="no view"):
        geom[5:5]


@pytest.mark.parametrize("geom", GEOMETRIES[:4], ids=lambda g: type(g).__name__)
def test_vector_geometry_projects_identically(geom: pr.Geometry) -> None:
    vol = pr.Volume((6, 7) if geom.ndim == 2 else (4, 6, 7))
    x = torch.rand(vol.shape, dtype=torch.float64)
    a = pr.XRayTransform(vol, geom)(x)
    b = pr.XRayTransform(vol, geom.to_vector_geometry())(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_immutable_and_hashable() -> None:
    geom = GEOMETRIES[0]
    with pytest.raises(AttributeError):
        geom.det_count = 3  # type: ignore[misc]
    assert hash(geom) == hash(eval(repr(geom)))
    assert geom.replace(det_count=11).det_count == 11


def test_parallel_vectors_convention() -> None:
    # angle 0: rays along -y (towards row 0, along the image columns), detector u along +x
    vec = pr.ParallelBeam2D(angles=[0.0], det_count=3, det_spacing=2.0, det_offset=0.5).to_vectors()[0]
    torch.testing.assert_close(vec, torch.tensor([0.0, -1.0, 0.5, 0.0, 2.0, 0.0], dtype=torch.float64))


def test_fan_vectors_distances() -> None:
    geom = pr.FanBeam2D(angles=pr.angles(7, arc=2 * math.pi), det_count=5, det_spacing=1.0, src_iso=40, src_det=100)
    vec = geom.to_vectors()
    src, det, u = vec[:, :2], vec[:, 2:4], vec[:, 4:]
    torch.testing.assert_close(src.norm(dim=1), torch.full((7,), 40.0, dtype=torch.float64))
    torch.testing.assert_close((det - src).norm(dim=1), torch.full((7,), 100.0, dtype=torch.float64))
    torch.testing.assert_close((u * (det - src)).sum(1), torch.zeros(7, dtype=torch.float64), atol=1e-12, rtol=0)


def test_arc_offset_stays_on_circle() -> None:
    geom = pr.FanBeam2D(angles=[0.3], det_count=5, det_spacing=1.0, src_iso=40, src_det=100, detector="arc",
                        det_offset=7.0)
    vec = geom.to_vectors()[0]
    src, det, u = vec[:2], vec[2:4], vec[4:]
    assert float((det - src).norm()) == pytest.approx(100.0)
    assert float(torch.dot(u, det - src)) == pytest.approx(0.0, abs=1e-12)
    centre = pr.FanBeam2D(angles=[0.3], det_count=5, det_spacing=1.0, src_iso=40, src_det=100,
                          detector="arc").to_vectors()[0]
    cos = torch.dot(det - src, centre[2:4] - src) / 100.0**2
    assert math.acos(min(1.0, float(cos))) == pytest.approx(7.0 / 100.0, rel=1e-9)


def test_cone_midplane_equals_fan() -> None:
    angles = pr.angles(6, arc=2 * math.pi)
    fan = pr.FanBeam2D(angles=angles, det_count=9, det_spacing=1.2, src_iso=20, src_det=40, detector="arc")
    cone = pr.ConeBeam3D(angles=angles, det_shape=(1, 9), det_spacing=(1.0, 1.2), src_iso=20, src_det=40,
                         detector="cylindrical")
    x2 = torch.rand(10, 11, dtype=torch.float64)
    x3 = x2[None].expand(1, 10, 11).contiguous()
    y2 = pr.XRayTransform(pr.Volume((10, 11)), fan)(x2)
    y3 = pr.XRayTransform(pr.Volume((1, 10, 11)), cone)(x3)
    # a one-slice volume: the mid-plane ray interpolates the slice with weight 1
    torch.testing.assert_close(y3[:, 0, :], y2, rtol=1e-12, atol=1e-12)


def test_volume() -> None:
    vol = pr.Volume((4, 6), spacing=(0.5, 2.0), center=(1.0, 0.0))
    assert vol.ndim == 2
    assert vol.extent == (2.0, 12.0)
    assert eval("pr." + repr(vol)) == vol
    _, _, off = vol.kernel_params()
    assert off == [1.5 - 2.0, 2.5]
