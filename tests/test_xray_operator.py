"""Generic operator suite over the registry: adjointness, linearity, batching, norm."""

from __future__ import annotations

import pytest
import torch

import precisionrecon as pr

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_shape", [(), (2,), (2, 3)])
def test_adjoint_error(xray_op: pr.XRayTransform, dtype: torch.dtype, batch_shape: tuple[int, ...]) -> None:
    err = pr.testing.adjoint_error(xray_op, dtype=dtype, seed=1, batch_shape=batch_shape)
    assert err <= TOL[dtype], err


def test_transpose_is_cached(xray_op: pr.XRayTransform) -> None:
    assert xray_op.T.T is xray_op
    assert xray_op.T is xray_op.T


def test_shapes_and_linearity(xray_op: pr.XRayTransform) -> None:
    x1 = torch.randn(2, *xray_op.domain_shape, dtype=torch.float64)
    x2 = torch.randn(2, *xray_op.domain_shape, dtype=torch.float64)
    y = xray_op(2.0 * x1 - 3.0 * x2)
    assert y.shape == (2, *xray_op.range_shape)
    torch.testing.assert_close(y, 2.0 * xray_op(x1) - 3.0 * xray_op(x2), rtol=1e-12, atol=1e-12)
    assert xray_op.T(y).shape == x1.shape


def test_batch_dims_match_single_calls(xray_op: pr.XRayTransform) -> None:
    x = torch.randn(2, 3, *xray_op.domain_shape, dtype=torch.float64)
    y = xray_op(x)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(y[i, j], xray_op(x[i, j]), rtol=0, atol=0)
    back = xray_op.T(y)
    torch.testing.assert_close(back[1, 2], xray_op.T(y[1, 2]), rtol=0, atol=0)


def test_float32_matches_float64(xray_op: pr.XRayTransform) -> None:
    x = torch.rand(*xray_op.domain_shape, dtype=torch.float64)
    y64 = xray_op(x)
    y32 = xray_op(x.float())
    assert y32.dtype == torch.float32
    assert float((y32.double() - y64).norm() / y64.norm()) < 1e-6


def test_norm_matches_dense_svd() -> None:
    op = pr.XRayTransform(pr.Volume((7, 9)), pr.ParallelBeam2D(angles=pr.angles(5), det_count=11))
    eye = torch.eye(63, dtype=torch.float64).reshape(63, 7, 9)
    dense = op(eye).reshape(63, -1).T
    assert op.norm() == pytest.approx(float(torch.linalg.matrix_norm(dense, ord=2)), rel=1e-6)
