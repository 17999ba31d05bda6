"""The benchmark harness: methods, their tuning on validation data, scoring and the full run.

Analytic methods choose their free parameters (FBP window, iteration count, TV weight) on
the task's validation images, then reconstruct the test batch once, timed. Learned methods
use the pretrained weights (:mod:`precisionrecon.pretrained`) when they exist and fit the
task's operator. Every cell is scored by PSNR, SSIM and the maximal absolute error per
image (``data_range = 1``; MR compares magnitudes). The validation images are the only
images tuning sees: ellipses in the phantom suites, anatomy phantoms in the real suite
(``TaskData.tuned_on``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import metrics, pretrained
from ..algorithms import pdhg_tv, sirt
from ..mr import SENSE, cg_sense, rss, zero_filled
from ..operators import FBP, FiniteDifferences, LinearOperator
from ..training import predict
from .tasks import CT_TASKS, SUITES, TASKS, Suite, TaskData, build_task, check_task

CT_METHODS: tuple[str, ...] = ("FBP", "SIRT", "TV", "LearnedFBP", "VN", "LPD")
MR_METHODS: tuple[str, ...] = ("zero-filled", "CG-SENSE", "CG-SENSE (true maps)", "TV", "VN", "LPD")
TRUE_MAPS = "CG-SENSE (true maps)"  # the only MR method given the simulation's maps
METHODS: tuple[str, ...] = tuple(dict.fromkeys(CT_METHODS + MR_METHODS))
LEARNED: tuple[str, ...] = pretrained.MODELS
DATA_RANGE = 1.0
FBP_WINDOWS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")

Cell = dict[str, Any]
"""One table cell: ``{"status": "ok", "psnr": ..., ...}`` or ``{"status": reason}``."""


def score(x: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image PSNR and SSIM (``data_range = 1``); MR compares magnitudes.

    Shape: ``x`` and ``truth`` ``(batch, ny, nx)``; returns two ``(batch,)`` tensors.
    """
    x, truth = x.detach(), truth.detach()
    if x.is_complex() or truth.is_complex():
        x, truth = x.abs(), truth.abs()
    x = x.to(truth.dtype)
    return metrics.psnr(x, truth, data_range=DATA_RANGE), metrics.ssim(x, truth, data_range=DATA_RANGE)


def max_abs_error(x: Tensor, truth: Tensor) -> Tensor:
    """Per-image maximal absolute error ``max |x - truth|``; MR compares magnitudes.

    Shape: ``x`` and ``truth`` ``(batch, ny, nx)``; returns ``(batch,)``.
    """
    x, truth = x.detach(), truth.detach()
    if x.is_complex() or truth.is_complex():
        x, truth = x.abs(), truth.abs()
    if x.shape != truth.shape or x.dim() < 2:
        raise ValueError(f"x and truth must be (batch, ny, nx) of one shape, got {tuple(x.shape)} and "
                         f"{tuple(truth.shape)}")
    return (x.to(truth.dtype) - truth).abs().flatten(-2).amax(-1)


def _mean_psnr(x: Tensor, truth: Tensor) -> float:
    return float(score(x, truth)[0].mean())


def _best_iteration(run: Callable[[Callable[..., None]], Any], truth: Tensor, n_max: int) -> int:
    """The iteration (1-based) with the best validation PSNR of an iterative method."""
    values: list[float] = []
    run(lambda k, x, info: values.append(_mean_psnr(x, truth)))
    return int(np.argmax(values)) + 1 if values else n_max


def _tv_weight(task: TaskData, suite: Suite, op_norm: float) -> float:
    """The TV weight of the grid with the best PSNR on the validation images."""
    base = 0.01 * float(zero_filled(task.operator, task.y_val).abs().max()) if task.modality == "mr" else 1.0
    best, best_psnr = base, -math.inf
    for factor in suite.tv_grid:
        lam = base * factor
        p = _mean_psnr(pdhg_tv(task.operator, task.y_val, lam, suite.tv_iter, nonneg=False, op_norm=op_norm).x,
                       task.truth_val)
        if p > best_psnr:
            best, best_psnr = lam, p
    return best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # CUDA calls return before the work is done


