"""Train the pretrained weights that ship in ``precisionrecon/pretrained/weights/``.

For every built-in task of ``precisionrecon bench`` (default suite, 64 x 64 images) and every
learned method of that task this script

1. builds the model on the task's operator (:func:`precisionrecon.bench.task_operator`) and
   writes its training config, seed included, to
   ``precisionrecon/pretrained/configs/<task>/<method>.json``;
2. trains it with the project's own command, ``precisionrecon train --config <that file>``,
   in a subprocess, into a work folder;
3. copies the final checkpoint's ``model.safetensors`` and ``config.json`` (not the
   optimizer state) into ``precisionrecon/pretrained/weights/<task>/<method>/``, with the
   training config as ``train.json`` and the run's wall time and last validation metrics
   as ``train_result.json``.

The training data are those of the tasks: random ellipses (Adler & Öktem) drawn on the fly
with the task's noise model (relative Gaussian noise, or Poisson counts with I0 = 1e4 for
``low-dose``; for MR complex Gaussian noise on the sampled k-space and a random smooth
phase). ``bench`` tests on other seeds (held-out ellipses and the Shepp-Logan phantom).

Models (small, CPU-sized): LearnedFBP (learned filter and weights, 5k-10k parameters, started
from FBP with the Hann window);
VN (5 steps, 16 filters of 5 x 5, RBF activations); LPD with a heteroscedastic
uncertainty head (Adler's 10 iterations and 5 + 5 memory channels, 16 instead of 32
filters per layer, started from FBP / the adjoint; trained with the Gaussian NLL so that
``bench`` shows its predicted standard deviation).

Usage::

    python benchmarks/pretrain.py                       # all tasks and methods
    python benchmarks/pretrain.py --tasks sparse-view-30 --methods LPD
    python benchmarks/pretrain.py --steps-scale 0.01 --weights /tmp/w   # smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from precisionrecon import bench, models, uncertainty
from precisionrecon._io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "precisionrecon" / "pretrained" / "configs"
WEIGHTS = ROOT / "precisionrecon" / "pretrained" / "weights"
N = bench.SUITES["default"].n

# steps and batch size per method; the seeds differ per task and method
BUDGET = {"LearnedFBP": (300, 4), "VN": (400, 2), "LPD": (1500, 2)}
SEED_BASE = 5_000


def build_model(task: str, method: str) -> torch.nn.Module:
    """The untrained model of ``method`` on the operator of ``task`` (float32)."""
    A = bench.task_operator(task, N)
    if method == "LearnedFBP":
        # started from the Hann window: with noisy data a smooth start learns faster than Ram-Lak
        return models.LearnedFBP(A, filter="hann")
    if method == "VN":
        return models.VariationalNetwork(A, n_steps=5, n_filters=16, kernel_size=5)
    if method == "LPD":
        complex_valued = bench.task_modality(task) == "mr"
        lpd = models.LearnedPrimalDual(A, width=16)
        return uncertainty.HeteroscedasticHead(lpd, hidden=16, depth=3, complex_valued=complex_valued,
                                               init_log_var=-6.0)
    raise ValueError(f"unknown method {method!r}")


def data_config(task: str) -> dict[str, Any]:
    """The training data of a task, with the bench task's noise model."""
    if bench.task_modality(task) == "mr":
        return {"kind": "mr", "noise": "gaussian", "noise_level": bench.MR_NOISE["noise_level"], "val_size": 4,
                "val_seed": 1}
    noise = bench.CT_NOISE[task]
    if noise["noise"] == "poisson":
        return {"kind": "ct", "noise": "poisson", "i0": noise["i0"], "mu_scale": noise["mu_scale"], "val_size": 4,
                "val_seed": 1}
    return {"kind": "ct", "noise": "gaussian", "noise_level": noise["noise_level"], "val_size": 4, "val_seed": 1}


def training_config(task: str, method: str, steps_scale: float) -> dict[str, Any]:
    steps, batch = BUDGET[method]
    k = bench.TASKS.index(task) * len(BUDGET) + list(BUDGET).index(method)
    return {
        "model": build_model(task, method).config(),
        "steps": max(1, round(steps * steps_scale)),
        "batch_size": batch,
        "lr": 1e-3,
        "min_lr": 1e-5,
        "schedule": "cosine",
        "betas": [0.9, 0.99],
        "grad_clip": 1.0,
        "seed": SEED_BASE + k,
        "dtype": "float32",
        "device": "cpu",
        "val_every": 0,
        "data_range": 1.0,
        "progress": False,
        "num_threads": 2,
        "data": data_config(task),
    }


def methods_of(task: str) -> tuple[str, ...]:
    return tuple(m for m in bench.LEARNED if m in bench.methods_of(task))


def train_one(task: str, method: str, steps_scale: float, configs: Path, weights: Path, work: Path) -> dict[str, Any]:
    cfg = training_config(task, method, steps_scale)
    cfg_path = configs / task / f"{method}.json"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, cfg)
    run_dir = work / task / method
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.time()
    cmd = [sys.executable, "-m", "precisionrecon", "train", "--config", str(cfg_path), "--output-dir", str(run_dir),
           "--no-progress"]
    subprocess.run(cmd, check=True)
    wall = time.time() - t0
    latest = json.loads((run_dir / "latest.json").read_text())
    final = run_dir / latest["checkpoint"]
    meta = json.loads((final / "config.json").read_text())
    dest = weights / task / method
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        shutil.copy2(final / name, dest / name)
    atomic_write_json(dest / "train.json", cfg)
    shown = cfg_path.relative_to(ROOT) if cfg_path.is_relative_to(ROOT) else cfg_path
    result = {"task": task, "method": method, "steps": cfg["steps"], "batch_size": cfg["batch_size"],
              "seed": cfg["seed"], "wall_s": round(wall, 1), "metrics": meta.get("metrics", {}),
              "command": f"precisionrecon train --config {shown}"}
    atomic_write_json(dest / "train_result.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tasks", nargs="+", default=list(bench.TASKS), choices=list(bench.TASKS))
    p.add_argument("--methods", nargs="+", default=list(bench.LEARNED), choices=list(bench.LEARNED))
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step budget (smoke runs)")
    p.add_argument("--configs", type=Path, default=CONFIGS)
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--work", type=Path, default=ROOT / "build" / "pretrain")
    args = p.parse_args(argv)
    for task in args.tasks:
        for method in methods_of(task):
            if method not in args.methods:
                continue
            print(f"[pretrain] {task} / {method} ...", flush=True)
            r = train_one(task, method, args.steps_scale, args.configs, args.weights, args.work)
            print(f"[pretrain] {task} / {method}: {r['steps']} steps in {r['wall_s']} s, {r['metrics']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
