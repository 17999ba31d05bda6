"""Learned reconstructions: shapes, gradients, freezing, FBP equivalence, config/safetensors
round trips, torch.compile, and MR (complex) operators."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import precisionrecon as pr
from precisionrecon import models
from precisionrecon.geometry import scan_type
from precisionrecon.models.varnet import FieldsOfExperts, RBFActivation, RBFFunction
from precisionrecon.operators.fbp import FBP


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # tiny problems: threads only add synchronisation (and this machine is shared)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _parallel() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(12), det_count=24))


def _fan(arc: float | None = None, detector: str = "flat", det_offset: float = 0.0) -> pr.XRayTransform:
    g = pr.FanBeam2D(angles=[0.0], det_count=32, det_spacing=1.5, src_iso=40.0, src_det=70.0, detector=detector,
                     det_offset=det_offset)
    arc = math.pi + g.fan_angle + 0.1 if arc is None else arc  # default: a short scan
    return pr.XRayTransform(pr.Volume((16, 16)), g.replace(angles=pr.angles(24, arc=arc, start=0.2)))


def _cone() -> pr.XRayTransform:
    g = pr.ConeBeam3D(angles=pr.angles(8, arc=2 * math.pi), det_shape=(10, 14), det_spacing=1.5, src_iso=30.0,
                      src_det=50.0)
    return pr.XRayTransform(pr.Volume((6, 8, 8)), g)


def _sense() -> pr.LinearOperator:
    mr = pytest.importorskip("precisionrecon.mr")
    maps = mr.birdcage_maps((4, 16, 16))
    return mr.SENSE(mr.random_lines((16, 16), 2, center_lines=4, seed=0), maps)


def _nufft() -> pr.LinearOperator:
    mr = pytest.importorskip("precisionrecon.mr")
    maps = mr.birdcage_maps((3, 16, 16))
    return mr.NUFFT(mr.radial(8, 32), (3, 16, 16)) @ mr.Coils(maps)


# tiny versions of every model
MODELS: dict[str, Callable[[pr.LinearOperator], models.ReconModel]] = {
    "LearnedFBP": lambda A: models.LearnedFBP(A),
    "VariationalNetwork": lambda A: models.VariationalNetwork(A, n_steps=2, n_filters=4, kernel_size=3, n_rbf=7),
    "LearnedPrimalDual": lambda A: models.LearnedPrimalDual(A, n_iter=2, n_primal=3, n_dual=2, width=6),
    "FBPConvNet": lambda A: models.FBPConvNet(A, depth=2, width=4),
}
MR_MODELS = ["VariationalNetwork", "LearnedPrimalDual", "FBPConvNet"]


def _data(A: pr.LinearOperator, batch: tuple[int, ...] = (2,), dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    if A._example_dtype().is_complex:
        dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    x = torch.rand(*batch, *A.domain_shape, generator=gen, dtype=dtype)
    return A(x)


def _perturb(model: torch.nn.Module) -> None:
    """Move every parameter off its initial value (a stand-in for training)."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


# ----------------------------------------------------------------------------- shapes and batches


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_and_batch_independence(name: str) -> None:
    A = _parallel()
    model = MODELS[name](A).eval()
    y = _data(A, (2, 3))
    x = model(y)
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    single = model(y[1, 2])
    assert single.shape == (16, 16)
    torch.testing.assert_close(single, x[1, 2], rtol=1e-5, atol=1e-6)
    assert not torch.equal(x[0, 0], x[1, 2])


@pytest.mark.parametrize("name", ["LearnedFBP", "VariationalNetwork", "LearnedPrimalDual", "FBPConvNet"])
def test_cone_beam_volumes(name: str) -> None:
    A = _cone()
    model = (MODELS[name] if name != "FBPConvNet" else lambda A: models.FBPConvNet(A, depth=1, width=2))(A).eval()
    x = model(_data(A, (2,)))
    assert x.shape == (2, 6, 8, 8)
    assert torch.isfinite(x).all()


