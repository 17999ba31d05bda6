"""The ``precisionrecon`` command line (also ``python -m precisionrecon``).

Subcommands
-----------
``bench``
    The reconstruction benchmark: built-in CT and MR tasks on held-out phantoms, analytic
    methods and (when pretrained weights exist) learned ones; prints a methods x tasks table
    (PSNR, SSIM, time per image) and writes ``bench.json``, ``bench.md`` and ``bench.png``.
``reconstruct``
    Reconstruct a sinogram (with a geometry file) or multi-coil k-space from npy / HDF5.
``train``
    Train a model from a config (:mod:`precisionrecon.training`).
``info``
    Versions, compiled kernels, CPU/GPU, threads, optional dependencies, pretrained weights.

Errors in the input (bad paths, configs, unknown tasks or methods, missing optional
dependencies) print ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

DEFAULT_BENCH_OUT = Path("benchmarks") / "results" / "bench"
CT_TASKS = ("sparse-view-30", "sparse-view-60", "limited-angle-fan", "low-dose")
MR_TASKS = ("mr-4x", "mr-8x")
TASKS = CT_TASKS + MR_TASKS
CT_METHODS = ("FBP", "SIRT", "TV", "LearnedFBP", "VN", "LPD")
MR_METHODS = ("zero-filled", "CG-SENSE", "TV", "VN", "LPD")
LEARNED = ("LearnedFBP", "VN", "LPD")
DATA_RANGE = 1.0
TEST_SEED = 880_001  # held-out test ellipses (the trainer draws its phantoms from other seed streams)
VAL_SEED = 880_002  # the validation ellipse images on which iteration counts and TV weights are chosen
NOISE_SEED = 880_003


class CLIError(Exception):
    """A user error: printed as ``error: <message>``, exit status 2."""


# --------------------------------------------------------------------------- small helpers


def _atomic_write(path: Path, data: bytes) -> Path:
    from .training._io import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data)


def _require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise CLIError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CLIError(f"this needs the optional dependency {module!r}: pip install {extra}") from exc


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CLIError(f"--device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device: only cpu and cuda are supported, got {name!r}")
    return device


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise CLIError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def _png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


# --------------------------------------------------------------------------- benchmark tasks


@dataclass(frozen=True)
class Suite:
    """Sizes of a benchmark run: image side ``n``, number of held-out ellipse images (plus
    Shepp-Logan) and of validation ellipse images (on which iteration counts, FBP windows
    and TV weights are chosen), maximal iterations of SIRT / CG-SENSE / TV, the TV weight
    grid factors, the sub-samples per pixel and detector cell of the simulation."""

    n: int
    n_ellipses: int
    n_val: int
    sirt_iter: int
    cg_iter: int
    tv_iter: int
    tv_grid: tuple[float, ...]
    oversample: int


TV_GRID = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # factors of the TV weight's base value
SUITES = {
    # the pretrained weights are for 64 x 64 images (the default suite)
    "default": Suite(n=64, n_ellipses=4, n_val=3, sirt_iter=200, cg_iter=60, tv_iter=200, tv_grid=TV_GRID,
                     oversample=4),
    "large": Suite(n=128, n_ellipses=4, n_val=3, sirt_iter=200, cg_iter=60, tv_iter=200, tv_grid=TV_GRID,
                   oversample=4),
    "quick": Suite(n=32, n_ellipses=1, n_val=1, sirt_iter=20, cg_iter=8, tv_iter=20, tv_grid=(1.0,), oversample=2),
}


@dataclass
class TaskData:
    """One task's operator, test data and truth (batch: Shepp-Logan first, then ellipses),
    plus a validation pair for parameter choices."""

    name: str
    modality: str
    description: str
    operator: Any
    y: Tensor
    truth: Tensor
    y_val: Tensor
    truth_val: Tensor
    noise: dict[str, Any]


def _ct_operator(task: str, n: int) -> Any:
    import precisionrecon as pr

    vol = pr.Volume((n, n))
    if task == "limited-angle-fan":
        # fan beam over 160 degrees (< 180 + fan angle: limited angle), magnification 2
        det = 2 * math.ceil(math.sqrt(2.0) * n) + 8
        views = max(n // 2, 16) if n < 128 else 160
        geom = pr.FanBeam2D(angles=pr.angles(views, arc=math.radians(160.0)), det_count=det, det_spacing=1.0,
                            src_iso=2.0 * n, src_det=4.0 * n)
        return pr.XRayTransform(vol, geom)
    views = {"sparse-view-30": 30, "sparse-view-60": 60, "low-dose": 180}[task]
    det = math.ceil(math.sqrt(2.0) * n) + 2  # the detector covers the image diagonal (1 mm cells)
    return pr.XRayTransform(vol, pr.ParallelBeam2D(angles=pr.angles(views), det_count=det))


CT_NOISE = {
    "sparse-view-30": {"noise": "gaussian", "noise_level": 0.05},
    "sparse-view-60": {"noise": "gaussian", "noise_level": 0.05},
    "limited-angle-fan": {"noise": "gaussian", "noise_level": 0.01},
    "low-dose": {"noise": "poisson", "i0": 1e4, "mu_scale": 0.02},  # value 1 ~ water, 0.02 / mm
}
MR_NOISE = {"noise": "gaussian", "noise_level": 0.05, "coils": 8}
MR_ACCELERATION = {"mr-4x": 4, "mr-8x": 8}
DESCRIPTIONS = {
    "sparse-view-30": "parallel beam, 30 views over 180 deg, 5 % Gaussian noise",
    "sparse-view-60": "parallel beam, 60 views over 180 deg, 5 % Gaussian noise",
    "limited-angle-fan": "fan beam (flat detector, magnification 2), 160 deg arc, 1 % Gaussian noise",
    "low-dose": "parallel beam, 180 views, Poisson I0 = 1e4 photons (pre-log), mu(value 1) = 0.02 / mm",
    "mr-4x": "8 birdcage coils, equispaced lines R = 4 (8 % centre), 5 % complex Gaussian noise",
    "mr-8x": "8 birdcage coils, equispaced lines R = 8 (4 % centre), 5 % complex Gaussian noise",
}


def _phantoms(vol: Any, n_ellipses: int, seed: int, with_sl: bool) -> list[Any]:
    import precisionrecon as pr

    out = [pr.data.shepp_logan_2d(vol)] if with_sl else []
    # only ellipses inside the image: the exact data must hold nothing outside the volume
    out += [pr.data.random_ellipses(50, volume=vol, seed=seed + k, contained=True) for k in range(n_ellipses)]
    return out


def _ct_task(task: str, suite: Suite, device: torch.device) -> TaskData:
    import precisionrecon as pr

    A = _ct_operator(task, suite.n)
    noise = CT_NOISE[task]

    def simulate(phantoms: list[Any], seed: int) -> tuple[Tensor, Tensor]:
        # exact line integrals of the ellipses, detector cells integrated: no inverse crime
        truth = torch.stack([pr.data.rasterize(p, A.volume, oversample=suite.oversample) for p in phantoms])
        clean = torch.stack([pr.data.analytic_projection(p, A.geometry, oversample=suite.oversample)
                             for p in phantoms])
        if noise["noise"] == "poisson":
            y = torch.stack([pr.data.poisson_noise(clean[i], noise["i0"], seed=seed + i, mu_scale=noise["mu_scale"])
                             for i in range(len(phantoms))])
        else:
            y = torch.stack([pr.data.gaussian_noise(clean[i], noise["noise_level"], seed=seed + i)
                             for i in range(len(phantoms))])
        return y.float().to(device), truth.float().to(device)

    y, truth = simulate(_phantoms(A.volume, suite.n_ellipses, TEST_SEED, True), NOISE_SEED)
    y_val, truth_val = simulate(_phantoms(A.volume, suite.n_val, VAL_SEED, False), NOISE_SEED + 1000)
    return TaskData(task, "ct", DESCRIPTIONS[task], A.to(device), y, truth, y_val, truth_val, dict(noise))


def _mr_operator(task: str, n: int, device: torch.device | str = "cpu") -> Any:
    """The SENSE operator of an MR task: 8 birdcage coils, equispaced lines with 32 % / R
    of the lines fully sampled in the centre."""
    import precisionrecon as pr

    R = MR_ACCELERATION[task]
    maps = pr.mr.birdcage_maps((MR_NOISE["coils"], n, n)).to(device)
    mask = pr.mr.equispaced_lines((n, n), R, center_fraction=0.32 / R, seed=0).to(device)
    return pr.mr.SENSE(mask, maps)


def task_modality(task: str) -> str:
    """``"ct"`` or ``"mr"``."""
    if task not in TASKS:
        raise CLIError(f"unknown task {task!r}; choose from {list(TASKS)}")
    return "ct" if task in CT_TASKS else "mr"


def task_operator(task: str, n: int, device: torch.device | str = "cpu") -> Any:
    """The forward operator of a built-in task at image size ``n`` (as ``bench`` and the
    training configs of the pretrained weights build it)."""
    if task in CT_TASKS:
        return _ct_operator(task, n).to(device)
    if task in MR_TASKS:
        return _mr_operator(task, n, device)
    raise CLIError(f"unknown task {task!r}; choose from {list(TASKS)}")


def _mr_task(task: str, suite: Suite, device: torch.device) -> TaskData:
    import precisionrecon as pr

    n = suite.n
    R = MR_ACCELERATION[task]
    A = _mr_operator(task, n, device)
    mask = A.mask
    vol = pr.Volume((n, n))

    def simulate(phantoms: list[Any], seed: int) -> tuple[Tensor, Tensor]:
        # magnitudes from the (sub-pixel averaged) ellipses, times a smooth phase per image;
        # the k-space comes from the discrete image (the SENSE model itself)
        images = []
        for k, p in enumerate(phantoms):
            mag = pr.data.rasterize(p, vol, oversample=suite.oversample).abs().float()
            a = (0.5 + 0.5 * k / max(len(phantoms), 1)) * math.pi / 2
            images.append(torch.polar(mag, a * pr.mr.smooth_phase((n, n), 1.0).float()))
        truth = torch.stack(images).to(device)
        with torch.no_grad():
            clean = A(truth)
        noisy = torch.stack([pr.data.gaussian_noise(clean[i], MR_NOISE["noise_level"], seed=seed + i, item_ndim=3)
                             for i in range(len(phantoms))])
        y = clean + (noisy - clean) * (mask != 0).to(clean.real.dtype)  # unsampled k-space stays zero
        return y, truth

    y, truth = simulate(_phantoms(vol, suite.n_ellipses, TEST_SEED, True), NOISE_SEED)
    y_val, truth_val = simulate(_phantoms(vol, suite.n_val, VAL_SEED, False), NOISE_SEED + 1000)
    noise = {**MR_NOISE, "acceleration": R, "center_fraction": 0.32 / R}
    return TaskData(task, "mr", DESCRIPTIONS[task], A, y, truth, y_val, truth_val, noise)


def build_task(task: str, suite: Suite, device: torch.device) -> TaskData:
    """The operator and the simulated test and validation data of a built-in task."""
    if task in CT_TASKS:
        return _ct_task(task, suite, device)
    if task in MR_TASKS:
        return _mr_task(task, suite, device)
    raise CLIError(f"unknown task {task!r}; choose from {list(TASKS)}")


# --------------------------------------------------------------------------- methods


def _score(x: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image PSNR and SSIM (``data_range = 1``); MR compares magnitudes."""
    from . import metrics

    x, truth = x.detach(), truth.detach()
    if x.is_complex() or truth.is_complex():
        x, truth = x.abs(), truth.abs()
    x = x.to(truth.dtype)
    return metrics.psnr(x, truth, data_range=DATA_RANGE), metrics.ssim(x, truth, data_range=DATA_RANGE)


