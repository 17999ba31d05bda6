"""Iterative algorithms: CG, CGLS, SIRT, FISTA (+ prox maps), PDHG / TV-PDHG.

Dense matrices wrapped as operators give exact references (``torch.linalg.lstsq``,
``torch.linalg.solve``, optimality conditions); a small parallel-beam CT problem checks
that the algorithms do what they are for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from analytic import blobs_2d, voxelise

import precisionrecon as pr
from precisionrecon.algorithms import (
    L1,
    TV,
    NonNegativity,
    Result,
    TransformL1,
    cg,
    cgls,
    fista,
    pdhg,
    pdhg_tv,
    sirt,
    sirt_weights,
    soft_threshold,
    stacked_norm,
)
from precisionrecon.operators import LinearOperator
from precisionrecon.operators.differences import FiniteDifferences


@dataclass(frozen=True, eq=False)
class Matrix(LinearOperator):
    """A dense matrix acting on the flattened trailing ``shape`` (a test double)."""

    m: torch.Tensor
    shape: tuple[int, ...] | None = None

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape or (self.m.shape[1],)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.m.shape[0],)

    # Elementwise products and sums instead of BLAS: each problem of a batch is summed in
    # the same order as when it is alone (so batched and one-by-one runs agree to rounding),
    # and tiny products stay single-threaded.
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(start_dim=x.dim() - len(self.domain_shape)).unsqueeze(-2) * self.m).sum(-1)

    def adjoint_apply(self, y: torch.Tensor) -> torch.Tensor:
        return (y.unsqueeze(-1) * self.m.conj()).sum(-2).unflatten(-1, self.domain_shape)

    def _example_dtype(self) -> torch.dtype:
        return self.m.dtype


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The problems here are tiny: with a second OpenMP/BLAS thread on a loaded machine the
    synchronisation costs up to 50x the work, so this file runs single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _problem(
    rows: int, cols: int, batch: tuple[int, ...], dtype: torch.dtype, seed: int
) -> tuple[Matrix, torch.Tensor]:
    return Matrix(_randn(rows, cols, seed=seed, dtype=dtype)), _randn(*batch, rows, seed=seed + 1, dtype=dtype)


def _lstsq(A: Matrix, y: torch.Tensor) -> torch.Tensor:
    flat = y.reshape(-1, y.shape[-1])
    return torch.linalg.lstsq(A.m, flat.T).solution.T.reshape(*y.shape[:-1], *A.domain_shape)


def _non_increasing(values: torch.Tensor, rtol: float = 1e-13) -> bool:
    """``v[k+1] <= v[k]`` up to rounding of the values themselves."""
    return bool((values[1:] <= values[:-1] + rtol * values[:-1].abs()).all())


# --------------------------------------------------------------------------- a CT problem


@pytest.fixture(scope="module")
def ct() -> dict:
    """64x64 parallel beam, 30 views, piecewise-constant ellipses, 2% Gaussian noise, float64."""
    n = 64
    A = pr.XRayTransform(pr.Volume((n, n)), pr.ParallelBeam2D(angles=pr.angles(30), det_count=96))
    image = torch.from_numpy(voxelise(blobs_2d(0.45 * n, 0.45 * n), (n, n), supersample=2)).clamp(min=0)
    clean = A(image)
    noise = torch.randn(2, *clean.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = clean + 0.02 * float(clean.max()) * noise  # two noise realisations: a batch of 2
    return {"A": A, "image": image, "y": y}


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB with the data range of ``ref`` (max - min)."""
    mse = float(((x - ref) ** 2).mean())
    return 10.0 * math.log10(float(ref.max() - ref.min()) ** 2 / mse)


def test_tv_pdhg_beats_sirt_and_decreases_monotonically(ct: dict) -> None:
    A, image, y = ct["A"], ct["image"], ct["y"][0]
    best_sirt = []
    sirt(A, y, 150, nonneg=True, callback=lambda k, x, info: best_sirt.append(_psnr(x, image)))
    res = pdhg_tv(A, y, 4.0, 100)
    assert res.x.min() >= 0
    assert _psnr(res.x, image) > max(best_sirt) + 3.0  # SIRT at its best (early-stopped) iteration
    obj = res.history["objective"]
    assert obj.shape == (100,)
    assert _non_increasing(obj[40:])
    assert obj[-1] < 0.5 * obj[0]


