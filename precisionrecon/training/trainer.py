r"""One trainer for every reconstruction model, single process or data parallel.

Each step draws its share of the global batch of simulated data (see
:mod:`precisionrecon.training.data`), computes the loss (MSE, or the Gaussian NLL for
models that return ``(mean, log_var)``), clips the gradient norm and takes an Adam step
with the learning rate of the schedule at that step. In a distributed run
(``torchrun --nproc-per-node N -m precisionrecon.training --config cfg.json``) the model
is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (gloo on the CPU, nccl
on CUDA): process ``r`` computes items ``r B/N .. (r+1) B/N - 1`` of the global batch
``B`` and DDP averages the gradients, which is the gradient of the mean loss over the
global batch, so N processes take the same steps as one (up to rounding). Only the first
process validates, shows progress and writes files.

The learning rate at step ``t`` (counting from 0) with warm-up ``W`` and ``T`` steps is
``lr (t + 1) / W`` for ``t < W``, then ``min_lr + (lr - min_lr) (1 + cos(pi (t - W) /
(T - W))) / 2`` (cosine) or ``lr`` (constant): a function of ``t`` alone, so a resumed run
needs no scheduler state.

Stop and resume anywhere: a checkpoint holds the parameters, Adam's moments and step count,
the history, the latest metrics and the training losses since the last history entry. Every
step seeds python's, numpy's and torch's generators from ``(seed, step, rank)`` and draws its
data from seeds of ``(seed, step, item)``, the validation seeds torch from ``(seed, step)``,
and gradient clipping has no state, so ``resume=True`` continues bit for bit as if the run
had never stopped (same software, same kind of machine and thread count; on CUDA with
``deterministic=True``). A checkpoint written on CUDA resumes on the CPU and vice versa (the
tensors are stored on the CPU and moved to the run's device), though not bit for bit.
:meth:`Trainer.fit` stops early, writing a checkpoint, after ``max_steps`` steps, when the
time budget ``config.max_seconds`` is used, or on SIGTERM / SIGINT (``Trainer.finished`` is
then False and ``Trainer.stop_reason`` says why). While it trains, a run holds a lock in its
output folder (see :mod:`precisionrecon.training.checkpoint`).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import metrics
from .._validate import parse_dtype
from ..models.compiled import compile_blocks
from ..uncertainty import (
    DeepEnsemble,
    build,
    coverage,
    gaussian_nll,
    is_heteroscedastic,
    regression_calibration_error,
    spearman,
)
from ._io import atomic_write_json, json_close
from .checkpoint import (
    OPTIMIZER_FILE,
    acquire_lock,
    find_checkpoint,
    list_checkpoints,
    load_state,
    read_checkpoint,
    release_lock,
    remove_temporary,
    restore_optimizer,
    write_checkpoint,
)
from .config import TrainingConfig
from .data import SimulatedData, shard, step_seed, validation_seed

HISTORY_FILE = "history.json"


class NonFiniteLossError(FloatingPointError):
    """The training loss or the parameters became NaN or infinite: the run stops, writing nothing."""


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _now() -> float:
    """The clock of the time budget (a function, so tests can replace it)."""
    return time.monotonic()


# why fit() stopped early, as codes (agreed on by all processes of a distributed run)
_STOP_REASONS = (None, "max_steps", "deadline", "signal")


def deterministic_cuda() -> None:
    """Make CUDA computations repeatable: deterministic cuDNN and cuBLAS, and
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (a warning, not an error,
    for operations without a deterministic implementation)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def learning_rate(config: TrainingConfig, step: int) -> float:
    """The learning rate of step ``step`` (see the module docstring)."""
    c = config
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.schedule == "constant":
        return c.lr
    t = (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
    return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def init_distributed(device: str = "auto") -> bool:
    """Initialise the default process group from ``torchrun``'s environment when it starts
    more than one process (gloo, or nccl when training on CUDA). Returns whether it did."""
    if not dist.is_available() or dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def _distributed() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` of this process (``(0, 1, 0)`` without a process group)."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        return rank, world, int(os.environ.get("LOCAL_RANK", rank))
    return 0, 1, 0


def _device(name: str, local_rank: int, world_size: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device is {name!r} but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def _load_config(config: Any) -> TrainingConfig:
    if isinstance(config, TrainingConfig):
        return config
    if isinstance(config, dict):
        return TrainingConfig.from_dict(config)
    if isinstance(config, (str, Path)):
        return TrainingConfig.from_file(config)
    raise TypeError(f"config must be a TrainingConfig, a dict or a file path, got {type(config).__name__}")


def mse(x: Tensor, target: Tensor) -> Tensor:
    """Mean squared error ``mean |x - target|^2`` (squared modulus for complex images)."""
    diff = x - target
    return (diff.real.square() + diff.imag.square()).mean() if diff.is_complex() else diff.square().mean()


def predict(model: nn.Module, y: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(mean, std)`` of any model: its ``predict`` if it has one (uncertainty wrappers),
    else its output, with ``std = exp(log_var / 2)`` for ``(mean, log_var)`` pairs and
    ``None`` for plain images."""
    if callable(getattr(model, "predict", None)):
        return model.predict(y)
    out = model(y)
    if is_heteroscedastic(out):
        return out[0], torch.exp(0.5 * out[1])
    return out, None


class Trainer:
    """Trains one model on simulated data for its operator (see the module docstring).

    Parameters
    ----------
    config : TrainingConfig, dict or path
        The run's configuration (a ``.json`` / ``.yaml`` file path is read).
    model : nn.Module, optional
        The model to train; default: built from ``config.model``. It needs ``operator``
        and ``config()`` (for checkpoints), as every :class:`~precisionrecon.models.ReconModel`
        and uncertainty wrapper has.
    builder : callable, optional
        Builds ``config.model`` (default :func:`precisionrecon.uncertainty.build`, which
        knows the library's models and wrappers).

    Attributes
    ----------
    model : nn.Module
        The model being trained (not the DDP wrapper).
    step : int
        Steps taken so far.
    history : list of dict
        One entry per validation: ``step``, ``loss`` (mean training loss since the last
        entry), ``lr``, ``train_time`` (seconds in training steps, summed over resumed
        runs) and the validation metrics (first process only).
    metrics : dict
        The latest validation metrics: ``val_loss`` (the MSE of the mean), ``val_psnr``,
        ``val_ssim`` (mean over the validation set; complex images by magnitude), and for
        models that predict a std ``val_nll``, ``val_coverage90``,
        ``val_calibration_error``, ``val_spearman`` (real images).
    last_checkpoint : Path or None
        The newest checkpoint written by this trainer (or the one it resumed from).
    finished : bool
        Whether :meth:`fit` reached ``config.steps``.
    stop_reason : str or None
        Why the last :meth:`fit` stopped early: ``"max_steps"``, ``"deadline"`` (the time
        budget ``config.max_seconds``) or ``"signal"`` (SIGTERM / SIGINT); None otherwise.
    """

    def __init__(
        self,
        config: TrainingConfig | dict[str, Any] | str | Path,
        model: nn.Module | None = None,
        *,
        builder: Callable[[dict[str, Any]], nn.Module] | None = None,
    ) -> None:
        cfg = _load_config(config)
        self.config = cfg
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        init_distributed(cfg.device)
        self.rank, self.world_size, local_rank = _distributed()
        self.device = _device(cfg.device, local_rank, self.world_size)
        if self.device.type == "cuda" and cfg.deterministic:
            deterministic_cuda()
        self.items = shard(cfg.batch_size, self.rank, self.world_size)
        self.dtype = parse_dtype(cfg.dtype)
        resume_from = self._resume_source()
        if self.rank == 0 and cfg.output_dir is not None:
            acquire_lock(cfg.output_dir)  # before anything in the folder is read or removed
            remove_temporary(cfg.output_dir)

        seed_everything(cfg.seed)
        if model is None:
            if cfg.model is None:
                raise ValueError("config.model is missing: give the model's config() or pass a model")
            model = build(cfg.model, builder=builder)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(model, DeepEnsemble):
            raise ValueError(
                "a DeepEnsemble is not trained as one model: train each member in its own run (different seeds) "
                "and combine the loaded checkpoints with DeepEnsemble([...])"
            )
        operator = getattr(model, "operator", None)
        if operator is None:
            raise TypeError(f"model ({type(model).__name__}) must have an operator attribute (its forward operator)")
        model.to(self.dtype)
        model.to(self.device)
        if cfg.compile:
            compile_blocks(model)  # in place: parameter names and checkpoints stay the same
        self.model = model
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError("the model has no free parameters to train (everything is frozen)")
        self.optimizer = torch.optim.Adam(self.trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.data = SimulatedData(model.operator, cfg.data, cfg.seed, cfg.dtype, self.device)
        self.step = 0
        self.train_time = 0.0
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.finished = False
        self.stop_reason: str | None = None
        self._losses: list[float] = []  # training losses since the last history entry
        self._saved_step: int | None = None  # the step of the newest checkpoint on disk
        self._signal: int | None = None
        self._validation: tuple[Tensor, Tensor] | None = None
        if resume_from is not None:
            self._restore(resume_from)
        elif cfg.init_weights is not None:
            self._initialise(cfg.init_weights)
        self.module: nn.Module = model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # -- set-up ---------------------------------------------------------------------------------
    def _resume_source(self) -> Path | None:
        cfg = self.config
        out = Path(cfg.output_dir) if cfg.output_dir is not None else None
        if out is not None and out.exists() and not out.is_dir():
            raise ValueError(f"output_dir {str(out)!r} exists and is not a folder")
        if isinstance(cfg.resume, str):
            return find_checkpoint(cfg.resume)
        existing = list_checkpoints(out) if out is not None and out.is_dir() else []
        if cfg.resume:
            if out is None:
                raise ValueError("resume=True continues from output_dir, but output_dir is not set")
            return find_checkpoint(out) if existing else None
        if existing:
            raise ValueError(
                f"output_dir {str(out)!r} holds checkpoints already; set resume=true to continue, or use another folder"
            )
        return None

    def _restore(self, path: Path) -> None:
        folder, meta = read_checkpoint(path)
        self.model.load_state_dict(load_state(folder))
        if "optimizer" not in meta:
            raise ValueError(f"checkpoint {str(folder)!r} has no optimizer state to resume from")
        self._check_resumable(folder, meta)
        restore_optimizer(self.optimizer, load_state(folder, OPTIMIZER_FILE), meta["optimizer"])
        self.step = int(meta["step"])
        self.history = list(meta.get("history", []))
        self.metrics = dict(meta.get("metrics", {}))
        self.train_time = float(meta.get("train_time", 0.0))
        self._losses = [float(v) for v in meta.get("pending_losses", [])]
        self.last_checkpoint = folder
        out = self.config.output_dir
        self._saved_step = self.step if out is not None and folder.parent.resolve() == Path(out).resolve() else None

    def _initialise(self, path: str) -> None:
        """Start from the parameters of the checkpoint or weights folder ``path`` (fine-tuning)."""
        folder, meta = read_checkpoint(path)
        # up to rounding: op_norm's last digits follow the thread count of the run that saved it
        if not json_close(json.loads(json.dumps(self.model.config())), meta.get("model")):
            raise ValueError(f"init_weights {path!r} holds another model than this run's (its config.json "
                             "'model' differs from the run's model config)")
        self.model.load_state_dict(load_state(folder))  # copied into the run's dtype and device

    def _check_resumable(self, folder: Path, meta: dict[str, Any]) -> None:
        """A ValueError when the checkpoint was trained with other settings than this run's
        (the resumed run would not be the run it continues)."""
        saved = meta.get("training") or {}
        current = self.config.to_dict()
        changed = sorted(
            k for k, v in current.items()
            if k != "model" and k not in TrainingConfig.RESUMABLE_CHANGES and k in saved and saved[k] != v
        )
        if json.loads(json.dumps(self.model.config())) != meta.get("model"):
            changed.insert(0, "model")
        if changed:
            raise ValueError(
                f"checkpoint {str(folder)!r} was trained with other settings ({', '.join(changed)}) than this run; "
                "resume with the config it was trained with, or start a new run"
            )

    # -- one step -------------------------------------------------------------------------------
    def loss(self, output: Any, target: Tensor) -> Tensor:
        """The training loss of a model output against the true images."""
        hetero = is_heteroscedastic(output)
        kind = self.config.loss if self.config.loss != "auto" else ("nll" if hetero else "mse")
        if kind == "nll":
            if not hetero:
                raise ValueError("loss 'nll' needs a model that returns (mean, log_var), e.g. a HeteroscedasticHead")
            return gaussian_nll(output[0], output[1], target)
        return mse(output[0] if hetero else output, target)

    def train_step(self) -> float:
        """Take step :attr:`step` and return its loss (the mean over the global batch)."""
        cfg, step = self.config, self.step
        start = time.perf_counter()
        seed_everything(step_seed(cfg.seed, step, self.rank))  # dropout & co. reproducible on resume
        y, x = self.data.batch(step, self.items, cfg.batch_size)
        lr = learning_rate(cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.module.train()
        loss = self.loss(self.module(y), x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
        self.optimizer.step()
        value = loss.detach()
        if self.world_size > 1:
            dist.all_reduce(value)
            value = value / self.world_size
        if not bool(torch.isfinite(value)):
            # the same answer on every process (the reduced loss); nothing more is written
            raise NonFiniteLossError(
                f"training loss is {float(value)} at step {step} (lr {lr:.3g}): the run diverged; lower lr, set "
                "grad_clip, or check the data. The newest checkpoint (if any) holds the last finite weights"
            )
        self.step += 1
        self.train_time += time.perf_counter() - start
        self._losses.append(float(value))
        return self._losses[-1]

    # -- validation and files --------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Metrics on the fixed validation set (first process only; others return ``{}``)."""
        if self.rank != 0:
            return {}
        if self._validation is None:
            self._validation = self.data.validation_set()
        if self._validation is None:
            return {}
        y, x = self._validation
        was_training = self.model.training
        self.model.eval()
        torch.manual_seed(validation_seed(self.config.seed, self.step))  # sampling models (MC dropout)
        means, stds = [], []
        for start in range(0, y.shape[0], self.config.batch_size):
            mean, std = predict(self.model, y[start : start + self.config.batch_size])
            means.append(mean)
            stds.append(std)
        self.model.train(was_training)
        mean = torch.cat(means)
        ndim = len(self.data.operator.domain_shape)
        rng = self.config.data_range
        out = {
            "val_loss": float(mse(mean, x)),
            "val_psnr": float(metrics.psnr(mean, x, data_range=rng, ndim=ndim).mean()),
        }
        if min(x.shape[-ndim:]) >= 7:
            a, b = (mean.abs(), x.abs()) if mean.is_complex() else (mean, x)
            out["val_ssim"] = float(metrics.ssim(a, b, data_range=rng, ndim=ndim).mean())
        if stds[0] is not None and not mean.is_complex():
            std = torch.cat(stds).clamp_min(torch.finfo(mean.dtype).tiny)
            out["val_nll"] = float(gaussian_nll(mean, 2 * torch.log(std), x))
            out["val_coverage90"] = float(coverage(mean, std, x, 0.9))
            out["val_calibration_error"] = float(regression_calibration_error(mean, std, x))
            out["val_spearman"] = float(spearman(std, (mean - x).abs()))
        self.metrics = out
        return out

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (first process only; needs ``output_dir``)."""
        cfg = self.config
        if self.rank != 0 or cfg.output_dir is None:
            return None
        bad = [name for name, p in self.model.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
        if bad:
            raise NonFiniteLossError(
                f"parameters {bad[:3]} hold non-finite values at step {self.step}: the run diverged (lower lr or set "
                "grad_clip); no checkpoint written"
            )
        training = cfg.to_dict()
        training["model"] = None  # the model's config is stored once, under "model"
        record = {
            "training": training,
            "metrics": self.metrics,
            "history": self.history,
            "train_time": self.train_time,
            "pending_losses": self._losses,
            "device": str(self.device),
            "n_free_parameters": sum(p.numel() for p in self.trainable),
            "world_size": self.world_size,
            "torch_version": torch.__version__,
        }
        self.last_checkpoint = write_checkpoint(
            cfg.output_dir, self.step, self.model, self.optimizer, record, keep=cfg.keep_checkpoints
        )
        self._saved_step = self.step
        return self.last_checkpoint

    def _record(self) -> None:
        losses, self._losses = self._losses, []
        entry: dict[str, Any] = {
            "step": self.step,
            "loss": float(np.mean(losses)) if losses else None,
            "lr": learning_rate(self.config, max(self.step - 1, 0)),
            "train_time": self.train_time,
            **self.validate(),
        }
        self.history.append(entry)
        if self.rank == 0 and self.config.output_dir is not None:
            Path(self.config.output_dir).mkdir(parents=True, exist_ok=True)
            atomic_write_json(Path(self.config.output_dir) / HISTORY_FILE, self.history)

    # -- the loop ---------------------------------------------------------------------------------
    def _catch_signals(self) -> dict[int, Any]:
        """SIGTERM / SIGINT stop after the current step (a second one interrupts at once).
        Returns the previous handlers; nothing outside the main thread."""
        self._signal = None
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self._signal is not None:
                raise KeyboardInterrupt
            self._signal = signum

        return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def _should_stop(self, taken: int, max_steps: int | None, start: float) -> str | None:
        """Why to stop before the next step (None: go on); the same answer on every process."""
        code = 0
        budget = self.config.max_seconds
        if self._signal is not None:
            code = 3
        elif max_steps is not None and taken >= max_steps:
            code = 1
        elif budget is not None:
            now = _now()
            per_step = (now - start) / taken if taken else 0.0
            code = 2 if now + per_step >= start + budget else 0
        if self.world_size > 1:
            flag = torch.tensor(code, device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            code = int(flag)
        return _STOP_REASONS[code]

    def fit(self, max_steps: int | None = None) -> Trainer:
        """Train up to ``config.steps``, validating and checkpointing as configured.

        Parameters
        ----------
        max_steps : int, optional
            Take at most that many steps in this call.

        Stops early, after writing a checkpoint (with ``output_dir``), after ``max_steps``
        steps, when ``config.max_seconds`` is used up, or on SIGTERM / SIGINT; see
        :attr:`finished` and :attr:`stop_reason`.
        """
        cfg = self.config
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0):
            raise ValueError(f"max_steps must be a non-negative int or None, got {max_steps!r}")
        if self.rank == 0 and cfg.output_dir is not None:
            acquire_lock(cfg.output_dir)
        start, taken = _now(), 0
        self.stop_reason = None
        previous = self._catch_signals()
        try:
            bar = tqdm(
                total=cfg.steps, initial=self.step, desc="train", disable=not (cfg.progress and self.rank == 0),
                dynamic_ncols=True,
            )
            if self.step == 0 and not self.history and cfg.val_every > 0:
                self._record()
            while self.step < cfg.steps:
                self.stop_reason = self._should_stop(taken, max_steps, start)
                if self.stop_reason is not None:
                    break
                loss = self.train_step()
                taken += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", lr=f"{learning_rate(cfg, self.step - 1):.3g}", refresh=False)
                last = self.step == cfg.steps
                if last or (cfg.val_every > 0 and self.step % cfg.val_every == 0):
                    self._record()
                    if "val_psnr" in self.metrics:
                        bar.set_postfix(loss=f"{self.history[-1]['loss']:.4g}", psnr=f"{self.metrics['val_psnr']:.2f}")
                if last or (cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0):
                    self.save()
            self.finished = self.step >= cfg.steps
            if self._saved_step != self.step:
                self.save()  # where a later run resumes (also when the run ended already)
            bar.close()
        finally:
            for s, h in previous.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)
            if self.rank == 0 and cfg.output_dir is not None:
                release_lock(cfg.output_dir)
        if self.world_size > 1:
            dist.barrier()  # the first process has written the final checkpoint
        return self

def train(
    config: TrainingConfig | dict[str, Any] | str | Path,
    model: nn.Module | None = None,
    *,
    builder: Callable[[dict[str, Any]], nn.Module] | None = None,
) -> Trainer:
    """Train a model as ``config`` says; returns the finished :class:`Trainer` (its
    ``model``, ``history``, ``metrics`` and ``last_checkpoint``)."""
    return Trainer(config, model, builder=builder).fit()