def _best_iteration(run: Callable[[Callable[..., None]], Any], truth: Tensor, n_max: int) -> int:
    """The iteration (1-based) with the best validation PSNR of an iterative method."""
    values: list[float] = []
    run(lambda k, x, info: values.append(float(_score(x, truth)[0].mean())))
    return int(np.argmax(values)) + 1 if values else n_max


def _tv_lam(task: TaskData, suite: Suite, op_norm: float) -> float:
    """The TV weight of the grid with the best PSNR on the validation image."""
    from .algorithms import pdhg_tv

    if task.modality == "mr":
        from .mr import zero_filled

        base = 0.01 * float(zero_filled(task.operator, task.y_val).abs().max())
    else:
        base = 1.0
    best, best_psnr = base, -math.inf
    for factor in suite.tv_grid:
        lam = base * factor
        x = pdhg_tv(task.operator, task.y_val, lam, suite.tv_iter, nonneg=False, op_norm=op_norm).x
        p = float(_score(x, task.truth_val)[0].mean())
        if p > best_psnr:
            best, best_psnr = lam, p
    return best


def run_analytic(task: TaskData, method: str, suite: Suite) -> tuple[Tensor, dict[str, Any]]:
    """Reconstruct the test batch of ``task`` with an analytic/iterative ``method``; the
    iteration counts and TV weight are chosen on the validation image first.
    Returns ``(images, parameters)``; the caller times only the test reconstruction."""
    import precisionrecon as pr

    from .algorithms import pdhg_tv, sirt
    from .mr import cg_sense, zero_filled

    A, y = task.operator, task.y
    if method == "FBP":
        if task.name == "limited-angle-fan":
            # FBP does not take arcs below pi + fan angle; the untrained LearnedFBP is FBP with
            # the extended Parker weights (Würfl et al. 2018)
            model = pr.models.LearnedFBP(A, filter="hann").to(y.dtype)
            model(y[:1])  # warm-up (library loading, caches), not timed
            return _timed(lambda: model(y)), {"filter": "hann", "weights": "extended Parker"}
        # the window with the best PSNR on the validation image
        windows = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")
        scores = [float(_score(pr.FBP(A, w)(task.y_val), task.truth_val)[0].mean()) for w in windows]
        window = windows[int(np.argmax(scores))]
        fbp = pr.FBP(A, window)
        return _timed(lambda: fbp(y)), {"filter": window}
    if method == "zero-filled":
        zero_filled(A, y[:1])
        return _timed(lambda: zero_filled(A, y)), {}
    if method == "SIRT":
        k = _best_iteration(lambda cb: sirt(A, task.y_val, suite.sirt_iter, callback=cb), task.truth_val,
                            suite.sirt_iter)
        return _timed(lambda: sirt(A, y, k).x), {"iterations": k}
    if method == "CG-SENSE":
        k = _best_iteration(lambda cb: cg_sense(A, task.y_val, suite.cg_iter, callback=cb), task.truth_val,
                            suite.cg_iter)
        return _timed(lambda: cg_sense(A, y, k).x), {"iterations": k}
    if method == "TV":
        op_norm = float(A.norm())
        lam = _tv_lam(task, suite, op_norm)
        return _timed(lambda: pdhg_tv(A, y, lam, suite.tv_iter, nonneg=False, op_norm=op_norm).x), {
            "lam": lam, "iterations": suite.tv_iter}
    raise CLIError(f"unknown method {method!r} for a {task.modality.upper()} task")


