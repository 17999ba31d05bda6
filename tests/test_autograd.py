"""gradcheck / gradgradcheck in float64, opcheck on every custom op, torch.compile."""

from __future__ import annotations

import math

import pytest
import torch

import precisionrecon as pr
from precisionrecon._kernels import ops

TINY = {
    "parallel2d": lambda: pr.XRayTransform(
        pr.Volume((5, 6), spacing=(1.0, 0.8)), pr.ParallelBeam2D(angles=pr.angles(4), det_count=7, det_offset=0.3)
    ),
    "fan-arc": lambda: pr.XRayTransform(
        pr.Volume((5, 5)),
        pr.FanBeam2D(angles=pr.angles(3, arc=2 * math.pi), det_count=8, det_spacing=1.4, src_iso=12, src_det=20,
                     detector="arc"),
    ),
    "cone-flat": lambda: pr.XRayTransform(
        pr.Volume((3, 4, 4)),
        pr.ConeBeam3D(angles=pr.angles(3), det_shape=(4, 5), det_spacing=1.3, src_iso=12, src_det=20),
    ),
    "parallel3d": lambda: pr.XRayTransform(
        pr.Volume((3, 4, 3)), pr.ParallelBeam3D(angles=pr.angles(2), det_shape=(3, 5))
    ),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradcheck(name: str) -> None:
    op = TINY[name]()
    x = torch.randn(2, *op.domain_shape, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, *op.range_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    assert torch.autograd.gradgradcheck(op, (x,))
    assert torch.autograd.gradcheck(op.T, (y,))
    assert torch.autograd.gradgradcheck(op.T, (y,))


@pytest.mark.parametrize("name", sorted(TINY))
def test_opcheck(name: str) -> None:
    op = TINY[name]()
    args = op._args
    vec = op._vectors
    x = torch.randn(2, *op.domain_shape, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, *op.range_shape, dtype=torch.float64, requires_grad=True)
    # non-contiguous inputs (a transposed batch of 2 x 2) and float32
    x_nc = torch.randn(2, 2, *op.domain_shape, dtype=torch.float32).transpose(0, 1)
    y_nc = torch.randn(2, 2, *op.range_shape, dtype=torch.float32).transpose(0, 1)
    for sample in (x, x_nc):
        torch.library.opcheck(ops.xray_forward, (sample, vec, *args))
    for sample in (y, y_nc):
        torch.library.opcheck(ops.xray_adjoint, (sample, vec, *args))
