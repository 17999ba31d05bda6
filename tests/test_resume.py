"""Stop and resume anywhere: a run stopped (after some steps, at a deadline, on SIGTERM) and
resumed, in this process or a fresh one from a copied folder, ends bit for bit where an
uninterrupted run ends (weights, optimizer state, history, validation metrics); the lock of
an output folder; the cleanup of unfinished saves; settings that may not change on resume."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import precisionrecon as pr
from precisionrecon import models, mr, training
from precisionrecon import uncertainty as unc
from precisionrecon.training import checkpoint, trainer
from precisionrecon.training.checkpoint import CONFIG_FILE, LOCK_FILE, MODEL_FILE, OPTIMIZER_FILE
from precisionrecon.training.command import main as train_main

N = 16
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[int]:
    """The configs here say ``num_threads: 1`` (the trainer sets it); later suites get theirs back."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def _ct() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((N, N)), pr.ParallelBeam2D(angles=pr.angles(10), det_count=24))


def _mr() -> pr.LinearOperator:
    mask = torch.zeros(N, N, dtype=torch.bool)
    mask[:, ::3] = True
    mask[:, N // 2 - 2 : N // 2 + 2] = True
    return mr.SENSE(mask, mr.birdcage_maps((2, N, N), dtype=torch.complex64))


def _lpd(op: pr.LinearOperator, complex_valued: bool) -> nn.Module:
    lpd = models.LearnedPrimalDual(op, n_iter=2, n_primal=2, n_dual=2, width=4, n_layers=2)
    return unc.HeteroscedasticHead(lpd, hidden=4, depth=2, complex_valued=complex_valued, init_log_var=-4.0)


MODELS: dict[str, Callable[[], nn.Module]] = {
    "LearnedFBP-ct": lambda: models.LearnedFBP(_ct(), filter="hann"),
    "VN-ct": lambda: models.VariationalNetwork(_ct(), n_steps=2, n_filters=4, kernel_size=3, n_rbf=7),
    "LPD-head-ct": lambda: _lpd(_ct(), False),
    "VN-mr": lambda: models.VariationalNetwork(_mr(), n_steps=2, n_filters=4, kernel_size=3, n_rbf=7),
    "LPD-head-mr": lambda: _lpd(_mr(), True),
}


def _config(model: nn.Module, out: Path, **changes: Any) -> dict[str, Any]:
    ct = not getattr(model, "is_complex", False) and not isinstance(model.operator, mr.SENSE)
    data: dict[str, Any] = {"val_size": 2, "phantom": "mix", "anatomy_fraction": 0.5, "train_size": 3}
    if ct:
        data["oversample"] = 2  # the fine-grid projection path, as in the pretraining
    cfg: dict[str, Any] = {
        "model": model.config(), "output_dir": str(out), "steps": 5, "batch_size": 2, "lr": 1e-3,
        "min_lr": 1e-5, "warmup_steps": 1, "val_every": 2, "dtype": "float32", "device": "cpu", "progress": False,
        "num_threads": 1, "data": data,
    }
    cfg.update(changes)
    return cfg


def _same_run(a: Path, b: Path) -> None:
    """The final checkpoints of two output folders are the same bit for bit (the wall time aside)."""
    fa, ma = training.read_checkpoint(a)
    fb, mb = training.read_checkpoint(b)
    assert ma["step"] == mb["step"]
    for name in (MODEL_FILE, OPTIMIZER_FILE):
        ta, tb = checkpoint.load_state(fa, name), checkpoint.load_state(fb, name)
        assert set(ta) == set(tb) and ta
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (name, k)
    assert ma["optimizer"] == mb["optimizer"]
    assert ma["metrics"] == mb["metrics"] and "val_psnr" in ma["metrics"]

    def strip(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k != "train_time"} for h in history]

    assert strip(ma["history"]) == strip(mb["history"])
    assert all(h["loss"] is not None for h in ma["history"][1:])