class _Timed:
    """A deferred computation: ``run_analytic`` returns it so that the caller times only it."""

    def __init__(self, fn: Callable[[], Tensor]) -> None:
        self.fn = fn


def _timed(fn: Callable[[], Tensor]) -> Any:
    return _Timed(fn)


def _model_operator(model: Any) -> Any:
    for obj in (model, getattr(model, "model", None), getattr(model, "inner", None)):
        op = getattr(obj, "operator", None)
        if op is not None:
            return op
    members = getattr(model, "members", None) or getattr(model, "models", None)
    if members:
        return _model_operator(members[0])
    return None


def load_learned(task: TaskData, method: str, device: torch.device) -> tuple[Any | None, str]:
    """``(model, status)``: the pretrained model for this task if its weights exist and fit
    the task's operator, else ``(None, reason)``."""
    from . import pretrained

    if pretrained.find(task.name, method) is None:
        return None, "no pretrained weights"
    model = pretrained.load(task.name, method, device=device)
    op = _model_operator(model)
    if op is not None and (tuple(op.domain_shape) != tuple(task.operator.domain_shape)
                           or tuple(op.range_shape) != tuple(task.operator.range_shape)):
        return None, (f"pretrained weights are for {tuple(op.domain_shape)} images, this suite uses "
                      f"{tuple(task.operator.domain_shape)}")
    return model, "ok"


