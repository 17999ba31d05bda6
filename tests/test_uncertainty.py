"""Uncertainty: Gaussian NLL and heads, MC dropout, deep ensembles, calibration metrics and
scaling, and the exact variance of linear reconstructions (against dense matrices and
Monte-Carlo noise through FBP)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import scipy.stats
import torch
from torch import Tensor, nn

import precisionrecon as pr
from precisionrecon import models
from precisionrecon import uncertainty as unc
from precisionrecon.operators import LinearOperator
from precisionrecon.operators.fbp import FBP


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # tiny problems: OpenMP threads only contend on this shared machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _operator() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(12), det_count=24))


class Tiny(nn.Module):
    """Stand-in reconstruction model: scaled back-projection plus a residual CNN."""

    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        self.hidden = hidden
        self.operator = _operator()
        self.scale = nn.Parameter(torch.tensor(0.05))
        self.net = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, 1, 3, padding=1))

    def forward(self, y: Tensor) -> Tensor:
        x = self.scale * self.operator.T(y)
        return x + self.net(x.reshape(-1, 1, 16, 16)).reshape(x.shape)

    def config(self) -> dict[str, Any]:
        return {"class": "Tiny", "kwargs": {"hidden": self.hidden}}


def _build(config: dict[str, Any]) -> nn.Module:
    if config.get("class") != "Tiny":
        raise ValueError(f"unknown model {config.get('class')!r}")
    return Tiny(**config["kwargs"])


@dataclass(frozen=True, eq=False)
class Matrix(LinearOperator):
    """A dense matrix as an operator ``(*batch, n) -> (*batch, m)``."""

    M: Tensor

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.M.shape[1],)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.M.shape[0],)

    def apply(self, x: Tensor) -> Tensor:
        return x @ self.M.T

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return y @ self.M.conj()

    def _example_dtype(self) -> torch.dtype:
        return self.M.dtype


def _sinogram(batch: int = 3) -> Tensor:
    A = _operator()
    return A(pr.data.random_ellipse_images(A.volume, batch, seed=1, dtype=torch.float64))


# --- Gaussian NLL and the heteroscedastic head ---------------------------------------------


def test_gaussian_nll_matches_torch_and_is_minimal_at_the_residual() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 5, generator=g, dtype=torch.float64)
    target = torch.randn(4, 5, generator=g, dtype=torch.float64)
    log_var = torch.randn(4, 5, generator=g, dtype=torch.float64)
    ref = nn.functional.gaussian_nll_loss(mean, target, log_var.exp(), full=True, eps=0.0)
    assert torch.allclose(unc.gaussian_nll(mean, log_var, target, full=True), ref, rtol=1e-12)
    assert torch.allclose(unc.gaussian_nll(mean, log_var, target, reduction="sum"),
                          unc.gaussian_nll(mean, log_var, target, reduction="none").sum(), rtol=1e-12)
    # d/ds of the NLL vanishes at s = log(residual^2), for real and complex images
    best = torch.log((target - mean).square()).requires_grad_()
    unc.gaussian_nll(mean, best, target, reduction="sum").backward()
    assert best.grad.abs().max() < 1e-12
    z_mean = torch.randn(6, generator=g, dtype=torch.complex128)
    z_target = torch.randn(6, generator=g, dtype=torch.complex128)
    z_best = torch.log((z_target - z_mean).abs().square()).requires_grad_()
    nll = unc.gaussian_nll(z_mean, z_best, z_target, reduction="none", full=True)
    expected = z_best + (z_target - z_mean).abs().square() * torch.exp(-z_best) + math.log(math.pi)
    assert torch.allclose(nll, expected, rtol=1e-12)
    nll.sum().backward()
    assert z_best.grad.abs().max() < 1e-12


def test_heteroscedastic_head_shapes_init_and_gradients() -> None:
    model = unc.HeteroscedasticHead(Tiny(), hidden=8, depth=2, init_log_var=-3.0, normalize=False)
    y = _sinogram(3).float()
    mean, log_var = model(y)
    assert mean.shape == log_var.shape == (3, 16, 16)
    assert torch.equal(log_var, torch.full_like(log_var, -3.0))  # zero-initialised last layer
    # normalised (the default): init_log_var is that of mean / s, here s = rms of the mean (Tiny has no data_scale)
    normalized = unc.HeteroscedasticHead(model.model, hidden=8, depth=2, init_log_var=-3.0)
    rms = mean.detach().square().mean((1, 2)).sqrt().reshape(3, 1, 1)
    torch.testing.assert_close(normalized(y)[1], (-3.0 + 2.0 * torch.log(rms)).expand(3, 16, 16))
    assert torch.allclose(mean, model.model(y))
    unc.gaussian_nll(mean, log_var, torch.zeros_like(mean)).backward()
    # the zero last layer passes no gradient to the head's hidden layers until it has moved
    assert all(p.grad is not None for p in model.parameters())
    reached = [model.model.scale, *model.model.net.parameters(), *model.head[-1].parameters()]
    assert all(p.grad.abs().sum() > 0 for p in reached)
    assert model.operator is model.model.operator
    assert model.n_free_parameters == sum(p.numel() for p in model.parameters())
    mean2, std = model.predict(y)
    assert torch.equal(mean2, mean)
    assert torch.allclose(std, torch.exp(torch.tensor(-1.5)).expand_as(std))
    # batch axes pass through, and the head sees each image alone
    two = model(y.reshape(3, 1, 12, 24).expand(3, 2, 12, 24))
    assert two[1].shape == (3, 2, 16, 16)


def test_heteroscedastic_head_3d_and_complex() -> None:
    class Identity(nn.Module):
        def forward(self, y: Tensor) -> Tensor:
            return y

    head3 = unc.HeteroscedasticHead(Identity(), hidden=4, ndim=3)
    mean, log_var = head3(torch.randn(2, 5, 6, 7))
    assert log_var.shape == (2, 5, 6, 7) and not log_var.is_complex()
    headc = unc.HeteroscedasticHead(Identity(), hidden=4, complex_valued=True)
    mean, log_var = headc(torch.randn(2, 8, 8, dtype=torch.complex64))
    assert mean.is_complex() and log_var.shape == (2, 8, 8) and log_var.dtype == torch.float32
    with pytest.raises(TypeError, match="complex_valued"):
        head3(torch.randn(2, 5, 6, 7, dtype=torch.complex64))
    with pytest.raises(ValueError, match="kernel_size"):
        unc.HeteroscedasticHead(Identity(), kernel_size=4)
    with pytest.raises(ValueError, match="ndim"):
        unc.HeteroscedasticHead(Identity(), ndim=1)
    with pytest.raises(TypeError, match="model"):
        unc.HeteroscedasticHead(lambda y: y)  # type: ignore[arg-type]


# --- MC dropout and deep ensembles ---------------------------------------------------------


def test_mc_dropout_samples_and_unbiased_mean() -> None:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 3, padding=1)).double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        plain = base(x)
    mc = unc.MCDropout(base, p=0.2, n_samples=400)
    mc.eval()  # dropout stays active at inference
    with torch.no_grad():
        a, b = mc(x), mc(x)
        mean, std = mc.predict(x)
        _, epistemic, aleatoric = mc.decompose(x, n_samples=3)
    assert not torch.equal(a, b)
    assert mean.shape == std.shape == (2, 1, 8, 8) and bool((std > 0).all())
    assert torch.equal(aleatoric, torch.zeros_like(aleatoric)) and epistemic.shape == (2, 1, 8, 8)
    # dropout on the hidden ReLU only, and the layer after it is linear: E[sample] = plain output
    stderr = std / math.sqrt(mc.n_samples)
    assert float(((mean - plain).abs() / stderr).max()) < 5.0
    with torch.no_grad():
        _, std1 = mc.predict(x, n_samples=1)
    assert torch.equal(std1, torch.zeros_like(std1))
    assert mc.remove() is base and torch.equal(base(x), plain) and torch.equal(mc(x), plain)
    # a wrapped reconstruction model keeps its operator
    tiny = Tiny()
    assert unc.MCDropout(tiny).operator is tiny.operator


def test_mc_dropout_module_selection_and_errors() -> None:
    lin = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    with pytest.raises(ValueError, match="no hidden activation"):
        unc.MCDropout(lin)
    mc = unc.MCDropout(lin, p=0.5, modules=[lin[0]])
    x = torch.ones(64, 4)
    assert not torch.equal(mc(x), mc(x))
    assert len(unc.MCDropout(lin, modules=[nn.Linear])._handles) == 2
    with pytest.raises(ValueError, match="not part of the model"):
        unc.MCDropout(lin, modules=[nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="modules"):
        unc.MCDropout(lin, modules=[3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="custom modules"):
        mc.config()
    for p in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="p must be"):
            unc.MCDropout(Tiny(), p=p)
    with pytest.raises(ValueError, match="n_samples"):
        unc.MCDropout(Tiny(), n_samples=0)
    channel = unc.MCDropout(Tiny(hidden=32), p=0.5, channelwise=True)
    feats = channel.model.net[1](torch.ones(1, 32, 4, 4))  # ReLU output, dropped by whole channels
    per_channel = feats.flatten(2)
    assert bool(((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all())


def test_deep_ensemble_mixture_moments() -> None:
    torch.manual_seed(1)
    members = [Tiny().double() for _ in range(3)]
    y = _sinogram(2)
    ens = unc.DeepEnsemble(members)
    with torch.no_grad():
        outs = torch.stack([m(y) for m in members])
        mean, std = ens(y)
    assert torch.allclose(mean, outs.mean(0), rtol=1e-12, atol=1e-14)
    assert torch.allclose(std, outs.std(0, correction=0), rtol=1e-10, atol=1e-14)
    # heteroscedastic members: mixture variance = variance of the means + mean of the variances
    heads = [unc.HeteroscedasticHead(m, hidden=4, init_log_var=float(i) - 4).double() for i, m in enumerate(members)]
    hens = unc.DeepEnsemble(heads)
    with torch.no_grad():
        pairs = [h(y) for h in heads]
        means = torch.stack([p[0] for p in pairs])
        variances = torch.stack([p[1].exp() for p in pairs])
        mean, std = hens.predict(y)
        _, epistemic, aleatoric = hens.decompose(y)
    assert torch.allclose(epistemic, means.var(0, correction=0), rtol=1e-10, atol=1e-15)
    assert torch.allclose(aleatoric, variances.mean(0), rtol=1e-12)
    assert torch.allclose(std.square(), (variances + means.square()).mean(0) - mean.square(), rtol=1e-8)
    with pytest.raises(ValueError, match="mixed"):
        unc.DeepEnsemble([heads[0], members[1]]).predict(y)
    with pytest.raises(ValueError, match="at least 2"):
        unc.DeepEnsemble([members[0]])
    with pytest.raises(TypeError, match="models"):
        unc.DeepEnsemble(members[0])  # type: ignore[arg-type]


def test_build_round_trip_of_wrappers() -> None:
    torch.manual_seed(2)
    y = _sinogram(2).float()
    models = [
        unc.HeteroscedasticHead(Tiny(), hidden=4, depth=2, init_log_var=-2.0),
        unc.DeepEnsemble([unc.HeteroscedasticHead(Tiny()), unc.CalibratedModel(unc.HeteroscedasticHead(Tiny()), 1.5)]),
        unc.MCDropout(Tiny(), p=0.3, n_samples=5, channelwise=True),
    ]
    for model in models:
        config = model.config()
        rebuilt = unc.build(config, builder=_build)
        rebuilt.load_state_dict(model.state_dict())
        assert rebuilt.config() == config and type(rebuilt) is type(model)
        if isinstance(model, unc.MCDropout):
            torch.manual_seed(3)
            first = model.predict(y)
            torch.manual_seed(3)
            second = rebuilt.predict(y)
        else:
            first, second = model.predict(y), rebuilt.predict(y)
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="lacks the key"):
        unc.build({"class": "MCDropout"}, builder=_build)
    with pytest.raises(ValueError, match="unknown model"):
        unc.build({"class": "Nope"}, builder=_build)
    with pytest.raises(ValueError, match="registered model"):
        unc.build({"format": 1, "class": "Nope", "operator": {}, "kwargs": {}})
    with pytest.raises(TypeError, match="config"):
        unc.build([], builder=_build)  # type: ignore[arg-type]


def test_wrappers_of_the_library_models() -> None:
    torch.manual_seed(5)
    A = _operator()
    lpd = models.LearnedPrimalDual(A, n_iter=2, n_primal=2, n_dual=2, width=4, n_layers=2, dtype=torch.float64)
    mc = unc.MCDropout(lpd, p=0.1, n_samples=3)
    assert len(mc._handles) == sum(isinstance(m, nn.PReLU) for m in lpd.modules()) == 4
    head = unc.HeteroscedasticHead(models.LearnedFBP(A), hidden=4)
    assert head.operator is head.model.operator and head.head[0].weight.dtype == torch.float32
    assert head.n_free_parameters == head.model.n_free_parameters + sum(p.numel() for p in head.head.parameters())
    assert head.to(torch.device("cpu")) is head and head.operator.device == torch.device("cpu")
    y = _sinogram(2)
    for model in (mc, head):
        rebuilt = unc.build(json.loads(json.dumps(model.config())))  # the library's own builder inside
        rebuilt.load_state_dict(model.state_dict())
        if model is mc:
            torch.manual_seed(6)
            first = model.predict(y)
            torch.manual_seed(6)
            second = rebuilt.predict(y)
        else:
            first, second = model.predict(y.float()), rebuilt.predict(y.float())
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


# --- calibration ---------------------------------------------------------------------------


def _gaussian_data(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, generator=g, dtype=torch.float64)
    std = 0.1 + torch.rand(n, generator=g, dtype=torch.float64)
    target = mean + std * torch.randn(n, generator=g, dtype=torch.float64)
    return mean, std, target


def test_coverage_of_exact_gaussian_samples() -> None:
    n = 200_000
    mean, std, target = _gaussian_data(n, 0)
    for level in (0.5, 0.8, 0.9, 0.95):
        cov = float(unc.coverage(mean, std, target, level))
        assert abs(cov - level) < 4 * math.sqrt(level * (1 - level) / n)
    # too small a std covers too little, too large too much
    assert float(unc.coverage(mean, 0.5 * std, target)) < 0.65
    assert float(unc.coverage(mean, 2 * std, target)) > 0.99
    per_row = unc.coverage(mean.reshape(40, -1), std.reshape(40, -1), target.reshape(40, -1), dim=1)
    assert per_row.shape == (40,) and torch.allclose(per_row.mean(), unc.coverage(mean, std, target))
    assert abs(unc.normal_quantile(0.95) - scipy.stats.norm.ppf(0.95)) < 1e-12


def test_calibration_curve_and_error() -> None:
    n = 100_000
    mean, std, target = _gaussian_data(n, 1)
    expected, observed = unc.calibration_curve(mean, std, target)
    assert expected.shape == observed.shape == (19,)
    assert torch.allclose(expected, torch.arange(1, 20, dtype=torch.float64) / 20)
    assert float((expected - observed).abs().max()) < 4 * math.sqrt(0.25 / n)
    calibrated = float(unc.regression_calibration_error(mean, std, target))
    over = float(unc.regression_calibration_error(mean, 2 * std, target))
    under = float(unc.regression_calibration_error(mean, 0.5 * std, target))
    assert calibrated < 1e-4 and over > 1e-2 and under > 1e-2
    # a biased predictor is miscalibrated too
    assert float(unc.regression_calibration_error(mean + std, std, target)) > 1e-2
    # the observed frequency is the empirical CDF of the PIT values at the levels
    u = scipy.stats.norm.cdf(((target - mean) / std).numpy())
    _, obs = unc.calibration_curve(mean, std, target, levels=torch.tensor([0.3, 0.7]))
    assert obs.tolist() == [float((u <= 0.3).mean()), float((u <= 0.7).mean())]


def test_fit_std_scale_fixes_a_miscalibrated_std() -> None:
    n = 100_000
    mean, std, target = _gaussian_data(n, 2)
    val, test = slice(0, n // 2), slice(n // 2, n)
    for wrong in (0.3, 4.0):
        s = unc.fit_std_scale(wrong * std[val], (mean - target)[val])
        assert abs(s * wrong - 1.0) < 0.02
        fixed = s * wrong * std[test]
        assert abs(float(unc.coverage(mean[test], fixed, target[test], 0.9)) - 0.9) < 0.006
        assert float(unc.regression_calibration_error(mean[test], fixed, target[test])) < 2e-4
        assert float(unc.coverage(mean[test], wrong * std[test], target[test], 0.9)) not in (0.85, 0.95)
    # the closed form minimises the Gaussian NLL of the scaled std
    e, sd = (mean - target)[:1000], 0.7 * std[:1000]
    s = unc.fit_std_scale(sd, e)

    def nll(scale: float) -> float:
        return float(unc.gaussian_nll(torch.zeros_like(e), torch.log((scale * sd).square()), e))

    assert nll(s) < nll(s * 1.01) and nll(s) < nll(s * 0.99)
    # complex errors: the circular complex NLL has the same minimiser
    z = torch.randn(20_000, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    assert abs(unc.fit_std_scale(torch.full((20_000,), 0.5, dtype=torch.float64), 2.0 * z) - 4.0) < 0.1


def test_calibrated_model_fit() -> None:
    torch.manual_seed(4)
    head = unc.HeteroscedasticHead(Tiny(), hidden=4, init_log_var=-6.0)
    y = _sinogram(3).float()
    with torch.no_grad():
        mean, std = head.predict(y)
    target = mean + 3.0 * std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(5))
    cal = unc.CalibratedModel.fit(head, y, target)
    assert abs(cal.scale - 3.0) < 0.2
    m2, s2 = cal.predict(y)
    assert torch.equal(m2, mean) and torch.allclose(s2, cal.scale * std)
    assert abs(float(unc.coverage(m2, s2, target)) - 0.9) < 0.05
    with pytest.raises(TypeError, match="predict"):
        unc.CalibratedModel(Tiny(), 1.0)
    with pytest.raises(ValueError, match="scale"):
        unc.CalibratedModel(head, -1.0)


def test_spearman_against_scipy() -> None:
    g = torch.Generator().manual_seed(6)
    a = torch.rand(500, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.rand(500, generator=g, dtype=torch.float64)
    assert abs(float(unc.spearman(a, b)) - scipy.stats.spearmanr(a, b).statistic) < 1e-12
    ta, tb = torch.round(a * 5), torch.round(b * 3).reshape(20, 25)  # many ties, any shapes
    assert abs(float(unc.spearman(ta, tb)) - scipy.stats.spearmanr(ta, tb.flatten()).statistic) < 1e-12
    assert float(unc.spearman(a, -a)) == pytest.approx(-1.0, abs=1e-15)
    assert math.isnan(float(unc.spearman(torch.ones(5), a[:5])))
    with pytest.raises(ValueError, match="same number"):
        unc.spearman(a, b[:10])


def test_calibration_bad_input() -> None:
    mean, std, target = _gaussian_data(10, 7)
    with pytest.raises(ValueError, match="level"):
        unc.coverage(mean, std, target, level=1.0)
    with pytest.raises(ValueError, match="std must be finite and >= 0"):
        unc.coverage(mean, -std, target)
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        unc.calibration_curve(mean, 0 * std, target)
    with pytest.raises(ValueError, match="same shape"):
        unc.coverage(mean, std, target[:5])
    with pytest.raises(ValueError, match="broadcast"):
        unc.coverage(mean, std[:3], target)
    with pytest.raises(TypeError, match="mean"):
        unc.coverage(mean.numpy(), std, target)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="levels"):
        unc.calibration_curve(mean, std, target, levels=torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="std"):
        unc.fit_std_scale(torch.zeros(3), torch.ones(3))


# --- exact variance of linear reconstructions ----------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_propagate_variance_of_a_dense_matrix(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(8)
    for m, n in ((7, 11), (11, 7)):
        M = torch.randn(m, n, generator=g, dtype=dtype)
        v = torch.rand(2, 3, n, generator=g, dtype=torch.float64)
        exact = v @ M.abs().square().T
        L = Matrix(M)
        for method in ("rows", "columns", "auto"):
            got = unc.propagate_variance(L, v, method=method, batch_size=3)
            assert got.shape == (2, 3, m) and got.dtype == torch.float64
            assert torch.allclose(got, exact, rtol=1e-13)
        scalar = unc.propagate_variance(L, 0.5)
        assert scalar.shape == (m,) and torch.allclose(scalar, 0.5 * M.abs().square().sum(1), rtol=1e-13)


def test_propagate_variance_through_fbp_matches_monte_carlo() -> None:
    A = _operator()
    L = FBP(A)
    p = A(pr.data.shepp_logan_image(A.volume, scale=0.1, dtype=torch.float64))
    g = torch.Generator().manual_seed(9)
    n = 3000
    var = 0.01 * (1 + torch.rand(p.shape, generator=g, dtype=torch.float64))
    rows = unc.propagate_variance(L, var, method="rows")
    cols = unc.propagate_variance(L, var, method="columns", batch_size=100)
    assert rows.shape == (16, 16) and torch.allclose(rows, cols, rtol=1e-10)
    tol = 5.5 * math.sqrt(2 / (n - 1))  # relative std of a sample variance, 5.5 sigma over 256 pixels
    y = p + var.sqrt() * torch.randn(n, *p.shape, generator=g, dtype=torch.float64)
    mc = L(y).var(0)
    assert float((mc / rows - 1).abs().max()) < tol
    assert abs(float(mc.sum() / rows.sum()) - 1) < tol / 3
    # post-log Poisson data: Var ~ 1 / (I0 exp(-p)) (delta method; its bias is ~1e-4 here)
    i0 = 1e4
    poisson = unc.propagate_variance(L, unc.post_log_poisson_variance(p, i0))
    noisy = pr.data.poisson_noise(p.expand(n, *p.shape), i0, seed=10)
    mc = L(noisy).var(0)
    assert float((mc / poisson - 1).abs().max()) < tol
    assert abs(float(mc.sum() / poisson.sum()) - 1) < tol / 3
    # one variance map per item of a batch of noise variances
    batch = unc.propagate_variance(L, torch.stack([var, 2 * var]))
    assert batch.shape == (2, 16, 16) and torch.allclose(batch[1], 2 * rows, rtol=1e-12)
    # float32 works in float32
    assert unc.propagate_variance(L, var.float()).dtype == torch.float32


def test_propagate_variance_bad_input() -> None:
    L = FBP(_operator())
    with pytest.raises(TypeError, match="LinearOperator"):
        unc.propagate_variance(torch.eye(3), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        unc.propagate_variance(L, 1.0, method="dense")
    with pytest.raises(ValueError, match="noise_var"):
        unc.propagate_variance(L, torch.ones(5, 7))
    with pytest.raises(ValueError, match="noise_var"):
        unc.propagate_variance(L, -1.0)
    with pytest.raises(ValueError, match="batch_size"):
        unc.propagate_variance(L, 1.0, batch_size=0)
    with pytest.raises(ValueError, match="i0"):
        unc.post_log_poisson_variance(torch.zeros(3), 0.0)
