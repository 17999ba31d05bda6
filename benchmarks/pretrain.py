"""Train the pretrained weights that ship in ``precisionrecon/pretrained/weights/``, in pieces
that stop at a time budget and resume on the next invocation, on this machine or another.

For every built-in task of ``precisionrecon bench`` (default suite, 64 x 64 images) and every
learned method of that task this script

1. builds the model on the task's operator (:func:`precisionrecon.bench.task_operator`) and
   writes its training config, seed included, to
   ``precisionrecon/pretrained/configs/<task>/<method>.json``;
2. trains it with the project's own command, ``precisionrecon train --config <that file>
   --resume --max-seconds <time left>``, in a subprocess, into a work folder
   (``build/pretrain/<task>/<method>/``, not in git);
3. after each piece (one invocation of the command) copies the newest checkpoint (model,
   optimizer, the trainer's record) to ``benchmarks/pretrain_state/<task>/<method>/``, in
   git, beside the config (``train.json``) and the pieces so far (``progress.json``): the
   next invocation, here or on another machine after ``git pull``, continues from there bit
   for bit (same threads, same kind of CPU). The state folder is outside the package, so it
   never ships in the wheel;
4. when a run has finished, copies the final ``model.safetensors`` and ``config.json`` (not
   the optimizer state) into ``precisionrecon/pretrained/weights/<task>/<method>/``, with
   the training config as ``train.json`` and ``train_result.json`` (steps, batch size, seed,
   the wall time summed over the pieces, the number of pieces, the devices, the final
   validation metrics), and deletes its state folder. A run whose weights were trained with
   today's config is skipped;
5. for the runs in ``FINE_TUNE_DATA`` / ``FINE_TUNE_BUDGET`` (VN and LPD of sparse-view-60,
   LPD of mr-4x, see the comment there) the run above is the *base* run: its weights
   go to ``benchmarks/pretrain_base/<task>/<method>/`` (in git, not in the wheel; its config
   beside them as ``<method>.json``), and the shipped weights are then fine-tuned from them
   (``init_weights``) on other data (sparse-view-60: a relative noise level drawn per
   sample in a range; MR: random image phases), with their own state folder and pieces;
   ``train_result.json`` names the base run and repeats its record under ``"base"``.

Order (each task gets an improved model early): first the cheapest learned method of every
task (LearnedFBP for the CT tasks, VN for MR), then VN of the CT tasks, then LPD task by task;
tasks in ``bench.TASKS`` order (sparse-view-30, sparse-view-60, limited-angle-fan, low-dose,
mr-4x, mr-8x).

Data: simulated on the fly with the task's noise model (relative Gaussian noise, or Poisson
counts with I0 = 1e4 for ``low-dose``; for MR complex Gaussian noise on the sampled k-space
and a random smooth phase), images a mix of procedural anatomy (70 %, body or head) and
random ellipses (Adler & Öktem); CT data are projected on a 2x finer grid and detector
(``oversample=2``: no inverse crime). ``bench`` tests on other seeds.

Models (small, CPU-sized): LearnedFBP (learned filter and weights, started from FBP with the
Hann window), 3000 steps of batch 4; VN (5 steps, 10 for limited-angle-fan, which also trains
on anatomy zoomed by up to 2x; 16 filters of 5 x 5, RBF activations; MR: started from 60
CG-SENSE iterations, ``init="cg"``, on random image phases), 4000 steps of batch 2; LPD with
a heteroscedastic uncertainty head (Adler's 10 iterations and 5 + 5 memory channels, 16
instead of 32 filters per layer; trained with the Gaussian NLL so that ``bench`` shows its
predicted standard deviation), 20000 steps of batch 2.
Configs say ``device: "auto"`` (CUDA when present) and ``num_threads: 1`` (runs begun with 2,
the first ones, go on with 2 for a bitwise resume; finished runs count as done whatever their
threads). With ``--jobs 2`` two runs train side by side, a core each: on this 2-core machine
with other jobs running, a training step with 2 threads took 9-38x as long as with 1
(``benchmarks/results/training.md``), so two one-thread runs are the robust way to use both
cores.

Time (measured here on the 2-core development CPU, 2 threads, load average about 3 from other
engineers' tests, median wall time of a training step including the data simulation):
LearnedFBP 0.04-0.15 s (mean of the 4 CT tasks 0.08 s; low-dose with 180 views is the
slowest), VN 0.19-0.55 s (mean 0.37 s), LPD 0.39-0.74 s (mean 0.59 s; MR with 8 coils and
the fan beam the slowest). All runs: LearnedFBP 4 x 3000 x 0.08 s = 16 min, VN 6 x 4000 x
0.37 s = 2.5 h, LPD 6 x 20000 x 0.59 s = 19.8 h, validation and checkpoints under 1 %: about
22 hours of wall time in all (about 17 h on an idle machine, going by the CPU time per
step), i.e. nine sessions of ``--hours 2.5``. On a CUDA machine (``device: "auto"``) the
steps are faster, but the result is then not bitwise that of a CPU run.

Usage::

    python benchmarks/pretrain.py --hours 2.5 --jobs 2   # all runs, continued where they stopped
    python benchmarks/pretrain.py --tasks sparse-view-30 --methods LPD --hours 1
    python benchmarks/pretrain.py --steps-scale 0.002 --hours 0.02 --weights /tmp/w --state /tmp/s  # smoke run
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from precisionrecon import bench, models, uncertainty
from precisionrecon._io import atomic_write_json
from precisionrecon.training import find_checkpoint, list_checkpoints, read_checkpoint
from precisionrecon.training._io import json_close

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "precisionrecon" / "pretrained" / "configs"
WEIGHTS = ROOT / "precisionrecon" / "pretrained" / "weights"
STATE = ROOT / "benchmarks" / "pretrain_state"
BASE = ROOT / "benchmarks" / "pretrain_base"
WORK = ROOT / "build" / "pretrain"
N = bench.SUITES["default"].n

# steps and batch size per method (10x and more the first budgets: 300, 400, 1500 steps);
# the seeds differ per task and method
BUDGET = {"LearnedFBP": (3000, 4), "VN": (4000, 2), "LPD": (20000, 2)}
SEED_BASE = 5_000
# measured seconds per step on 2 CPU threads (see the module docstring): ETAs before a run's first piece
SECONDS_PER_STEP = {"LearnedFBP": 0.08, "VN": 0.37, "LPD": 0.59}
# CPU threads of every new run. One: with two, a training step took 9-38x as long as with one on
# this 2-core machine while other jobs ran (benchmarks/results/training.md); --jobs 2 runs two
# one-thread runs side by side instead. Finished runs trained with other thread counts count as
# done (threads change the rounding, not what is trained): see same_run().
THREADS = 1
# a piece needs the time to start the command and write its last checkpoint on top of its steps
STARTUP_S = 20.0
MIN_PIECE_S = 40.0
WEIGHT_FILES = ("model.safetensors", "config.json")

# Fine-tuning (issue 14). At 5 % relative noise an object that fills the field of view (the
# thorax crop CT_small.dcm: mean |y| 12.9, above every training phantom's 4.4-10.4) has more
# noise against its contrast than any training sample, and the VN and LPD trained at the fixed
# 5 % painted isolated bright dots into its soft tissue where the noise clusters. Their final
# weights are therefore fine-tuned from the base run's (kept in benchmarks/pretrain_base/,
# in git, not in the wheel) on data whose relative noise level is drawn log-uniformly per
# sample, with a fresh Adam and a lower learning rate. The range [0.04, 0.08] covers CT_small
# against the larger training bodies; measured on sparse-view-60 (2026-12-03, same steps):
# [0.04, 0.1] removed the dots too but cost 0.4 (VN) and 0.7 dB (LPD) on the real slices,
# [0.04, 0.08] 0.1 and 0.25 dB, with +0.1 / -0.1 dB on the synthetic phantoms. With 30 views
# and on low-dose CT the base models leave no such dots: not fine-tuned (limited angle: README).
#
# MR (2026-12-03, evening): the base runs saw one fixed phase pattern (``phase: "smooth"``). With
# maps estimated from the data (NLINV, normalised to coil 0), the image carries that coil's phase
# too: on the real mr-4x slices the base LPD gave 33.80 dB with the NLINV maps, 34.47 with the
# same maps times the true coil-0 phase and 34.93 with the true maps (CG-SENSE: 33.93). Their
# final weights are fine-tuned on ``phase: "random"`` (random global, quadratic and coil phase).
# The same 3000 steps on the mr-8x LPD gave 26.34 dB on the real slices against its base's
# 26.51 (phantoms 30.45 against 30.40): not shipped, mr-8x keeps its base LPD.
# (The MR VNs train on "random" from the start: see RUN_DATA.)
NOISE_RANGE = {"noise_level": 0.04, "noise_level_max": 0.08}
FINE_TUNE_DATA: dict[tuple[str, str], dict[str, Any]] = {
    ("sparse-view-60", "VN"): NOISE_RANGE, ("sparse-view-60", "LPD"): NOISE_RANGE,
    ("mr-4x", "LPD"): {"phase": "random"},
}
FINE_TUNE_BUDGET = {"VN": 1500, "LPD": 3000}
FINE_TUNE_LR = 3e-4
FINE_TUNE_SEED_OFFSET = 100
# CG-SENSE iterations the MR VNs start from (init="cg"): the bench's tuned CG-SENSE count
MR_VN_CG_ITER = 60


def build_model(task: str, method: str) -> torch.nn.Module:
    """The untrained model of ``method`` on the operator of ``task`` (float32)."""
    A = bench.task_operator(task, N)
    if method == "LearnedFBP":
        # started from the Hann window: with noisy data a smooth start learns faster than Ram-Lak
        return models.LearnedFBP(A, filter="hann")
    if method == "VN":
        # limited angle: 10 steps; the 5-step VN left the missing views' streaks and ghost edges
        steps = 10 if task == "limited-angle-fan" else 5
        if bench.task_modality(task) == "mr":
            # MR: the steps refine CG-SENSE (60 iterations, as the bench's tuned CG-SENSE). From
            # the adjoint, 5 gradient steps trailed CG-SENSE by 0.7 dB (phantoms) and 3.8 dB
            # (real slices), and the random-phase fine-tuning that helps LPD changed nothing
            return models.VariationalNetwork(A, n_steps=steps, n_filters=16, kernel_size=5, init="cg",
                                             init_iter=MR_VN_CG_ITER)
        return models.VariationalNetwork(A, n_steps=steps, n_filters=16, kernel_size=5)
    if method == "LPD":
        complex_valued = bench.task_modality(task) == "mr"
        lpd = models.LearnedPrimalDual(A, width=16)
        return uncertainty.HeteroscedasticHead(lpd, hidden=16, depth=3, complex_valued=complex_valued,
                                               init_log_var=-6.0)
    raise ValueError(f"unknown method {method!r}")


def data_config(task: str) -> dict[str, Any]:
    """The training data of a task: its noise model; anatomy (70 %) and ellipse phantoms;
    CT projected on a 2x finer grid."""
    phantoms = {"phantom": "mix", "anatomy_fraction": 0.7, "anatomy_kind": "random", "val_size": 8, "val_seed": 1}
    if bench.task_modality(task) == "mr":
        return {"kind": "mr", "noise": "gaussian", "noise_level": bench.MR_NOISE["noise_level"], **phantoms}
    noise = bench.CT_NOISE[task]
    if noise["noise"] == "poisson":
        return {"kind": "ct", "noise": "poisson", "i0": noise["i0"], "mu_scale": noise["mu_scale"], "oversample": 2,
                **phantoms}
    return {"kind": "ct", "noise": "gaussian", "noise_level": noise["noise_level"], "oversample": 2, **phantoms}


# data options of single runs on top of data_config(task): the limited-angle VN also trains on
# anatomy zoomed by up to 2x (bodies that fill the field of view and cross its border, where the
# 5-step VN painted a streak on the real thorax crop CT_small.dcm); the MR VNs train on random
# phases from the start (see FINE_TUNE_DATA) and on zoomed anatomy too: without, the mr-8x VN
# painted a bright stripe along the right border of the real crop MR_small.dcm, where the
# tissue reaches the border
MR_VN_DATA = {"phase": "random", "zoom_max": 2.0}
RUN_DATA: dict[tuple[str, str], dict[str, Any]] = {("limited-angle-fan", "VN"): {"zoom_max": 2.0},
                                                   ("mr-4x", "VN"): MR_VN_DATA, ("mr-8x", "VN"): MR_VN_DATA}


def training_config(task: str, method: str, steps_scale: float = 1.0) -> dict[str, Any]:
    """The training config of one run (``steps_scale`` shrinks the budget for smoke runs)."""
    return json.loads(_training_config(task, method, steps_scale))


@functools.cache
def _training_config(task: str, method: str, steps_scale: float) -> str:
    # as JSON, so that every caller gets its own copy; cached: building a model takes a while
    steps, batch = BUDGET[method]
    steps = max(2, round(steps * steps_scale))
    k = bench.TASKS.index(task) * len(BUDGET) + list(BUDGET).index(method)
    return json.dumps({
        "model": build_model(task, method).config(),
        "steps": steps,
        "batch_size": batch,
        "lr": 1e-3,
        "min_lr": 1e-5,
        "schedule": "cosine",
        "betas": [0.9, 0.99],
        "grad_clip": 1.0,
        "seed": SEED_BASE + k,
        "dtype": "float32",
        "device": "auto",
        "val_every": max(1, steps // 20),
        "checkpoint_every": max(1, steps // 40),  # the work folder survives a hard kill with little lost
        "keep_checkpoints": 2,
        "data_range": 1.0,
        "progress": False,
        "num_threads": THREADS,
        "data": {**data_config(task), **RUN_DATA.get((task, method), {})},
    })


def fine_tuned(task: str, method: str) -> bool:
    """Whether the shipped weights of a run are fine-tuned from a base run."""
    return (task, method) in FINE_TUNE_DATA


def fine_tune_config(task: str, method: str, base: Path, steps_scale: float = 1.0) -> dict[str, Any]:
    """The config of the fine-tuning stage: from the base run's weights in ``base``, with the
    task's noise range, :data:`FINE_TUNE_BUDGET` steps and :data:`FINE_TUNE_LR`."""
    if not fine_tuned(task, method):
        raise ValueError(f"{task}/{method} is not fine-tuned (see FINE_TUNE_DATA and FINE_TUNE_BUDGET)")
    cfg = training_config(task, method, steps_scale)
    steps = max(2, round(FINE_TUNE_BUDGET[method] * steps_scale))
    cfg.update(steps=steps, lr=FINE_TUNE_LR, seed=cfg["seed"] + FINE_TUNE_SEED_OFFSET,
               val_every=max(1, steps // 20), checkpoint_every=max(1, steps // 40),
               init_weights=_shown(base / task / method))
    cfg["data"] = {**cfg["data"], **FINE_TUNE_DATA[task, method]}
    return cfg


def _stage_paths(task: str, method: str, stage: str, args: argparse.Namespace) -> tuple[Path, Path, Path, Path]:
    """``(state, work, dest, config file)`` of a run's stage (``"base"`` or ``"final"``)."""
    if stage == "base":
        return (args.state / task / f"{method}-base", args.work / task / f"{method}-base", args.base / task / method,
                args.base / task / f"{method}.json")
    return (args.state / task / method, args.work / task / method, args.weights / task / method,
            args.configs / task / f"{method}.json")


def _stage_config(task: str, method: str, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    if stage == "final" and fine_tuned(task, method):
        return fine_tune_config(task, method, args.base, args.steps_scale)
    return training_config(task, method, args.steps_scale)


def _done(dest: Path, wanted: dict[str, Any]) -> bool:
    return same_run(_read(dest / "train.json"), wanted) and all((dest / f).is_file() for f in WEIGHT_FILES)


def stage_of(task: str, method: str, args: argparse.Namespace) -> str:
    """The stage a run trains next: ``"base"`` while a fine-tuned run's base is unfinished
    (and its final stage has not begun), else ``"final"``."""
    if not fine_tuned(task, method) or (_stage_paths(task, method, "final", args)[0] / "train.json").is_file():
        return "final"
    state, _, dest, _ = _stage_paths(task, method, "base", args)
    if (state / "train.json").is_file() or not _done(dest, _stage_config(task, method, "base", args)):
        return "base"
    return "final"


def same_run(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two training configs train the same run: equal up to ``num_threads`` and up to
    rounding in computed numbers (``op_norm`` is a power iteration whose last digits follow
    the thread count)."""
    if a is None or b is None:
        return False
    a, b = ({k: v for k, v in c.items() if k != "num_threads"} for c in (a, b))
    return json_close(a, b)


def methods_of(task: str) -> tuple[str, ...]:
    return tuple(m for m in bench.LEARNED if m in bench.methods_of(task))


def run_order(tasks: list[str], methods: list[str]) -> list[tuple[str, str]]:
    """The runs in training order: the cheapest method of every task, then the other VNs,
    then LPD task by task (see the module docstring)."""
    runs = [(t, m) for t in bench.TASKS if t in tasks for m in methods_of(t) if m in methods]
    cheapest = {t: methods_of(t)[0] for t in bench.TASKS}

    def phase(run: tuple[str, str]) -> tuple[int, int]:
        task, method = run
        first = 0 if cheapest[task] == method else 1 + list(BUDGET).index(method)
        return first, bench.TASKS.index(task)

    return sorted(runs, key=phase)


# --- folders ----------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _step(folder: Path) -> int:
    """The step of the newest checkpoint in a training folder (-1: none)."""
    if not list_checkpoints(folder):
        return -1
    return int(read_checkpoint(folder)[1]["step"])


def _replace_dir(new: Path, dest: Path) -> None:
    """Put the finished folder ``new`` at ``dest`` (the old one moved aside, then deleted)."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def _fresh_dir(dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _recover(dest: Path) -> None:
    """A swap cut short by a kill leaves ``.<name>.old`` without ``<name>``: take it back."""
    old = dest.with_name(f".{dest.name}.old")
    if not dest.exists() and old.exists():
        os.replace(old, dest)


def save_state(work: Path, state: Path, cfg: dict[str, Any], progress: dict[str, Any]) -> None:
    """The lean resume state: the newest checkpoint of ``work`` (model, optimizer, record),
    the config and the pieces so far."""
    tmp = _fresh_dir(state)
    folder = find_checkpoint(work)
    shutil.copytree(folder, tmp / folder.name)
    atomic_write_json(tmp / "latest.json", {"checkpoint": folder.name, "step": _step(work)})
    atomic_write_json(tmp / "train.json", cfg)
    atomic_write_json(tmp / "progress.json", progress)
    _replace_dir(tmp, state)


def restore_work(state: Path, work: Path) -> None:
    """Start ``work`` from the state's checkpoint unless ``work`` is as far or further."""
    if _step(state) <= _step(work):
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    folder = find_checkpoint(state)
    shutil.copytree(folder, work / folder.name)
    shutil.copy2(state / "latest.json", work / "latest.json")


def save_weights(work: Path, dest: Path, cfg: dict[str, Any], result: dict[str, Any]) -> None:
    """The final weights in the layout of :mod:`precisionrecon.pretrained`."""
    tmp = _fresh_dir(dest)
    final = find_checkpoint(work)
    for name in WEIGHT_FILES:
        shutil.copy2(final / name, tmp / name)
    atomic_write_json(tmp / "train.json", cfg)
    atomic_write_json(tmp / "train_result.json", result)
    _replace_dir(tmp, dest)


# --- one piece --------------------------------------------------------------------------------


class Stop:
    """SIGTERM / SIGINT to this script: passed on to the running command (which checkpoints
    and exits), then no further piece is started."""

    def __init__(self) -> None:
        self.requested = False
        self.children: set[subprocess.Popen[str]] = set()  # one per run in progress (--jobs)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        for child in list(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def train_piece(task: str, method: str, args: argparse.Namespace, seconds: float | None, stop: Stop) -> dict[str, Any]:
    """Train one piece of a run's next stage (the base run of a fine-tuned model, else its
    final weights); returns its status (``done``, ``finished``, ``stopped``), stage and timings."""
    stage = stage_of(task, method, args)
    state, work, dest, cfg_path = _stage_paths(task, method, stage, args)
    for d in (state, dest):
        _recover(d)
    wanted = _stage_config(task, method, stage, args)
    cfg = _read(state / "train.json")
    if cfg is None:
        if _done(dest, wanted):
            return {"status": "done", "stage": stage}
        cfg = wanted
        shutil.rmtree(work, ignore_errors=True)  # left by a run of another config
    elif not same_run(cfg, wanted):
        print(f"[pretrain] {task}/{method}: continuing with the config it started with (today's differs)", flush=True)
    atomic_write_json(cfg_path, cfg)
    progress = _read(state / "progress.json") or {"pieces": []}
    threads = args.threads or cfg["num_threads"]
    if progress["pieces"] and progress["pieces"][-1]["threads"] != threads:
        print(f"[pretrain] {task}/{method}: {threads} threads after {progress['pieces'][-1]['threads']}: the run "
              "goes on, but not bit for bit as one uninterrupted run", flush=True)
    restore_work(state, work)
    start_step = max(_step(work), 0)
    cmd = [sys.executable, "-m", "precisionrecon", "train", "--config", str(cfg_path), "--output-dir", str(work),
           "--resume", "--no-progress"]
    if seconds is not None:
        cmd += ["--max-seconds", f"{max(seconds - STARTUP_S, 0.0):.1f}"]
    if args.threads is not None:
        cmd += ["--num-threads", str(args.threads)]
    t0 = time.time()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)  # init_weights is ROOT-relative
    stop.children.add(child)
    if stop.requested and child.poll() is None:  # a signal between the start and the registration
        child.send_signal(signal.SIGTERM)
    out, _ = child.communicate()
    stop.children.discard(child)
    code = child.returncode
    wall = time.time() - t0
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {code}")
    printed = json.loads(out.strip().splitlines()[-1])
    piece = {"steps": [start_step, printed["step"]], "wall_s": round(wall, 1), "device": printed["device"],
             "threads": threads, "stopped": printed["stopped"]}
    progress["pieces"].append(piece)
    pieces = progress["pieces"]
    summary = {"status": "finished" if printed["finished"] else "stopped", "step": printed["step"],
               "steps": cfg["steps"], "start_step": start_step, "wall_s": wall, "stage": stage}
    if not printed["finished"]:
        save_state(work, state, cfg, progress)
        return summary
    result = {
        "task": task, "method": method, "steps": cfg["steps"], "batch_size": cfg["batch_size"], "seed": cfg["seed"],
        "wall_s": round(sum(p["wall_s"] for p in pieces), 1), "pieces": len(pieces),
        "devices": sorted({p["device"] for p in pieces}), "train_time_s": round(printed["train_time"], 1),
        "metrics": {k: v for k, v in printed.items() if k.startswith("val_")},
        "command": f"precisionrecon train --config {_shown(cfg_path)} --resume",
    }
    if cfg.get("init_weights"):  # fine-tuned: what it started from, and that run's budget
        result["init_weights"] = cfg["init_weights"]
        result["base"] = _read(ROOT / cfg["init_weights"] / "train_result.json")
    save_weights(work, dest, cfg, result)
    for d in (state, work):
        shutil.rmtree(d, ignore_errors=True)
        if d.parent.is_dir() and not any(d.parent.iterdir()):
            d.parent.rmdir()  # the task's folder, once its last run is done
    return summary


def _eta(runs: list[tuple[str, str]], args: argparse.Namespace, rates: dict[str, float]) -> float:
    """Seconds still to train for ``runs`` (measured rates where known)."""
    total = 0.0
    for task, method in runs:
        first = stage_of(task, method, args)
        for stage in ("base", "final") if first == "base" else ("final",):
            state, _, dest, _ = _stage_paths(task, method, stage, args)
            latest = _read(state / "latest.json")
            wanted = _stage_config(task, method, stage, args)
            if latest is None and _done(dest, wanted):
                continue
            done = latest["step"] if latest else 0
            total += (wanted["steps"] - done) * rates.get(method, SECONDS_PER_STEP[method])
    return total


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tasks", nargs="+", default=list(bench.TASKS), choices=list(bench.TASKS))
    p.add_argument("--methods", nargs="+", default=list(bench.LEARNED), choices=list(bench.LEARNED))
    p.add_argument("--hours", type=float, help="time budget of this invocation (default: until all runs are done)")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every step budget (smoke runs; then --weights and --state outside the repo)")
    p.add_argument("--threads", type=int, help="override the configs' num_threads (bitwise resume needs the same)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained side by side (default 1; 2 on a 2-core CPU)")
    p.add_argument("--weights", type=Path, default=WEIGHTS, help="final weights (default: the package's)")
    p.add_argument("--state", type=Path, default=STATE, help="resume state of unfinished runs (default: in git)")
    p.add_argument("--base", type=Path, help="weights of the base runs of fine-tuned models (default: in git, or "
                   "beside --weights)")
    p.add_argument("--configs", type=Path, help="training configs (default: the package's, or beside --weights)")
    p.add_argument("--work", type=Path, help="training folders (default: build/pretrain, or beside --state)")
    args = p.parse_args(argv)
    if args.hours is not None and not args.hours > 0:
        p.error(f"--hours must be positive, got {args.hours}")
    if not args.steps_scale > 0:
        p.error(f"--steps-scale must be positive, got {args.steps_scale}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    args.weights, args.state = args.weights.resolve(), args.state.resolve()
    if args.configs is None:
        args.configs = CONFIGS if args.weights == WEIGHTS else args.weights.with_name(f"{args.weights.name}-configs")
    if args.work is None:
        args.work = WORK if args.state == STATE else args.state.with_name(f"{args.state.name}-work")
    if args.base is None:
        args.base = BASE if args.weights == WEIGHTS else args.weights.with_name(f"{args.weights.name}-base")
    args.configs, args.work, args.base = args.configs.resolve(), args.work.resolve(), args.base.resolve()
    if args.steps_scale != 1.0:
        inside = [str(d) for d in (args.weights, args.state, args.configs, args.base) if d.is_relative_to(ROOT)]
        if inside:
            p.error(f"a run with --steps-scale {args.steps_scale} must not write into the repository ({inside}); "
                    "give --weights and --state outside it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = None if args.hours is None else time.time() + args.hours * 3600
    stop = Stop()
    runs = run_order(args.tasks, args.methods)
    rates: dict[str, float] = {}
    queue = list(runs)
    lock = threading.Lock()

    def worker() -> None:
        """Train runs from the queue, one after the other, until it is empty, time is up or a
        stop is requested (``--jobs`` workers side by side)."""
        while True:
            with lock:
                left = None if deadline is None else deadline - time.time()
                if not queue or stop.requested or (left is not None and left < MIN_PIECE_S):
                    return
                task, method = queue.pop(0)
            r = train_piece(task, method, args, left, stop)
            with lock:
                if r["status"] == "done":
                    print(f"[pretrain] {task}/{method}: done (weights of this config present)", flush=True)
                    continue
                if r["status"] == "finished" and r["stage"] == "base":
                    queue.insert(0, (task, method))  # its fine-tuning next
                taken = r["step"] - r["start_step"]
                if taken > 0:
                    rates[method] = r["wall_s"] / taken
                eta_run = (r["steps"] - r["step"]) * rates.get(method, SECONDS_PER_STEP[method])
                eta_all = _eta(queue, args, rates) / args.jobs
                what = f"{task}/{method}" + (" (base run)" if r["stage"] == "base" else "")
                print(f"[pretrain] {what}: steps {r['step']}/{r['steps']} (+{taken} in {r['wall_s']:.0f} s), "
                      f"{r['status']}; ETA {_hours(eta_run)} for this run, {_hours(eta_all)} for the runs not "
                      f"started ({args.jobs} at a time)", flush=True)
                if r["status"] == "stopped":
                    return

    workers = [threading.Thread(target=worker, name=f"pretrain-{k}") for k in range(args.jobs)]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(0.5)  # the main thread stays free for the signal handler
    left_runs = [f"{t}/{m}" for t, m in runs
                 if any((_stage_paths(t, m, st, args)[0] / "train.json").is_file() for st in ("base", "final"))]
    if left_runs:
        print(f"[pretrain] to be continued: {', '.join(left_runs)} (state in {_shown(args.state)})", flush=True)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