def _per_image(ops: Sequence[LinearOperator], y: Tensor, run: Callable[[LinearOperator, Tensor], Tensor]) -> Tensor:
    """``run(A_i, y_i)`` for every image with its own (estimated-maps) operator, the sets of
    soft-SENSE combined by root-sum-of-squares.

    Shape: ``y`` ``(batch, *range)``; returns ``(batch, n, n)``.
    """
    return torch.stack([rss(run(A, y[i]), dim=-3) for i, A in enumerate(ops)])


def _tv_in_plane(A: LinearOperator) -> FiniteDifferences:
    """The in-plane gradient of ``A``'s images: soft-SENSE images have a set axis in front."""
    return FiniteDifferences(tuple(A.domain_shape), dims=(-2, -1))


def _tuned_estimated(task: TaskData, method: str, suite: Suite) -> tuple[Callable[[Tensor], Tensor], dict[str, Any]]:
    """An MR method on the maps estimated from each image's own data (``task.estimated``):
    CG-SENSE's iteration count is chosen on the validation images, each with its own
    estimated maps; the TV weight on the validation images with the true maps."""
    ops, ops_val = task.estimated, task.estimated_val
    if method == "zero-filled":
        return (lambda y: _per_image(ops, y, zero_filled)), {}
    if method == "CG-SENSE":
        curves: list[list[float]] = []
        for i, A in enumerate(ops_val):
            truth = task.truth_val[i:i + 1]
            curves.append([])
            cg_sense(A, task.y_val[i], suite.cg_iter,
                     callback=lambda k, x, info, t=truth, c=curves[-1]: c.append(_mean_psnr(rss(x, dim=-3)[None], t)))
        k = int(np.argmax(np.mean(curves, axis=0))) + 1
        return (lambda y: _per_image(ops, y, lambda A, yi: cg_sense(A, yi, k).x)), {"iterations": k}
    if method == "TV":
        norms: dict[int, float] = {}

        def tv(A: LinearOperator, yi: Tensor, lam: float) -> Tensor:
            result = pdhg_tv(A, yi, lam, suite.tv_iter, nonneg=False, grad=_tv_in_plane(A), op_norm=norms.get(id(A)))
            norms[id(A)] = float(result.info["op_norm"])  # one power iteration per operator
            return result.x

        # the weight is in data units: chosen on the validation batch with the true maps (one
        # batched run per grid value; per-image estimated maps made the bench twice as slow)
        lam = _tv_weight(task, suite, float(task.operator.norm()))
        return (lambda y: _per_image(ops, y, lambda A, yi: tv(A, yi, lam))), {"lam": lam, "iterations": suite.tv_iter}
    raise ValueError(f"unknown method {method!r} for a MR task")


def _tuned_analytic(task: TaskData, method: str, suite: Suite) -> tuple[Callable[[Tensor], Tensor], dict[str, Any]]:
    """The reconstruction ``y -> x`` of ``method`` with its parameters chosen on the
    validation images, warmed up, and those parameters."""
    A = task.operator
    if task.modality == "mr" and task.estimated and method != TRUE_MAPS:
        return _tuned_estimated(task, method, suite)
    if method == "FBP" and task.modality == "ct":
        # limited-angle fan: Parker weights continued below pi + fan angle (Würfl et al. 2018)
        parker: bool | str = "extended" if task.name == "limited-angle-fan" else True
        candidates = [FBP(A, w, parker=parker) for w in FBP_WINDOWS]  # each applied once: also the warm-up
        scores = [_mean_psnr(fbp(task.y_val), task.truth_val) for fbp in candidates]
        best = int(np.argmax(scores))
        return candidates[best], {"filter": FBP_WINDOWS[best], "parker": parker}
    if method == "zero-filled" and task.modality == "mr":
        zero_filled(A, task.y[:1])  # warm-up
        return (lambda y: zero_filled(A, y)), {}
    if method == "SIRT" and task.modality == "ct":
        k = _best_iteration(lambda cb: sirt(A, task.y_val, suite.sirt_iter, callback=cb), task.truth_val,
                            suite.sirt_iter)
        return (lambda y: sirt(A, y, k).x), {"iterations": k}
    if method in ("CG-SENSE", TRUE_MAPS) and task.modality == "mr":
        k = _best_iteration(lambda cb: cg_sense(A, task.y_val, suite.cg_iter, callback=cb), task.truth_val,
                            suite.cg_iter)
        return (lambda y: cg_sense(A, y, k).x), {"iterations": k}
    if method == "TV":
        op_norm = float(A.norm())
        lam = _tv_weight(task, suite, op_norm)
        return (lambda y: pdhg_tv(A, y, lam, suite.tv_iter, nonneg=False, op_norm=op_norm).x), {
            "lam": lam, "iterations": suite.tv_iter}
    raise ValueError(f"unknown method {method!r} for a {task.modality.upper()} task")


