"""Scale-aware learned models: ``model(c y) = c model(y)`` with ``normalize=True`` (every model
on a tiny CT and a tiny MR operator, float64), the uncertainty wrappers' std scaling with
``c``, the data scale, zero data, configs (old ones build with ``normalize=False``) and
gradients."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from torch import nn

import precisionrecon as pr
from precisionrecon import models, uncertainty

F64 = torch.float64
SCALES = (1e-3, 0.5, 7.0, 1e3)


def _ct() -> pr.LinearOperator:
    return pr.XRayTransform(pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(12), det_count=24))


def _mr() -> pr.LinearOperator:
    mr = pytest.importorskip("precisionrecon.mr")
    return mr.SENSE(mr.random_lines((16, 16), 2, center_lines=4, seed=0), mr.birdcage_maps((3, 16, 16)))


OPERATORS: dict[str, Callable[[], pr.LinearOperator]] = {"ct": _ct, "mr": _mr}

MODELS: dict[str, Callable[..., models.ReconModel]] = {
    "LearnedFBP": lambda A, **kw: models.LearnedFBP(A, dtype=F64, **kw),
    "VariationalNetwork": lambda A, **kw: models.VariationalNetwork(
        A, n_steps=2, n_filters=4, kernel_size=3, n_rbf=7, dtype=F64, **kw
    ),
    "LearnedPrimalDual": lambda A, **kw: models.LearnedPrimalDual(A, n_iter=2, n_primal=3, n_dual=2, width=6,
                                                                  dtype=F64, **kw),
    "FBPConvNet": lambda A, **kw: models.FBPConvNet(A, depth=2, width=4, dtype=F64, **kw),
}
NONLINEAR = ["VariationalNetwork", "LearnedPrimalDual", "FBPConvNet"]
CASES = [(name, op) for op in OPERATORS for name in MODELS if not (op == "mr" and name == "LearnedFBP")]


def _model(name: str, op: str, *, perturbed: bool = False, **kwargs: object) -> models.ReconModel:
    torch.manual_seed(0)
    model = MODELS[name](OPERATORS[op](), **kwargs).eval()  # eval: batch norm with its running statistics
    if perturbed:
        _perturb(model)
    return model


def _perturb(model: nn.Module) -> None:
    """Move every parameter off its initial value, zeros (biases) included: a stand-in for training."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _data(A: pr.LinearOperator, batch: tuple[int, ...] = (2,)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    dtype = torch.complex128 if A._example_dtype().is_complex else F64
    return A(torch.rand(*batch, *A.domain_shape, generator=gen, dtype=dtype))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------------------- homogeneity


@pytest.mark.parametrize("perturbed", [False, True], ids=["untrained", "perturbed"])
@pytest.mark.parametrize(("name", "op"), CASES)
def test_normalized_models_are_homogeneous(name: str, op: str, perturbed: bool) -> None:
    model = _model(name, op, perturbed=perturbed)
    assert model.normalize
    y = _data(model.operator)
    with torch.no_grad():
        x = model(y)
        for c in SCALES:
            assert _rel(model(c * y), c * x) < 1e-10, c


@pytest.mark.parametrize(("name", "op"), [case for case in CASES if case[0] in NONLINEAR])
def test_without_normalize_the_nonlinear_models_are_not_homogeneous(name: str, op: str) -> None:
    model = _model(name, op, perturbed=True, normalize=False)
    y = _data(model.operator)
    with torch.no_grad():
        x = model(y)
        assert all(_rel(model(c * y), c * x) > 1e-3 for c in SCALES)


def test_learned_fbp_is_linear_with_or_without_normalize() -> None:
    on, off = _model("LearnedFBP", "ct", perturbed=True), _model("LearnedFBP", "ct", perturbed=True, normalize=False)
    y = _data(on.operator)
    with torch.no_grad():
        assert _rel(on(y), off(y)) < 1e-14
        assert _rel(off(7.0 * y), 7.0 * off(y)) < 1e-14


# ----------------------------------------------------------------------------- data scale


