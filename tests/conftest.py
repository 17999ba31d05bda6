"""One registry of operators that the generic suites run through."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: the suite runs many tiny kernels, and on a
# busy 2-core machine spinning threads stall each other (seen: 100x slower gradchecks).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import precisionrecon as pr


def _random_vectors_2d(n: int, beam: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    th = rng.uniform(0, 2 * math.pi, n)
    rows = []
    for t in th:
        c, s = math.cos(t), math.sin(t)
        if beam == "parallel":
            rows.append([-s + 0.1 * rng.normal(), -c, 0.3 * c, -0.3 * s, 0.9 * c, -0.9 * s])
        else:
            r = rng.uniform(25, 35)
            src = np.array([r * s, r * c])
            det = np.array([-15 * s + rng.normal(), -15 * c])
            w = (det - src) / np.linalg.norm(det - src)
            u = 1.1 * np.array([-w[1], w[0]])  # perpendicular to d - s, as a curved detector needs
            rows.append([*src, *det, *u])
    return np.asarray(rows)


def _random_vectors_3d(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for t in rng.uniform(0, 2 * math.pi, n):
        c, s = math.cos(t), math.sin(t)
        z = rng.uniform(-3, 3)
        rows.append([30 * s, 30 * c, z, -20 * s, -20 * c, -z, 1.2 * c, -1.2 * s, 0.1, 0.05, 0.0, 1.3])
    return np.asarray(rows)


# name -> factory of a small XRayTransform covering one feature of the geometry space
OPERATORS: dict[str, Callable[[], pr.XRayTransform]] = {
    "parallel2d-even": lambda: pr.XRayTransform(
        pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(12), det_count=24)
    ),
    "parallel2d-odd-nonsquare-aniso-offset": lambda: pr.XRayTransform(
        pr.Volume((13, 19), spacing=(0.7, 1.3), center=(0.5, -1.0)),
        pr.ParallelBeam2D(angles=pr.angles(11, arc=2 * math.pi, start=0.1), det_count=27, det_spacing=0.9,
                          det_offset=1.7),
    ),
    "parallel2d-single-view": lambda: pr.XRayTransform(
        pr.Volume((10, 12)), pr.ParallelBeam2D(angles=[0.3], det_count=15)
    ),
    "parallel2d-axis-aligned": lambda: pr.XRayTransform(
        pr.Volume((9, 8)), pr.ParallelBeam2D(angles=[0.0, math.pi / 4, math.pi / 2, math.pi], det_count=13)
    ),
    "fan-flat": lambda: pr.XRayTransform(
        pr.Volume((15, 16)),
        pr.FanBeam2D(angles=pr.angles(10, arc=2 * math.pi), det_count=25, det_spacing=1.6, src_iso=30, src_det=55),
    ),
    "fan-flat-offset-aniso": lambda: pr.XRayTransform(
        pr.Volume((14, 11), spacing=(1.2, 0.8)),
        pr.FanBeam2D(angles=pr.angles(9, arc=math.pi + 0.8), det_count=22, det_spacing=1.5, src_iso=28, src_det=50,
                     det_offset=-2.3),
    ),
    "fan-arc-offset": lambda: pr.XRayTransform(
        pr.Volume((16, 15)),
        pr.FanBeam2D(angles=pr.angles(8, arc=2 * math.pi), det_count=23, det_spacing=1.7, src_iso=30, src_det=52,
                     detector="arc", det_offset=1.1),
    ),
    "vector2d-parallel": lambda: pr.XRayTransform(
        pr.Volume((12, 14)),
        pr.VectorGeometry(vectors=_random_vectors_2d(7, "parallel", 1), det_shape=18, beam="parallel"),
    ),
    "vector2d-cone-curved": lambda: pr.XRayTransform(
        pr.Volume((12, 13)),
        pr.VectorGeometry(vectors=_random_vectors_2d(6, "cone", 2), det_shape=21, beam="cone", detector="curved"),
    ),
    "parallel3d": lambda: pr.XRayTransform(
        pr.Volume((6, 8, 9)), pr.ParallelBeam3D(angles=pr.angles(7), det_shape=(8, 13), det_spacing=(1.0, 1.0))
    ),
    "parallel3d-aniso-offset": lambda: pr.XRayTransform(
        pr.Volume((7, 6, 8), spacing=(1.3, 0.9, 1.1), center=(0.4, 0.0, -0.3)),
        pr.ParallelBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(9, 12), det_spacing=(1.1, 0.8),
                          det_offset=(0.6, -1.2)),
    ),
    "cone-flat": lambda: pr.XRayTransform(
        pr.Volume((8, 9, 10)),
        pr.ConeBeam3D(angles=pr.angles(6, arc=2 * math.pi), det_shape=(12, 16), det_spacing=(1.4, 1.5),
                      src_iso=30, src_det=50),
    ),
    "cone-cylindrical-offset": lambda: pr.XRayTransform(
        pr.Volume((7, 10, 9), spacing=(1.2, 1.0, 0.9)),
        pr.ConeBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(11, 15), det_spacing=(1.5, 1.6),
                      src_iso=28, src_det=48, detector="cylindrical", det_offset=(0.7, 1.3)),
    ),
    "cone-single-view": lambda: pr.XRayTransform(
        pr.Volume((6, 7, 8)),
        pr.ConeBeam3D(angles=[0.7], det_shape=(9, 11), det_spacing=1.5, src_iso=25, src_det=45),
    ),
    "vector3d-cone": lambda: pr.XRayTransform(
        pr.Volume((7, 8, 9)), pr.VectorGeometry(vectors=_random_vectors_3d(5, 3), det_shape=(10, 12), beam="cone")
    ),
}


@pytest.fixture(params=sorted(OPERATORS))
def xray_op(request: pytest.FixtureRequest) -> pr.XRayTransform:
    return OPERATORS[request.param]()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
