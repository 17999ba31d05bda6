"""Learned reconstruction benchmarks of issue 6, trained with the project's own training command.

Parts (``--parts``, any of ``ABCD``, default all):

A. Adler & Öktem's setup: parallel beam, 30 views over 180 degrees, 5 % relative Gaussian
   noise on each sinogram, training on random ellipses (drawn on the fly), test on the
   modified Shepp-Logan phantom and held-out random ellipses. FBP (Ram-Lak), TV (``pdhg_tv``,
   lambda chosen on a *validation* ellipse image from a grid), LearnedFBP,
   VariationalNetwork and LearnedPrimalDual.
B. Limited-angle fan beam (160 degree arc): LearnedFBP against FBP with the extended Parker
   weights (the untrained LearnedFBP, which equals that FBP); the learned weights are drawn
   to ``learned_weights.png``.
C. Uncertainty: a HeteroscedasticHead over a LearnedFBP trained with the Gaussian NLL; the
   std is scaled by ``fit_std_scale`` on validation ellipses and the 90 % coverage and
   Spearman(std, |error|) are measured on held-out ellipses.
D. Precision learning: LearnedFBP, VN, LPD and FBPConvNet each trained with the same step
   budget on fixed sets of 10, 100 and 1000 anatomy-like phantoms (data simulated on a finer
   grid and detector); mean PSNR and maximal absolute error on held-out anatomy phantoms, on
   the real CT slices of the bench's real suite and on Shepp-Logan, and the free-parameter
   counts.

Every model is trained by ``python -m precisionrecon.training --config <cfg.json>`` in a
subprocess (one torch thread each, at most ``--jobs`` at a time). The configs (with their
seeds) are written to ``benchmarks/learned/`` (``<out>/configs/`` with ``--quick``) before
training, so each run can be repeated by hand. PSNR and SSIM use ``data_range = 1`` (the
range of the Shepp-Logan phantom; the ellipse images take values of similar size).

Outputs (written atomically): ``<out>/learned.json``, ``<out>/learned.md`` and the figures
``learned_A.png``, ``learned_weights.png``, ``learned_C.png``, ``learned_D.png``.

Usage::

    python benchmarks/learned.py                          # the full (CPU-sized) run
    python benchmarks/learned.py --parts A --jobs 2
    python benchmarks/learned.py --quick --out /tmp/x      # smoke run, tiny sizes

``--quick`` without ``--out`` writes to ``benchmarks/results/quick/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import precisionrecon as pr
from precisionrecon._io import atomic_path, atomic_write_json, atomic_write_text
from precisionrecon.algorithms import pdhg_tv
from precisionrecon.bench import load_average, machine_info, real_images
from precisionrecon.data import (
    anatomy_images,
    fine_projection,
    gaussian_noise,
    random_ellipse_images,
    shepp_logan_image,
)
from precisionrecon.models import FBPConvNet, LearnedFBP, LearnedPrimalDual, VariationalNetwork
from precisionrecon.training import load_checkpoint, read_checkpoint
from precisionrecon.uncertainty import HeteroscedasticHead, coverage, fit_std_scale, spearman

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results"
DEFAULT_CONFIGS = ROOT / "learned"
DATA_RANGE = 1.0
TEST_SEED = 777_001  # held-out ellipses (the trainer's phantoms come from other seed streams)
VAL_SEED = 777_002  # validation ellipses for TV's lambda and the std calibration
SL_NOISE_SEED = 777_003
PAPER = {"FBP": 19.75, "TV": 28.06, "LearnedPrimalDual": 38.28}  # Adler & Öktem 2018, Table 1, PSNR dB


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Scale:
    """Problem sizes and step budgets of one run (``full`` or ``quick``)."""

    a_variants: tuple[tuple[int, dict[str, int], dict[str, int]], ...]  # part A: (side, steps, batch) per model
    n_b: int
    views_b: int
    steps_b: int
    n_c: int
    steps_c: int
    steps_c_lpd: int
    n_d: int
    steps_d: int
    batch_d: int
    sizes_d: tuple[int, ...]
    n_test: int  # held-out ellipse images
    tv_iter: int
    tv_lams: tuple[float, ...]
    vn: dict[str, int] = field(default_factory=dict)
    fcn: dict[str, int] = field(default_factory=dict)


FULL = Scale(
    a_variants=(
        (128, {"LearnedFBP": 300, "VariationalNetwork": 300, "LearnedPrimalDual": 2500},
         {"LearnedFBP": 4, "VariationalNetwork": 2, "LearnedPrimalDual": 2}),
        (64, {"LearnedFBP": 300, "VariationalNetwork": 400, "LearnedPrimalDual": 3000},
         {"LearnedFBP": 4, "VariationalNetwork": 4, "LearnedPrimalDual": 4}),
    ),
    n_b=128, views_b=160, steps_b=300,
    n_c=64, steps_c=400, steps_c_lpd=1500,
    n_d=64, steps_d=1000, batch_d=4, sizes_d=(10, 100, 1000),
    n_test=8, tv_iter=300, tv_lams=(0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    vn={"n_steps": 5, "n_filters": 16, "kernel_size": 5},
    fcn={"depth": 3, "width": 16},
)
QUICK = Scale(
    a_variants=((24, {"LearnedFBP": 3, "VariationalNetwork": 2, "LearnedPrimalDual": 2},
                 {"LearnedFBP": 2, "VariationalNetwork": 2, "LearnedPrimalDual": 2}),),
    n_b=24, views_b=20, steps_b=3,
    n_c=24, steps_c=3, steps_c_lpd=3,
    n_d=24, steps_d=2, batch_d=2, sizes_d=(2, 4),
    n_test=2, tv_iter=10, tv_lams=(1.0, 4.0),
    vn={"n_steps": 2, "n_filters": 4, "kernel_size": 3},
    fcn={"depth": 1, "width": 4},
)


def parallel_operator(n: int, views: int = 30) -> pr.XRayTransform:
    """``n x n`` pixels of 1 mm, ``views`` parallel views over 180 degrees, a detector
    covering the image diagonal (1 mm bins)."""
    det = math.ceil(math.sqrt(2.0) * n) + 2
    return pr.XRayTransform(pr.Volume((n, n)), pr.ParallelBeam2D(angles=pr.angles(views), det_count=det))


def limited_fan_operator(n: int, views: int, arc_deg: float = 160.0) -> pr.XRayTransform:
    """Fan beam over ``arc_deg`` degrees (limited angle: less than 180 + fan angle), flat
    detector, magnification 2, the detector covering the image diagonal."""
    src_iso, src_det = 2.0 * n, 4.0 * n
    det = 2 * math.ceil(math.sqrt(2.0) * n) + 8
    geom = pr.FanBeam2D(
        angles=pr.angles(views, arc=math.radians(arc_deg)), det_count=det, det_spacing=1.0,
        src_iso=src_iso, src_det=src_det,
    )
    return pr.XRayTransform(pr.Volume((n, n)), geom)


# --------------------------------------------------------------------------- configs and training


def training_config(model: torch.nn.Module, *, steps: int, batch: int, seed: int, lr: float = 1e-3,
                    train_size: int | None = None, noise_level: float = 0.05,
                    phantom: str = "ellipses") -> dict[str, Any]:
    """A :class:`~precisionrecon.training.TrainingConfig` dict for ``model``; ``phantom="anatomy"``
    trains on the anatomy-like phantoms, simulated on a 2x finer grid and detector."""
    data_extra: dict[str, Any] = {"phantom": "anatomy", "oversample": 2} if phantom == "anatomy" else {}
    return {
        "model": model.config(),
        "output_dir": None,
        "steps": steps,
        "batch_size": batch,
        "lr": lr,
        "min_lr": lr * 0.01,
        "schedule": "cosine",
        "betas": [0.9, 0.99],
        "grad_clip": 1.0,
        "seed": seed,
        "dtype": "float32",
        "device": "cpu",
        "val_every": 0,
        "data_range": DATA_RANGE,
        "progress": False,
        "num_threads": 1,
        "data": {"kind": "ct", "noise": "gaussian", "noise_level": noise_level, "train_size": train_size,
                 "val_size": 4, "val_seed": 1, **data_extra},
    }


def save_figure(fig: Any, path: Path) -> None:
    """Atomic PNG write."""
    with atomic_path(path, mode=0o644) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")


def run_trainings(jobs: list[tuple[str, Path]], work: Path, n_parallel: int) -> dict[str, dict[str, Any]]:
    """Run ``python -m precisionrecon.training --config cfg --output-dir work/name`` for each
    ``(name, cfg)``, ``n_parallel`` at a time. Returns name -> {checkpoint, wall_s, ...}."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending = list(jobs)
    running: dict[str, tuple[subprocess.Popen[str], float, Path]] = {}
    done: dict[str, dict[str, Any]] = {}
    for name, _ in jobs:  # a finished run of an earlier invocation with the same work folder is reused
        record = work / f"{name}.result.json"
        if record.is_file():
            done[name] = {**json.loads(record.read_text()), "reused": True}
            pending = [j for j in pending if j[0] != name]
            print(f"[train] {name} reused from {record}", flush=True)
    while pending or running:
        while pending and len(running) < n_parallel:
            name, cfg = pending.pop(0)
            out_dir = work / name
            cmd = [sys.executable, "-m", "precisionrecon.training", "--config", str(cfg), "--output-dir",
                   str(out_dir), "--no-progress"]
            log = (work / f"{name}.log").open("w")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            running[name] = (proc, time.perf_counter(), out_dir)
            print(f"[train] {name} started", flush=True)
        time.sleep(0.2)
        for name in list(running):
            proc, t0, out_dir = running[name]
            if proc.poll() is None:
                continue
            stdout = proc.stdout.read() if proc.stdout is not None else ""
            del running[name]
            if proc.returncode != 0:
                raise RuntimeError(f"training {name} failed (exit {proc.returncode}); see {work / name}.log")
            result = json.loads(stdout.strip().splitlines()[-1])
            result["wall_s"] = time.perf_counter() - t0
            _, meta = read_checkpoint(result["checkpoint"])
            result["train_time_s"] = float(meta.get("train_time", float("nan")))
            result["n_free_parameters"] = int(meta.get("n_free_parameters", -1))
            done[name] = result
            atomic_write_json(work / f"{name}.result.json", result, mode=0o644)
            print(f"[train] {name} done in {result['wall_s']:.0f} s", flush=True)
    return done


