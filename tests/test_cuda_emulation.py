"""The CUDA kernels' logic, run on the host: the per-thread bodies of
``cuda_ext/xray_cuda_kernels.h`` in serial loops (``xray_cuda_emu.cpp``) against the CPU
library. This checks the CUDA code paths -- ray-driven forward, atomic scatter, the
deterministic gather adjoint, the voxel-driven pair -- on machines without a GPU; the GPU
tests (``-m gpu``) run the real kernels."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import OPERATORS
from registry import _helical

import precisionrecon as pr
from precisionrecon._kernels.loader import emulator_library
from precisionrecon._kernels.ops import c_geometry, geometry_args
from precisionrecon.operators import VoxelBackprojection

FORWARD, ADJOINT, VBP_BACKPROJECT, VBP_PROJECT = 0, 1, 2, 3

pytestmark = pytest.mark.skipif(emulator_library() is None, reason="CUDA emulator library not built")


def emulate(op: int, src: torch.Tensor, operator, *, deterministic: bool, weighted: int = 0) -> torch.Tensor:
    """Run one emulated CUDA op; ``operator`` supplies the geometry."""
    lib = emulator_library()
    n, sp, off, det, beam, curved = operator._args[:6]
    kn, ksp, koff, nu, nv = geometry_args(n, sp, off, det)
    vectors = operator._vectors.contiguous()
    to_volume = op in (ADJOINT, VBP_BACKPROJECT)
    vol_shape, proj_shape = tuple(n), (vectors.shape[0], *det)
    batch_shape = src.shape[: src.dim() - len(proj_shape if to_volume else vol_shape)]
    out = src.new_empty((*batch_shape, *(vol_shape if to_volume else proj_shape)))
    c_n, c_sp, c_off = c_geometry(kn, ksp, koff)
    fn = lib.pr_emu_f32 if src.dtype == torch.float32 else lib.pr_emu_f64
    src = src.contiguous()
    err = fn(op, src.data_ptr(), out.data_ptr(), math.prod(batch_shape), len(kn), c_n, c_sp, c_off,
             vectors.data_ptr(), vectors.shape[0], nu, nv, beam, curved, weighted, int(deterministic))
    assert err == 0
    return out


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_joseph_kernels_match_cpu(name: str) -> None:
    op = OPERATORS[name]()
    x = torch.randn(3, *op.domain_shape, dtype=torch.float64)
    y = torch.randn(3, *op.range_shape, dtype=torch.float64)
    assert rel(emulate(FORWARD, x, op, deterministic=False), op(x)) < 1e-13
    ref = op.T(y)
    assert rel(emulate(ADJOINT, y, op, deterministic=False), ref) < 1e-13
    assert rel(emulate(ADJOINT, y, op, deterministic=True), ref) < 1e-13


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_gather_adjoint_is_the_exact_transpose(name: str) -> None:
    """Dense matrices: the gather's columns equal the forward's rows."""
    op = OPERATORS[name]()
    nvox = math.prod(op.domain_shape)
    nproj = math.prod(op.range_shape)
    if nvox * nproj > 4_000_000:
        pytest.skip("dense matrix too large for a unit test")
    eye_x = torch.eye(nvox, dtype=torch.float64).reshape(nvox, *op.domain_shape)
    eye_y = torch.eye(nproj, dtype=torch.float64).reshape(nproj, *op.range_shape)
    forward = emulate(FORWARD, eye_x, op, deterministic=False).reshape(nvox, nproj)
    gather = emulate(ADJOINT, eye_y, op, deterministic=True).reshape(nproj, nvox)
    assert torch.equal(forward, gather.T)


def test_float32_and_batch_chunks() -> None:
    """More than one batch chunk (8 items per thread) and float32 accumulation."""
    op = OPERATORS["cone-flat"]()
    x = torch.randn(11, *op.domain_shape)
    y = torch.randn(11, *op.range_shape)
    assert rel(emulate(FORWARD, x, op, deterministic=False), op(x)) < 1e-5
    assert rel(emulate(ADJOINT, y, op, deterministic=False), op.T(y)) < 1e-5
    assert rel(emulate(ADJOINT, y, op, deterministic=True), op.T(y)) < 1e-5


VBP = {
    "parallel2d": lambda: VoxelBackprojection(
        pr.Volume((11, 13), center=(0.4, -0.2)), pr.ParallelBeam2D(angles=pr.angles(7), det_count=19, det_offset=0.3)
    ),
    "fan-arc": lambda: VoxelBackprojection(
        pr.Volume((12, 12)),
        pr.FanBeam2D(angles=pr.angles(6, arc=2 * math.pi), det_count=25, det_spacing=1.5, src_iso=30, src_det=52,
                     detector="arc"),
        distance_weight=True,
    ),
    "parallel2d-footprint": lambda: VoxelBackprojection(
        pr.Volume((11, 13), center=(0.4, -0.2)),
        pr.ParallelBeam2D(angles=pr.angles(7), det_count=41, det_spacing=0.5, det_offset=0.3),
        footprint=True,
    ),
    "fan-flat-footprint": lambda: VoxelBackprojection(
        pr.Volume((12, 12)),
        pr.FanBeam2D(angles=pr.angles(6, arc=2 * math.pi), det_count=35, det_spacing=1.0, src_iso=30, src_det=52),
        distance_weight=True,
        footprint=True,
    ),
    "cone-flat": lambda: VoxelBackprojection(
        pr.Volume((6, 8, 7)),
        pr.ConeBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(10, 14), det_spacing=1.4, src_iso=30,
                      src_det=50),
        distance_weight=True,
    ),
    "cone-cylindrical": lambda: VoxelBackprojection(
        pr.Volume((6, 7, 8)),
        pr.ConeBeam3D(angles=pr.angles(4, arc=2 * math.pi), det_shape=(9, 15), det_spacing=1.5, src_iso=28,
                      src_det=48, detector="cylindrical", det_offset=(0.7, 1.3)),
    ),
    "helical-cylindrical-ffs": lambda: VoxelBackprojection(pr.Volume((6, 7, 8)), _helical("cylindrical", 8),
                                                           distance_weight=True),
}


@pytest.mark.parametrize("name", sorted(VBP))
def test_voxel_driven_kernels_match_cpu(name: str) -> None:
    op = VBP[name]()
    w = op._args[-1]  # flags: distance weight, footprint
    q = torch.randn(3, *op.domain_shape, dtype=torch.float64)
    x = torch.randn(3, *op.range_shape, dtype=torch.float64)
    assert rel(emulate(VBP_BACKPROJECT, q, op, deterministic=False, weighted=w), op(q)) < 1e-13
    for det in (False, True):
        assert rel(emulate(VBP_PROJECT, x, op, deterministic=det, weighted=w), op.T(x)) < 1e-13

