"""Generic suite over every registered linear operator (``tests/registry.py``).

Normalized adjoint error, ``A.T.T is A``, linearity, batching, dtypes, devices, dense
matrix and norm, gradients, ``torch.compile`` on a subset and ``gradcheck`` where the
operator has its own autograd.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from registry import REGISTRY, Case, build

import precisionrecon as pr

DENSE_MAX = 700  # largest domain / range size (entries) for the dense-matrix test


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The problems are tiny: on a busy shared machine OpenMP start-up and barriers of two
    threads cost more than the transforms, so run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _case(name: str) -> Case:
    case = REGISTRY[name]
    for module in case.requires:
        pytest.importorskip(module)
    return case


def _dtype(case: Case, double: bool) -> torch.dtype:
    if case.complex:
        return torch.complex128 if double else torch.complex64
    return torch.float64 if double else torch.float32


def _randn(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(torch.linalg.vector_norm(b.detach()))
    return float(torch.linalg.vector_norm((a - b).detach())) / (scale if scale > 0 else 1.0)


NAMES = sorted(REGISTRY)
COMPILED = sorted(name for name, case in REGISTRY.items() if case.compile)
GRADCHECKED = sorted(name for name, case in REGISTRY.items() if case.gradcheck)


@pytest.mark.parametrize("double", [True, False], ids=["double", "single"])
@pytest.mark.parametrize("batch_shape", [(), (2, 3)], ids=["unbatched", "batch2x3"])
@pytest.mark.parametrize("name", NAMES)
def test_adjoint_error(name: str, double: bool, batch_shape: tuple[int, ...]) -> None:
    """|<Ax, y> - <x, A^T y>| / (||A|| ||x|| ||y||) below 1e-12 (double) or ``tol32``."""
    case = _case(name)
    tol = 1e-12 if double else case.tol32
    err = pr.testing.adjoint_error(build(name), dtype=_dtype(case, double), seed=1, batch_shape=batch_shape)
    assert err <= tol, err


@pytest.mark.parametrize("name", NAMES)
def test_transpose_is_cached(name: str) -> None:
    _case(name)
    op = build(name)
    assert op.T.T is op
    assert op.T is op.T
    assert (op.T.domain_shape, op.T.range_shape) == (op.range_shape, op.domain_shape)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_linearity(name: str) -> None:
    case = _case(name)
    op = build(name)
    dtype = _dtype(case, True)
    a, b = (0.3 - 1.2j, 2.0 + 0.5j) if case.complex else (2.0, -3.0)
    x1, x2 = _randn((2, *op.domain_shape), dtype, 2), _randn((2, *op.domain_shape), dtype, 3)
    y = op(a * x1 + b * x2)
    assert y.shape == (2, *op.range_shape)
    assert _rel(y, a * op(x1) + b * op(x2)) < 1e-12
    y1, y2 = _randn((2, *op.range_shape), dtype, 4), _randn((2, *op.range_shape), dtype, 5)
    x = op.T(a * y1 + b * y2)
    assert x.shape == x1.shape
    assert _rel(x, a * op.T(y1) + b * op.T(y2)) < 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_batch_dims_match_single_calls(name: str) -> None:
    """Leading batch dims give the loop's results: bitwise where ``batch_exact``, else to rounding."""
    case = _case(name)
    op = build(name)
    dtype = _dtype(case, True)
    x = _randn((2, 3, *op.domain_shape), dtype, 6)
    y = _randn((2, 3, *op.range_shape), dtype, 7)
    fx, ty = op(x), op.T(y)
    assert fx.shape == (2, 3, *op.range_shape) and ty.shape == x.shape
    for i in range(2):
        for j in range(3):
            for batched, single in ((fx[i, j], op(x[i, j])), (ty[i, j], op.T(y[i, j]))):
                if case.batch_exact:
                    assert torch.equal(batched, single)
                else:
                    assert _rel(batched, single) < 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_dtypes(name: str) -> None:
    """Single and double precision in, the same dtype out; both agree to ``rel32``."""
    case = _case(name)
    op = build(name)
    x = _randn(op.domain_shape, _dtype(case, True), 8)
    y = _randn(op.range_shape, _dtype(case, True), 9)
    for double in (True, False):
        dtype = _dtype(case, double)
        assert op(x.to(dtype)).dtype == dtype
        assert op.T(y.to(dtype)).dtype == dtype
    assert _rel(op(x.to(_dtype(case, False))).to(x.dtype), op(x)) < case.rel32
    assert _rel(op.T(y.to(_dtype(case, False))).to(y.dtype), op.T(y)) < case.rel32
    if case.checks_dtype:  # the message names the argument and the dtype it got
        with pytest.raises(TypeError, match=r"^[a-z]+ must be .*, got torch\.int64"):
            op(torch.zeros(op.domain_shape, dtype=torch.int64))
        with pytest.raises(TypeError, match=r"^[a-z]+ must be .*, got torch\.int64"):
            op.T(torch.zeros(op.range_shape, dtype=torch.int64))