def test_bad_input() -> None:
    model = models.LearnedFBP(_parallel())
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 12, 24\)"):
        model(torch.zeros(2, 12, 23))
    with pytest.raises(TypeError, match=r"model\.to\(torch\.float64\)"):
        model(torch.zeros(12, 24, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"y must be a torch\.Tensor"):
        model([[0.0] * 24] * 12)
    with pytest.raises(TypeError, match="operator must be a precisionrecon LinearOperator"):
        models.VariationalNetwork(torch.eye(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init='fbp' needs an XRayTransform with a circular geometry"):
        models.VariationalNetwork(pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(
            angles=pr.angles(3), det_count=9).to_vector_geometry()), init="fbp", op_norm=1.0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        models.VariationalNetwork(_parallel(), kernel_size=4, op_norm=1.0)
    with pytest.raises(ValueError, match="volume is only used with a geometry"):
        models.LearnedFBP(_parallel(), pr.Volume((16, 16)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float64_models_and_copies(name: str) -> None:
    A = _parallel()
    model = MODELS[name](A).eval()
    y = _data(A, (2,), torch.float64)
    model64 = copy.deepcopy(model).to(torch.float64)
    x64 = model64(y)
    assert x64.dtype == torch.float64 and model64.operator is not model.operator
    torch.testing.assert_close(x64.float(), model(y.float()), rtol=1e-4, atol=1e-5)


class _OnDevice(pr.LinearOperator):
    """An operator that only records the device it was moved to (``to`` gives a new one)."""

    def __init__(self, op: pr.LinearOperator, device: str = "cpu") -> None:
        self.op, self.domain_shape, self.range_shape = op, op.domain_shape, op.range_shape
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device) -> _OnDevice:
        return _OnDevice(self.op, device)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)

    def adjoint_apply(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.T(y)


def test_device_moves_take_the_operator_along() -> None:
    model = models.LearnedPrimalDual(_OnDevice(_parallel()), n_iter=1, width=4, op_norm=1.0)
    parent = torch.nn.Sequential(model)
    parent.to("meta")  # through the parent: nn.Module.to never calls the child's to()
    assert model.operator.device == torch.device("meta")
    assert next(model.parameters()).device == torch.device("meta")
    model.to(torch.float64)  # a dtype change keeps the operator
    assert model.operator.device == torch.device("meta")
    with pytest.raises(ValueError, match="but the model was built for"):
        model.bind_operator(_parallel().T)


# ----------------------------------------------------------------------------- gradients and freezing


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_reach_every_free_parameter(name: str) -> None:
    A = _parallel()
    model = MODELS[name](A)
    y = _data(A)
    target = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(3))
    (model(y) - target).square().sum().backward()
    free = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert sum(p.numel() for _, p in free) == model.n_free_parameters > 0
    for n, p in free:
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"no gradient reaches {n}"
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"frozen {n} got a gradient"


def test_freeze_and_free_learned_fbp() -> None:
    A = _fan()
    model = models.LearnedFBP(A)
    parts = model.known_operators()
    assert set(parts) == {"weights", "filter", "backprojection"}
    n_filter = model.fbp.response.numel()
    assert parts["filter"] == {"description": parts["filter"]["description"], "n_parameters": n_filter,
                               "frozen": False}
    assert parts["weights"]["n_parameters"] == 24 * 32 and parts["backprojection"]["n_parameters"] == 0
    assert parts["backprojection"]["frozen"]
    total = model.n_free_parameters
    assert total == n_filter + 24 * 32 == model.n_parameters

    model.freeze("filter")
    assert model.n_free_parameters == total - n_filter
    assert model.known_operators()["filter"]["frozen"] and not model.fbp.response.requires_grad
    model(_data(A)).sum().backward()
    assert model.fbp.response.grad is None and model.fbp.weights.grad is not None

    model.freeze("weights")
    assert model.n_free_parameters == 0
    assert not model(_data(A)).requires_grad  # nothing left for autograd

    model.free("filter")
    assert model.n_free_parameters == n_filter
    with pytest.raises(ValueError, match="has no learnable pieces"):
        model.free("backprojection")
    with pytest.raises(ValueError, match="name must be one of the known operators"):
        model.freeze("projector")


def test_fbp_of_fbpconvnet_is_frozen_by_default() -> None:
    A = _parallel()
    model = models.FBPConvNet(A, depth=2, width=4)
    unet = sum(p.numel() for p in model.unet.parameters())
    assert model.n_free_parameters == unet
    assert model.known_operators()["filter"]["frozen"] and model.known_operators()["weights"]["frozen"]
    model.free("filter")
    assert model.n_free_parameters == unet + model.init.fbp.response.numel()
    assert model.config()["frozen"] == ["weights"]


# ----------------------------------------------------------------------------- LearnedFBP = FBP


FBP_CASES = {
    "parallel": _parallel,
    "fan-short-flat": _fan,
    "fan-short-arc-offset": lambda: _fan(detector="arc", det_offset=1.0, arc=math.pi + 1.2),
    "fan-full": lambda: _fan(arc=2 * math.pi),
    "cone": _cone,
}


@pytest.mark.parametrize("case", sorted(FBP_CASES))
def test_untrained_learned_fbp_equals_fbp(case: str) -> None:
    A = FBP_CASES[case]()
    if case.startswith("fan-short"):
        assert scan_type(A.geometry) == "short"
    y = _data(A, (2,), torch.float64)
    ref = FBP(A)(y)
    with torch.no_grad():
        x = models.LearnedFBP(A, dtype=torch.float64)(y)
        x32 = models.LearnedFBP(A)(y.float())
    assert float((x - ref).norm() / ref.norm()) < 1e-14
    assert float((x32 - ref).norm() / ref.norm()) < 1e-6


def test_learned_fbp_from_geometry_and_volume() -> None:
    A = _fan()
    y = _data(A)
    assert torch.equal(models.LearnedFBP(A.geometry, A.volume)(y), models.LearnedFBP(A)(y))


LIMITED_CASES = {
    "fan-flat": lambda: _fan(arc=math.radians(160)),
    "fan-arc-offset": lambda: _fan(arc=math.radians(160), detector="arc", det_offset=0.8),
    "cone": lambda: _cone().replace(geometry=_cone().geometry.replace(angles=pr.angles(8, arc=math.radians(160)))),
}


@pytest.mark.parametrize("case", sorted(LIMITED_CASES))
def test_untrained_limited_angle_learned_fbp_is_fbp_with_extended_parker_weights(case: str) -> None:
    A = LIMITED_CASES[case]()
    assert scan_type(A.geometry) == "limited"
    fbp = FBP(A, parker="extended")
    model = models.LearnedFBP(A, dtype=torch.float64)
    assert torch.equal(model.fbp.designed_weights, fbp.designed_weights.expand(A.geometry.proj_shape))
    assert torch.equal(model.fbp.weights.detach(), model.fbp.designed_weights)
    assert torch.equal(model.fbp.designed_response, fbp.designed_response)
    y = _data(A, (2,), torch.float64)
    ref = fbp(y)
    with torch.no_grad():
        x = model(y)
    # the model applies the product of FBP's two weight factors: equal up to rounding
    assert float((x - ref).norm() / ref.norm()) < 1e-14
    with pytest.raises(ValueError, match="extended Parker weights"):
        models.LearnedFBP(A, parker=False)
    with pytest.raises(ValueError, match="short_scan=False"):
        models.LearnedFBP(A, short_scan=False)


@pytest.mark.parametrize(
    ("det_spacing", "window", "backprojector"),
    [(1.5, "ram-lak", "footprint"), (0.8, "hann", "voxel"), (0.8, "ram-lak", "footprint")],
)
def test_limited_angle_auto_backprojector_is_the_full_scan_choice(
    det_spacing: float, window: str, backprojector: str
) -> None:
    """FBP's "auto" does not depend on the angles: a limited-angle scan gets the full circle's choice."""
    geom = _fan(detector="arc", det_offset=0.8, arc=math.radians(160)).geometry.replace(det_spacing=det_spacing)
    A = pr.XRayTransform(pr.Volume((16, 16)), geom)
    full = pr.XRayTransform(A.volume, geom.replace(angles=pr.angles(geom.n_views, arc=2 * math.pi)))
    assert FBP(full, window).backprojector_used == backprojector
    model = models.LearnedFBP(A, filter=window, dtype=torch.float64)
    assert model.config()["kwargs"]["backprojector"] == backprojector
    y = _data(A, (2,), torch.float64)
    ref = FBP(A, window, parker="extended", backprojector=backprojector)(y)
    with torch.no_grad():
        assert float((model(y) - ref).norm() / ref.norm()) < 1e-14


@pytest.mark.parametrize("case", ["fan-limited", "fan-full"])
def test_fbp_layer_builds_each_fbp_once(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One FBP with the designed values, one with the parameters; none on another geometry, none per call."""
    A = _fan(arc=math.radians(160) if case == "fan-limited" else 2 * math.pi)
    built: list[FBP] = []
    post_init = FBP.__post_init__

    def counting(self: FBP) -> None:
        built.append(self)
        post_init(self)

    monkeypatch.setattr(FBP, "__post_init__", counting)
    model = models.LearnedFBP(A)
    assert len(built) == 2
    assert all(f.A is A for f in built)
    assert built[0].weights is None and built[1].weights is model.fbp.weights
    assert built[1].response is model.fbp.response
    y = _data(A)
    model(y)
    model(y)
    assert len(built) == 2
    with torch.no_grad():
        model.fbp.response.mul_(1.1)  # in place: the same parameter, no rebuild
    model(y)
    assert len(built) == 2


# ----------------------------------------------------------------------------- the unrolled models


class _Counting(pr.LinearOperator):
    """Wraps an operator and counts its applications."""

    def __init__(self, op: pr.LinearOperator) -> None:
        self.op, self.domain_shape, self.range_shape = op, op.domain_shape, op.range_shape
        self.calls = {"apply": 0, "adjoint": 0}

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self.calls["apply"] += 1
        return self.op(x)

    def adjoint_apply(self, y: torch.Tensor) -> torch.Tensor:
        self.calls["adjoint"] += 1
        return self.op.T(y)


def test_primal_dual_architecture_and_operator_in_every_iteration() -> None:
    A = _Counting(_parallel())
    model = models.LearnedPrimalDual(A, op_norm=1.0)  # Adler & Öktem's defaults
    assert len(model.dual_nets) == len(model.primal_nets) == 10
    convs = [m for m in model.dual_nets[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(7, 32, (3, 3)), (32, 32, (3, 3)),
                                                                               (32, 5, (3, 3))]
    convs = [m for m in model.primal_nets[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(6, 32), (32, 32), (32, 5)]
    assert sum(isinstance(m, torch.nn.PReLU) for m in model.primal_nets[0].modules()) == 2
    model(_data(A.op))
    # one more apply: A 1 for the data scale (normalize=True), computed once and cached
    assert A.calls == {"apply": 11, "adjoint": 10}
    model(_data(A.op))
    assert A.calls == {"apply": 21, "adjoint": 20}


def test_variational_network_without_regulariser_is_landweber() -> None:
    A = _parallel()
    model = models.VariationalNetwork(A, n_steps=3, n_filters=2, kernel_size=3, n_rbf=5, init="adjoint",
                                      dtype=torch.float64)
    with torch.no_grad():
        for reg in model.regularizers:
            reg.activation.weights.zero_()
        model.steps.copy_(torch.tensor([1.0, 0.5, 1.5]))
    y = _data(A, (2,), torch.float64)
    z = A.T(y)
    x = (z.square().sum((1, 2)) / A(z).square().sum((1, 2, ))).reshape(2, 1, 1) * z
    for a in (1.0, 0.5, 1.5):
        x = x - a * A.T(A(x) - y) / model.op_norm**2
    torch.testing.assert_close(model(y), x, rtol=1e-12, atol=1e-12)
    assert model.op_norm == pytest.approx(A.norm())


def test_fields_of_experts_kernels_and_adjoint() -> None:
    foe = FieldsOfExperts(2, 3, 5, dtype=torch.float64)
    k = foe.filters()
    torch.testing.assert_close(k.mean(dim=(2, 3)), torch.zeros(3, 2, dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(k.flatten(1).norm(dim=1), torch.ones(3, dtype=torch.float64))
    x, z = torch.randn(2, 2, 9, 8, dtype=torch.float64), torch.randn(2, 3, 9, 8, dtype=torch.float64)
    kx = torch.nn.functional.conv2d(x, k, padding=2)
    ktz = torch.nn.functional.conv_transpose2d(z, k, padding=2)
    torch.testing.assert_close((kx * z).sum(), (x * ktz).sum(), rtol=1e-13, atol=0)


def _rbf_direct(z: torch.Tensor, act: RBFActivation) -> torch.Tensor:
    """The plain sum over every centre."""
    g = torch.exp(-0.5 * ((z[..., None] - act.centers) / act.sigma) ** 2)
    return (act.weights.reshape(1, -1, *(1,) * (z.dim() - 2), act.weights.shape[1]) * g).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rbf_activation_equals_the_sum_over_all_centres(dtype: torch.dtype) -> None:
    act = RBFActivation(3, 31, v_max=1.5, dtype=dtype)
    with torch.no_grad():
        act.weights.copy_(torch.randn(3, 31, dtype=dtype))
    # inside, near the ends and far outside the centres
    z = torch.cat([torch.randn(2, 3, 40, dtype=dtype), torch.linspace(-30, 30, 2 * 3 * 40, dtype=dtype).reshape(
        2, 3, 40)], dim=-1).requires_grad_()
    out, ref = act(z), _rbf_direct(z, act)
    grad = torch.randn_like(out)
    g_out = torch.autograd.grad(out, (z, act.weights), grad)
    g_ref = torch.autograd.grad(ref, (z, act.weights), grad)
    tol = 1e-13 if dtype == torch.float64 else 2e-6
    for a, b in zip((out, *g_out), (ref, *g_ref), strict=True):
        assert float((a - b).detach().abs().max() / b.detach().abs().max()) < tol


def test_rbf_activation_gradcheck_and_initial_slope() -> None:
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, w: RBFFunction.apply(z, w, -1.0, 0.4), (z, w))
    act = RBFActivation(2, 31, v_max=2.0, init_slope=0.3, dtype=torch.float64)
    t = torch.linspace(-1.5, 1.5, 7, dtype=torch.float64)
    with torch.no_grad():  # the least-squares fit of the line, within 1 % inside the centres
        torch.testing.assert_close(act(t.expand(1, 2, 7)), 0.3 * t.expand(1, 2, 7), rtol=1e-2, atol=1e-9)


# ----------------------------------------------------------------------------- config and safetensors


@pytest.mark.parametrize(
    ("name", "make_op"),
    [(n, _parallel) for n in sorted(MODELS)] + [(n, _sense) for n in MR_MODELS] + [("LearnedFBP", _fan)],
)
def test_config_build_and_safetensors_round_trip(name: str, make_op: Callable, tmp_path: Path) -> None:
    A = make_op()
    model = MODELS[name](A)
    if name == "LearnedFBP":
        model.freeze("filter")
    _perturb(model)
    config = model.config()
    (tmp_path / "model.json").write_text(json.dumps(config))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))

    rebuilt = models.build(json.loads((tmp_path / "model.json").read_text()))
    assert type(rebuilt) is type(model) and rebuilt.config() == config
    y = _data(A)
    assert not torch.equal(rebuilt.eval()(y), model.eval()(y))  # untrained differs from "trained"
    rebuilt.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    assert torch.equal(rebuilt(y), model(y))
    assert rebuilt.n_free_parameters == model.n_free_parameters
    assert {k: v["frozen"] for k, v in rebuilt.known_operators().items()} == {
        k: v["frozen"] for k, v in model.known_operators().items()
    }


def test_build_bad_config() -> None:
    config = models.LearnedFBP(_parallel()).config()
    with pytest.raises(TypeError, match="config must be a dict"):
        models.build(json.dumps(config))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="config\\['format'\\] must be 1"):
        models.build({**config, "format": 99})
    with pytest.raises(ValueError, match="must name a registered model"):
        models.build({**config, "class": "Unknown", "module": "os"})
    with pytest.raises(ValueError, match="config\\['frozen'\\] names unknown parts"):
        models.build({**config, "frozen": ["projector"]})
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        models.build({**config, "kwargs": {**config["kwargs"], "depth": 3}})
    assert set(models.registered_models()) >= {"LearnedFBP", "VariationalNetwork", "LearnedPrimalDual", "FBPConvNet"}


# ----------------------------------------------------------------------------- MR (complex)


@pytest.mark.parametrize("make_op", [_sense, _nufft], ids=["sense", "nufft"])
@pytest.mark.parametrize("name", MR_MODELS)
def test_mr_models(name: str, make_op: Callable) -> None:
    A = make_op()
    model = MODELS[name](A)
    y = _data(A, (2,))
    x = model(y)
    assert x.shape == (2, 16, 16) and x.dtype == torch.complex64
    assert x.imag.abs().sum() > 0
    target = torch.randn(2, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(2))
    (x - target).abs().square().sum().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"no gradient reaches {n}"
    model.eval()
    torch.testing.assert_close(model(y[1]), model(y)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["VariationalNetwork", "LearnedPrimalDual", "FBPConvNet"])
def test_cg_init_is_cg_sense_and_recorded_only_when_used(name: str) -> None:
    A = _sense()
    y = _data(A, (2,)).to(torch.complex128)
    make = {"VariationalNetwork": models.VariationalNetwork, "LearnedPrimalDual": models.LearnedPrimalDual,
            "FBPConvNet": models.FBPConvNet}[name]
    model = make(A, init="cg", init_iter=7, dtype=torch.float64)
    x0 = model.init(y)
    torch.testing.assert_close(x0, pr.mr.cg_sense(A, y, 7).x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.init(3.0 * y), 3.0 * x0, rtol=1e-10, atol=1e-12)  # scale-equivariant
    # the exact CG solution after enough steps (16 x 16 unknowns, a fully determined SENSE)
    exact = make(A, init="cg", init_iter=200, dtype=torch.float64).init(y[:1])
    residual = A.T(A(exact) - y[:1])
    assert float(residual.abs().max()) < 1e-8 * float(A.T(y[:1]).abs().max())
    config = model.config()
    assert config["kwargs"]["init"] == "cg" and config["kwargs"]["init_iter"] == 7
    rebuilt = models.build(config)
    torch.testing.assert_close(rebuilt.init(y), x0)
    assert "init_iter" not in make(A, init="adjoint").config()["kwargs"]  # older configs unchanged
    with pytest.raises(ValueError, match="init_iter"):
        make(A, init="cg", init_iter=0)
    # gradients reach the data through the CG steps
    yg = y.clone().requires_grad_(True)
    model.init(yg).abs().square().sum().backward()
    assert yg.grad is not None and float(yg.grad.abs().sum()) > 0


def test_mr_real_and_imaginary_channels() -> None:
    A = _sense()
    model = models.LearnedPrimalDual(A, n_iter=1, n_primal=2, n_dual=2, width=4)
    assert model.dual_nets[0].layers[0].in_channels == 2 * (2 + 2)  # (h, A f, g), each (real, imag)
    assert model.primal_nets[0].layers[-1].out_channels == 2 * 2
    vn = models.VariationalNetwork(A, n_steps=1, n_filters=3, kernel_size=3, n_rbf=5)
    assert vn.regularizers[0].kernels.shape == (3, 2, 3, 3)


# ----------------------------------------------------------------------------- torch.compile


def _compile_matches_eager(name: str) -> None:
    A = _parallel()
    model = MODELS[name](A).eval()
    y = _data(A)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(y)
    torch.testing.assert_close(out, model(y), rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_compile_learned_primal_dual() -> None:
    _compile_matches_eager("LearnedPrimalDual")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["LearnedFBP", "VariationalNetwork", "FBPConvNet"])
def test_compile(name: str) -> None:
    _compile_matches_eager(name)


def test_learned_fbp_config_records_the_resolved_backprojector() -> None:
    """A saved config names the back-projector "auto" chose, so it rebuilds the same model."""
    A = _fan(arc=math.radians(160))  # limited angle
    model = models.LearnedFBP(A, dtype=torch.float64)
    chosen = FBP(A, parker="extended")
    assert model.config()["kwargs"]["backprojector"] == chosen.backprojector_used != "auto"
    rebuilt = models.build(model.config())
    assert rebuilt.config() == model.config()
    assert models.LearnedFBP(A, backprojector="voxel").config()["kwargs"]["backprojector"] == "voxel"