def run_analytic(task: TaskData, method: str, suite: Suite) -> tuple[Tensor, dict[str, Any], float]:
    """Reconstruct the test batch of ``task`` with an analytic/iterative ``method``.

    The FBP window, iteration count or TV weight is chosen on the validation images first;
    only the test reconstruction is timed.

    Parameters
    ----------
    task : TaskData
        From :func:`build_task`.
    method : str
        CT: ``FBP``, ``SIRT``, ``TV``; MR: ``zero-filled``, ``CG-SENSE``, ``TV``.
    suite : Suite
        Iteration limits and the TV weight grid.

    Returns
    -------
    images : Tensor
        Shape: ``task.truth.shape``.
    parameters : dict
        The chosen parameters.
    seconds : float
        Wall time of the test reconstruction (the whole batch).
    """
    reconstruct, params = _tuned_analytic(task, method, suite)
    device = task.y.device
    _synchronize(device)
    t0 = time.perf_counter()
    x = reconstruct(task.y)
    _synchronize(device)
    return x, params, time.perf_counter() - t0


def model_operator(model: nn.Module) -> LinearOperator | None:
    """The forward operator a (possibly wrapped) reconstruction model was built on, or ``None``."""
    for obj in (model, getattr(model, "model", None), getattr(model, "inner", None)):
        op = getattr(obj, "operator", None)
        if op is not None:
            return op
    members = getattr(model, "members", None) or getattr(model, "models", None)
    if members:
        return model_operator(members[0])
    return None


def load_learned(task: TaskData, method: str, device: torch.device | str = "cpu") -> tuple[nn.Module | None, str]:
    """``(model, "ok")``: the pretrained model of ``method`` for this task if its weights
    exist and fit the task's operator, else ``(None, reason)``."""
    if pretrained.find(task.name, method) is None:
        return None, "no pretrained weights"
    try:
        model = pretrained.load(task.name, method, device=device)
    except (ValueError, RuntimeError, KeyError) as err:  # weights of another operator or config
        return None, f"skipped: pretrained weights do not load for this task ({type(err).__name__})"
    op = model_operator(model)
    if op is not None and (tuple(op.domain_shape) != tuple(task.operator.domain_shape)
                           or tuple(op.range_shape) != tuple(task.operator.range_shape)):
        if task.modality == "mr" and tuple(op.domain_shape) == tuple(task.operator.domain_shape):
            return None, (f"skipped: pretrained for {tuple(op.range_shape)} k-space, the task has "
                          f"{tuple(task.operator.range_shape)} (retrain)")
        return None, (f"pretrained weights are for {tuple(op.domain_shape)} images, this suite uses "
                      f"{tuple(task.operator.domain_shape)}")
    return model, "ok"


def _bind(model: nn.Module, operator: LinearOperator) -> None:
    """Rebind every reconstruction model inside ``model`` (wrappers, ensembles) to ``operator``."""
    bound = False
    for module in model.modules():
        if hasattr(module, "bind_operator") and getattr(module, "operator", None) is not None:
            module.bind_operator(operator)
            bound = True
    if not bound:
        raise ValueError(f"{type(model).__name__} has no operator to rebind")