def evaluate_method(task: TaskData, method: str, suite: Suite, device: torch.device) -> dict[str, Any]:
    """One table cell: metrics per image, their means, time per image, the images of item 0."""
    std = None
    params: dict[str, Any] = {}
    with torch.no_grad():
        if method in LEARNED:
            model, status = load_learned(task, method, device)
            if model is None:
                return {"status": status}
            from .training import predict

            y = task.y
            params = list(model.parameters())
            if params:  # the model's precision; complex data stay complex (MR k-space)
                real = params[0].dtype
                cplx = torch.complex128 if real == torch.float64 else torch.complex64
                y = y.to(cplx) if y.is_complex() else y.to(real)
            predict(model, y[:1])  # warm-up
            t0 = time.perf_counter()
            x, std = predict(model, y)
            elapsed = time.perf_counter() - t0
            params = {"weights": str(_weights_folder(task.name, method))}
        else:
            t0 = time.perf_counter()
            out, params = run_analytic(task, method, suite)
            if isinstance(out, _Timed):
                t0 = time.perf_counter()
                out = out.fn()
            x = out
            elapsed = time.perf_counter() - t0
    psnr, ssim = _score(x, task.truth)
    n = x.shape[0]
    cell = {
        "status": "ok",
        "psnr": float(psnr.mean()),
        "ssim": float(ssim.mean()),
        "psnr_per_image": [float(v) for v in psnr],
        "ssim_per_image": [float(v) for v in ssim],
        "seconds_per_image": elapsed / n,
        "parameters": params,
        "image": x[0].detach().cpu(),
    }
    if std is not None:
        cell["std"] = std[0].detach().abs().cpu()
        cell["mean_std"] = float(std.abs().mean())
    return cell


def _weights_folder(task: str, method: str) -> Path | None:
    from . import pretrained

    return pretrained.find(task, method)


# --------------------------------------------------------------------------- outputs