@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_data_scale(op: str) -> None:
    model = _model("VariationalNetwork", op)
    A = model.operator
    dtype = torch.complex128 if op == "mr" else F64
    uniform = A(torch.full((2, 3, *A.domain_shape), 0.4, dtype=dtype))
    s = model.data_scale(uniform)
    assert s.shape == (2, 3) and s.dtype == F64
    torch.testing.assert_close(s, torch.full((2, 3), 0.4, dtype=F64), rtol=1e-14, atol=0)
    y = _data(A, (2, 3))
    s = model.data_scale(y)
    assert bool((s > 0).all())
    for c in SCALES:
        torch.testing.assert_close(model.data_scale(c * y), c * s, rtol=1e-14, atol=0)
    assert model.data_scale(y[1, 2]).shape == ()
    assert torch.equal(model.data_scale(torch.zeros_like(y)), torch.zeros(2, 3, dtype=F64))
    # ||A 1|| is cached, not a buffer: state_dicts load strictly across normalize on and off
    assert model.state_dict().keys() == _model("VariationalNetwork", op, normalize=False).state_dict().keys()


def test_data_scale_needs_a_nonzero_a1() -> None:
    mr = pytest.importorskip("precisionrecon.mr")
    A = mr.SENSE(torch.zeros(16, 16, dtype=torch.bool), mr.birdcage_maps((2, 16, 16)))
    model = models.VariationalNetwork(A, n_steps=1, n_filters=2, kernel_size=3, n_rbf=5, op_norm=1.0, dtype=F64)
    with pytest.raises(ValueError, match="normalize=False"):
        model(torch.zeros(A.range_shape, dtype=torch.complex128))


@pytest.mark.parametrize(("name", "op"), CASES)
def test_zero_data_give_a_zero_image(name: str, op: str) -> None:
    model = _model(name, op, perturbed=True)
    y = torch.zeros(2, *model.operator.range_shape, dtype=torch.complex128 if op == "mr" else F64)
    with torch.no_grad():
        x = model(y)
    assert x.shape == (2, *model.operator.domain_shape)
    assert torch.equal(x, torch.zeros_like(x))


