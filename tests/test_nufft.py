"""NUFFT (finufft), its Toeplitz normal operator, trajectories and density compensation."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from registry import build, random_points

from precisionrecon import mr
from precisionrecon.mr import nufft as nufft_module

pytest.importorskip("finufft")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The problems here are tiny: on a busy shared machine, OpenMP start-up and barriers of
    two threads cost milliseconds per call (more than the transforms), so run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def test_gradgradcheck() -> None:
    A = build("nufft-spiral-odd")
    x = torch.randn(A.domain_shape, dtype=torch.complex128, requires_grad=True)
    y = torch.randn(A.range_shape, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradgradcheck(A.apply, (x,))
    assert torch.autograd.gradgradcheck(A.adjoint_apply, (y,))


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("shape", [(12, 10), (9, 11), (5, 6, 7), (13,)])
@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9, 1e-12])
def test_matches_direct_nudft_to_requested_tolerance(shape: tuple[int, ...], eps: float) -> None:
    traj = random_points(150, len(shape), seed=len(shape))
    A = mr.NUFFT(traj, shape, eps=eps)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, *shape, dtype=torch.complex128, generator=gen)
    y = torch.randn(3, 150, dtype=torch.complex128, generator=gen)
    assert _rel(A(x), mr.nudft(x, traj)) <= eps
    assert _rel(A.T(y), mr.nudft_adjoint(y, traj, shape)) <= eps


def test_complex64_accuracy() -> None:
    traj, shape = random_points(200, 2), (16, 12)
    x = torch.randn(2, *shape, dtype=torch.complex128)
    ref = mr.nudft(x, traj)
    assert _rel(mr.NUFFT(traj, shape, eps=1e-3)(x.to(torch.complex64)).to(torch.complex128), ref) <= 1e-3
    y64 = mr.NUFFT(traj, shape, eps=1e-6)(x.to(torch.complex64))
    assert y64.dtype == torch.complex64
    assert _rel(y64.to(torch.complex128), ref) <= 3e-6  # eps plus float32 rounding of in- and output


def test_direct_nudft_definition() -> None:
    """The oracle itself: one coefficient against the written-out sum (centre at N // 2)."""
    traj = torch.tensor([[0.3, -1.1]], dtype=torch.float64)
    x = torch.randn(5, 4, dtype=torch.complex128)
    n0 = torch.arange(5, dtype=torch.float64) - 2
    n1 = torch.arange(4, dtype=torch.float64) - 2
    phase = torch.exp(-1j * (0.3 * n0[:, None] - 1.1 * n1[None, :]))
    torch.testing.assert_close(mr.nudft(x, traj, ortho=False)[0], (x * phase).sum())


@pytest.mark.parametrize("shape", [(8, 6), (7, 9), (4, 5, 6)])
def test_cartesian_trajectory_is_the_fft(shape: tuple[int, ...]) -> None:
    A = mr.NUFFT(mr.cartesian(shape), shape, eps=1e-12)
    x = torch.randn(2, *shape, dtype=torch.complex128)
    torch.testing.assert_close(A(x), mr.FFT(shape)(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(A.T(A(x)), x, rtol=1e-10, atol=1e-10)


def test_matches_torchkbnufft() -> None:
    tkbn = pytest.importorskip("torchkbnufft")
    for shape, traj in (((16, 16), mr.radial(20, 32)), ((15, 17), random_points(300, 2))):
        A = mr.NUFFT(traj, shape, eps=1e-12, ortho=False)
        x = torch.randn(1, 1, *shape, dtype=torch.complex128)
        ktraj = traj.reshape(-1, 2).T.contiguous()  # torchkbnufft: (d, M), same axis order and units
        theirs = tkbn.KbNufft(im_size=shape, dtype=torch.complex128)(x, ktraj)
        assert _rel(theirs, A(x).reshape(1, 1, -1)) < 2e-3  # torchkbnufft's own interpolation error


def test_batches_channels_and_plan_cache() -> None:
    traj = mr.spiral(2, 30, n_turns=2)
    A = mr.NUFFT(traj, (3, 8, 8), eps=1e-9)
    assert A.range_shape == (3, 2, 30) and A.domain_shape == (3, 8, 8)
    x = torch.randn(2, 3, 8, 8, dtype=torch.complex128)
    y = A(x)
    single = mr.NUFFT(traj, (8, 8), eps=1e-9)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(y[b, c], single(x[b, c]), rtol=1e-12, atol=1e-12)
    n_plans = len(A.__dict__["_plans"])
    A(x)
    assert len(A.__dict__["_plans"]) == n_plans  # reused, not rebuilt
    # non-contiguous and conjugated views work
    xt = torch.randn(8, 8, 3, dtype=torch.complex128).permute(2, 0, 1)
    torch.testing.assert_close(A(xt.conj()), A(xt.conj().resolve_conj().contiguous()))
    assert A(torch.zeros(0, 3, 8, 8, dtype=torch.complex64)).shape == (0, 3, 2, 30)


def test_threaded_plan_matches_single_thread() -> None:
    traj, shape = mr.radial(40, 512), (128, 128)  # 36864 points and cells: threaded plans
    A = mr.NUFFT(traj, shape, eps=1e-6)
    x = torch.randn(2, *shape, dtype=torch.complex64)
    y1, x1 = A(x), A.T(A(x))
    torch.set_num_threads(2)
    y2, x2 = A(x), A.T(A(x))
    assert {key[-1] for key in A.__dict__["_plans"]} == {1, 2}
    assert _rel(y2, y1) < 1e-6 and _rel(x2, x1) < 1e-6


def test_fallback_without_finufft(monkeypatch: pytest.MonkeyPatch) -> None:
    traj, shape = random_points(40, 2), (6, 5)
    x = torch.randn(2, *shape, dtype=torch.complex128)
    y = torch.randn(2, 40, dtype=torch.complex128)
    fast = mr.NUFFT(traj, shape, eps=1e-12)
    ref_fwd, ref_adj = fast(x), fast.T(y)
    monkeypatch.setattr(nufft_module, "_import", lambda name: None)
    monkeypatch.setattr(nufft_module, "_warned", set())
    slow = mr.NUFFT(traj, shape, eps=1e-12)
    with pytest.warns(UserWarning, match="finufft is not importable"):
        torch.testing.assert_close(slow(x), ref_fwd, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(slow.T(y), ref_adj, rtol=1e-10, atol=1e-10)


def test_copy_and_pickle() -> None:
    A = mr.NUFFT(mr.radial(5, 8), (4, 4))
    x = torch.randn(4, 4, dtype=torch.complex128)
    y = A(x)
    for B in (copy.deepcopy(A), pickle.loads(pickle.dumps(A))):
        torch.testing.assert_close(B(x), y, rtol=0, atol=0)
        assert B.T.T is B
    T = A.toeplitz()
    torch.testing.assert_close(copy.deepcopy(T)(x), T(x), rtol=0, atol=0)


def test_benchmark_quick_run(tmp_path: Path) -> None:
    """benchmarks/mr.py runs end to end on a tiny problem and writes its results."""
    pytest.importorskip("torchkbnufft")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mr.py"
    spec = importlib.util.spec_from_file_location("mr_benchmark", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--repeats", "1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "mr.json").read_text())
    assert set(data["timings"]) == {"forward", "adjoint", "normal"}
    assert data["accuracy_rel_l2_vs_finufft_fp64_eps1e-12"]["forward"]["ours"] < 1e-5
    assert "torchkbnufft / ours" in (tmp_path / "mr.md").read_text()
    # raw finufft (the wrapper's floor) in the same run, with the same accuracy as ours
    assert {"ours", "finufft", "torchkbnufft"} <= set(data["timings"]["forward"])
    assert set(data["ratios_ours_over_finufft"]) == {"forward", "adjoint"}
    assert data["accuracy_rel_l2_vs_finufft_fp64_eps1e-12"]["adjoint"]["finufft"] < 1e-5
    if importlib.util.find_spec("sigpy") is not None:
        assert data["espirit"]["cg_sense_psnr_db"]["ours"] > data["espirit"]["cg_sense_psnr_db"]["true maps"]
        assert "ESPIRiT: ours vs sigpy" in (tmp_path / "mr.md").read_text()


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    A = mr.NUFFT(mr.radial(16, 32), (2, 16, 16), eps=1e-6)
    x = torch.randn(3, 2, 16, 16, dtype=torch.complex64)
    y = torch.randn(3, *A.range_shape, dtype=torch.complex64)
    assert _rel(A(x.cuda()).cpu(), A(x)) < 1e-5
    assert _rel(A.T(y.cuda()).cpu(), A.T(y)) < 1e-5


# --------------------------------------------------------------------------- Toeplitz


@pytest.mark.parametrize(
    ("traj", "shape"),
    [(mr.radial(10, 20), (10, 10)), (mr.spiral(3, 50, n_turns=3), (9, 7)), (random_points(80, 3), (5, 6, 4))],
)
def test_toeplitz_matches_normal_operator(traj: torch.Tensor, shape: tuple[int, ...]) -> None:
    A = mr.NUFFT(traj, (2, *shape), eps=1e-12)
    x = torch.randn(3, 2, *shape, dtype=torch.complex128)
    assert _rel(A.toeplitz()(x), A.T(A(x))) < 1e-10
    w = torch.rand(traj.shape[:-1], dtype=torch.float64)
    assert _rel(A.toeplitz(w)(x), A.T(w * A(x))) < 1e-10
    x32 = x.to(torch.complex64)
    assert A.toeplitz()(x32).dtype == torch.complex64
    assert _rel(A.toeplitz()(x32).to(torch.complex128), A.T(A(x))) < 1e-5


# --------------------------------------------------------------------------- trajectories


def test_radial_trajectory() -> None:
    t = mr.radial(8, 16)
    assert t.shape == (8, 16, 2) and t.dtype == torch.float64
    assert float(t.abs().max()) <= math.pi and float(t.norm(dim=-1).max()) == pytest.approx(math.pi)
    torch.testing.assert_close(t[:, 8], torch.zeros(8, 2, dtype=torch.float64))  # k = 0 on every spoke
    # spoke s points along (cos, sin)(s pi / 8) in (x, y); stored as (k_y, k_x)
    s = 3
    direction = t[s, -1] / t[s, -1].norm()
    torch.testing.assert_close(direction, torch.tensor([math.sin(3 * math.pi / 8), math.cos(3 * math.pi / 8)],
                                                       dtype=torch.float64))
    g = mr.radial(5, 4, golden=True)
    angles = torch.atan2(g[:, -1, 0], g[:, -1, 1])
    steps = torch.remainder(torch.diff(angles), 2 * math.pi)
    torch.testing.assert_close(steps, torch.full((4,), mr.GOLDEN_ANGLE, dtype=torch.float64))


def test_spiral_trajectory() -> None:
    t = mr.spiral(4, 100, n_turns=5)
    r = t.norm(dim=-1)
    assert t.shape == (4, 100, 2)
    assert bool((torch.diff(r, dim=1) > 0).all()) and float(r.max()) < math.pi
    torch.testing.assert_close(r[0], r[3])
    # interleaves are rotated copies
    angle0 = torch.atan2(t[0, 50, 0], t[0, 50, 1])
    angle1 = torch.atan2(t[1, 50, 0], t[1, 50, 1])
    assert float(torch.remainder(angle1 - angle0, 2 * math.pi)) == pytest.approx(math.pi / 2)


# --------------------------------------------------------------------------- density compensation


def test_pipe_menon_on_cartesian_grid_is_one() -> None:
    w = mr.pipe_menon_density(mr.cartesian((12, 10)), (12, 10), n_iter=10, eps=1e-9)
    torch.testing.assert_close(w, torch.ones(12, 10, dtype=torch.float64), rtol=1e-6, atol=1e-6)


def _disc(n: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    return ((xx**2 / 0.5 + yy**2 / 0.7) < 1).to(torch.complex128)


def test_radial_density_compensation() -> None:
    n = 32
    traj = mr.radial(64, 2 * n)  # about pi n / 2 spokes: fully sampled disc
    A = mr.NUFFT(traj, (n, n), eps=1e-9)
    w_ramp = mr.radial_density(traj, (n, n))
    w_pm = mr.pipe_menon_density(traj, (n, n), n_iter=20, eps=1e-6)
    r = traj.norm(dim=-1)
    mid = (r > 0.5) & (r < 2.5)
    assert float((w_pm[mid] / w_ramp[mid] - 1).abs().mean()) < 0.02  # two methods agree
    # the weights are areas in Cartesian cells: the PSF peak is the sampled fraction pi / 4
    delta = torch.zeros(n, n, dtype=torch.complex128)
    delta[n // 2, n // 2] = 1
    assert float(A.T(w_ramp * A(delta))[n // 2, n // 2].real) == pytest.approx(math.pi / 4, rel=1e-3)
    assert float(A.T(w_pm * A(delta))[n // 2, n // 2].real) == pytest.approx(math.pi / 4, rel=0.05)
    x = _disc(n)
    plain = A.T(A(x))
    for w in (w_ramp, w_pm):
        gridded = A.T(w * A(x))
        assert _rel(gridded, x) < 0.1
        assert _rel(gridded, x) < 0.5 * _rel(plain / (plain.abs().max() / x.abs().max()), x)


def test_pipe_menon_spiral() -> None:
    n = 32
    traj = mr.spiral(8, 400, n_turns=3)
    A = mr.NUFFT(traj, (n, n), eps=1e-9)
    w = mr.pipe_menon_density(traj, (n, n), n_iter=20, eps=1e-6)
    assert w.shape == (8, 400) and bool((w > 0).all())
    # denser near the centre: smaller weights
    r = traj.norm(dim=-1)
    assert float(w[r < 0.3].mean()) < 0.3 * float(w[(r > 2.0) & (r < 2.8)].mean())
    x = _disc(n)
    assert _rel(A.T(w * A(x)), x) < 0.1


# --------------------------------------------------------------------------- bad input


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="traj"):
        mr.NUFFT([[0.0, 0.0]], (4, 4))
    with pytest.raises(ValueError, match="traj"):
        mr.NUFFT(torch.zeros(5), (4, 4))
    with pytest.raises(ValueError, match="3 pi"):
        mr.NUFFT(torch.full((3, 2), 10.0), (4, 4))
    with pytest.raises(ValueError, match="requires grad"):
        mr.NUFFT(torch.zeros(3, 2, requires_grad=True), (4, 4))
    with pytest.raises(ValueError, match="spatial"):
        mr.NUFFT(torch.zeros(3, 3), (4, 4))
    with pytest.raises(ValueError, match="eps"):
        mr.NUFFT(torch.zeros(3, 2), (4, 4), eps=0.0)
    with pytest.raises(TypeError, match="ortho"):
        mr.NUFFT(torch.zeros(3, 2), (4, 4), ortho="ortho")
    A = mr.NUFFT(torch.zeros(3, 2), (4, 4))
    with pytest.raises(ValueError, match="shape"):
        A(torch.zeros(4, 5, dtype=torch.complex64))
    with pytest.raises(ValueError, match="shape"):
        A.T(torch.zeros(4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="weights"):
        A.toeplitz(torch.ones(4))
    with pytest.raises(ValueError, match="n_readout"):
        mr.radial_density(torch.zeros(3, 1, 2), (4, 4))
    with pytest.raises(ValueError, match="n_turns"):
        mr.spiral(2, 10, n_turns=0)