def _run_learned_estimated(model: nn.Module, task: TaskData) -> tuple[Tensor, Tensor | None, float]:
    """An MR model on each test image bound to that image's estimated maps (the first set,
    the dominant one where there are several: the models reconstruct one image per k-space)."""
    xs, stds, elapsed = [], [], 0.0
    for i, A in enumerate(task.estimated):
        _bind(model, SENSE(A.mask, A.maps[0]))
        x, std, seconds = _run_learned(model, task.y[i:i + 1])
        xs.append(x)
        stds.append(std)
        elapsed += seconds
    std = None if any(s is None for s in stds) else torch.cat(stds)  # type: ignore[arg-type]
    return torch.cat(xs), std, elapsed


def _run_learned(model: nn.Module, y: Tensor) -> tuple[Tensor, Tensor | None, float]:
    params = list(model.parameters())
    if params:  # the model's precision; complex data stay complex (MR k-space)
        real = params[0].dtype
        cplx = torch.complex128 if real == torch.float64 else torch.complex64
        y = y.to(cplx) if y.is_complex() else y.to(real)
    predict(model, y[:1])  # warm-up
    _synchronize(y.device)
    t0 = time.perf_counter()
    x, std = predict(model, y)
    _synchronize(y.device)
    return x, std, time.perf_counter() - t0


def evaluate_method(task: TaskData, method: str, suite: Suite, device: torch.device | str = "cpu") -> Cell:
    """One table cell: metrics per image, their means, time per image, the images of item 0.

    Parameters
    ----------
    task : TaskData
        From :func:`build_task`.
    method : str
        One of :data:`CT_METHODS` (CT task) or :data:`MR_METHODS` (MR task).
    suite : Suite
        Iteration limits and the TV weight grid.
    device : torch.device or str
        Where learned models run (the task's data should live there too).

    Returns
    -------
    dict
        ``status`` (``"ok"`` or why the method did not run), and when it ran ``psnr``,
        ``ssim`` (means), ``max_abs_error`` (the largest over the images),
        ``psnr_per_image``, ``ssim_per_image``, ``max_abs_error_per_image``, ``seconds_per_image``,
        ``parameters``, ``image`` (item 0, on the CPU; Shape: ``(n, n)``) and, for models
        that predict one, ``std`` (item 0) and ``mean_std``.
    """
    std = None
    with torch.no_grad():
        if method in LEARNED:
            model, status = load_learned(task, method, device)
            if model is None:
                return {"status": status}
            if task.modality == "mr" and task.estimated:
                try:
                    x, std, elapsed = _run_learned_estimated(model, task)
                except ValueError as err:
                    return {"status": f"skipped: cannot rebind to the estimated maps ({err})"}
            else:
                x, std, elapsed = _run_learned(model, task.y)
            params: dict[str, Any] = {"weights": str(pretrained.find(task.name, method))}
        else:
            x, params, elapsed = run_analytic(task, method, suite)
    psnr, ssim = score(x, task.truth)
    err = max_abs_error(x, task.truth)
    cell: Cell = {
        "status": "ok",
        "psnr": float(psnr.mean()),
        "ssim": float(ssim.mean()),
        "max_abs_error": float(err.max()),
        "psnr_per_image": [float(v) for v in psnr],
        "ssim_per_image": [float(v) for v in ssim],
        "max_abs_error_per_image": [float(v) for v in err],
        "seconds_per_image": elapsed / x.shape[0],
        "parameters": params,
        "image": x[0].detach().cpu(),
    }
    if std is not None:
        cell["std"] = std[0].detach().abs().cpu()
        cell["mean_std"] = float(std.abs().mean())
    return cell


def methods_of(task: str) -> tuple[str, ...]:
    """The methods that apply to a built-in ``task`` (:data:`CT_METHODS` or :data:`MR_METHODS`)."""
    return CT_METHODS if check_task(task) in CT_TASKS else MR_METHODS