def _table(results: dict[str, dict[str, dict[str, Any]]], methods: Sequence[str], tasks: Sequence[str]) -> str:
    """Markdown table methods x tasks, each cell ``PSNR / SSIM / time``."""
    head = "| method | " + " | ".join(tasks) + " |"
    lines = [head, "|" + " --- |" * (len(tasks) + 1)]
    for m in methods:
        cells = []
        for t in tasks:
            c = results.get(t, {}).get(m)
            if c is None:
                cells.append("-")
            elif c["status"] != "ok":
                cells.append(c["status"])
            else:
                cells.append(f"{c['psnr']:.2f} / {c['ssim']:.3f} / {_fmt_time(c['seconds_per_image'])}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt_time(s: float) -> str:
    if s < 0.1:
        return f"{s * 1000:.2g} ms"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _figure(tasks: list[TaskData], results: dict[str, dict[str, dict[str, Any]]], methods: Sequence[str]) -> bytes:
    """PNG: per task a row of reconstructions (truth first), a row of |error| maps and,
    when a method gives one, a row of its std maps; image 0 (Shepp-Logan) of each task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[tuple[str, str, list[tuple[str, Tensor | None]]]] = []
    for task in tasks:
        cells = results[task.name]
        ran = [m for m in methods if cells.get(m, {}).get("status") == "ok"]
        truth = task.truth[0].detach().cpu().abs()
        rows.append((task.name, "image", [("truth", truth)] + [(m, cells[m]["image"].abs()) for m in ran]))
        rows.append((task.name, "|error|", [("", None)] + [(m, (cells[m]["image"].abs() - truth).abs()) for m in ran]))
        if any("std" in cells[m] for m in ran):
            rows.append((task.name, "std", [("", None)] + [(m, cells[m].get("std")) for m in ran]))
    ncols = max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.9 * ncols, 1.9 * len(rows)), squeeze=False)
    for i, (task_name, kind, panels) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i, j]
            ax.axis("off")
            if j >= len(panels) or panels[j][1] is None:
                continue
            title, img = panels[j]
            vmax = 1.0 if kind == "image" else (0.25 if kind == "|error|" else None)
            ax.imshow(img.float().numpy(), cmap="gray" if kind == "image" else "magma", vmin=0, vmax=vmax)
            ax.set_title(f"{title}" if kind == "image" else f"{title} {kind}", fontsize=7)
            if j == 0:
                ax.text(-0.1, 0.5, task_name, transform=ax.transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
    fig.tight_layout()
    data = _png_bytes(fig)
    plt.close(fig)
    return data


def _environment(device: torch.device) -> dict[str, Any]:
    import precisionrecon as pr

    return {
        "precisionrecon": pr.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "kernels": _kernel_info()["cpu"],
    }


# --------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark and write bench.json / bench.md / bench.png to ``args.out``."""
    from tqdm import tqdm

    suite = SUITES[args.suite]
    device = _device(args.device)
    _threads(args.threads)
    tasks = args.tasks or list(TASKS)
    for t in tasks:
        if t not in TASKS:
            raise CLIError(f"unknown task {t!r}; choose from {list(TASKS)}")
    all_methods = list(dict.fromkeys(CT_METHODS + MR_METHODS))
    methods = args.methods or all_methods
    for m in methods:
        if m not in all_methods:
            raise CLIError(f"unknown method {m!r}; choose from {all_methods}")
    want_figure = not args.no_figure
    if want_figure:
        _require("matplotlib", "matplotlib (or run bench with --no-figure)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a folder")
    torch.manual_seed(args.seed)

    jobs = [(t, m) for t in tasks for m in methods if m in (CT_METHODS if t in CT_TASKS else MR_METHODS)]
    results: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in tasks}
    built: dict[str, TaskData] = {}
    bar = tqdm(jobs, desc="bench", unit="run", disable=args.no_progress, file=sys.stderr)
    t_start = time.perf_counter()
    for t, m in bar:
        bar.set_postfix_str(f"{t} / {m}")
        if t not in built:
            built[t] = build_task(t, suite, device)
        results[t][m] = evaluate_method(built[t], m, suite, device)
    bar.close()
    wall = time.perf_counter() - t_start

    used_methods = [m for m in methods if any(m in results[t] for t in tasks)]
    table = _table(results, used_methods, tasks)
    print(f"PSNR (dB) / SSIM / time per image; data range {DATA_RANGE} (MR: magnitudes); "
          f"suite {args.suite} ({suite.n}x{suite.n})")
    print(table)
    missing = sorted({m for t in tasks for m, c in results[t].items() if c["status"] != "ok"})
    if missing:
        print(f"learned methods without usable pretrained weights: {', '.join(missing)} "
              "(see `precisionrecon info`)")

    record = {
        "suite": args.suite,
        "sizes": dataclasses.asdict(suite),
        "seed": args.seed,
        "data_range": DATA_RANGE,
        "metrics": "PSNR and SSIM per image against the rasterised phantom (MR: magnitudes), mean over the batch",
        "test_images": "modified Shepp-Logan + held-out random ellipses (Adler & Oktem), exact analytic data",
        "wall_s": wall,
        "environment": _environment(device),
        "tasks": {
            t: {
                "description": built[t].description if t in built else DESCRIPTIONS[t],
                "noise": built[t].noise if t in built else {},
                "operator": _operator_record(built[t].operator) if t in built else None,
                "methods": {m: {k: v for k, v in c.items() if k not in ("image", "std")}
                            for m, c in results[t].items()},
            }
            for t in tasks
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "bench.json", (json.dumps(record, indent=1) + "\n").encode())
    md = [f"# precisionrecon bench ({args.suite} suite)", "",
          f"PSNR (dB) / SSIM (data range {DATA_RANGE}; MR: magnitudes) / time per image, mean over "
          f"{suite.n_ellipses + 1} test images (Shepp-Logan + held-out ellipses), {suite.n}x{suite.n} pixels. "
          f"FBP windows, iteration counts and TV weights chosen on {suite.n_val} separate validation ellipse "
          "images; learned methods use the pretrained weights (`precisionrecon/pretrained/`), LPD with its "
          "heteroscedastic head's predicted standard deviation (the std maps of the figure).", "", table, "",
          "Tasks:", ""]
    md += [f"- `{t}`: {record['tasks'][t]['description']}" for t in tasks]
    provenance = _provenance(tasks, used_methods)
    if provenance:
        md += ["", "Pretrained weights (trained by `precisionrecon train` from the recorded configs):", ""]
        md += provenance
    md += ["", f"Machine: {record['environment']['cpu']}, {record['environment']['threads']} threads, "
           f"torch {torch.__version__}, device {record['environment']['device']}; total {wall:.0f} s.", ""]
    _atomic_write(out / "bench.md", "\n".join(md).encode())
    if want_figure:
        _atomic_write(out / "bench.png", _figure([built[t] for t in tasks], results, used_methods))
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}" + (f", {out / 'bench.png'}" if want_figure else ""))
    return 0