def _on(op: pr.LinearOperator, device: str) -> pr.LinearOperator:
    """The operator for tensors on ``device`` (device-agnostic operators are their own copy)."""
    return op.to(device) if hasattr(op, "to") else op  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
)
@pytest.mark.parametrize("name", NAMES)
def test_device(name: str, device: str) -> None:
    """Results stay on the input's device and match the CPU results (CUDA: to rounding)."""
    case = _case(name)
    if device == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")
        if not case.cuda:
            pytest.skip("operator holds CPU tensors")
    op = build(name)
    moved = _on(op, device)
    for double in (True, False):
        dtype = _dtype(case, double)
        tol = 1e-12 if double else case.rel32
        x = _randn((2, *op.domain_shape), dtype, 10)
        y = _randn((2, *op.range_shape), dtype, 11)
        fx, ty = moved(x.to(device)), moved.T(y.to(device))
        assert fx.device.type == device and ty.device.type == device
        assert _rel(fx.cpu(), op(x)) <= tol and _rel(ty.cpu(), op.T(y)) <= tol


def _dense(op: pr.LinearOperator, dtype: torch.dtype) -> torch.Tensor:
    """The matrix of ``op`` (rows: flattened range, columns: flattened domain)."""
    n = math.prod(op.domain_shape)
    basis = torch.eye(n, dtype=dtype).reshape(n, *op.domain_shape)
    with torch.no_grad():  # a learnable response would otherwise track the whole matrix
        return op(basis).reshape(n, -1).T


@pytest.mark.parametrize(
    "name",
    [n for n in NAMES if max(math.prod(build(n).domain_shape), math.prod(build(n).range_shape)) <= DENSE_MAX
     or REGISTRY[n].requires],
)
def test_dense_adjoint_and_norm(name: str) -> None:
    """The matrix of ``A.T`` is the conjugate transpose of that of ``A``; ``A.norm()`` is its
    largest singular value."""
    case = _case(name)
    op = build(name)
    if max(math.prod(op.domain_shape), math.prod(op.range_shape)) > DENSE_MAX:
        pytest.skip("too large for a dense matrix")
    dtype = _dtype(case, True)
    m = _dense(op, dtype)
    sigma = float(torch.linalg.matrix_norm(m, ord=2))
    # measured at most 2.2e-16 (FBP; finite differences exactly 0)
    assert float((_dense(op.T, dtype) - m.mH).abs().max()) <= 1e-15 * max(sigma, 1.0)
    # power iterates never overestimate; how close they get depends on the spectrum
    assert sigma * (1.0 - case.norm_rtol) <= op.norm() <= sigma * (1.0 + 1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_is_the_adjoint(name: str) -> None:
    """Autograd of ``A(x)`` w.r.t. ``x`` applied to a cotangent ``g`` is ``A.T(g)`` (and vice versa)."""
    case = _case(name)
    op = build(name)
    dtype = _dtype(case, True)
    for fwd, adj, seed in ((op, op.T, 12), (op.T, op, 13)):
        x = _randn((2, *fwd.domain_shape), dtype, seed).requires_grad_(True)
        g = _randn((2, *fwd.range_shape), dtype, seed + 100)
        (grad,) = torch.autograd.grad(fwd(x), x, g)
        assert _rel(grad, adj(g)) < 1e-12


@pytest.mark.parametrize("name", COMPILED)
def test_torch_compile_fullgraph(name: str) -> None:
    """A gradient step ``x - s A^T (A x - y)`` traces into one graph and matches eager mode."""
    case = _case(name)
    op = build(name)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x - 0.01 * op.T(op(x) - y)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    dtype = _dtype(case, False)
    x = _randn((2, *op.domain_shape), dtype, 14)
    y = _randn((2, *op.range_shape), dtype, 15)
    torch.testing.assert_close(compiled(x, y), step(x, y))


@pytest.mark.parametrize("name", GRADCHECKED)
def test_gradcheck(name: str) -> None:
    case = _case(name)
    op = build(name)
    dtype = _dtype(case, True)
    x = _randn(op.domain_shape, dtype, 16).requires_grad_(True)
    y = _randn(op.range_shape, dtype, 17).requires_grad_(True)
    assert torch.autograd.gradcheck(op, (x,))
    assert torch.autograd.gradcheck(op.T, (y,))


def test_registry_covers_the_public_operators() -> None:
    """Every public operator class has at least one registered instance."""
    classes = {type(build(name)) for name in NAMES if not REGISTRY[name].requires}
    for cls in (pr.XRayTransform, pr.VoxelBackprojection, pr.FBP, pr.RampFilter, pr.ProjectionWeighting,
                pr.FiniteDifferences, pr.IdentityOperator, pr.mr.FFT, pr.mr.Sampling, pr.mr.Coils, pr.mr.SENSE):
        assert cls in classes, cls