def test_normalize_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="normalize must be a bool"):
        models.LearnedFBP(_ct(), normalize=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="normalize must be a bool"):
        uncertainty.HeteroscedasticHead(models.LearnedFBP(_ct()), normalize="yes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- uncertainty wrappers


class _Plain(nn.Module):
    """A linear model without ``data_scale``: the head falls back to the rms of the mean."""

    def __init__(self, A: pr.LinearOperator) -> None:
        super().__init__()
        self.A = A
        self.weight = nn.Parameter(torch.tensor(0.01, dtype=F64))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.weight * self.A.T(y)


def _head(model: nn.Module, op: str, **kwargs: object) -> uncertainty.HeteroscedasticHead:
    torch.manual_seed(1)
    head = uncertainty.HeteroscedasticHead(model, hidden=4, depth=2, complex_valued=op == "mr", **kwargs)
    _perturb(head.head)  # the last convolution starts at zero: give the CNN a real say
    return head


@pytest.mark.parametrize(("name", "op"), [("LearnedPrimalDual", "ct"), ("VariationalNetwork", "mr"), ("plain", "ct")])
def test_heteroscedastic_head_std_scales_with_the_data(name: str, op: str) -> None:
    model = _Plain(OPERATORS[op]()) if name == "plain" else _model(name, op, perturbed=True)
    head = _head(model, op)
    assert head.normalize
    y = _data(OPERATORS[op]())
    with torch.no_grad():
        mean, std = head.predict(y)
        for c in SCALES:
            mean_c, std_c = head.predict(c * y)
            assert _rel(mean_c, c * mean) < 1e-10
            assert _rel(std_c, c * std) < 1e-10, c
        assert bool(torch.isfinite(head(torch.zeros_like(y))[1]).all())
        # without normalisation the head is not scale-aware (the test above can fail)
        old = _head(model, op, normalize=False)
        _, std = old.predict(y)
        assert _rel(old.predict(7.0 * y)[1], 7.0 * std) > 1e-3


def test_log_variance_with_a_given_scale() -> None:
    head = _head(_model("LearnedFBP", "ct"), "ct")
    mean = torch.rand(2, 3, 16, 16, dtype=F64)
    scale = torch.rand(2, 3, dtype=F64) + 0.5
    log_var = head.log_variance(mean, scale)
    torch.testing.assert_close(log_var, head.log_variance(3.0 * mean, 3.0 * scale) - 2.0 * torch.log(torch.tensor(3.0)))
    with pytest.raises(ValueError, match="scale must have the batch shape"):
        head.log_variance(mean, scale[0])


def test_mc_dropout_deep_ensemble_and_calibration_scale_with_the_data() -> None:
    y = _data(_ct())
    dropout = uncertainty.MCDropout(_model("LearnedPrimalDual", "ct", perturbed=True), p=0.2, n_samples=4)
    members = [_head(_model("LearnedPrimalDual", "ct", perturbed=True), "ct") for _ in range(2)]
    with torch.no_grad():
        members[1].model.dual_nets[0].layers[0].weight.mul_(1.5)  # members must differ
    ensemble = uncertainty.DeepEnsemble(members)
    calibrated = uncertainty.CalibratedModel(ensemble, 1.7)
    for wrapper in (dropout, ensemble, calibrated):
        with torch.no_grad():
            torch.manual_seed(3)  # the same dropout masks for y and c y
            mean, std = wrapper.predict(y)
            assert bool((std > 0).any())
            for c in SCALES:
                torch.manual_seed(3)
                mean_c, std_c = wrapper.predict(c * y)
                assert _rel(mean_c, c * mean) < 1e-10
                assert _rel(std_c, c * std) < 1e-10, (type(wrapper).__name__, c)


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_round_trip_keeps_normalize(name: str, normalize: bool) -> None:
    model = _model(name, "ct", normalize=normalize)
    config = json.loads(json.dumps(model.config()))
    assert config["kwargs"]["normalize"] is normalize
    rebuilt = models.build(config)
    assert rebuilt.normalize is normalize and rebuilt.config() == model.config()
    rebuilt.load_state_dict(model.state_dict())
    y = _data(model.operator)
    assert torch.equal(rebuilt.eval()(y), model(y))


def test_configs_without_normalize_build_unnormalized() -> None:
    model = _model("LearnedPrimalDual", "ct", perturbed=True)
    old = model.config()
    del old["kwargs"]["normalize"]
    assert models.build(old).normalize is False
    with pytest.raises(ValueError, match=r"config\['kwargs'\]\['normalize'\] must be true or false"):
        models.build({**old, "kwargs": {**old["kwargs"], "normalize": "yes"}})
    head = _head(model, "ct")
    config = json.loads(json.dumps(head.config()))
    assert config["kwargs"]["normalize"] is True and config["model"]["kwargs"]["normalize"] is True
    rebuilt = uncertainty.build(config)
    assert rebuilt.normalize and rebuilt.model.normalize
    del config["kwargs"]["normalize"], config["model"]["kwargs"]["normalize"]
    rebuilt = uncertainty.build(config)
    assert not rebuilt.normalize and not rebuilt.model.normalize
    # an old checkpoint's weights load strictly and give the unnormalised outputs
    rebuilt.load_state_dict(head.state_dict())
    head.normalize, head.model.normalize = False, False
    y = _data(model.operator)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(rebuilt(y), head(y), strict=True))


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(("name", "op"), [("FBPConvNet", "ct"), ("VariationalNetwork", "mr")])
def test_backward_through_a_normalized_model(name: str, op: str) -> None:
    model = _model(name, op, perturbed=True).train()
    y = _data(model.operator).requires_grad_()
    model(y).abs().square().sum().backward()
    assert y.grad is not None and bool(torch.isfinite(y.grad).all()) and bool(y.grad.abs().sum() > 0)
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), pname


def test_gradcheck_normalized_primal_dual() -> None:
    A = pr.XRayTransform(pr.Volume((6, 6)), pr.ParallelBeam2D(angles=pr.angles(4), det_count=8))
    torch.manual_seed(0)
    model = models.LearnedPrimalDual(A, n_iter=1, n_primal=2, n_dual=2, width=3, n_layers=2, dtype=F64)
    _perturb(model)
    y = _data(A, (1,)).requires_grad_()
    assert torch.autograd.gradcheck(model, (y,))
