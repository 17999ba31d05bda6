"""LinearOperator algebra: adjoint caching, composition, sums, scaling, replace, norm."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import precisionrecon as pr
from precisionrecon.operators import LinearOperator


@dataclass(frozen=True)
class Matrix(LinearOperator):
    """A dense matrix acting on the last axis (a test double with a known adjoint)."""

    m: torch.Tensor

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.m.shape[1],)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.m.shape[0],)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.m.T

    def adjoint_apply(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.m.conj()


def _mat(rows: int, cols: int, seed: int, dtype: torch.dtype = torch.float64) -> Matrix:
    return Matrix(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=dtype))


def _dense(op: LinearOperator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    (n,) = op.domain_shape
    return op(torch.eye(n, dtype=dtype)).T


def test_transpose_cached_both_ways() -> None:
    a = _mat(4, 3, 0)
    assert a.T.T is a
    assert a.T is a.T
    torch.testing.assert_close(_dense(a.T), a.m.T)


def test_composition_and_its_adjoint() -> None:
    a, b = _mat(5, 4, 1), _mat(4, 3, 2)
    ab = a @ b
    torch.testing.assert_close(_dense(ab), a.m @ b.m)
    torch.testing.assert_close(_dense(ab.T), (a.m @ b.m).T)
    assert pr.testing.adjoint_error(ab) < 1e-14
    with pytest.raises(ValueError, match="domain"):
        _ = b @ a


def test_sum_difference_scaling_negation() -> None:
    a, b = _mat(4, 3, 3), _mat(4, 3, 4)
    torch.testing.assert_close(_dense(a + b), a.m + b.m)
    torch.testing.assert_close(_dense(a - b), a.m - b.m)
    torch.testing.assert_close(_dense(2.5 * a), 2.5 * a.m)
    torch.testing.assert_close(_dense(a * 2.5), 2.5 * a.m)
    torch.testing.assert_close(_dense(-a), -a.m)
    for op in (a + b, a - b, 2.5 * a, -a):
        assert pr.testing.adjoint_error(op) < 1e-14
    with pytest.raises(ValueError, match="cannot add"):
        _ = a + _mat(3, 3, 5)


def test_complex_scaling_adjoint_conjugates() -> None:
    a = _mat(4, 3, 6, dtype=torch.complex128)
    op = (1.0 + 2.0j) * a
    assert pr.testing.adjoint_error(op, dtype=torch.complex128) < 1e-14


def test_matmul_with_tensor_applies() -> None:
    a = _mat(4, 3, 7)
    x = torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(a @ x, a(x))


def test_norm_power_iteration() -> None:
    a = _mat(6, 5, 8)
    assert a.norm() == pytest.approx(float(torch.linalg.matrix_norm(a.m, ord=2)), rel=1e-6)
    assert (3.0 * a).norm() == pytest.approx(3.0 * a.norm(), rel=1e-12)
    assert a.T.norm() == pytest.approx(a.norm())
    assert pr.IdentityOperator((3, 4)).norm() == 1.0


def test_xray_norm_of_composition_with_adjoint() -> None:
    op = pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(angles=pr.angles(6), det_count=12))
    assert (op.T @ op).norm() == pytest.approx(op.norm() ** 2, rel=1e-5)


def test_replace_returns_new_operator() -> None:
    vol = pr.Volume((8, 8))
    op = pr.XRayTransform(vol, pr.ParallelBeam2D(angles=pr.angles(6), det_count=12))
    other = op.replace(geometry=pr.ParallelBeam2D(angles=pr.angles(3), det_count=12))
    assert other.range_shape == (3, 12)
    assert op.range_shape == (6, 12)
    assert op.T.replace(volume=pr.Volume((8, 8), spacing=2.0)).op.volume.spacing == (2.0, 2.0)
    assert pr.IdentityOperator((2,)).replace(shape=(3,)).domain_shape == (3,)

    class Plain(LinearOperator):
        pass

    with pytest.raises(TypeError, match="no replaceable fields"):
        Plain().replace(x=1)


def test_operators_are_immutable() -> None:
    op = pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(angles=pr.angles(6), det_count=12))
    with pytest.raises(AttributeError):
        op.volume = pr.Volume((4, 4))  # type: ignore[misc]