def select_jobs(tasks: Sequence[str] | None = None, methods: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The ``(task, method)`` pairs of a run, in table order; ``None`` means all.

    Unknown names raise ``ValueError`` listing the choices, as does a selection in which no
    method applies to any task.
    """
    tasks = list(TASKS) if tasks is None else list(dict.fromkeys(check_task(t) for t in tasks))
    methods = list(METHODS) if methods is None else list(dict.fromkeys(methods))
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {list(METHODS)}")
    jobs = [(t, m) for t in tasks for m in methods if m in methods_of(t)]
    if not jobs:
        raise ValueError(f"none of the methods {methods} applies to the tasks {tasks}")
    return jobs


@dataclass
class BenchResult:
    """What :func:`run_bench` measured.

    Attributes
    ----------
    suite_name : str
        Key of :data:`SUITES` (or ``"custom"``).
    suite : Suite
    seed : int
        The torch seed of the run (the data have their own fixed seeds).
    device : torch.device
    tasks : list of str
        The tasks asked for, in table order.
    methods : list of str
        The methods that ran on at least one task, in table order.
    task_data : dict
        Task name -> :class:`TaskData` (only tasks with at least one method).
    cells : dict
        Task name -> method name -> cell of :func:`evaluate_method`.
    wall_s : float
        Wall time of building the tasks and evaluating the methods.
    """

    suite_name: str
    suite: Suite
    seed: int
    device: torch.device
    tasks: list[str]
    methods: list[str]
    task_data: dict[str, TaskData]
    cells: dict[str, dict[str, Cell]]
    wall_s: float

    @property
    def unavailable(self) -> list[str]:
        """Methods that did not run on some task (e.g. no fitting pretrained weights), sorted."""
        return sorted({m for cells in self.cells.values() for m, c in cells.items() if c["status"] != "ok"})


def run_bench(suite: str | Suite = "default", tasks: Sequence[str] | None = None,
              methods: Sequence[str] | None = None, *, device: torch.device | str = "cpu", seed: int = 0,
              progress: bool = False) -> BenchResult:
    """Run the benchmark: every method on every task (``None``: all).

    Parameters
    ----------
    suite : str or Suite
        A key of :data:`SUITES` (``default``, ``large``, ``quick``, ``real``) or a :class:`Suite`.
    tasks, methods : sequence of str, optional
        Subsets of :data:`TASKS` and :data:`METHODS`; methods that do not apply to a task's
        modality are skipped for it.
    device : torch.device or str
        Where the data, operators and models live.
    seed : int
        ``torch.manual_seed`` before the run (the data have fixed seeds of their own).
    progress : bool
        A tqdm bar on stderr.

    Returns
    -------
    BenchResult
    """
    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; choose from {sorted(SUITES)}")
        suite_name, sizes = suite, SUITES[suite]
    elif isinstance(suite, Suite):
        suite_name, sizes = "custom", suite
    else:
        raise TypeError(f"suite must be a str or Suite, got {type(suite).__name__}")
    jobs = select_jobs(tasks, methods)
    task_names = list(TASKS) if tasks is None else list(dict.fromkeys(tasks))
    asked = list(METHODS) if methods is None else list(dict.fromkeys(methods))
    device = torch.device(device)
    torch.manual_seed(seed)

    task_data: dict[str, TaskData] = {}
    cells: dict[str, dict[str, Cell]] = {t: {} for t in task_names}
    bar = tqdm(jobs, desc="bench", unit="run", disable=not progress, file=sys.stderr)
    t_start = time.perf_counter()
    for t, m in bar:
        bar.set_postfix_str(f"{t} / {m}")
        if t not in task_data:
            task_data[t] = build_task(t, sizes, device)
        cells[t][m] = evaluate_method(task_data[t], m, sizes, device)
    bar.close()
    wall = time.perf_counter() - t_start
    used = [m for m in asked if any(m in cells[t] for t in task_names)]
    return BenchResult(suite_name, sizes, seed, device, task_names, used, task_data, cells, wall)

