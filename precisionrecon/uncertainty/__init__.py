"""Uncertainty for reconstruction models: heteroscedastic heads, MC dropout and deep
ensembles as wrappers over any model, calibration metrics and post-hoc scaling, and the
exact noise variance of linear reconstructions as the analytic baseline.

Every wrapper keeps the model protocol (``operator``, ``n_free_parameters``,
``config()``) and adds ``predict(y) -> (mean, std)``; :func:`build` rebuilds a wrapper
(and the model inside) from its config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .calibration import (
    CalibratedModel,
    calibration_curve,
    coverage,
    fit_std_scale,
    normal_quantile,
    regression_calibration_error,
    spearman,
)
from .heads import HeteroscedasticHead, gaussian_nll, is_heteroscedastic
from .propagation import post_log_poisson_variance, propagate_variance
from .sampling import ACTIVATIONS, DeepEnsemble, MCDropout

WRAPPERS = ("HeteroscedasticHead", "MCDropout", "DeepEnsemble", "CalibratedModel")


def build(config: dict[str, Any], *, builder: Callable[[dict[str, Any]], nn.Module] | None = None) -> nn.Module:
    """A model from its ``config()``: the uncertainty wrappers here (and the models inside
    them), any other model by ``builder``, default :func:`precisionrecon.models.build`.

    Parameters
    ----------
    config : dict
        As returned by ``model.config()``: ``{"class", "kwargs", "model" | "members", ...}``
        for a wrapper.
    builder : callable, optional
        Builds the innermost (non-wrapper) models, e.g. a project's own model registry.

    Returns
    -------
    nn.Module
        Untrained: load the ``state_dict`` after.

    Notes
    -----
    Configs written before the scale normalisation existed (no ``"normalize"`` in the
    kwargs of a model or a :class:`HeteroscedasticHead`) build with ``normalize=False``,
    so old checkpoints keep their recorded behaviour.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    name = config.get("class")
    if name not in WRAPPERS:
        if builder is None:
            from ..models import build as builder
        return builder(config)
    kwargs = config.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"config['kwargs'] of {name} must be a dict, got {kwargs!r}")
    key = "members" if name == "DeepEnsemble" else "model"
    if key not in config:
        raise ValueError(f"config of {name} lacks the key {key!r}")
    if name == "DeepEnsemble":
        if not isinstance(config[key], list):
            raise ValueError(f"config['members'] of DeepEnsemble must be a list, got {config[key]!r}")
        return DeepEnsemble([build(c, builder=builder) for c in config[key]], **kwargs)
    if name == "HeteroscedasticHead" and "normalize" not in kwargs:
        kwargs = {**kwargs, "normalize": False}  # written before the option: the behaviour it was trained with
    cls = {"HeteroscedasticHead": HeteroscedasticHead, "MCDropout": MCDropout, "CalibratedModel": CalibratedModel}[name]
    return cls(build(config[key], builder=builder), **kwargs)


__all__ = [
    "ACTIVATIONS",
    "WRAPPERS",
    "CalibratedModel",
    "DeepEnsemble",
    "HeteroscedasticHead",
    "MCDropout",
    "build",
    "calibration_curve",
    "coverage",
    "fit_std_scale",
    "gaussian_nll",
    "is_heteroscedastic",
    "normal_quantile",
    "post_log_poisson_variance",
    "propagate_variance",
    "regression_calibration_error",
    "spearman",
]
