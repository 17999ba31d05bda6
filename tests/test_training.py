"""Training: config round trips, reproducible sharded data, loss decrease, checkpoints
(safetensors + JSON, reloaded without the trainer), resume, seeds, two-process DDP against
one process, the command line, configuration errors, and the opt-in compiled CNN blocks
(:func:`precisionrecon.models.compile_blocks`: same state_dict, same outputs to rounding)."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

import precisionrecon as pr
from precisionrecon import models, mr, training
from precisionrecon import uncertainty as unc
from precisionrecon.training.checkpoint import CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE
from precisionrecon.training.command import main
from precisionrecon.training.data import shard

N, VIEWS, DET = 16, 12, 24


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # tiny problems: OpenMP threads only contend on this shared machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _operator() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((N, N)), pr.ParallelBeam2D(angles=pr.angles(VIEWS), det_count=DET))


class Tiny(nn.Module):
    """Stand-in reconstruction model: scaled back-projection plus a residual CNN; with
    ``xray=False`` a denoiser (identity operator, no compiled kernels to load)."""

    def __init__(self, hidden: int = 4, xray: bool = True, gain: float = 1.0) -> None:
        super().__init__()
        self.hidden, self.xray, self.gain = hidden, xray, gain
        self.operator = _operator() if xray else pr.IdentityOperator((N, N))
        self.scale = nn.Parameter(torch.tensor(gain * (0.02 if xray else 1.0)))
        self.net = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, 1, 3, padding=1))

    def forward(self, y: Tensor) -> Tensor:
        x = self.scale * self.operator.T(y)
        return x + self.net(x.reshape(-1, 1, N, N)).reshape(x.shape)

    def config(self) -> dict[str, Any]:
        return {"class": "Tiny", "kwargs": {"hidden": self.hidden, "xray": self.xray, "gain": self.gain}}


def _build(config: dict[str, Any]) -> nn.Module:
    if config.get("class") != "Tiny":
        raise ValueError(f"unknown model {config.get('class')!r}")
    return Tiny(**config["kwargs"])


def _config(out: Path | None = None, **changes: Any) -> training.TrainingConfig:
    base: dict[str, Any] = {
        "model": Tiny().config(),
        "output_dir": None if out is None else str(out),
        "steps": 6,
        "batch_size": 4,
        "lr": 1e-2,
        "val_every": 3,
        "dtype": "float64",
        "device": "cpu",
        "progress": False,
        "data": {"val_size": 4, "n_ellipses": 10},
    }
    base.update(changes)
    return training.TrainingConfig.from_dict(base)


def _parameters(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- configuration ---------------------------------------------------------------------------


def test_config_round_trip_json_and_yaml(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "out", betas=[0.8, 0.95], resume=True, data={"noise": "poisson", "i0": 5e3})
    assert cfg.betas == (0.8, 0.95) and isinstance(cfg.data, training.DataConfig) and cfg.data.i0 == 5e3
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d and training.TrainingConfig.from_dict(d) == cfg
    for name in ("cfg.json", "cfg.yaml"):
        cfg.save(tmp_path / name)
        assert training.TrainingConfig.from_file(tmp_path / name) == cfg
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"stepz": 3}, "unknown keys \\['stepz'\\]"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"min_lr": 1.0}, "min_lr"),
        ({"schedule": "step"}, "schedule"),
        ({"loss": "l1"}, "loss"),
        ({"dtype": "float16"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"betas": [0.9]}, "betas"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"model": "LearnedFBP"}, "model"),
        ({"data": {"noise": "speckle"}}, "data.noise"),
        ({"data": {"sigma": 1}}, "unknown keys \\['sigma'\\]"),
        ({"data": {"train_size": 0}}, "data.train_size"),
        ({"compile": "yes"}, "compile must be a bool"),
        ({"data": {"noise_level_max": 0.01}}, "data.noise_level_max \\(0.01\\) must be at least data.noise_level"),
        ({"data": {"noise": "poisson", "noise_level_max": 0.1}}, "noise_level_max is for noise 'gaussian'"),
        ({"data": {"noise": "poisson", "i0": 1e3, "i0_min": 1e4}}, "data.i0_min \\(10000.0\\) must not exceed"),
        ({"data": {"i0_min": 10.0}}, "i0_min is for noise 'poisson'"),
        ({"init_weights": 3}, "init_weights must be a path"),
        ({"data": {"phase": "linear"}}, "data.phase must be one of \\('smooth', 'random'\\)"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _config(**changes)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training.TrainingConfig.from_file(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="must end in"):
        training.TrainingConfig.from_file(tmp_path / "cfg.txt")
    (tmp_path / "bad.json").write_text("{steps: 3")
    with pytest.raises(ValueError, match="not valid JSON"):
        training.TrainingConfig.from_file(tmp_path / "bad.json")


def test_learning_rate_schedule() -> None:
    cfg = _config(steps=110, lr=1e-3, min_lr=1e-5, warmup_steps=10)
    lrs = [training.learning_rate(cfg, t) for t in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3) and lrs[10] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:])) and lrs[-1] > 1e-5
    assert training.learning_rate(cfg, 110) == pytest.approx(1e-5)
    flat = _config(schedule="constant", lr=3e-4)
    assert {training.learning_rate(flat, t) for t in range(6)} == {3e-4}


# --- data ------------------------------------------------------------------------------------


def test_data_reproducible_sharded_and_fixed_validation() -> None:
    A = _operator()
    data = training.SimulatedData(A, training.DataConfig(n_ellipses=10), 7, "float64", "cpu")
    y, x = data.batch(3, range(4), 4)
    assert y.shape == (4, VIEWS, DET) and x.shape == (4, N, N) and y.dtype == torch.float64
    # items do not depend on the shard that draws them, nor on the object
    y01, x01 = data.batch(3, range(0, 2), 4)
    fresh = training.SimulatedData(A, training.DataConfig(n_ellipses=10), 7, "float64", "cpu")
    y23, x23 = fresh.batch(3, range(2, 4), 4)
    assert torch.equal(torch.cat([x01, x23]), x) and torch.equal(torch.cat([y01, y23]), y)
    # Gaussian noise of 5 % of the mean |y| per item
    clean = A(x)
    rel = (y - clean).std(dim=(1, 2)) / clean.abs().mean(dim=(1, 2))
    assert bool(((rel - 0.05).abs() < 0.01).all())
    assert not torch.equal(data.batch(4, range(4), 4)[1], x)
    assert not torch.equal(training.SimulatedData(A, training.DataConfig(n_ellipses=10), 8, "float64", "cpu")
                           .batch(3, range(4), 4)[1], x)
    val_y, val_x = data.validation_set()
    again = training.SimulatedData(A, training.DataConfig(n_ellipses=10), 99, "float64", "cpu").validation_set()
    assert torch.equal(val_x, again[1]) and torch.equal(val_y, again[0]) and val_x.shape == (8, N, N)
    assert not any(torch.equal(v, t) for v in val_x for t in x)
    assert training.SimulatedData(A, training.DataConfig(val_size=0), 0, "float32", "cpu").validation_set() is None


def test_data_fixed_training_set_and_poisson() -> None:
    A = _operator()
    data = training.SimulatedData(A, training.DataConfig(train_size=3, n_ellipses=10), 0, "float32", "cpu")
    images = [data.batch(step, range(3), 3)[1] for step in range(3)]  # one epoch per step
    key = sorted(float(i.sum()) for i in images[0])
    for epoch in images[1:]:
        assert sorted(float(i.sum()) for i in epoch) == key  # the same three phantoms ...
    assert any(not torch.equal(images[0], e) for e in images[1:])  # ... in new orders
    poisson = training.SimulatedData(A, training.DataConfig(noise="poisson", i0=1e3, mu_scale=0.1), 0, "float64", "cpu")
    y, x = poisson.batch(0, range(2), 2)
    clean = A(x)
    assert torch.allclose(y, clean, atol=20.0) and not torch.allclose(y, clean, atol=0.1)
    none = training.SimulatedData(A, training.DataConfig(noise="none"), 0, "float64", "cpu")
    y, x = none.batch(0, range(2), 2)
    assert torch.equal(y, A(x))


def test_data_noise_of_a_random_level() -> None:
    """``noise_level_max`` / ``i0_min``: each sample's level is drawn log-uniformly in the
    range, the same for the same seed, and spans the range over many samples."""
    A = _operator()
    cfg = training.DataConfig(n_ellipses=10, noise_level=0.02, noise_level_max=0.2)
    data = training.SimulatedData(A, cfg, 3, "float64", "cpu")
    rel = []
    for step in range(12):
        y, x = data.batch(step, range(2), 2)
        clean = A(x)
        rel += ((y - clean).std(dim=(1, 2)) / clean.abs().mean(dim=(1, 2))).tolist()
    assert min(rel) > 0.015 and max(rel) < 0.25  # inside the range, up to the spread of a std estimate
    assert min(rel) < 0.05 and max(rel) > 0.08  # and not one fixed level
    again = training.SimulatedData(A, cfg, 3, "float64", "cpu").batch(5, range(2), 2)
    assert torch.equal(again[0], data.batch(5, range(2), 2)[0])
    # a Poisson dose range: fewer photons, more noise; the same photons without the range
    fixed = training.DataConfig(noise="poisson", i0=1e4, mu_scale=0.1, n_ellipses=10)
    ranged = training.DataConfig(noise="poisson", i0=1e4, i0_min=1e2, mu_scale=0.1, n_ellipses=10)
    errs = {}
    for name, c in (("fixed", fixed), ("ranged", ranged)):
        y, x = training.SimulatedData(A, c, 0, "float64", "cpu").batch(0, range(8), 8)
        errs[name] = (y - A(x)).std(dim=(1, 2))
    assert float(errs["ranged"].max()) > 2 * float(errs["fixed"].max())


def test_mr_data_with_sense() -> None:
    mask = torch.zeros(N, N, dtype=torch.bool)
    mask[:, ::2] = True
    maps = mr.birdcage_maps((4, N, N), dtype=torch.complex128)
    A = mr.SENSE(mask, maps)
    data = training.SimulatedData(A, training.DataConfig(noise_level=0.1), 0, "float64", "cpu")
    assert data.kind == "mr"
    y, x = data.batch(0, range(2), 2)
    assert x.dtype == torch.complex128 and y.shape == (2, 4, N, N)
    assert torch.equal(y[..., 1::2], torch.zeros_like(y[..., 1::2]))  # unsampled k-space stays zero
    assert not torch.allclose(y, A(x))
    assert (x.angle()[x.abs() > 0.05].std() > 0.01)  # a random smooth phase
    # a learned model trains on it end to end (complex MSE, PSNR of complex images, SSIM of magnitudes)
    lpd = models.LearnedPrimalDual(A, n_iter=1, n_primal=2, n_dual=2, width=4, n_layers=2, dtype=torch.float64)
    trainer = training.train(_config(model=lpd.config(), steps=2, batch_size=2, val_every=0, lr=1e-3))
    assert trainer.model.is_complex and {"val_psnr", "val_ssim"} <= set(trainer.metrics)
    training.seed_everything(0)  # the trainer seeds, then builds: this is its initial model
    initial = models.build(lpd.config()).state_dict()
    trained = trainer.model.state_dict()
    assert set(trained) == set(initial) and any(not torch.equal(trained[k], initial[k]) for k in initial)
    # NUFFT data: complex samples on the trajectory, all noisy
    F = mr.NUFFT(mr.radial(8, 2 * N), (N, N))
    y, x = training.SimulatedData(F, training.DataConfig(), 0, "float32", "cpu").batch(0, range(2), 2)
    assert y.shape == (2, 8, 2 * N) and y.dtype == torch.complex64 and not torch.allclose(y, F(x))
    # phase "random": the same magnitudes, but phases that are not one pattern times a factor
    # (anatomy: images >= 0, so the angle is the phase; ellipses may be negative)
    xs, xr = (training.SimulatedData(A, training.DataConfig(phantom="anatomy", phase=p), 0, "float64",
                                     "cpu").batch(0, range(2), 2)[1] for p in ("smooth", "random"))
    torch.testing.assert_close(xr.abs(), xs.abs())
    inside = (xs.abs() > 0.05).all(0)
    fixed = [xs[k].angle()[inside] for k in range(2)]
    drawn = [xr[k].angle()[inside] for k in range(2)]

    def misfit(a: Tensor, b: Tensor) -> float:  # residual of the least-squares fit a ~ c * b
        return float((a - (a @ b) / (b @ b) * b).norm() / a.norm())

    assert misfit(fixed[0], fixed[1]) < 1e-6  # "smooth": one pattern, a factor per image
    assert misfit(drawn[0], drawn[1]) > 0.1
    with pytest.raises(ValueError, match="poisson"):
        training.SimulatedData(A, training.DataConfig(noise="poisson"), 0, "float64", "cpu")
    with pytest.raises(ValueError, match="kind is 'ct'"):
        training.SimulatedData(A, training.DataConfig(kind="ct"), 0, "float64", "cpu")


def test_shard() -> None:
    assert [list(shard(6, r, 3)) for r in range(3)] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match="divisible"):
        shard(5, 0, 2)


# --- training, checkpoints, resume -----------------------------------------------------------


def test_training_decreases_the_loss_and_checkpoints_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    trainer = training.train(_config(out, steps=12, val_every=6, checkpoint_every=4, keep_checkpoints=2),
                             builder=_build)
    hist = trainer.history
    assert [h["step"] for h in hist] == [0, 6, 12] and hist[0]["loss"] is None
    assert hist[-1]["val_loss"] < 0.5 * hist[0]["val_loss"] and hist[-1]["val_psnr"] > hist[0]["val_psnr"]
    assert hist[2]["loss"] < hist[1]["loss"]
    assert {"val_psnr", "val_ssim", "val_loss"} <= set(trainer.metrics)
    # files: the newest two checkpoints, an index, the history; nothing half written
    names = sorted(p.name for p in out.iterdir())
    assert names == ["history.json", "latest.json", "step-00000008", "step-00000012"]
    ckpt = out / "step-00000012"
    assert sorted(p.name for p in ckpt.iterdir()) == sorted([CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE])
    meta = json.loads((ckpt / CONFIG_FILE).read_text())
    assert meta["model"] == Tiny().config() and meta["step"] == 12 and meta["dtype"] == "float64"
    assert meta["training"]["batch_size"] == 4 and meta["metrics"] == trainer.metrics
    assert json.loads((out / "history.json").read_text()) == json.loads(json.dumps(hist))

    # reload without the trainer (and never through torch.load): identical outputs
    def no_pickle(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.load used")

    monkeypatch.setattr(torch, "load", no_pickle)
    y, _ = trainer.data.validation_set()
    trainer.model.eval()
    for path in (out, ckpt, ckpt / MODEL_FILE):
        model = training.load_checkpoint(path, builder=_build)
        assert not model.training and model.scale.dtype == torch.float64
        assert torch.equal(model(y), trainer.model(y))
    older = training.load_checkpoint(out / "step-00000008", builder=_build)
    assert not torch.equal(older(y), trainer.model(y))


def test_resume_continues_identically_and_seeds_reproduce(tmp_path: Path) -> None:
    straight = training.train(_config(tmp_path / "a", steps=6, checkpoint_every=3), builder=_build)
    again = training.train(_config(tmp_path / "b", steps=6), builder=_build)
    other = training.train(_config(None, steps=6, seed=1), builder=_build)
    final = _parameters(straight.model)
    assert all(torch.equal(v, _parameters(again.model)[k]) for k, v in final.items())
    assert not torch.equal(final["scale"], _parameters(other.model)["scale"])
    # continue from the checkpoint of step 3 in a new folder: the same parameters, bit for bit,
    # and the same history
    resumed = training.train(
        _config(tmp_path / "c", steps=6, resume=str(tmp_path / "a" / "step-00000003")), builder=_build
    )
    assert resumed.step == 6
    assert all(torch.equal(v, _parameters(resumed.model)[k]) for k, v in final.items())
    strip = [{k: v for k, v in h.items() if k != "train_time"} for h in straight.history]
    assert [{k: v for k, v in h.items() if k != "train_time"} for h in resumed.history] == strip
    # a run stopped after the checkpoint of step 2 and started again with resume=True
    stopped = training.Trainer(_config(tmp_path / "d", steps=6), builder=_build)
    for _ in range(2):
        stopped.train_step()
    stopped.save()
    restarted = training.Trainer(_config(tmp_path / "d", steps=6, resume=True), builder=_build)
    assert restarted.step == 2
    restarted.fit()
    assert all(torch.equal(v, _parameters(restarted.model)[k]) for k, v in final.items())
    # resume=True in an empty folder starts afresh
    assert training.Trainer(_config(tmp_path / "e", resume=True), builder=_build).step == 0


def test_init_weights_fine_tunes_from_a_checkpoint(tmp_path: Path) -> None:
    base = training.train(_config(tmp_path / "base", steps=6), builder=_build)
    start = training.Trainer(_config(None, steps=3, seed=5, init_weights=str(tmp_path / "base")), builder=_build)
    assert start.step == 0 and not start.history
    assert all(torch.equal(v, _parameters(base.model)[k]) for k, v in _parameters(start.model).items())
    assert all(float(s["exp_avg"].abs().sum()) == 0 for s in start.optimizer.state.values())  # fresh Adam
    tuned = training.train(_config(tmp_path / "tuned", steps=3, seed=5, init_weights=str(tmp_path / "base")),
                           builder=_build)
    scratch = training.train(_config(None, steps=3, seed=5), builder=_build)
    assert not torch.equal(tuned.model.scale, scratch.model.scale)
    assert tuned.history[0]["val_loss"] < scratch.history[0]["val_loss"]  # starts where the base ended
    # a resumed fine-tuning run takes its checkpoint, not the initial weights again
    resumed = training.Trainer(_config(tmp_path / "tuned", steps=3, seed=5, init_weights=str(tmp_path / "base"),
                                       resume=True), builder=_build)
    assert resumed.step == 3 and torch.equal(resumed.model.scale, tuned.model.scale)
    with pytest.raises(ValueError, match=r"init_weights .* holds another model"):
        training.Trainer(_config(None, model=Tiny(hidden=3).config(), init_weights=str(tmp_path / "base")),
                         builder=_build)
    # a computed number of the model config (op_norm) may differ in its last digits (threads)
    meta = json.loads((base.last_checkpoint / "config.json").read_text())
    for name, gain in (("rounded", 1 + 4e-16), ("other", 1 + 1e-6)):
        shutil.copytree(base.last_checkpoint, tmp_path / name)
        meta["model"]["kwargs"]["gain"] = gain
        (tmp_path / name / "config.json").write_text(json.dumps(meta))
    training.Trainer(_config(None, init_weights=str(tmp_path / "rounded")), builder=_build)
    with pytest.raises(ValueError, match=r"init_weights .* holds another model"):
        training.Trainer(_config(None, init_weights=str(tmp_path / "other")), builder=_build)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training.Trainer(_config(None, init_weights=str(tmp_path / "nowhere")), builder=_build)


def test_heteroscedastic_and_mc_dropout_training() -> None:
    torch.manual_seed(0)
    head = unc.HeteroscedasticHead(Tiny(), hidden=4, init_log_var=-4.0)
    trainer = training.Trainer(_config(steps=4, loss="nll"), head)
    y, x = trainer.data.batch(0, range(4), 4)
    out = trainer.model(y)
    assert torch.equal(trainer.loss(out, x), unc.gaussian_nll(out[0], out[1], x))
    auto = training.Trainer(_config(steps=0), unc.HeteroscedasticHead(Tiny(), hidden=4))
    assert torch.equal(auto.loss(out, x), trainer.loss(out, x))
    trainer.fit()
    assert {"val_coverage90", "val_spearman", "val_calibration_error", "val_nll"} <= set(trainer.metrics)
    assert 0.0 <= trainer.metrics["val_coverage90"] <= 1.0
    mse = training.Trainer(_config(steps=0, loss="mse"), unc.HeteroscedasticHead(Tiny(), hidden=4))
    assert torch.equal(mse.loss(out, x), (out[0] - x).square().mean())
    with pytest.raises(ValueError, match="needs a model that returns"):
        training.Trainer(_config(steps=0, loss="nll"), Tiny()).loss(x, x)
    # MC dropout trains one dropout sample per step and validates with the sample mean and std
    mc = training.train(_config(steps=2), unc.MCDropout(Tiny(), p=0.1, n_samples=4))
    assert "val_coverage90" in mc.metrics and math.isfinite(mc.metrics["val_psnr"])


def test_real_model_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = models.LearnedFBP(_operator(), dtype=torch.float64)
    cfg = _config(tmp_path / "cli", model=model.config(), steps=2, val_every=0, lr=1e-4)
    cfg.save(tmp_path / "cfg.json")
    assert main(["--config", str(tmp_path / "cfg.json"), "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["step"] == 2 and "val_psnr" in printed
    trained = training.load_checkpoint(tmp_path / "cli")  # the library's own builder
    assert isinstance(trained, models.LearnedFBP)
    y = torch.rand(2, VIEWS, DET, dtype=torch.float64)
    assert not torch.equal(trained(y), model(y))  # it learned something
    # errors exit with status 2 and a message
    cfg.save(tmp_path / "again.json")
    assert main(["--config", str(tmp_path / "again.json")]) == 2
    assert "holds checkpoints already" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- compiled CNN blocks (opt-in torch.compile) --------------------------------------------


def _lpd() -> models.LearnedPrimalDual:
    torch.manual_seed(0)
    return models.LearnedPrimalDual(_operator(), n_iter=2, n_primal=2, n_dual=2, width=4)


def _vn() -> models.VariationalNetwork:
    torch.manual_seed(0)
    return models.VariationalNetwork(_operator(), n_steps=2, n_filters=4, kernel_size=3, n_rbf=7)


def test_compile_blocks_counts_blocks_and_keeps_the_state_dict() -> None:
    for model, expected in ((_lpd(), 4), (_vn(), 2)):
        keys = list(model.state_dict())
        assert models.compile_blocks(model) == expected
        assert list(model.state_dict()) == keys
        compiled = [m for m in model.modules() if isinstance(m, models.COMPILED_BLOCKS)]
        assert len(compiled) == expected and all(m._compiled_call_impl is not None for m in compiled)
    plain = torch.nn.Linear(2, 2)
    assert models.compile_blocks(plain) == 0 and plain._compiled_call_impl is None


def test_compile_blocks_rejects_non_modules() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        models.compile_blocks("LPD")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("build", [_lpd, _vn], ids=["LPD", "VN"])
def test_compiled_models_match_eager(build: type) -> None:
    torch._dynamo.reset()
    eager, compiled = build(), build()
    models.compile_blocks(compiled)
    y = eager.operator(torch.rand(2, N, N, generator=torch.Generator().manual_seed(1)))
    outputs, grads = [], []
    for model in (eager, compiled):
        out = model(y)
        outputs.append(out.detach())
        grads.append(torch.autograd.grad(out.square().sum(), [p for p in model.parameters() if p.requires_grad]))
    scale = outputs[0].abs().max()
    assert scale > 0
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-5 * float(scale))
    for g_c, g_e in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_c, g_e, rtol=0, atol=1e-4 * float(g_e.abs().max()) + 1e-12)


@pytest.mark.slow
def test_trainer_compile_option() -> None:
    torch._dynamo.reset()
    base = {"model": _lpd().config(), "steps": 2, "batch_size": 2, "lr": 1e-3, "val_every": 0, "device": "cpu",
            "progress": False, "data": {"val_size": 2, "n_ellipses": 5}}
    eager, compiled = (training.Trainer(training.TrainingConfig.from_dict({**base, "compile": c}))
                       for c in (False, True))
    blocks = [m for m in compiled.model.modules() if isinstance(m, models.COMPILED_BLOCKS)]
    assert blocks and all(m._compiled_call_impl is not None for m in blocks)
    assert all(m._compiled_call_impl is None for m in eager.model.modules())
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
    # the same initial weights and data: the first losses agree to float rounding
    loss_e, loss_c = eager.train_step(), compiled.train_step()
    assert loss_c == pytest.approx(loss_e, rel=1e-5) and loss_e > 0


# --- errors ----------------------------------------------------------------------------------


def test_bad_configurations(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="registered model"):
        training.Trainer(_config(model={"format": 1, "class": "NoSuchModel", "operator": {}, "kwargs": {}}))
    with pytest.raises(ValueError, match="unknown model"):
        training.Trainer(_config(model={"class": "Other"}), builder=_build)
    with pytest.raises(ValueError, match=r"config\.model is missing"):
        training.Trainer(_config(model=None))
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        training.Trainer(_config(tmp_path / "file"), builder=_build)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training.Trainer(_config(tmp_path / "x", resume=str(tmp_path / "nowhere")), builder=_build)
    with pytest.raises(ValueError, match="output_dir is not set"):
        training.Trainer(_config(resume=True), builder=_build)
    with pytest.raises(ValueError, match="DeepEnsemble"):
        training.Trainer(_config(), unc.DeepEnsemble([Tiny(), Tiny()]))
    frozen = Tiny().requires_grad_(False)
    with pytest.raises(ValueError, match="no free parameters"):
        training.Trainer(_config(), frozen)
    with pytest.raises(TypeError, match="operator"):
        training.Trainer(_config(), nn.Linear(2, 2))
    with pytest.raises(TypeError, match="config"):
        training.Trainer(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        training.load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training.load_checkpoint(tmp_path / "nowhere")
    assert training.Trainer(_config(tmp_path / "fresh", steps=0), builder=_build).step == 0


# --- data parallel ----------------------------------------------------------------------------


def _ddp_worker(rank: int, world_size: int, store: str, config: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        training.train(config, builder=_build)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_one_process(tmp_path: Path) -> None:
    model = Tiny(xray=False).config()  # the workers then need no compiled kernels: a faster start
    config = _config(tmp_path / "ddp", model=model, steps=3, val_every=0).to_dict()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), config), nprocs=2, join=True)
    single = training.train(_config(tmp_path / "one", model=model, steps=3, val_every=0), builder=_build)
    ddp = training.load_checkpoint(tmp_path / "ddp", builder=_build)
    meta = training.read_checkpoint(tmp_path / "ddp")[1]
    assert meta["world_size"] == 2 and meta["step"] == 3
    assert not torch.equal(ddp.scale, Tiny(xray=False).double().scale)  # it trained
    for k, v in _parameters(single.model).items():
        assert torch.allclose(ddp.state_dict()[k], v, rtol=0, atol=1e-10), k
    # the same training loss, averaged over both processes
    assert meta["history"][-1]["loss"] == pytest.approx(single.history[-1]["loss"], rel=1e-10)


@pytest.mark.slow
def test_torchrun_command_line(tmp_path: Path) -> None:
    model = models.LearnedFBP(_operator(), dtype=torch.float64)
    cfg = _config(tmp_path / "run", model=model.config(), steps=2, val_every=0, lr=1e-4)
    cfg.save(tmp_path / "cfg.json")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun is not None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "precisionrecon.training",
           "--config", str(tmp_path / "cfg.json"), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    single = training.train(_config(tmp_path / "one", model=model.config(), steps=2, val_every=0, lr=1e-4))
    ddp = training.load_checkpoint(tmp_path / "run")
    for k, v in _parameters(single.model).items():
        assert torch.allclose(ddp.state_dict()[k], v, rtol=0, atol=1e-10), k