@pytest.mark.parametrize("name", list(MODELS))
def test_stop_and_resume_is_bitwise(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    straight = training.train(_config(model, tmp_path / "a"))
    assert straight.finished and straight.step == 5
    # 3 steps, then the rest in a new trainer: the history entry of step 4 needs the loss of step 3
    first = training.Trainer(_config(model, tmp_path / "b")).fit(max_steps=3)
    assert not first.finished and first.stop_reason == "max_steps" and first.step == 3
    assert training.read_checkpoint(tmp_path / "b")[1]["step"] == 3
    second = training.Trainer(_config(model, tmp_path / "b", resume=True))
    assert second.step == 3
    second.fit()
    assert second.finished and second.stop_reason is None
    _same_run(tmp_path / "a", tmp_path / "b")
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k


def test_resume_in_a_fresh_process_from_a_copied_folder(tmp_path: Path) -> None:
    model = MODELS["LPD-head-ct"]()
    training.train(_config(model, tmp_path / "a"))
    training.Trainer(_config(model, tmp_path / "b")).fit(max_steps=2)
    # another machine: the folder copied elsewhere, the original gone; it was trained on CUDA
    # (a checkpoint keeps its tensors on the CPU, so only the record says so)
    shutil.copytree(tmp_path / "b", tmp_path / "elsewhere" / "run")
    shutil.rmtree(tmp_path / "b")
    run = tmp_path / "elsewhere" / "run"
    folder = training.find_checkpoint(run)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["training"]["device"], meta["device"] = "cuda", "cuda:0"
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    cfg = tmp_path / "cfg.json"
    training.TrainingConfig.from_dict(_config(model, tmp_path / "unused", device="cuda")).save(cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "precisionrecon", "train", "--config", str(cfg), "--output-dir", str(run),
           "--resume", "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert printed["finished"] is True and printed["stopped"] is None and printed["step"] == 5
    assert printed["device"] == "cpu"
    _same_run(tmp_path / "a", run)


def test_deadline_stops_with_a_checkpoint_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = MODELS["LearnedFBP-ct"]()
    training.train(_config(model, tmp_path / "a"))
    # a clock that advances 1 s per reading: fit reads it at its start and before each step,
    # and stops when the next step (at the mean pace) would end after max_seconds = 4.5:
    # 1 + 0 < 4.5, 2 + 2 < 4.5, 3 + 1.5 >= 4.5, so after 2 steps
    clock = iter(range(1000))
    monkeypatch.setattr(trainer, "_now", lambda: float(next(clock)))
    stopped = training.Trainer(_config(model, tmp_path / "b", max_seconds=4.5)).fit()
    assert (stopped.step, stopped.finished, stopped.stop_reason) == (2, False, "deadline")
    monkeypatch.undo()
    # no time at all: no step, yet the run stays resumable
    assert training.Trainer(_config(model, tmp_path / "b", resume=True, max_seconds=0.0)).fit().step == 2
    resumed = training.Trainer(_config(model, tmp_path / "b", resume=True, max_seconds=3600.0)).fit()
    assert resumed.finished and resumed.step == 5
    _same_run(tmp_path / "a", tmp_path / "b")


def test_command_line_deadline_exits_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = MODELS["LearnedFBP-ct"]()
    cfg = tmp_path / "cfg.json"
    training.TrainingConfig.from_dict(_config(model, tmp_path / "run")).save(cfg)
    assert train_main(["--config", str(cfg), "--max-seconds", "0"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["finished"] is False and printed["stopped"] == "deadline" and printed["step"] == 0
    assert printed["checkpoint"] is not None and printed["steps"] == 5
    assert train_main(["--config", str(cfg), "--resume"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["finished"] is True and printed["step"] == 5 and "val_psnr" in printed


def test_sigterm_stops_after_the_step_and_resumes(tmp_path: Path) -> None:
    model = MODELS["VN-ct"]()
    training.train(_config(model, tmp_path / "a"))
    training.seed_everything(0)  # the trainer seeds with config.seed, then builds: the same initial model
    victim = MODELS["VN-ct"]()
    calls = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if module.training:
            calls.append(1)
            if len(calls) == 2:
                signal.raise_signal(signal.SIGTERM)  # as a scheduler ending the session would

    victim.register_forward_hook(hook)
    before = signal.getsignal(signal.SIGTERM)
    stopped = training.Trainer(_config(model, tmp_path / "b"), victim).fit()
    assert (stopped.step, stopped.finished, stopped.stop_reason) == (2, False, "signal")
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    training.Trainer(_config(model, tmp_path / "b", resume=True)).fit()
    _same_run(tmp_path / "a", tmp_path / "b")


def test_lock_and_leftovers_of_a_killed_run(tmp_path: Path) -> None:
    model = MODELS["LearnedFBP-ct"]()
    out = tmp_path / "run"
    training.Trainer(_config(model, out, steps=2)).fit(max_steps=1)
    assert not (out / LOCK_FILE).exists()  # released when fit returns
    # a save cut short and a half-written index, as a kill leaves them
    (out / ".step-00000002.abc123.tmp").mkdir()
    (out / ".step-00000002.abc123.tmp" / MODEL_FILE).write_bytes(b"partial")
    (out / ".latest.json.xyz.tmp").write_text("{")
    # a live process on this host holds the folder: refused
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"host": socket.gethostname(), "pid": live.pid, "started": checkpoint._process_start(live.pid)}
        (out / LOCK_FILE).write_text(json.dumps(lock))
        with pytest.raises(ValueError, match=f"held by a live training run \\(pid {live.pid}\\)"):
            training.Trainer(_config(model, out, steps=2, resume=True))
        cfg = tmp_path / "cfg.json"
        training.TrainingConfig.from_dict(_config(model, out, steps=2)).save(cfg)
        assert train_main(["--config", str(cfg), "--resume"]) == 2
    finally:
        live.kill()
        live.wait()
    assert (out / ".step-00000002.abc123.tmp").exists()  # untouched while the folder was held
    # that process is gone: its lock is taken over, the leftovers removed
    with pytest.warns(RuntimeWarning, match="stale lock"):
        resumed = training.Trainer(_config(model, out, steps=2, resume=True))
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not list(out.glob(".*.tmp"))
    assert resumed.step == 1
    resumed.fit()
    assert resumed.finished and not (out / LOCK_FILE).exists()
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "latest.json", "step-00000001", "step-00000002"]


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    model = MODELS["LearnedFBP-ct"]()
    training.Trainer(_config(model, tmp_path / "run")).fit(max_steps=1)
    with pytest.raises(ValueError, match=r"other settings \(lr, seed\)"):
        training.Trainer(_config(model, tmp_path / "run", resume=True, lr=2e-3, seed=3))
    with pytest.raises(ValueError, match=r"other settings \(model\)"):
        training.Trainer(_config(models.LearnedFBP(_ct()), tmp_path / "run", resume=True))
    # what does not change the weights may change
    ok = training.Trainer(_config(model, tmp_path / "run", resume=True, val_every=1, checkpoint_every=1,
                                  keep_checkpoints=3, max_seconds=60.0, num_threads=1))
    assert ok.step == 1
    with pytest.raises(ValueError, match="max_seconds"):
        training.TrainingConfig(max_seconds=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        ok.fit(max_steps=-1)


# --- benchmarks/pretrain.py: order, budgets, lean state ------------------------------------------


def _pretrain() -> Any:
    spec = importlib.util.spec_from_file_location("pretrain", ROOT / "benchmarks" / "pretrain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pretrain_order_budgets_and_guard(tmp_path: Path) -> None:
    pt = _pretrain()
    order = pt.run_order(list(pr.bench.TASKS), list(pr.bench.LEARNED))
    ct, mrt = pr.bench.CT_TASKS, pr.bench.MR_TASKS
    assert order == ([(t, "LearnedFBP") for t in ct] + [(t, "VN") for t in mrt] + [(t, "VN") for t in ct]
                     + [(t, "LPD") for t in pr.bench.TASKS])
    assert {m: s for m, (s, _) in pt.BUDGET.items()} == {"LearnedFBP": 3000, "VN": 4000, "LPD": 20000}
    low_dose, mr4 = pt.data_config("low-dose"), pt.data_config("mr-4x")
    assert low_dose["oversample"] == 2 and low_dose["noise"] == "poisson" and "oversample" not in mr4
    for d in (low_dose, mr4):
        assert (d["phantom"], d["anatomy_fraction"], d["anatomy_kind"]) == ("mix", 0.7, "random")
        training.DataConfig(**d)  # valid
    with pytest.raises(SystemExit):  # a smoke run may not write into the repository
        pt.parse_args(["--steps-scale", "0.01"])
    args = pt.parse_args(["--steps-scale", "0.01", "--weights", str(tmp_path / "w"), "--state", str(tmp_path / "s")])
    assert args.configs == tmp_path / "w-configs" and args.work == tmp_path / "s-work"


def test_pretrain_lean_state_and_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pt = _pretrain()
    model = MODELS["LearnedFBP-ct"]()
    cfg = _config(model, tmp_path / "work", checkpoint_every=1)
    training.Trainer(cfg).fit(max_steps=3)
    state = tmp_path / "state" / "task" / "LearnedFBP"
    pt.save_state(tmp_path / "work", state, cfg, {"pieces": [{"steps": [0, 3]}]})
    assert sorted(p.name for p in state.iterdir()) == ["latest.json", "progress.json", "step-00000003", "train.json"]
    assert sorted(p.name for p in (state / "step-00000003").iterdir()) == [CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE]
    # another machine: an empty work folder starts from the state; a further one is kept
    other = tmp_path / "other"
    pt.restore_work(state, other)
    resumed = training.Trainer({**cfg, "output_dir": str(other), "resume": True})
    assert resumed.step == 3
    resumed.fit()
    pt.restore_work(state, other)
    assert training.read_checkpoint(other)[1]["step"] == 5
    pt.save_weights(other, tmp_path / "weights" / "sparse-view-30" / "LearnedFBP", cfg, {"steps": 5})
    monkeypatch.setenv("PRECISIONRECON_WEIGHTS", str(tmp_path / "weights"))
    loaded = pr.pretrained.load("sparse-view-30", "LearnedFBP")
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_pretrain_same_run_ignores_threads_and_jobs_share_the_queue(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pt = _pretrain()
    cfg = pt.training_config("sparse-view-30", "LearnedFBP", 0.01)
    assert cfg["num_threads"] == pt.THREADS == 1
    assert pt.same_run(cfg, {**cfg, "num_threads": 2})  # weights trained with 2 threads stay done
    assert not pt.same_run(cfg, {**cfg, "seed": cfg["seed"] + 1}) and not pt.same_run(cfg, None)
    # a computed float whose last digits follow the thread count (op_norm) is the same run; a real change is not
    mr = pt.training_config("mr-4x", "VN", 0.01)
    norm = mr["model"]["kwargs"]["op_norm"]
    rounded = {**mr, "model": {**mr["model"], "kwargs": {**mr["model"]["kwargs"], "op_norm": norm * (1 + 5e-16)}}}
    changed = {**mr, "model": {**mr["model"], "kwargs": {**mr["model"]["kwargs"], "op_norm": norm * 1.01}}}
    assert pt.same_run(mr, rounded) and not pt.same_run(mr, changed)
    assert not pt.same_run(cfg, {**cfg, "lr": 1}) and not pt.same_run(cfg, {**cfg, "extra": 1})
    with pytest.raises(SystemExit):
        pt.parse_args(["--jobs", "0"])
    seen: list[tuple[str, str]] = []

    def fake_piece(task: str, method: str, args: Any, seconds: Any, stop: Any) -> dict:
        seen.append((task, method))
        return {"status": "done"}

    monkeypatch.setattr(pt, "train_piece", fake_piece)
    argv = ["--steps-scale", "0.01", "--weights", str(tmp_path / "w"), "--state", str(tmp_path / "s"), "--jobs", "2"]
    assert pt.main(argv) == 0
    order = pt.run_order(list(pr.bench.TASKS), list(pr.bench.LEARNED))
    assert sorted(seen) == sorted(order) and len(seen) == len(order)  # every run once, two workers


def test_pretrain_fine_tunes_from_a_base_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fine-tuned run trains its base run first (into ``--base``), then the shipped weights
    from those (``init_weights``) with the noise range; a second invocation finds both done."""
    pt = _pretrain()
    monkeypatch.setattr(pt, "FINE_TUNE_DATA",
                        {("sparse-view-30", "LearnedFBP"): {"noise_level": 0.04, "noise_level_max": 0.1}})
    monkeypatch.setattr(pt, "FINE_TUNE_BUDGET", {"LearnedFBP": 1000})
    w, s = tmp_path / "w", tmp_path / "s"
    argv = ["--tasks", "sparse-view-30", "--methods", "LearnedFBP", "--steps-scale", "0.002", "--weights", str(w),
            "--state", str(s), "--threads", "1"]
    args = pt.parse_args(argv)
    assert args.base == tmp_path / "w-base" and pt.stage_of("sparse-view-30", "LearnedFBP", args) == "base"
    assert not pt.fine_tuned("sparse-view-30", "VN")
    with pytest.raises(ValueError, match="not fine-tuned"):
        pt.fine_tune_config("low-dose", "LearnedFBP", args.base)
    assert pt.main(argv) == 0
    base, final = args.base / "sparse-view-30" / "LearnedFBP", w / "sparse-view-30" / "LearnedFBP"
    base_cfg = json.loads((base / "train.json").read_text())
    assert pt.same_run(base_cfg, pt.training_config("sparse-view-30", "LearnedFBP", 0.002)) and base_cfg["steps"] == 6
    cfg = json.loads((final / "train.json").read_text())
    assert cfg["init_weights"] == str(base) and cfg["steps"] == 2 and cfg["lr"] == pt.FINE_TUNE_LR
    assert cfg["data"]["noise_level_max"] == 0.1 and cfg["seed"] == base_cfg["seed"] + pt.FINE_TUNE_SEED_OFFSET
    result = json.loads((final / "train_result.json").read_text())
    assert result["init_weights"] == str(base) and result["base"]["steps"] == 6 and result["steps"] == 2
    assert not s.exists() or not any(s.rglob("train.json"))  # no state left of either stage
    tuned = training.load_checkpoint(final).state_dict()
    started = training.load_checkpoint(base).state_dict()
    assert any(not torch.equal(v, started[k]) for k, v in tuned.items())
    assert pt.stage_of("sparse-view-30", "LearnedFBP", args) == "final"
    assert pt.train_piece("sparse-view-30", "LearnedFBP", args, None, pt.Stop()) == {"status": "done", "stage": "final"}
