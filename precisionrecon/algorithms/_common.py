"""Shared plumbing of the iterative algorithms: data and start checks, batched inner products,
per-problem freezing, history, progress bar and callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._validate import batch_shape, check_tensor
from ..operators.base import LinearOperator
from .result import Result

Callback = Callable[[int, Tensor, dict[str, Tensor]], Any]

# Power iteration approaches ||A|| from below; step sizes use a slightly larger bound.
NORM_SAFETY = 1.01


def check_data(A: LinearOperator, y: Any, name: str = "y") -> tuple[int, ...]:
    """Validate measured data ``y`` of operator ``A``; returns the batch shape."""
    check_tensor(y, name)
    return batch_shape(y, tuple(A.range_shape), name)


def initial_x(x0: Any, domain_shape: tuple[int, ...], batch: tuple[int, ...], like: Tensor, name: str = "x0") -> Tensor:
    """``x0`` broadcast to ``(*batch, *domain_shape)`` in the dtype and device of ``like``
    (zeros when ``x0`` is None). A fresh tensor: the caller's ``x0`` is never modified."""
    shape = (*batch, *domain_shape)
    if x0 is None:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    check_tensor(x0, name)
    if x0.is_complex() and not like.is_complex():
        raise TypeError(f"{name} is complex but the data are real ({like.dtype}); pass a real {name}")
    x0_batch = batch_shape(x0, tuple(domain_shape), name)
    if x0_batch not in ((), batch):
        raise ValueError(f"{name} must have shape {tuple(domain_shape)} or {shape}, got {tuple(x0.shape)}")
    return x0.to(device=like.device, dtype=like.dtype).expand(shape).clone()


def _dims(ndim: int) -> tuple[int, ...]:
    return tuple(range(-ndim, 0))


def dot(a: Tensor, b: Tensor, ndim: int) -> Tensor:
    """Per-problem inner product ``sum(conj(a) * b)`` over the last ``ndim`` axes."""
    prod = a.conj() * b if a.is_complex() else a * b
    return prod.sum(dim=_dims(ndim)) if ndim else prod


def sqnorm(a: Tensor, ndim: int) -> Tensor:
    """Per-problem squared 2-norm over the last ``ndim`` axes (real)."""
    sq = a.real.square() + a.imag.square() if a.is_complex() else a.square()
    return sq.sum(dim=_dims(ndim)) if ndim else sq


def norm(a: Tensor, ndim: int) -> Tensor:
    return sqnorm(a, ndim).sqrt()


def col(v: Tensor, ndim: int) -> Tensor:
    """A per-problem value ``(*batch,)`` reshaped to broadcast over ``ndim`` trailing axes."""
    return v.reshape(*v.shape, *([1] * ndim))


def keep(active: Tensor, new: Tensor, old: Tensor, ndim: int) -> Tensor:
    """``new`` for the problems still iterating, ``old`` for those that stopped."""
    return torch.where(col(active, ndim), new, old)


def relative_change(new: Tensor, old: Tensor, ndim: int) -> Tensor:
    """``||new - old|| / ||new||`` per problem (0 where both are zero)."""
    num = norm(new - old, ndim)
    den = norm(new, ndim)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), num)


class Monitor:
    """History, progress bar, callback and the stop decision of one run."""

    def __init__(
        self, name: str, n_iter: int, batch: tuple[int, ...], *, progress: bool, callback: Callback | None
    ) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(iteration, x, info), got {type(callback).__name__}")
        self.batch = batch
        self.callback = callback
        self.values: dict[str, list[Tensor]] = {}
        self.bar = tqdm(total=n_iter, desc=name, disable=not progress, leave=False)
        self.progress = progress

    def step(self, iteration: int, x: Tensor, info: dict[str, Tensor], active: Tensor, use_active: bool) -> bool:
        """Record one iteration; True when the run should stop (all problems converged,
        or the callback returned True)."""
        for key, value in info.items():
            self.values.setdefault(key, []).append(value.detach())
        self.bar.update(1)
        if self.progress and info:
            key, value = next(iter(info.items()))
            self.bar.set_postfix({key: f"{float(value.detach().max()):.4g}"})
        stop = False
        if self.callback is not None:
            stop = bool(self.callback(iteration, x, {**info, "active": active}))
        if use_active and not bool(active.any()):
            stop = True
        return stop

    def result(self, x: Tensor, converged: Tensor) -> Result:
        self.bar.close()
        history = {key: torch.stack(vals) for key, vals in self.values.items()}
        return Result(x=x, history=history, converged=converged)
