"""Registry of pretrained reconstruction models shipped with the package.

Weights live in the package data folder ``precisionrecon/pretrained/weights/<task>/<model>/``
as a checkpoint of :mod:`precisionrecon.training` (``model.safetensors`` + ``config.json``,
the latter holding the model's ``config()`` that rebuilds it), so
:func:`precisionrecon.training.load_checkpoint` reads them and no pickle is involved.
``<task>`` is a built-in benchmark task of ``precisionrecon bench`` (``sparse-view-30``, ...)
and ``<model>`` one of :data:`MODELS` (``LearnedFBP``, ``VN``, ``LPD``). A folder may also hold
``train.json``: the training config (with its seed) that produced the weights.

``PRECISIONRECON_WEIGHTS=/some/dir`` points the registry at another folder with the same
layout (e.g. freshly trained checkpoints), without touching the installed package.

Example::

    from precisionrecon import pretrained
    pretrained.available()                       # [("sparse-view-30", "LearnedFBP"), ...]
    model = pretrained.load("sparse-view-30", "LPD")
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

MODELS: tuple[str, ...] = ("LearnedFBP", "VN", "LPD")
"""Short names of the learned methods, as used by ``bench`` and the weight folders."""

MODEL_CLASSES: dict[str, str] = {
    "LearnedFBP": "LearnedFBP",
    "VN": "VariationalNetwork",
    "LPD": "LearnedPrimalDual",
}
"""Short name -> class name in :mod:`precisionrecon.models`."""

PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"
_CHECKPOINT_FILES = ("model.safetensors", "config.json")


def weights_dir() -> Path:
    """The folder searched for weights: ``$PRECISIONRECON_WEIGHTS`` if set, else the package's."""
    env = os.environ.get("PRECISIONRECON_WEIGHTS", "").strip()
    return Path(env) if env else PACKAGE_WEIGHTS


def _check_name(value: str, name: str) -> str:
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(f"{name} must be a plain folder name, got {value!r}")
    return value


def find(task: str, model: str) -> Path | None:
    """The checkpoint folder of ``model`` for ``task``, or None when no weights are present.

    Raises
    ------
    ValueError
        ``model`` is not one of :data:`MODELS`, or a name is not a plain folder name.
    """
    _check_name(task, "task")
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    folder = weights_dir() / task / model
    if all((folder / f).is_file() for f in _CHECKPOINT_FILES):
        return folder
    return None


def available(task: str | None = None) -> list[tuple[str, str]]:
    """``(task, model)`` pairs with weights present (for one ``task`` or all), sorted."""
    root = weights_dir()
    if not root.is_dir():
        return []
    tasks = [task] if task is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    return [(t, m) for t in tasks for m in MODELS if find(t, m) is not None]


def load(task: str, model: str, *, device: str | torch.device | None = None) -> nn.Module:
    """The pretrained ``model`` for ``task``, rebuilt by :func:`precisionrecon.training.load_checkpoint`,
    in eval mode.

    Raises
    ------
    FileNotFoundError
        No weights for this pair (the message names the folder searched).
    """
    from ..training import load_checkpoint

    folder = find(task, model)
    if folder is None:
        raise FileNotFoundError(
            f"no pretrained weights for model {model!r} on task {task!r} "
            f"(looked for {[str(weights_dir() / task / model / f) for f in _CHECKPOINT_FILES]})"
        )
    return load_checkpoint(folder, device=device)


__all__ = ["MODELS", "MODEL_CLASSES", "PACKAGE_WEIGHTS", "available", "find", "load", "weights_dir"]
