"""FiniteDifferences: values, closed-form norm, layout and bad input (adjoint: test_operators.py)."""

from __future__ import annotations

import math

import pytest
import torch
from registry import DIFF_CASES

from precisionrecon.operators.base import power_norm
from precisionrecon.operators.differences import FiniteDifferences

CASES = DIFF_CASES  # shared with the registry of the generic suite (test_operators.py)


def _dense(op: FiniteDifferences, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The matrix of ``op`` (rows: flattened range, columns: flattened domain)."""
    n = math.prod(op.domain_shape)
    basis = torch.eye(n, dtype=dtype).reshape(n, *op.domain_shape)
    return op(basis).reshape(n, -1).T


def test_values_forward_differences_neumann() -> None:
    ny, nx = 4, 5
    yy, xx = torch.meshgrid(torch.arange(ny, dtype=torch.float64), torch.arange(nx, dtype=torch.float64), indexing="ij")
    img = 3.0 * yy - 2.0 * xx + 0.5 * xx**2
    g = FiniteDifferences((ny, nx), spacing=(2.0, 0.5))(img)
    assert g.shape == (2, ny, nx)
    expected_y = torch.full((ny, nx), 3.0 / 2.0, dtype=torch.float64)
    expected_y[-1] = 0.0
    expected_x = (-2.0 + 0.5 * (2 * xx + 1)) / 0.5
    expected_x[:, -1] = 0.0
    torch.testing.assert_close(g[0], expected_y, rtol=0, atol=1e-14)
    torch.testing.assert_close(g[1], expected_x, rtol=0, atol=1e-14)


def test_adjoint_is_minus_divergence() -> None:
    """Interior: D^T g = -(g_i - g_{i-1}); boundary rows follow g_{-1} = g_{n-1} = 0."""
    g = torch.randn(1, 6, dtype=torch.float64)
    out = FiniteDifferences((6,)).T(g)
    gi = g[0].clone()
    gi[-1] = 0.0
    expected = -(gi - torch.cat([torch.zeros(1, dtype=torch.float64), gi[:-1]]))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)


def test_constant_image_has_zero_gradient_and_complex_works() -> None:
    z = torch.full((3, 4, 5), 2.0 - 1.5j, dtype=torch.complex128)
    op = FiniteDifferences((3, 4, 5))
    assert op(z).abs().max() == 0
    x = torch.randn(3, 4, 5, dtype=torch.complex128)
    torch.testing.assert_close(op(x), torch.complex(op(x.real), op(x.imag)))


def test_layout_batch_dims_first() -> None:
    op = FiniteDifferences((5, 6))
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    g = op(x)
    assert g.shape == (2, 3, 2, 5, 6)
    assert op.range_shape == (2, 5, 6)
    torch.testing.assert_close(g[1, 2], op(x[1, 2]))
    assert op.T(g).shape == x.shape


def test_inplane_components_match_full_gradient() -> None:
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    full = FiniteDifferences((4, 5, 6))(x)
    inplane = FiniteDifferences((4, 5, 6), dims=(-2, -1))(x)
    torch.testing.assert_close(inplane, full[1:], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_norm_exact_and_bounded(name: str) -> None:
    shape, dims, spacing = CASES[name]
    op = FiniteDifferences(shape, dims=dims, spacing=spacing)
    sigma_max = float(torch.linalg.matrix_norm(_dense(op), ord=2))
    assert abs(op.norm() - sigma_max) <= 1e-12 * sigma_max
    assert abs(power_norm(op, n_iter=3000, rtol=1e-13) - op.norm()) <= 1e-5 * op.norm()
    ndim = len(op.dims)
    assert op.norm() <= math.sqrt(4 * ndim) / min(op.spacing[a] for a in op.dims)


def test_repr_and_algebra() -> None:
    op = FiniteDifferences((5, 6), spacing=0.5)
    assert "FiniteDifferences(shape=(5, 6)" in repr(op)
    rebuilt = eval(repr(op), {"FiniteDifferences": FiniteDifferences})
    assert (rebuilt.shape, rebuilt.dims, rebuilt.spacing) == (op.shape, op.dims, op.spacing)
    changed = op.replace(spacing=2.0)
    assert changed.spacing == (2.0, 2.0) and op.spacing == (0.5, 0.5)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="shape"):
        FiniteDifferences(5)
    with pytest.raises(ValueError, match="shape"):
        FiniteDifferences((5, 0))
    with pytest.raises(ValueError, match="dims"):
        FiniteDifferences((5, 6), dims=(2,))
    with pytest.raises(ValueError, match="dims"):
        FiniteDifferences((5, 6), dims=(1, -1))
    with pytest.raises(TypeError, match="dims"):
        FiniteDifferences((5, 6), dims=(0.5,))
    with pytest.raises(ValueError, match="spacing"):
        FiniteDifferences((5, 6), spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="spacing"):
        FiniteDifferences((5, 6), spacing=(1.0, 1.0, 1.0))
    op = FiniteDifferences((5, 6))
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 5, 6\)"):
        op(torch.zeros(6, 5))
    with pytest.raises(TypeError, match="x must be a real or complex floating-point"):
        op(torch.zeros(5, 6, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        op([[0.0] * 6] * 5)
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 2, 5, 6\)"):
        op.T(torch.zeros(5, 6))