def _provenance(tasks: Sequence[str], methods: Sequence[str]) -> list[str]:
    """One markdown line per pretrained model used: its config, steps, seed and training time."""
    lines = []
    for t in tasks:
        for m in methods:
            if m not in LEARNED:
                continue
            folder = _weights_folder(t, m)
            info = folder / "train_result.json" if folder is not None else None
            if info is None or not info.is_file():
                continue
            r = json.loads(info.read_text())
            lines.append(f"- `{t}` / {m}: {r.get('steps')} steps of batch {r.get('batch_size')}, seed "
                         f"{r.get('seed')}, {r.get('wall_s')} s on CPU; `{r.get('command')}`")
    return lines


def _operator_record(A: Any) -> Any:
    from .geometry import to_dict

    geom = getattr(A, "geometry", None)
    if geom is None:
        return {"type": type(A).__name__, "domain_shape": list(A.domain_shape), "range_shape": list(A.range_shape)}
    return {"volume": to_dict(A.volume), "geometry": to_dict(geom)}


# --------------------------------------------------------------------------- reconstruct

CT_RECON_METHODS = ("fbp", "sirt", "tv", "cgls")
MR_RECON_METHODS = ("zero-filled", "cg-sense", "tv")


def _read_array(path: Path, dataset: str | None) -> np.ndarray:
    if not path.is_file():
        raise CLIError(f"input {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CLIError(f"input {str(path)!r} is not a readable .npy array: {exc}") from exc
    if suffix in (".h5", ".hdf5"):
        h5py = _require("h5py", "h5py")
        try:
            with h5py.File(path, "r") as f:
                names = [dataset] if dataset else [k for k in ("sinogram", "kspace", "data") if k in f]
                if not names or names[0] not in f:
                    raise CLIError(f"{str(path)!r} has no dataset {dataset or 'sinogram/kspace/data'!r} "
                                   f"(has {sorted(f.keys())}); pick one with --dataset")
                return np.asarray(f[names[0]])
        except OSError as exc:
            raise CLIError(f"input {str(path)!r} is not a readable HDF5 file: {exc}") from exc
    raise CLIError(f"input {str(path)!r}: expected a .npy, .h5 or .hdf5 file")


def _read_geometry(path: Path) -> tuple[Any, Any]:
    from .geometry import Volume, from_dict

    if not path.is_file():
        raise CLIError(f"geometry file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            yaml = _require("yaml", "pyyaml")
            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
    except Exception as exc:
        raise CLIError(f"geometry file {str(path)!r} is not valid JSON/YAML: {exc}") from exc
    if not isinstance(d, dict) or "volume" not in d or "geometry" not in d:
        raise CLIError(f"geometry file {str(path)!r} must hold {{'volume': ..., 'geometry': ...}} "
                       "(each as written by precisionrecon.geometry.to_dict)")
    try:
        volume, geometry = from_dict(d["volume"]), from_dict(d["geometry"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CLIError(f"geometry file {str(path)!r}: {exc}") from exc
    if not isinstance(volume, Volume):
        raise CLIError(f"geometry file {str(path)!r}: 'volume' must be a Volume, got {type(volume).__name__}")
    return volume, geometry


def _preview(image: np.ndarray) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.abs(image)
    while img.ndim > 2:
        img = img[img.shape[0] // 2]  # middle slice / first batch item
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(img, cmap="gray")
    ax.axis("off")
    data = _png_bytes(fig)
    plt.close(fig)
    return data


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Reconstruct a sinogram (CT, needs --geometry) or multi-coil k-space (MR)."""
    import precisionrecon as pr

    device = _device(args.device)
    _threads(args.threads)
    data = _read_array(Path(args.input), args.dataset)
    method = args.method.lower()
    out = Path(args.out) if args.out else Path(args.input).with_name(Path(args.input).stem + "_recon.npy")
    if out.suffix.lower() not in (".npy", ".h5", ".hdf5", ".png"):
        raise CLIError(f"--out {str(out)!r}: expected a .npy, .h5, .hdf5 or .png file")
    if not out.parent.is_dir():
        raise CLIError(f"--out folder {str(out.parent)!r} does not exist")
    if args.iters is not None and args.iters < 1:
        raise CLIError(f"--iters must be >= 1, got {args.iters}")
    progress = not args.no_progress
    if np.iscomplexobj(data):
        if method not in MR_RECON_METHODS:
            raise CLIError(f"unknown method {args.method!r} for k-space data; choose from {list(MR_RECON_METHODS)}")
        image = _reconstruct_mr(data, method, args, device, progress)
    else:
        if method not in CT_RECON_METHODS:
            raise CLIError(f"unknown method {args.method!r} for a sinogram; choose from {list(CT_RECON_METHODS)}")
        if not args.geometry:
            raise CLIError("a sinogram needs --geometry GEOM.json|yaml (volume + geometry)")
        volume, geometry = _read_geometry(Path(args.geometry))
        A = pr.XRayTransform(volume, geometry).to(device)
        y = torch.from_numpy(np.ascontiguousarray(data)).to(device)
        if y.dtype not in (torch.float32, torch.float64):
            y = y.float()
        if tuple(y.shape[-len(A.range_shape):]) != tuple(A.range_shape):
            raise CLIError(f"input shape {tuple(y.shape)} does not end with the geometry's data shape "
                           f"{tuple(A.range_shape)}")
        image = _reconstruct_ct(A, y, method, args, progress)
    image_np = image.detach().cpu().numpy()
    written = []
    if out.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, image_np)
        written.append(_atomic_write(out, buf.getvalue()))
    elif out.suffix.lower() in (".h5", ".hdf5"):
        h5py = _require("h5py", "h5py")
        tmp = out.with_name(f".{out.name}.tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image_np)
            f.attrs["method"] = method
        os.replace(tmp, out)
        written.append(out)
    preview = out.with_suffix(".png")
    try:
        importlib.import_module("matplotlib")
        written.append(_atomic_write(preview, _preview(image_np)))
    except ImportError:
        if out.suffix.lower() == ".png":
            raise CLIError("a PNG output needs the optional dependency 'matplotlib': pip install matplotlib") from None
        print("note: no PNG preview (matplotlib is not installed)", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _reconstruct_ct(A: Any, y: Tensor, method: str, args: argparse.Namespace, progress: bool) -> Tensor:
    import precisionrecon as pr

    from .algorithms import cgls, pdhg_tv, sirt

    if method == "fbp":
        return pr.FBP(A, args.filter)(y)
    n = args.iters or {"sirt": 100, "tv": 200, "cgls": 20}[method]
    if method == "sirt":
        return sirt(A, y, n, progress=progress).x
    if method == "cgls":
        return cgls(A, y, n, progress=progress).x
    lam = args.lam if args.lam is not None else 1.0
    return pdhg_tv(A, y, lam, n, nonneg=args.nonneg, progress=progress).x


def _reconstruct_mr(data: np.ndarray, method: str, args: argparse.Namespace, device: torch.device,
                    progress: bool) -> Tensor:
    from .mr import SENSE, cg_sense, estimate_maps, tv_recon, zero_filled

    y = torch.from_numpy(np.ascontiguousarray(data)).to(device)
    if y.dtype not in (torch.complex64, torch.complex128):
        y = y.to(torch.complex64)
    if y.ndim < 3:
        raise CLIError(f"k-space must be (*batch, coils, ny, nx), got shape {tuple(y.shape)}")
    # the sampling mask: k-space lines (columns) that hold data in any coil / batch item
    sampled = (y.abs() > 0).flatten(0, -3).any(0)
    mask = sampled.any(0, keepdim=True).expand_as(sampled) if sampled.any() else sampled
    if args.maps:
        maps = torch.from_numpy(np.ascontiguousarray(_read_array(Path(args.maps), None))).to(device).to(y.dtype)
    else:
        first = y.reshape(-1, *y.shape[-3:])[0]
        maps = estimate_maps(first, mask.to(y.real.dtype)).to(y.dtype)
    if tuple(maps.shape) != tuple(y.shape[-3:]):
        raise CLIError(f"coil maps {tuple(maps.shape)} must match the k-space (coils, ny, nx) {tuple(y.shape[-3:])}")
    A = SENSE(mask.to(y.real.dtype), maps)
    if method == "zero-filled":
        return zero_filled(A, y)
    n = args.iters or {"cg-sense": 30, "tv": 200}[method]
    if method == "cg-sense":
        return cg_sense(A, y, n, progress=progress).x
    lam = args.lam if args.lam is not None else 0.01 * float(zero_filled(A, y).abs().max())
    return tv_recon(A, y, lam, n, progress=progress).x


# --------------------------------------------------------------------------- train and info


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``python -m precisionrecon.training`` with these options."""
    from .training.__main__ import run

    if not Path(args.config).is_file():
        raise CLIError(f"training config {args.config!r} does not exist")
    _threads(args.threads)
    return run(args)


def _kernel_info() -> dict[str, Any]:
    from ._kernels import libinfo, loader

    lib_dir = libinfo.LIB_DIR
    built = sorted(isa for isa in libinfo.isa_flags() if (lib_dir / libinfo.library_name(isa)).exists())
    usable = loader.candidate_isas()
    chosen = next((isa for isa in usable if isa in built), None)
    return {
        "lib_dir": str(lib_dir),
        "cpu": {"built": built, "usable_on_this_cpu": usable, "selected": chosen or "reference (pure PyTorch)"},
        "cuda_library": (lib_dir / libinfo.CUDA_LIBRARY).exists(),
        "cuda_emulator": (lib_dir / libinfo.EMU_LIBRARY).exists(),
    }


OPTIONAL = ("astra", "odl", "finufft", "h5py", "pydicom", "matplotlib", "skimage", "torchkbnufft", "safetensors",
            "yaml", "tqdm", "scipy")


def info() -> dict[str, Any]:
    """Everything ``precisionrecon info`` prints, as a dict."""
    import precisionrecon as pr

    from . import pretrained

    deps = {}
    for name in OPTIONAL:
        try:
            mod = importlib.import_module(name)
            deps[name] = str(getattr(mod, "__version__", "present"))
        except Exception:  # any import failure means "not usable"
            deps[name] = None
    cuda = torch.cuda.is_available()
    return {
        "precisionrecon": pr.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "kernels": _kernel_info(),
        "optional_dependencies": deps,
        "pretrained_weights_dir": str(pretrained.weights_dir()),
        "pretrained_weights": [f"{t}/{m}" for t, m in pretrained.available()],
    }


def cmd_info(args: argparse.Namespace) -> int:
    _threads(args.threads)
    data = info()
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    k = data["kernels"]
    print(f"precisionrecon {data['precisionrecon']}  python {data['python']}  torch {data['torch']}  "
          f"numpy {data['numpy']}")
    print(f"platform     {data['platform']}")
    print(f"cpu          {data['cpu']}, {data['cpu_count']} cores, torch threads {data['torch_threads']}")
    print(f"gpu          {', '.join(data['gpus']) if data['gpus'] else 'none (CUDA not available)'}")
    print(f"cpu kernels  built {k['cpu']['built'] or 'none'}; usable here {k['cpu']['usable_on_this_cpu']}; "
          f"selected {k['cpu']['selected']}")
    print(f"cuda kernels {'built' if k['cuda_library'] else 'not built'}; emulator "
          f"{'built' if k['cuda_emulator'] else 'not built'}  ({k['lib_dir']})")
    print("optional     " + ", ".join(f"{n} {v}" if v else f"{n} MISSING" for n, v in
                                      data["optional_dependencies"].items()))
    weights = data["pretrained_weights"]
    print(f"pretrained   {', '.join(weights) if weights else 'none'}  ({data['pretrained_weights_dir']})")
    return 0


# --------------------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the command line."""
    from .training.__main__ import add_arguments as add_train_arguments

    parser = argparse.ArgumentParser(prog="precisionrecon", description="CT and MR reconstruction, known operators.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, device: bool = True) -> None:
        if device:
            p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
        p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")

    b = sub.add_parser("bench", help="run the reconstruction benchmark")
    b.add_argument("--suite", choices=sorted(SUITES), default="default",
                   help="default: 64x64 with the pretrained models, a few minutes on a laptop CPU; "
                   "large: 128x128 (analytic methods only, no pretrained weights of that size); "
                   "quick: 32x32 smoke run")
    b.add_argument("--tasks", nargs="+", metavar="TASK", help=f"tasks (default all): {', '.join(TASKS)}")
    b.add_argument("--methods", nargs="+", metavar="METHOD",
                   help=f"methods (default all): {', '.join(dict.fromkeys(CT_METHODS + MR_METHODS))}")
    b.add_argument("--out", default=str(DEFAULT_BENCH_OUT), help=f"output folder (default {DEFAULT_BENCH_OUT})")
    b.add_argument("--seed", type=int, default=0, help="torch seed (test data have their own fixed seeds)")
    b.add_argument("--no-figure", action="store_true", help="skip the PNG (no matplotlib needed)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(b)
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("reconstruct", help="reconstruct a sinogram or k-space file")
    r.add_argument("input", help="sinogram (real) or multi-coil k-space (complex) as .npy or .h5/.hdf5")
    r.add_argument("--geometry", help="CT: JSON/YAML file {'volume': ..., 'geometry': ...} (geometry.to_dict)")
    r.add_argument("--method", default="fbp",
                   help=f"CT: {', '.join(CT_RECON_METHODS)}; MR: {', '.join(MR_RECON_METHODS)} (default fbp)")
    r.add_argument("--out", help="output .npy, .h5/.hdf5 (dataset 'image') or .png; a .png preview is written beside")
    r.add_argument("--dataset", help="HDF5 dataset name (default: sinogram, kspace or data)")
    r.add_argument("--maps", help="MR: coil maps (.npy/.h5, (coils, ny, nx)); default: estimated from the ACS")
    r.add_argument("--iters", type=int, help="iterations of sirt/cgls/tv/cg-sense")
    r.add_argument("--lam", type=float, help="TV weight (CT default 1.0; MR default 1%% of max |zero-filled|)")
    r.add_argument("--filter", default="ram-lak", help="FBP window (ram-lak, shepp-logan, cosine, hamming, hann)")
    r.add_argument("--nonneg", action="store_true", help="CT TV: non-negativity constraint")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(r)
    r.set_defaults(func=cmd_reconstruct)

    t = sub.add_parser("train", help="train a model from a config (python -m precisionrecon.training)")
    add_train_arguments(t)
    common(t, device=False)
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("info", help="versions, compiled kernels, devices, optional dependencies")
    i.add_argument("--json", action="store_true", help="print JSON")
    common(i, device=False)
    i.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``precisionrecon`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
