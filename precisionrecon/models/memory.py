"""Memory of unrolled 3-D models: gradient checkpointing per iteration, mixed precision of
the CNN parts, and moving a model trained on slabs to the whole volume.

- ``checkpoint=True`` (LPD, VN) keeps only each iteration's input for the backward and
  recomputes the iteration there (``torch.utils.checkpoint``, non-reentrant), so the
  activations held at once are those of one iteration rather than of all of them; it
  costs one more forward of every iteration (operator calls included).
- ``mixed_precision="bfloat16"`` (or ``"float16"``, CUDA) runs the convolutions under
  ``torch.autocast``; the operators ``A``, ``A^T`` and the iterates stay in the model's
  dtype (the CNN updates are cast back before they are added).
- Slab-wise training: train on the sub-problems of :func:`~precisionrecon.operators.slab_operator`
  (slabs of the volume and the detector rows they alone determine), then
  :func:`for_operator` gives the trained model for the whole volume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils import checkpoint as activation_checkpoint

from ..operators.base import LinearOperator
from .base import ReconModel, build
from .serialize import operator_to_dict

__all__ = ["MIXED_PRECISION", "check_memory_options", "cnn_precision", "for_operator", "unrolled_step"]

# dtypes the CNN parts may run in under autocast (None: the model's dtype)
MIXED_PRECISION: dict[str | None, torch.dtype | None] = {None: None, "bfloat16": torch.bfloat16,
                                                         "float16": torch.float16}


def check_memory_options(checkpoint: Any, mixed_precision: Any) -> tuple[bool, str | None]:
    """Validated ``checkpoint`` (a bool) and ``mixed_precision`` (a key of :data:`MIXED_PRECISION`)."""
    if not isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be a bool, got {type(checkpoint).__name__}")
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {tuple(MIXED_PRECISION)}, got {mixed_precision!r}")
    return checkpoint, mixed_precision


def memory_config(checkpoint: bool, mixed_precision: str | None) -> dict[str, Any]:
    """The options for :meth:`ReconModel.remember_config`, only where they differ from the
    defaults: configs of models without them stay as they were."""
    return {**({"checkpoint": True} if checkpoint else {}),
            **({"mixed_precision": mixed_precision} if mixed_precision is not None else {})}


def unrolled_step(fn: Callable[..., Any], *tensors: Tensor, checkpoint: bool) -> Any:
    """``fn(*tensors)``, one unrolled iteration; with ``checkpoint`` (and grad enabled) its
    activations are not kept but recomputed in the backward."""
    if checkpoint and torch.is_grad_enabled():
        return activation_checkpoint.checkpoint(fn, *tensors, use_reentrant=False)
    return fn(*tensors)


def cnn_precision(like: Tensor, mixed_precision: str | None) -> contextlib.AbstractContextManager[Any]:
    """The context of the CNN parts: ``torch.autocast`` to the ``mixed_precision`` dtype on
    ``like``'s device type, or nothing."""
    dtype = MIXED_PRECISION[mixed_precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(like.device.type, dtype=dtype)


def for_operator(model: ReconModel, operator: LinearOperator) -> ReconModel:
    """The same model (configuration and learned weights) for another operator, whose shapes
    may differ: e.g. a model trained on slabs (:func:`~precisionrecon.operators.slab_operator`)
    applied to the whole volume. The convolutions do not depend on the image size; values
    derived from the operator that the config records (``op_norm``) are kept.

    Shape: the new model maps ``(*batch, *operator.range_shape) -> (*batch, *operator.domain_shape)``.
    """
    config = model.config()
    config["operator"] = operator_to_dict(operator)
    new = build(config)
    new.load_state_dict(model.state_dict())
    first = next(iter(model.parameters()), None)
    return new if first is None else new.to(first.device)