# --------------------------------------------------------------------------- evaluation data and metrics


def noisy(A: pr.XRayTransform, x: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    """``A x`` plus relative Gaussian noise per item (seeds ``seed + i``), as the trainer draws it."""
    with torch.no_grad():
        y = A(x)
    return torch.stack([gaussian_noise(y[i], level, seed=seed + i, item_ndim=2) for i in range(y.shape[0])])


def test_sets(A: pr.XRayTransform, n_test: int, level: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"shepp_logan": (y, x), "ellipses": (y, x)}``: the modified Shepp-Logan phantom and
    ``n_test`` held-out random-ellipse images, with their noisy data."""
    vol = A.volume
    sl = shepp_logan_image(vol)[None]
    el = random_ellipse_images(vol, n_test, seed=TEST_SEED)
    return {"shepp_logan": (noisy(A, sl, level, SL_NOISE_SEED), sl), "ellipses": (noisy(A, el, level, TEST_SEED), el)}


def anatomy_set(A: pr.XRayTransform, n_test: int, level: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, x)``: ``n_test`` held-out anatomy-like phantoms (seed ``TEST_SEED``, the trainer
    draws from other streams), their data simulated on a 2x finer grid and detector (no
    inverse crime) with relative Gaussian noise."""
    def render(vol: pr.Volume) -> torch.Tensor:
        return anatomy_images(vol, n_test, seed=TEST_SEED)

    x = render(A.volume)
    with torch.no_grad():
        y = fine_projection(render, A, factor=2)
    return torch.stack([gaussian_noise(y[i], level, seed=TEST_SEED + i, item_ndim=2) for i in range(n_test)]), x


def real_ct_set(A: pr.XRayTransform, level: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(y, x)`` of the real CT slices of ``precisionrecon bench --suite real`` (pydicom's
    bundled files), given at twice the task size, projected on that grid with a detector twice
    as fine and binned (no inverse crime), with relative Gaussian noise; the truth is their
    block mean. ``None`` when no file is usable (pydicom or a decoder missing)."""
    n = A.volume.shape[-1]
    _, fine, _ = real_images("CT", 2 * n)
    if fine is None:
        return None
    fine = fine.float()
    with torch.no_grad():
        y = fine_projection(lambda volume: fine, A, factor=2)
    x = torch.nn.functional.avg_pool2d(fine[:, None], 2)[:, 0]
    return torch.stack([gaussian_noise(y[i], level, seed=TEST_SEED + 100 + i, item_ndim=2)
                        for i in range(y.shape[0])]), x


def part_d_sets(A: pr.XRayTransform, n_test: int, level: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Part D's test sets: held-out anatomy phantoms, the real CT slices of the bench's real
    suite (resampled, simulated on a finer grid), and Shepp-Logan."""
    sl = shepp_logan_image(A.volume)[None]
    sets = {"anatomy": anatomy_set(A, n_test, level)}
    real = real_ct_set(A, level)
    if real is not None:
        sets["real"] = real
    sets["shepp_logan"] = (noisy(A, sl, level, SL_NOISE_SEED), sl)
    return sets


def scores(x: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Mean PSNR, SSIM (``data_range = 1``) and the maximal absolute error over the batch."""
    x = x.detach().to(ref.dtype)
    return {
        "psnr": float(pr.metrics.psnr(x, ref, data_range=DATA_RANGE).mean()),
        "ssim": float(pr.metrics.ssim(x, ref, data_range=DATA_RANGE).mean()),
        "max_abs_error": float((x - ref).abs().max()),
    }


def evaluate(model: torch.nn.Module, sets: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with torch.no_grad():
        for key, (y, x) in sets.items():
            rec = model(y)
            out[key] = scores(rec, x)
            out[key + "_image"] = rec[0]
    return out


def fbp(A: pr.XRayTransform) -> pr.FBP:
    return pr.FBP(A, "ram-lak")


def tune_tv(A: pr.XRayTransform, lams: tuple[float, ...], n_iter: int, level: float) -> tuple[float, list[dict]]:
    """The TV weight of the grid with the best PSNR on one validation ellipse image."""
    x = random_ellipse_images(A.volume, 1, seed=VAL_SEED)
    y = noisy(A, x, level, VAL_SEED)
    op_norm = A.norm()
    grid = []
    for lam in lams:
        rec = pdhg_tv(A, y, lam, n_iter, op_norm=op_norm, nonneg=False).x  # ellipses take negative values
        grid.append({"lam": lam, "val_psnr": scores(rec, x)["psnr"]})
    best = max(grid, key=lambda g: g["val_psnr"])["lam"]
    return best, grid


def hardware() -> dict[str, Any]:
    return {**machine_info(), "torch_threads_per_run": 1}


# --------------------------------------------------------------------------- parts


def configs_for(scale: Scale, parts: str) -> list[tuple[str, dict[str, Any], str]]:
    """``(name, training config, part)`` of every training run of ``parts``."""
    torch.manual_seed(0)  # the models' initial values are re-drawn by the trainer from its seed
    out: list[tuple[str, dict[str, Any], str]] = []
    for n, steps, batch in scale.a_variants if "A" in parts else ():
        A = parallel_operator(n)
        models = {
            "LearnedFBP": LearnedFBP(A),
            "VariationalNetwork": VariationalNetwork(A, **scale.vn),
            "LearnedPrimalDual": LearnedPrimalDual(A, init="fbp"),
        }
        for k, (name, m) in enumerate(models.items()):
            cfg = training_config(m, steps=steps[name], batch=batch[name], seed=10 + k)
            out.append((f"{a_prefix(scale, n)}_{name}", cfg, "A"))
    if "B" in parts:
        A = limited_fan_operator(scale.n_b, scale.views_b)
        cfg = training_config(LearnedFBP(A), steps=scale.steps_b, batch=4, seed=20, noise_level=0.01)
        out.append(("B_LearnedFBP", cfg, "B"))
    if "C" in parts:
        A = parallel_operator(scale.n_c)
        # LPD: 16 filters per layer instead of Adler's 32 (the size of the pretrained bench models)
        inners = (LearnedFBP(A), FBPConvNet(A, **scale.fcn), LearnedPrimalDual(A, width=16))
        for k, inner in enumerate(inners):
            head = HeteroscedasticHead(inner, hidden=16, depth=3, init_log_var=-6.0)
            lpd = isinstance(inner, LearnedPrimalDual)
            cfg = training_config(head, steps=scale.steps_c_lpd if lpd else scale.steps_c, batch=2 if lpd else 4,
                                  seed=30 + k)
            out.append((f"C_Heteroscedastic{type(inner).__name__}", cfg, "C"))
    if "D" in parts:
        A = parallel_operator(scale.n_d)
        models = {
            "LearnedFBP": LearnedFBP(A),
            "VariationalNetwork": VariationalNetwork(A, **scale.vn),
            "LearnedPrimalDual": LearnedPrimalDual(A, init="fbp"),
            "FBPConvNet": FBPConvNet(A, **scale.fcn),
        }
        for size in scale.sizes_d:
            for k, (name, m) in enumerate(models.items()):
                cfg = training_config(m, steps=scale.steps_d, batch=scale.batch_d, seed=40 + k, train_size=size,
                                      phantom="anatomy")
                out.append((f"D_{name}_n{size}", cfg, "D"))
    return out


def a_prefix(scale: Scale, n: int) -> str:
    """Run-name prefix of the part-A variant of side ``n``: ``A`` for the first, ``A<n>`` after."""
    return "A" if n == scale.a_variants[0][0] else f"A{n}"


def tune_fbp(A: pr.XRayTransform) -> tuple[tuple[str, float], list[dict]]:
    """The FBP window and cutoff of a small grid with the best PSNR on one validation ellipse image."""
    x = random_ellipse_images(A.volume, 1, seed=VAL_SEED)
    y = noisy(A, x, 0.05, VAL_SEED)
    grid = []
    for window in ("ram-lak", "hann"):
        for cutoff in (1.0, 0.8, 0.6, 0.4):
            with torch.no_grad():
                rec = pr.FBP(A, window, cutoff=cutoff)(y)
            grid.append({"filter": window, "cutoff": cutoff, "val_psnr": scores(rec, x)["psnr"]})
    best = max(grid, key=lambda g: g["val_psnr"])
    return (best["filter"], best["cutoff"]), grid


def part_a(scale: Scale, runs: dict[str, Any], n: int, steps: dict[str, int], batch: dict[str, int]) -> dict[str, Any]:
    A = parallel_operator(n)
    sets = test_sets(A, scale.n_test, 0.05)
    rows: list[dict[str, Any]] = []
    images: dict[str, torch.Tensor] = {"truth": sets["shepp_logan"][1][0]}
    r = evaluate(fbp(A), sets)
    images["FBP"] = r.pop("shepp_logan_image")
    r.pop("ellipses_image")
    rows.append({"method": "FBP (Ram-Lak)", "steps": 0, "wall_s": 0.0, "n_free_parameters": 0, **r})
    (window, cutoff), fbp_grid = tune_fbp(A)
    r = evaluate(pr.FBP(A, window, cutoff=cutoff), sets)
    r.pop("shepp_logan_image")
    r.pop("ellipses_image")
    rows.append({"method": f"FBP (tuned: {window}, cutoff {cutoff:g})", "steps": 0, "wall_s": 0.0,
                 "n_free_parameters": 0, **r})
    t0 = time.perf_counter()
    lam, grid = tune_tv(A, scale.tv_lams, scale.tv_iter, 0.05)
    op_norm = A.norm()
    with torch.no_grad():
        tv = {k: pdhg_tv(A, y, lam, scale.tv_iter, op_norm=op_norm, nonneg=False).x for k, (y, _) in sets.items()}
    images["TV"] = tv["shepp_logan"][0]
    rows.append({"method": f"TV (lambda={lam:g}, {scale.tv_iter} PDHG iterations)", "steps": 0,
                 "wall_s": time.perf_counter() - t0, "n_free_parameters": 0,
                 **{k: scores(tv[k], x) for k, (_, x) in sets.items()}})
    for name in ("LearnedFBP", "VariationalNetwork", "LearnedPrimalDual"):
        run = runs.get(f"{a_prefix(scale, n)}_{name}")
        if run is None:
            continue
        model = load_checkpoint(run["checkpoint"])
        r = evaluate(model, sets)
        images[name] = r.pop("shepp_logan_image")
        r.pop("ellipses_image")
        rows.append({"method": name, "steps": run["step"], "wall_s": run["wall_s"],
                     "train_time_s": run["train_time_s"], "n_free_parameters": run["n_free_parameters"], **r})
    return {"n": n, "steps": steps, "batch": batch, "fbp_grid": fbp_grid, "lambda_grid": grid, "tv_lambda": lam,
            "rows": rows, "images": images}


def part_b(scale: Scale, runs: dict[str, Any]) -> dict[str, Any]:
    A = limited_fan_operator(scale.n_b, scale.views_b)
    sets = test_sets(A, scale.n_test, 0.01)
    untrained = LearnedFBP(A)  # = FBP with extended Parker weights
    rows = []
    r0 = evaluate(untrained, sets)
    img0 = r0.pop("shepp_logan_image")
    r0.pop("ellipses_image")
    rows.append({"method": "FBP, extended Parker weights", "steps": 0, "wall_s": 0.0, **r0})
    run = runs["B_LearnedFBP"]
    model = load_checkpoint(run["checkpoint"])
    r = evaluate(model, sets)
    img = r.pop("shepp_logan_image")
    r.pop("ellipses_image")
    rows.append({"method": "LearnedFBP", "steps": run["step"], "wall_s": run["wall_s"],
                 "n_free_parameters": run["n_free_parameters"], **r})
    return {
        "rows": rows,
        "designed_weights": untrained.fbp.weights.detach(),
        "learned_weights": model.fbp.weights.detach(),
        "designed_response": untrained.fbp.response.detach(),
        "learned_response": model.fbp.response.detach(),
        "images": {"truth": sets["shepp_logan"][1][0], "FBP (Parker)": img0, "LearnedFBP": img},
    }


def part_c(scale: Scale, runs: dict[str, Any], inner: str) -> dict[str, Any]:
    A = parallel_operator(scale.n_c)
    run = runs[f"C_Heteroscedastic{inner}"]
    head = load_checkpoint(run["checkpoint"])
    xv = random_ellipse_images(A.volume, scale.n_test, seed=VAL_SEED)
    yv = noisy(A, xv, 0.05, VAL_SEED)
    sets = test_sets(A, scale.n_test, 0.05)
    yt, xt = sets["ellipses"]
    with torch.no_grad():
        mv, sv = head.predict(yv)
        mt, st = head.predict(yt)
    s = fit_std_scale(sv, mv - xv)
    err = (mt - xt).abs()
    out = {
        "model": f"HeteroscedasticHead({inner})",
        "steps": run["step"], "wall_s": run["wall_s"], "n_free_parameters": run["n_free_parameters"],
        "std_scale": s,
        "coverage90_uncalibrated": float(coverage(mt, st, xt, 0.9)),
        "coverage90": float(coverage(mt, s * st, xt, 0.9)),
        "spearman_std_abs_error": float(spearman(st.flatten(), err.flatten())),
        "test_psnr": scores(mt, xt)["psnr"],
        "n_val_images": scale.n_test, "n_test_images": scale.n_test,
        "images": {"truth": xt[0], "mean": mt[0], "|error|": err[0], "calibrated std": s * st[0]},
    }
    return out


def part_d(scale: Scale, runs: dict[str, Any]) -> dict[str, Any]:
    A = parallel_operator(scale.n_d)
    sets = part_d_sets(A, scale.n_test, 0.05)
    rows = []
    fbp_scores = evaluate(fbp(A), sets)
    rows.append({"model": "FBP", "train_size": 0, "n_free_parameters": 0,
                 **{k: v for k, v in fbp_scores.items() if not k.endswith("_image")}})
    for name, run in sorted(runs.items()):
        if not name.startswith("D_"):
            continue
        model_name, size = name[2:].rsplit("_n", 1)
        model = load_checkpoint(run["checkpoint"])
        r = evaluate(model, sets)
        rows.append({"model": model_name, "train_size": int(size), "steps": run["step"], "wall_s": run["wall_s"],
                     "n_free_parameters": run["n_free_parameters"],
                     **{k: v for k, v in r.items() if not k.endswith("_image")}})
    return {"rows": rows, "test_sets": {k: int(v[1].shape[0]) for k, v in sets.items()}}


# --------------------------------------------------------------------------- figures and tables


def figures(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def montage(images: dict[str, torch.Tensor], path: Path, vmin: float = 0.0, vmax: float = 1.0) -> None:
        fig, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 2.8))
        for ax, (title, im) in zip(np.atleast_1d(axes), images.items(), strict=True):
            ax.imshow(im.numpy(), cmap="gray", vmin=vmin, vmax=vmax)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        save_figure(fig, path)
        plt.close(fig)
        written.append(path.name)

    for v in results.get("A", []):
        name = "learned_A.png" if v["n"] == results["A"][0]["n"] else f"learned_A{v['n']}.png"
        montage(v.pop("images"), out / name)
    if "B" in results:
        b = results["B"]
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
        dw, lw = b.pop("designed_weights"), b.pop("learned_weights")
        for ax, (title, w) in zip(axes[:3], [("designed (ext. Parker x quadrature x cosine)", dw),
                                             ("learned", lw), ("learned - designed", lw - dw)], strict=True):
            im = ax.imshow(w.numpy(), aspect="auto", cmap="viridis")
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("detector bin")
            ax.set_ylabel("view")
            fig.colorbar(im, ax=ax)
        dr, lr = b.pop("designed_response"), b.pop("learned_response")
        axes[3].plot(dr.numpy(), label="designed (Ram-Lak)")
        axes[3].plot(lr.numpy(), label="learned")
        axes[3].set_title("filter response", fontsize=8)
        axes[3].legend(fontsize=7)
        save_figure(fig, out / "learned_weights.png")
        plt.close(fig)
        written.append("learned_weights.png")
        montage(b.pop("images"), out / "learned_B.png")
    if "C" in results:
        fig, axes = plt.subplots(len(results["C"]), 4, figsize=(11, 2.8 * len(results["C"])), squeeze=False)
        for row, c in zip(axes, results["C"], strict=True):
            ims = c.pop("images")
            hi = float(max(ims["|error|"].max(), ims["calibrated std"].max()))
            for ax, (title, im) in zip(row, ims.items(), strict=True):
                scaled = title in ("|error|", "calibrated std")
                ax.imshow(im.numpy(), cmap="magma" if scaled else "gray", vmin=0.0 if scaled else -0.5,
                          vmax=hi if scaled else 1.0)
                ax.set_title(f"{c['model']}: {title}" if title == "mean" else title, fontsize=7)
                ax.axis("off")
        save_figure(fig, out / "learned_C.png")
        plt.close(fig)
        written.append("learned_C.png")
    if "D" in results:
        rows = [r for r in results["D"]["rows"] if r["train_size"] > 0]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
        for name in sorted({r["model"] for r in rows}):
            rs = sorted((r for r in rows if r["model"] == name), key=lambda r: r["train_size"])
            n = [r["train_size"] for r in rs]
            test = "real" if "real" in rs[0] else "anatomy"
            axes[0].semilogx(n, [r["anatomy"]["psnr"] for r in rs], "o-", label=name)
            axes[1].semilogx(n, [r["anatomy"]["max_abs_error"] for r in rs], "o-", label=name)
            axes[2].semilogx(n, [r[test]["max_abs_error"] for r in rs], "o-", label=name)
        fbp_row = next(r for r in results["D"]["rows"] if r["model"] == "FBP")
        for ax, key in zip(axes, (("anatomy", "psnr"), ("anatomy", "max_abs_error"), (test, "max_abs_error")),
                           strict=True):
            ax.axhline(fbp_row[key[0]][key[1]], color="k", ls=":", label="FBP")
        for ax, t in zip(axes, ["held-out anatomy: mean PSNR (dB)", "held-out anatomy: max |error|",
                                f"{'real CT slices' if test == 'real' else 'anatomy'}: max |error|"], strict=True):
            ax.set_title(t, fontsize=9)
            ax.set_xlabel("training images")
        axes[0].legend(fontsize=7)
        save_figure(fig, out / "learned_D.png")
        plt.close(fig)
        written.append("learned_D.png")
    return written


def _f(v: Any, nd: int = 2) -> str:
    return f"{v:.{nd}f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def markdown(results: dict[str, Any], scale_name: str, scale: Scale) -> str:
    lines = [
        "# Learned reconstruction benchmarks (issue 6)",
        "",
        f"Produced by `python benchmarks/learned.py{' --quick' if scale_name == 'quick' else ''}` on "
        f"{results['meta']['date']}; every model trained by `python -m precisionrecon.training --config "
        "benchmarks/learned/<name>.json` (one torch thread per run, CPU only, "
        f"{results['meta']['hardware']['cpu_count']} shared cores, load average at start "
        f"{results['meta']['hardware']['loadavg_at_start'][0]:.1f}). PSNR and SSIM with `data_range = 1`; "
        "*ellipses* = mean over "
        f"{scale.n_test} held-out random-ellipse images. Step budgets are tiny CPU budgets, not the papers' "
        "(Adler & Öktem: 100k steps on a GPU); wall time includes process start-up and data simulation.",
        "",
        *reuse_note(results),
        *summary(results),
    ]
    for i, a in enumerate(results.get("A", [])):
        n = a["n"]
        grid = ", ".join(f"{g['lam']:g}: {g['val_psnr']:.2f}" for g in a["lambda_grid"])
        fbp_grid = ", ".join(f"{g['filter']}/{g['cutoff']:g}: {g['val_psnr']:.2f}" for g in a["fbp_grid"])
        title = "A. Adler & Öktem setup" if i == 0 else "A (reduced size, longer budget)"
        lines += [
            f"## {title}: {n}x{n}, 30 parallel views, 5 % Gaussian noise",
            "",
            "Trained on random ellipses drawn on the fly; tested on the modified Shepp-Logan phantom and held-out "
            "ellipses. FBP window/cutoff and TV's lambda chosen on one validation ellipse image (not the test image): "
            f"FBP grid (validation PSNR) {fbp_grid}; TV (isotropic, no positivity constraint since the ellipse "
            f"images take negative values, {scale.tv_iter} PDHG iterations) lambda grid {grid}. "
            f"VN: {scale.vn}. LPD: Adler's architecture (10 iterations, 5+5 memory, 32 filters, PReLU) "
            "started from FBP instead of zero (faster convergence in a tiny budget). Adam, cosine decay from "
            "1e-3 to 1e-5, gradient clipping 1.",
            "",
            "| method | Shepp-Logan PSNR | SSIM | ellipses PSNR | SSIM | steps (batch) | wall time (s) | "
            "free params | paper PSNR (128x128) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in a["rows"]:
            key = r["method"].split(" ")[0]
            steps = f"{r['steps']} ({a['batch'][key]})" if key in a["batch"] else "-"
            lines.append(
                f"| {r['method']} | {_f(r['shepp_logan']['psnr'])} | {_f(r['shepp_logan']['ssim'], 3)} | "
                f"{_f(r['ellipses']['psnr'])} | {_f(r['ellipses']['ssim'], 3)} | {steps} | {_f(r['wall_s'], 0)} | "
                f"{r['n_free_parameters']} | {_f(PAPER.get(key, float('nan')))} |"
            )
        figure = "learned_A.png" if i == 0 else f"learned_A{n}.png"
        lines += ["", a["verdict"], "", f"![A]({figure})", ""]
    if "B" in results:
        b = results["B"]
        lines += [
            f"## B. Limited-angle fan beam: 160 degree arc, {scale.views_b} views, {scale.n_b}x{scale.n_b}, "
            "1 % Gaussian noise",
            "",
            "| method | Shepp-Logan PSNR | SSIM | ellipses PSNR | SSIM | steps | wall time (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in b["rows"]:
            lines.append(
                f"| {r['method']} | {_f(r['shepp_logan']['psnr'])} | {_f(r['shepp_logan']['ssim'], 3)} | "
                f"{_f(r['ellipses']['psnr'])} | {_f(r['ellipses']['ssim'], 3)} | {r['steps']} | "
                f"{_f(r['wall_s'], 0)} |"
            )
        lines += ["", "Learned pre-weights and filter: ![weights](learned_weights.png)", "",
                  "![B](learned_B.png)", ""]
    if "C" in results:
        c0 = results["C"][0]
        lines += [
            f"## C. Uncertainty on held-out data ({scale.n_c}x{scale.n_c}, 30 views, 5 % noise)",
            "",
            "Heteroscedastic heads (3 convolutions, 16 channels, on the detached mean) trained with the Gaussian "
            f"NLL ({c0['steps']} steps; the LPD {results['C'][-1]['steps']} steps of batch 2); std scale fitted by "
            "`fit_std_scale` on "
            f"{c0['n_val_images']} validation ellipse images, metrics over all pixels of {c0['n_test_images']} "
            "held-out ones. Target (issue 6): coverage 85-95 %, Spearman >= 0.5.",
            "",
            "| model | std scale | 90 % coverage before | 90 % coverage after | Spearman(std, abs error) | test PSNR "
            "| steps | wall time (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in results["C"]:
            lines.append(
                f"| {c['model']} | {_f(c['std_scale'], 3)} | {_f(100 * c['coverage90_uncalibrated'], 1)} % | "
                f"{_f(100 * c['coverage90'], 1)} % | {_f(c['spearman_std_abs_error'], 3)} | {_f(c['test_psnr'])} "
                f"| {c['steps']} | {_f(c['wall_s'], 0)} |"
            )
        lines += ["", "![C](learned_C.png)", ""]
    if "D" in results:
        lines += [
            f"## D. Precision learning: training-set size ({scale.n_d}x{scale.n_d}, 30 views, 5 % noise)",
            "",
            f"Each model: {scale.steps_d} steps of batch {scale.batch_d} on a fixed set of n anatomy-like phantoms "
            f"(`pr.data.anatomy_images`, data simulated on a 2x finer grid and detector; VN {scale.vn}, "
            f"FBPConvNet {scale.fcn}, LPD from FBP; every model normalises each sample's scale). Mean PSNR and "
            "the maximal absolute error over held-out anatomy phantoms, the real CT slices of "
            "`precisionrecon bench --suite real` (when present) and Shepp-Logan.",
            "",
            "| model | free params | n train | anatomy PSNR | anatomy max abs err | real CT PSNR | "
            "real CT max abs err | Shepp-Logan PSNR | Shepp-Logan max abs err |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(results["D"]["rows"], key=lambda r: (r["model"], r["train_size"])):
            real = r.get("real", {})
            lines.append(
                f"| {r['model']} | {r['n_free_parameters']} | {r['train_size'] or '-'} | "
                f"{_f(r['anatomy']['psnr'])} | {_f(r['anatomy']['max_abs_error'], 3)} | "
                f"{_f(real.get('psnr'))} | {_f(real.get('max_abs_error'), 3)} | "
                f"{_f(r['shepp_logan']['psnr'])} | {_f(r['shepp_logan']['max_abs_error'], 3)} |"
            )
        lines += ["", "![D](learned_D.png)", ""]
    missing = [p for p in "ABCD" if p not in results]
    if missing:
        lines += [f"Parts not run in this invocation: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def reuse_note(results: dict[str, Any]) -> list[str]:
    runs = results.get("runs", {})
    reused = sum(1 for r in runs.values() if r.get("reused"))
    if not reused:
        return []
    return [f"{reused} of {len(runs)} trainings were reused from earlier invocations with the same `--work` folder "
            "(their steps and wall times are those of the original runs, which shared the 2 cores with other "
            "jobs; the load average above is that of the evaluating invocation).", ""]


def summary(results: dict[str, Any]) -> list[str]:
    """The issue's done-when checks, met or not, as markdown bullet lines."""
    out = ["## Done-when checks (issue 6) in this budget", ""]
    for a in results.get("A", []):
        out.append(f"- A {a['n']}x{a['n']}: {a['verdict']}")
    if "B" in results:
        fbp_row, learned = results["B"]["rows"]
        sl, el = (learned[k]["psnr"] - fbp_row[k]["psnr"] for k in ("shepp_logan", "ellipses"))
        ok = "beats" if sl > 0 and el > 0 else "does NOT beat"
        out.append(f"- B: LearnedFBP {ok} FBP with extended Parker weights (Shepp-Logan {sl:+.2f} dB, "
                   f"ellipses {el:+.2f} dB).")
    for c in results.get("C", []):
        cov_ok = 0.85 <= c["coverage90"] <= 0.95
        rho_ok = c["spearman_std_abs_error"] >= 0.5
        out.append(f"- C {c['model']}: calibrated 90 % coverage {100 * c['coverage90']:.1f} % "
                   f"({'within' if cov_ok else 'OUTSIDE'} 85-95 %), Spearman {c['spearman_std_abs_error']:.3f} "
                   f"({'>=' if rho_ok else 'BELOW'} 0.5).")
    if "D" in results:
        out.append("- D: table below; read it with the budget in mind (see its caption).")
    return [*out, ""]


def verdict_a(rows: list[dict[str, Any]]) -> str:
    psnr = {r["method"].split(" ")[0]: r["shepp_logan"]["psnr"] for r in rows}
    parts = []
    if "TV" in psnr and "FBP" in psnr:
        parts.append(f"TV {'beats' if psnr['TV'] > psnr['FBP'] else 'does NOT beat'} FBP "
                     f"({psnr['TV']:.2f} vs {psnr['FBP']:.2f} dB)")
    if "LearnedPrimalDual" in psnr and "TV" in psnr:
        lpd, tv = psnr["LearnedPrimalDual"], psnr["TV"]
        parts.append(f"LPD {'beats' if lpd > tv else 'does NOT beat'} TV ({lpd:.2f} vs {tv:.2f} dB) within this budget"
                     f"; the paper's LPD reaches {PAPER['LearnedPrimalDual']} dB after 100k GPU steps "
                     f"({PAPER['LearnedPrimalDual'] - lpd:.1f} dB more)")
    return "On Shepp-Logan: " + "; ".join(parts) + "." if parts else ""


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and budgets (smoke run)")
    p.add_argument("--parts", default="ABCD", help="any of A, B, C, D (default ABCD)")
    p.add_argument("--out", type=Path, help="results folder (default benchmarks/results, quick: .../quick)")
    p.add_argument("--configs", type=Path, help="where the training configs are written "
                   "(default benchmarks/learned, quick: <out>/configs)")
    p.add_argument("--work", type=Path, help="checkpoints and logs (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=2, help="trainings run at the same time")
    args = p.parse_args(argv)
    parts = "".join(sorted(set(args.parts.upper())))
    if not parts or set(parts) - set("ABCD"):
        p.error(f"--parts must be letters of ABCD, got {args.parts!r}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    scale_name = "quick" if args.quick else "full"
    scale = QUICK if args.quick else FULL
    out = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    configs = args.configs or (out / "configs" if args.quick else DEFAULT_CONFIGS)
    work = args.work or Path(tempfile.mkdtemp(prefix="pr_learned_"))
    for d in (out, configs, work):
        d.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    meta = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "scale": scale_name,
            "parts": parts, "hardware": hardware(), "data_range": DATA_RANGE, "work": str(work)}
    jobs = []
    # the longest run first, so that the others fill the second slot around it
    for name, cfg, _ in sorted(configs_for(scale, parts), key=lambda j: j[0] != "A_LearnedPrimalDual"):
        path = configs / f"{name}.json"
        atomic_write_json(path, cfg, mode=0o644)
        jobs.append((name, path))
    t0 = time.perf_counter()
    runs = run_trainings(jobs, work, args.jobs)
    meta["training_wall_s"] = time.perf_counter() - t0
    results: dict[str, Any] = {"meta": meta}
    if "A" in parts:
        results["A"] = [part_a(scale, runs, *variant) for variant in scale.a_variants]
        for v in results["A"]:
            v["verdict"] = verdict_a(v["rows"])
    if "B" in parts:
        results["B"] = part_b(scale, runs)
    if "C" in parts:
        results["C"] = [part_c(scale, runs, inner) for inner in ("LearnedFBP", "FBPConvNet", "LearnedPrimalDual")]
    if "D" in parts:
        results["D"] = part_d(scale, runs)
    results["runs"] = runs
    meta["figures"] = figures(results, out)
    meta["hardware"]["loadavg_at_end"] = load_average()
    suffix = "" if parts == "ABCD" else "_" + parts
    atomic_write_json(out / f"learned{suffix}.json", _strip(results), mode=0o644)
    text = markdown(results, scale_name, scale)
    atomic_write_text(out / f"learned{suffix}.md", text, mode=0o644)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