def test_pdhg_tv_batch_equals_one_by_one(ct: dict) -> None:
    A, y = ct["A"], ct["y"]
    res = pdhg_tv(A, y, 2.0, 30)
    op_norm = res.info["op_norm"]
    assert res.x.shape == (2, 64, 64) and res.history["objective"].shape == (30, 2)
    for i in range(2):
        one = pdhg_tv(A, y[i], 2.0, 30, op_norm=op_norm)
        torch.testing.assert_close(one.x, res.x[i], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(one.history["objective"], res.history["objective"][:, i], rtol=1e-12, atol=0)


def test_sirt_on_ct(ct: dict) -> None:
    A, y = ct["A"], ct["y"]
    res = sirt(A, y, 40, nonneg=True)
    assert res.x.min() >= 0
    assert res.history["objective"].shape == (40, 2)
    for i in range(2):
        assert _non_increasing(res.history["objective"][:, i])
        one = sirt(A, y[i], 40, nonneg=True)
        torch.testing.assert_close(one.x, res.x[i], rtol=1e-12, atol=1e-12)


def test_fista_tv_on_ct(ct: dict) -> None:
    A, image, y = ct["A"], ct["image"], ct["y"][0]
    res = fista(A, y, 30, prox=TV((64, 64), nonneg=True, n_inner=20), lam=4.0)
    assert res.x.min() >= 0
    obj = res.history["objective"]
    assert _non_increasing(obj)  # MFISTA
    ref = pdhg_tv(A, y, 4.0, 100)
    assert obj[-1] <= 1.01 * ref.history["objective"][-1]  # both near the same minimum
    assert _psnr(res.x, image) > _psnr(sirt(A, y, 30, nonneg=True).x, image)


# --------------------------------------------------------------------------- CGLS and CG


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_cgls_equals_lstsq(dtype: torch.dtype) -> None:
    A, y = _problem(40, 15, (3,), dtype, seed=0)
    res = cgls(A, y, 40)
    torch.testing.assert_close(res.x, _lstsq(A, y), rtol=1e-9, atol=1e-9)
    assert res.x.dtype == dtype
    assert res.history["objective"].shape == (40, 3)
    for i in range(3):
        assert _non_increasing(res.history["objective"][:15, i])


def test_cgls_damped_and_x0() -> None:
    A, y = _problem(30, 20, (2,), torch.float64, seed=2)
    damp = 0.7
    normal = A.m.T @ A.m + damp**2 * torch.eye(20, dtype=torch.float64)
    expected = torch.linalg.solve(normal, (y @ A.m).T).T
    x0 = _randn(20, seed=9)
    res = cgls(A, y, 60, damp=damp, x0=x0)
    torch.testing.assert_close(res.x, expected, rtol=1e-10, atol=1e-10)
    assert x0.equal(_randn(20, seed=9))  # the caller's x0 is not modified


def test_cgls_batch_with_tol_equals_one_by_one() -> None:
    A, y = _problem(50, 30, (3,), torch.float64, seed=3)
    y = y * torch.tensor([[1.0], [1e-3], [50.0]], dtype=torch.float64)  # very different scales
    res = cgls(A, y, 100, tol=1e-8)
    assert bool(res.converged.all()) and res.n_iter < 100
    for i in range(3):
        one = cgls(A, y[i], 100, tol=1e-8)
        assert one.converged
        torch.testing.assert_close(one.x, res.x[i], rtol=1e-12, atol=1e-12 * float(one.x.abs().max()))
        s = one.history["normal_residual_norm"]
        assert s[-1] <= 1e-8 * float((A.T(y[i])).norm())


def test_cgls_zero_data_stays_zero() -> None:
    A, y = _problem(10, 6, (2,), torch.float64, seed=4)
    y[1] = 0.0
    res = cgls(A, y, 10)
    assert torch.isfinite(res.x).all()
    assert res.x[1].abs().max() == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_cg_hpd(dtype: torch.dtype) -> None:
    B = _randn(30, 12, seed=5, dtype=dtype)
    M = Matrix(B.conj().T @ B + 0.5 * torch.eye(12, dtype=dtype))
    b = _randn(4, 12, seed=6, dtype=dtype)
    expected = torch.linalg.solve(M.m, b.T).T
    for op in (M, (B.conj().T @ B)):
        res = cg(M, b, 40) if op is M else cg(lambda v: v @ M.m.T, b, 40, ndim=1)
        torch.testing.assert_close(res.x, expected, rtol=1e-10, atol=1e-10)
        obj = res.history["objective"]
        assert obj.shape == (res.n_iter, 4)
        for i in range(4):
            assert _non_increasing(obj[:12, i])


def test_cg_tol_and_batch_independence() -> None:
    B = _randn(25, 25, seed=8)
    Mm = B.T @ B + torch.eye(25, dtype=torch.float64)
    eigvec = torch.linalg.eigh(Mm).eigenvectors[:, 3]
    b = torch.stack([_randn(25, seed=10), eigvec])  # an eigenvector is solved in one step
    res = cg(Matrix(Mm), b, 200, tol=1e-10)
    assert bool(res.converged.all())
    assert res.history["residual_norm"][-1, 0] <= 1e-10 * float(b[0].norm())
    for i in range(2):
        one = cg(Matrix(Mm), b[i], 200, tol=1e-10)
        torch.testing.assert_close(one.x, res.x[i], rtol=1e-12, atol=1e-12)
    assert cg(Matrix(Mm), b[1], 200, tol=1e-10).n_iter == 1


def test_cg_for_sense_like_normal_operator() -> None:
    """CG on ``A^H A + lam I`` built with the operator algebra (complex, as for CG-SENSE)."""
    A = Matrix(_randn(40, 16, seed=11, dtype=torch.complex128), (4, 4))
    y = _randn(2, 40, seed=12, dtype=torch.complex128)
    lam = 0.1
    normal = A.T @ A + lam * pr.IdentityOperator((4, 4))
    res = cg(normal, A.T(y), 50)
    direct = cgls(A, y, 50, damp=math.sqrt(lam))
    torch.testing.assert_close(res.x, direct.x, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- SIRT


def test_sirt_weights_and_guard() -> None:
    m = torch.rand(8, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m[3] = 0.0  # a ray that misses everything
    m[:, 2] = 0.0  # a voxel no ray sees
    R, C = sirt_weights(Matrix(m))
    assert R[3] == 0 and C[2] == 0
    torch.testing.assert_close(R[0], 1.0 / m[0].sum())
    res = sirt(Matrix(m), _randn(8, seed=2), 20)
    assert torch.isfinite(res.x).all() and res.x[2] == 0


def test_sirt_converges_to_weighted_least_squares() -> None:
    m = torch.rand(30, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.1
    A = Matrix(m)
    y = _randn(2, 30, seed=4)
    R, _ = sirt_weights(A)
    w = R.sqrt()
    expected = torch.linalg.lstsq(w[:, None] * m, (w * y).T).solution.T
    res = sirt(A, y, 3000, relax=1.9)
    torch.testing.assert_close(res.x, expected, rtol=1e-6, atol=1e-6)
    assert all(_non_increasing(res.history["objective"][:, i]) for i in range(2))


def test_sirt_rejects_complex_and_signed() -> None:
    A, y = _problem(10, 5, (), torch.complex128, seed=5)
    with pytest.raises(TypeError, match="real"):
        sirt(A, y, 3)
    A, y = _problem(10, 5, (), torch.float64, seed=5)
    with pytest.raises(ValueError, match="non-negative entries"):
        sirt(A, y, 3)
    with pytest.raises(ValueError, match="relax"):
        sirt(Matrix(A.m.abs()), y, 3, relax=2.0)


def test_sirt_tol_stops_early() -> None:
    m = torch.rand(30, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.1
    res = sirt(Matrix(m), _randn(30, seed=4), 5000, tol=1e-6)
    assert res.converged and res.n_iter < 5000
    assert res.history["change"][-1] <= 1e-6


# --------------------------------------------------------------------------- FISTA and prox


def test_soft_threshold_complex_keeps_phase() -> None:
    v = torch.tensor([3.0 * math.e ** (0.7j), 0.5j, -2.0, 0.0], dtype=torch.complex128)
    out = soft_threshold(v, 1.0)
    torch.testing.assert_close(out.abs(), torch.tensor([2.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out[0] / out[0].abs(), v[0] / v[0].abs())
    assert out[2].real == -1.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_fista_l1_satisfies_optimality(dtype: torch.dtype) -> None:
    A, y = _problem(40, 25, (2,), dtype, seed=13)
    lam = 3.0
    res = fista(A, y, 1500, prox=L1(), lam=lam)
    x = res.x
    g = A.T(y - A(x))  # optimality: g = lam x / |x| on the support, |g| <= lam off it
    support = x.abs() > 1e-8
    assert 0 < int(support.sum()) < x.numel()
    torch.testing.assert_close(g[support], lam * x[support] / x[support].abs(), rtol=1e-6, atol=1e-6)
    assert float(g[~support].abs().max()) <= lam * (1 + 1e-6)
    assert all(_non_increasing(res.history["objective"][:, i]) for i in range(2))


def test_plain_fista_reaches_the_same_minimum() -> None:
    A, y = _problem(40, 25, (), torch.complex128, seed=14)
    mono = fista(A, y, 400, prox=L1(), lam=2.0)
    plain = fista(A, y, 400, prox=L1(), lam=2.0, monotone=False)
    assert abs(plain.history["objective"][-1] - mono.history["objective"][-1]) <= 1e-8 * mono.history["objective"][-1]
    assert plain.history["objective"][-1] < plain.history["objective"][0]
    with pytest.raises(ValueError, match="monotone"):
        fista(A, y, 3, prox=lambda v, t: v, lam=1.0)
    plain_callable = fista(A, y, 400, prox=lambda v, t: soft_threshold(v, t), lam=2.0, monotone=False)
    torch.testing.assert_close(plain_callable.x, plain.x, rtol=1e-12, atol=1e-12)


def test_fista_unitary_l1_is_one_step() -> None:
    """With unitary A and step 1, one prox-gradient step from 0 is the exact minimiser."""
    q, _ = torch.linalg.qr(_randn(12, 12, seed=15, dtype=torch.complex128))
    y = _randn(3, 12, seed=16, dtype=torch.complex128)
    res = fista(Matrix(q), y, 1, prox=L1(), lam=0.8, step=1.0)
    torch.testing.assert_close(res.x, soft_threshold(y @ q.conj(), 0.8), rtol=1e-12, atol=1e-12)


def test_fista_no_prox_is_least_squares_and_batch_independent() -> None:
    A, y = _problem(40, 15, (3,), torch.float64, seed=17)
    res = fista(A, y, 800, prox=None, lam=0.0)
    torch.testing.assert_close(res.x, _lstsq(A, y), rtol=1e-7, atol=1e-7)
    for i in range(3):
        one = fista(A, y[i], 800, prox=None, lam=0.0, step=res.info["step"])
        torch.testing.assert_close(one.x, res.x[i], rtol=1e-12, atol=1e-12)


def test_fista_tol_batch_equals_one_by_one() -> None:
    A, y = _problem(40, 25, (2,), torch.float64, seed=18)
    y = y * torch.tensor([[1.0], [20.0]], dtype=torch.float64)
    res = fista(A, y, 2000, prox=L1(), lam=1.0, tol=1e-7)
    assert bool(res.converged.all()) and res.n_iter < 2000
    for i in range(2):
        one = fista(A, y[i], 2000, prox=L1(), lam=1.0, tol=1e-7, step=res.info["step"])
        torch.testing.assert_close(one.x, res.x[i], rtol=1e-12, atol=1e-12)


def test_transform_l1_prox() -> None:
    q, _ = torch.linalg.qr(_randn(16, 16, seed=19, dtype=torch.complex128))
    W = Matrix(q, (4, 4))
    v = _randn(2, 4, 4, seed=20, dtype=torch.complex128)
    out = TransformL1(W)(v, 0.5)
    expected = W.T(soft_threshold(W(v), 0.5))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(TransformL1(W).value(v, 2), W(v).abs().sum(-1))

    # the prox minimises 1/2 ||x - v||^2 + t ||W x||_1: no random perturbation does better
    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - v).abs().square().sum((-1, -2)) + 0.5 * TransformL1(W).value(x, 2)

    for seed in range(5):
        assert bool((f(out) <= f(out + 1e-3 * _randn(2, 4, 4, seed=seed, dtype=torch.complex128))).all())


def test_tv_prox() -> None:
    v = _randn(3, 8, 9, seed=21)
    # a huge weight flattens the image to its mean (Neumann TV vanishes only on constants)
    flat = TV((8, 9), n_inner=500)(v, 100.0)
    torch.testing.assert_close(flat, v.mean((-1, -2), keepdim=True).expand_as(v), rtol=0, atol=1e-3)
    # more inner iterations never give a worse prox objective; the output beats the input
    tv = TV((8, 9), n_inner=200)
    x = tv(v, 1.0)

    def f(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (z - v).square().sum((-1, -2)) + tv.value(z, 2)

    assert bool((f(x) <= f(TV((8, 9), n_inner=5)(v, 1.0)) + 1e-12).all())
    assert bool((f(x) < f(v)).all())
    torch.testing.assert_close(TV((8, 9))(v, 0.0), v)
    # nonneg
    xp = TV((8, 9), nonneg=True)(v, 0.3)
    assert xp.min() >= 0
    # complex TV works (MR): the prox of a real image with a constant phase keeps the phase
    phase = complex(math.cos(0.4), math.sin(0.4))
    xc = TV((8, 9), n_inner=50)(v.to(torch.complex128) * phase, 1.0)
    torch.testing.assert_close(xc, TV((8, 9), n_inner=50)(v, 1.0).to(torch.complex128) * phase)


def test_nonnegativity_prox() -> None:
    v = _randn(2, 5, seed=22)
    torch.testing.assert_close(NonNegativity()(v, 1.0), v.clamp(min=0))
    value = NonNegativity().value(torch.stack([v[0].abs(), v[1]]), 1)
    assert value[0] == 0 and math.isinf(value[1])
    with pytest.raises(TypeError, match="real"):
        NonNegativity()(v.to(torch.complex128), 1.0)


# --------------------------------------------------------------------------- PDHG


def test_pdhg_tv_small_lambda_approaches_least_squares() -> None:
    A, y = _problem(80, 36, (2,), torch.float64, seed=23)
    A = Matrix(A.m, (6, 6))
    ls = _lstsq(A, y)
    errors = []
    for lam in (1e-1, 1e-2, 1e-3):
        res = pdhg_tv(A, y, lam, 300, nonneg=False)
        errors.append(float((res.x - ls).norm() / ls.norm()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 2e-3
    exact = pdhg_tv(A, y, 0.0, 1000, nonneg=False)
    torch.testing.assert_close(exact.x, ls, rtol=1e-9, atol=1e-9)


def test_pdhg_tv_complex() -> None:
    A = Matrix(_randn(60, 25, seed=24, dtype=torch.complex128), (5, 5))
    y = _randn(60, seed=25, dtype=torch.complex128)
    res = pdhg_tv(A, y, 0.5, 400, nonneg=False)
    obj = res.history["objective"]
    assert obj[-1] < obj[0] and _non_increasing(obj[100:], rtol=1e-10)
    ref = fista(A, y, 100, prox=TV((5, 5), n_inner=30), lam=0.5)
    assert abs(float(obj[-1] - ref.history["objective"][-1])) <= 1e-6 * float(obj[-1])
    with pytest.raises(TypeError, match="nonneg"):
        pdhg_tv(A, y, 0.5, 3)


def test_pdhg_generic_single_operator() -> None:
    """min 1/2 ||A x - y||^2 with K = A, F = 1/2 ||. - y||^2, G = 0 converges to least squares."""
    A, y = _problem(30, 10, (2,), torch.float64, seed=26)
    L = stacked_norm(A)
    assert abs(L - A.norm()) <= 1e-6 * L
    res = pdhg(
        A,
        lambda z, s: (z - s * y) / (1 + s),
        lambda x, t: x,
        torch.zeros(2, 10, dtype=torch.float64),
        1500,
        tau=0.99 / L,
        sigma=0.99 / L,
        objective=lambda x, Ax: 0.5 * (Ax - y).square().sum(-1),
        tol=1e-12,
    )
    torch.testing.assert_close(res.x, _lstsq(A, y), rtol=1e-8, atol=1e-8)
    assert res.history["objective"].shape[1:] == (2,)
    with pytest.raises(TypeError, match="prox_f_conj"):
        pdhg(A, lambda z, s: [z], lambda x, t: x, torch.zeros(10, dtype=torch.float64), 2, tau=0.1, sigma=0.1)


def test_stacked_norm_of_blocks() -> None:
    A = Matrix(_randn(20, 12, seed=27), (3, 4))
    D = FiniteDifferences((3, 4))
    dense = torch.cat([A.m, D(torch.eye(12, dtype=torch.float64).reshape(12, 3, 4)).reshape(12, -1).T])
    assert abs(stacked_norm(A, D) - float(torch.linalg.matrix_norm(dense, ord=2))) <= 1e-6 * stacked_norm(A, D)


# --------------------------------------------------------------------------- common behaviour


def test_callback_progress_and_history_shapes() -> None:
    A, y = _problem(20, 8, (2, 3), torch.float64, seed=28)
    seen: list[tuple[int, tuple[int, ...], tuple[str, ...]]] = []

    def callback(k: int, x: torch.Tensor, info: dict[str, torch.Tensor]) -> bool:
        seen.append((k, tuple(x.shape), tuple(sorted(info))))
        return k == 4  # stop after the 4th iteration

    res = cgls(A, y, 10, callback=callback, progress=True)
    assert isinstance(res, Result) and res.n_iter == 4
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    assert seen[0][1] == (2, 3, 8)
    assert "active" in seen[0][2] and "objective" in seen[0][2]
    assert res.history["residual_norm"].shape == (4, 2, 3)
    for algorithm in (
        lambda: sirt(Matrix(A.m.abs()), y, 3),
        lambda: fista(A, y, 3, prox=L1(), lam=0.1),
        lambda: pdhg_tv(A, y, 0.1, 3, nonneg=False),
    ):
        out = algorithm()
        assert out.x.shape == (2, 3, 8) and out.history["objective"].shape == (3, 2, 3)
    assert cgls(A, y, 0).n_iter == 0


def test_x0_broadcast_and_float32() -> None:
    A, y = _problem(20, 8, (3,), torch.float32, seed=29)
    x0 = torch.ones(8, dtype=torch.float32)
    for res in (
        cgls(A, y, 5, x0=x0),
        fista(A, y, 5, prox=L1(), lam=0.1, x0=x0),
        pdhg_tv(A, y, 0.1, 5, x0=x0, nonneg=False),
    ):
        assert res.x.dtype == torch.float32 and res.x.shape == (3, 8)
    res = cgls(A, y, 1, x0=x0)
    one = cgls(A, y[1], 1, x0=x0)
    torch.testing.assert_close(res.x[1], one.x)


def test_unrolled_iterations_are_differentiable() -> None:
    """No in-place updates: autograd goes through the iterations (for learned unrolling)."""
    A = Matrix(_randn(6, 4, seed=31))
    y = _randn(2, 6, seed=32).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: cgls(A, t, 3).x, (y,))
    assert torch.autograd.gradcheck(lambda t: fista(A, t, 3, prox=None, lam=0.0, step=0.01).x, (y,))


def test_bad_input() -> None:
    A, y = _problem(20, 8, (2,), torch.float64, seed=30)
    with pytest.raises(TypeError, match="A must be a precisionrecon LinearOperator"):
        cgls(A.m, y, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 20\)"):
        cgls(A, y[:, :10], 3)
    with pytest.raises(TypeError, match="y must be a real or complex floating-point"):
        sirt(A, y.long(), 3)
    with pytest.raises(ValueError, match="n_iter"):
        fista(A, y, -1, prox=None, lam=0.0)
    with pytest.raises(TypeError, match="n_iter"):
        fista(A, y, 2.5, prox=None, lam=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="damp"):
        cgls(A, y, 3, damp=-1.0)
    with pytest.raises(ValueError, match="x0 must have shape"):
        cgls(A, y, 3, x0=torch.zeros(3, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x0 is complex"):
        cgls(A, y, 3, x0=torch.zeros(8, dtype=torch.complex128))
    with pytest.raises(ValueError, match="square"):
        cg(A, y, 3)
    with pytest.raises(TypeError, match="normal_op"):
        cg(3, y, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam"):
        pdhg_tv(A, y, -1.0, 3, nonneg=False)
    with pytest.raises(ValueError, match="grad"):
        pdhg_tv(A, y, 1.0, 3, grad=FiniteDifferences((4, 2)))
    with pytest.raises(ValueError, match="step"):
        fista(A, y, 3, prox=L1(), lam=1.0, step=0.0)
    with pytest.raises(TypeError, match="callback"):
        cgls(A, y, 3, callback=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_inner"):
        TV((4, 2), n_inner=0)
