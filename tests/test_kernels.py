"""Compiled kernels against the pure-torch reference; exact transposition; determinism."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon._kernels import reference
from precisionrecon._kernels.loader import cpu_library

requires_lib = pytest.mark.skipif(cpu_library() is None, reason="compiled CPU kernels not built")


def _reference_args(op: pr.XRayTransform) -> tuple:
    n, sp, off, det, beam, curved = op._args
    nu = det[-1]
    nv = det[0] if len(det) == 2 else 1
    return op._vectors, n[::-1], sp[::-1], off[::-1], nu, nv, beam, curved


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@requires_lib
def test_compiled_equals_reference(xray_op: pr.XRayTransform) -> None:
    x = torch.randn(3, *xray_op.domain_shape, dtype=torch.float64)
    y = torch.randn(3, *xray_op.range_shape, dtype=torch.float64)
    args = _reference_args(xray_op)
    y_ref = reference.forward(x, *args).reshape(y.shape)
    x_ref = reference.adjoint(y.reshape(3, -1), *args).reshape(x.shape)
    assert _rel(xray_op(x), y_ref) < 1e-10
    assert _rel(xray_op.T(y), x_ref) < 1e-10


@requires_lib
def test_compiled_equals_reference_float32(xray_op: pr.XRayTransform) -> None:
    x = torch.randn(*xray_op.domain_shape, dtype=torch.float32)
    y = torch.randn(*xray_op.range_shape, dtype=torch.float32)
    args = _reference_args(xray_op)
    assert _rel(xray_op(x), reference.forward(x[None], *args).reshape(y.shape)) < 1e-5
    assert _rel(xray_op.T(y), reference.adjoint(y.reshape(1, -1), *args).reshape(x.shape)) < 1e-5


def _dense(op: pr.XRayTransform, adjoint: bool) -> torch.Tensor:
    shape = op.range_shape if adjoint else op.domain_shape
    n = int(torch.tensor(shape).prod())
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    out = op.T(eye) if adjoint else op(eye)
    return out.reshape(n, -1)


@pytest.mark.parametrize("name", ["parallel2d-odd-nonsquare-aniso-offset", "fan-arc-offset", "cone-cylindrical-offset"])
def test_adjoint_is_exact_transpose_bitwise(name: str) -> None:
    from conftest import OPERATORS

    op = OPERATORS[name]()
    forward = _dense(op, adjoint=False)  # rows: voxels, columns: rays
    back = _dense(op, adjoint=True)  # rows: rays, columns: voxels
    assert torch.equal(forward, back.T)


@requires_lib
@pytest.mark.parametrize("kind", ["fan-xray", "cone-xray", "parallel-footprint", "fan-footprint"])
def test_result_independent_of_thread_count(kind: str) -> None:
    """Threads own disjoint outputs (no atomics), so 1, 2 and 3 threads agree bit for bit;
    the parallel footprint back-projector splits rows over threads within blocks of views."""
    fan = pr.FanBeam2D(angles=pr.angles(33, arc=6.28), det_count=61, det_spacing=1.5, src_iso=80, src_det=150)
    if kind == "fan-xray":
        op = pr.XRayTransform(pr.Volume((40, 44)), fan)
    elif kind == "cone-xray":  # threads own slabs of slices; one volume takes the grouped-rows walk
        op = pr.XRayTransform(pr.Volume((20, 22, 26)), pr.ConeBeam3D(angles=pr.angles(9, arc=6.28), det_shape=(21, 30),
                                                                      det_spacing=1.4, src_iso=60, src_det=110))
    else:
        geometry = pr.ParallelBeam2D(angles=pr.angles(33), det_count=61) if kind.startswith("parallel") else fan
        op = pr.VoxelBackprojection(pr.Volume((40, 44)), geometry, footprint=True).T  # forward: volume -> rays
    x = torch.rand(5, *op.domain_shape)
    y = torch.rand(5, *op.range_shape)
    old = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append((op(x), op.T(y), op.T(y[1])))
    finally:
        torch.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


def _run_without_library(setup: str, env: dict[str, str]) -> list[str]:
    code = (
        "import warnings, torch, precisionrecon as pr\n"
        + setup
        + "op = pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(angles=pr.angles(4), det_count=9))\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    op(torch.ones(8, 8)); op(torch.ones(8, 8))\n"
        "print(sum('pure-PyTorch reference' in str(x.message) for x in w))\n"
        "print(repr(float(op(torch.ones(8, 8, dtype=torch.float64)).sum())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_missing_library_warns_once_and_falls_back() -> None:
    setup = "import pathlib, precisionrecon._kernels.loader as L; L.LIB_DIR = pathlib.Path('/nonexistent')\n"
    count, total = _run_without_library(setup, {"PATH": ""})
    assert int(count) == 1
    op = pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(angles=pr.angles(4), det_count=9))
    assert float(total) == pytest.approx(float(op(torch.ones(8, 8, dtype=torch.float64)).sum()), rel=1e-12)


def test_forced_reference_is_silent() -> None:
    count, _ = _run_without_library("", {"PATH": "", "PRECISIONRECON_KERNELS": "reference"})
    assert int(count) == 0


GROUP_CASES = {
    # one float32 image in 2-D takes the grouped SIMD walk (AVX-512 builds); these cover
    # full groups, partial groups, windows too wide for one permute (wide detector pixels)
    # and groups whose rays change main axis (fan beam near 45 degrees)
    "parallel-256": lambda: pr.XRayTransform(
        pr.Volume((256, 256)), pr.ParallelBeam2D(angles=pr.angles(23), det_count=363)
    ),
    "parallel-wide-pixels": lambda: pr.XRayTransform(
        pr.Volume((64, 80), spacing=(0.7, 1.2)),
        pr.ParallelBeam2D(angles=pr.angles(17, arc=6.2), det_count=45, det_spacing=3.1, det_offset=2.2),
    ),
    # 3-D: one float32 volume walks groups of 8 detector rows of a column (rows_forward and
    # rows_adjoint): full and partial groups, a cylindrical detector, rows reaching past the
    # volume, and a tilted detector whose rows do not share the in-plane line (one ray at a time)
    "cone-flat-48": lambda: pr.XRayTransform(
        pr.Volume((36, 40, 48), spacing=(1.1, 0.9, 1.0)),
        pr.ConeBeam3D(angles=pr.angles(7, arc=6.28), det_shape=(37, 70), det_spacing=(1.3, 1.2), src_iso=90,
                      src_det=160),
    ),
    "cone-cylindrical-48": lambda: pr.XRayTransform(
        pr.Volume((30, 40, 48)),
        pr.ConeBeam3D(angles=pr.angles(5, arc=6.28), det_shape=(44, 64), det_spacing=(1.6, 1.5), src_iso=80,
                      src_det=150, detector="cylindrical", det_offset=(0.7, -0.4)),
    ),
    "cone-tilted": lambda: pr.XRayTransform(
        pr.Volume((20, 24, 28)),
        pr.VectorGeometry(vectors=np.array([[30 * s, 30 * c, 1.0, -20 * s, -20 * c, -1.0, 1.2 * c, -1.2 * s, 0.1,
                                             0.05, 0.0, 1.3] for c, s in ((1.0, 0.0), (0.6, 0.8), (0.0, -1.0))]),
                          det_shape=(19, 30), beam="cone"),
    ),
    "fan-arc": lambda: pr.XRayTransform(
        pr.Volume((128, 120)),
        pr.FanBeam2D(angles=pr.angles(19, arc=6.28), det_count=301, det_spacing=1.0, src_iso=150, src_det=300,
                     detector="arc"),
    ),
}


@requires_lib
@pytest.mark.parametrize("name", sorted(GROUP_CASES))
def test_single_float32_image_matches_reference(name: str) -> None:
    op = GROUP_CASES[name]()
    x = torch.rand(*op.domain_shape, dtype=torch.float64)
    expected = reference.forward(x[None], *_reference_args(op)).reshape(op.range_shape)
    assert _rel(op(x.float()).double(), expected) < 1e-6
    assert pr.testing.adjoint_error(op, dtype=torch.float32) < 1e-5


SINGLE_IMAGE_TRANSPOSE_CASES = {
    # lane groups with a fixed 16-voxel window (bins a pixel wide), with windows found per slice
    # (bins 3.1 pixels wide), with bins finer than a pixel (two rays per pixel), and a fan whose
    # groups near 45 degrees mix main axes (those rays take the one-ray walk both ways)
    "parallel": lambda: pr.XRayTransform(pr.Volume((20, 24)), pr.ParallelBeam2D(angles=pr.angles(9), det_count=35)),
    "parallel-wide-bins": lambda: pr.XRayTransform(
        pr.Volume((22, 18), spacing=(0.7, 1.2)),
        pr.ParallelBeam2D(angles=pr.angles(7, arc=6.2), det_count=19, det_spacing=3.1, det_offset=2.2),
    ),
    "parallel-fine-bins": lambda: pr.XRayTransform(
        pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(6), det_count=47, det_spacing=0.5)
    ),
    "fan": lambda: pr.XRayTransform(
        pr.Volume((18, 20)),
        pr.FanBeam2D(angles=pr.angles(8, arc=6.28), det_count=41, det_spacing=1.0, src_iso=40, src_det=80),
    ),
    # 3-D (column_forward / column_adjoint): full and partial row groups, a cylindrical
    # detector, and a cone so steep that the rows of a column change main axis
    "cone": lambda: pr.XRayTransform(
        pr.Volume((8, 9, 10)),
        pr.ConeBeam3D(angles=pr.angles(4, arc=6.28), det_shape=(13, 11), det_spacing=1.3, src_iso=30, src_det=55),
    ),
    "cone-cylindrical": lambda: pr.XRayTransform(
        pr.Volume((9, 8, 10)),
        pr.ConeBeam3D(angles=pr.angles(3, arc=6.28), det_shape=(9, 12), det_spacing=(1.4, 1.2), src_iso=30,
                      src_det=50, detector="cylindrical", det_offset=(0.4, -0.3)),
    ),
    "cone-steep": lambda: pr.XRayTransform(
        pr.Volume((8, 8, 14)),
        pr.ConeBeam3D(angles=pr.angles(3, arc=6.28), det_shape=(30, 7), det_spacing=2.0, src_iso=12, src_det=24),
    ),
}


@requires_lib
@pytest.mark.parametrize("name", sorted(SINGLE_IMAGE_TRANSPOSE_CASES))
def test_single_float32_image_adjoint_is_exact_transpose_bitwise(name: str) -> None:
    """One float32 image at a time (the lane-group walks of view_forward_2d and
    view_adjoint_2d, column_forward and column_adjoint in 3-D): the matrix of the forward,
    column by column, is bit for bit the transpose of the back-projection's, row by row; and
    it agrees with float64 to float32 rounding (the lanes' float offsets move a tap by about
    1e-6 voxel)."""
    op = SINGLE_IMAGE_TRANSPOSE_CASES[name]()
    n_vox = int(np.prod(op.domain_shape))
    n_ray = int(np.prod(op.range_shape))
    eye_vox = torch.eye(n_vox, dtype=torch.float32).reshape(n_vox, *op.domain_shape)
    eye_ray = torch.eye(n_ray, dtype=torch.float32).reshape(n_ray, *op.range_shape)
    forward = torch.stack([op(e).reshape(-1) for e in eye_vox], dim=1)  # rays x voxels
    back = torch.stack([op.T(e).reshape(-1) for e in eye_ray], dim=0)  # rays x voxels
    assert forward.abs().sum() > 0
    assert torch.equal(forward, back)
    exact = _dense(op, adjoint=False).T  # rays x voxels, float64
    assert float((forward.double() - exact).abs().max()) < 1e-5 * float(exact.abs().max())
