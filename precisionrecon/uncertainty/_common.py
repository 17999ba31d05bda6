"""Helpers shared by the uncertainty wrappers: their config and the wrapper base class."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def model_config(model: nn.Module, name: str = "model") -> dict[str, Any]:
    """``model.config()``, or a TypeError when the model cannot describe itself."""
    config = getattr(model, "config", None)
    if not callable(config):
        raise TypeError(f"{name} ({type(model).__name__}) has no config() method, so it cannot be saved and rebuilt")
    return config()


def data_scale_of(model: nn.Module, y: Any) -> Any:
    """The data scale ``model.data_scale(y)`` (shape ``(*batch,)``) of the innermost model
    (through the wrappers, the first wrapped model), or None when it has no ``data_scale``."""
    while isinstance(model, Wrapper):
        model = model.wrapped()[0]
    scale = getattr(model, "data_scale", None)
    return scale(y) if callable(scale) else None


# the config layout of precisionrecon.models (ReconModel.config), which the wrappers follow
CONFIG_FORMAT = 1


class Wrapper(nn.Module):
    """Base of the uncertainty wrappers: the wrapped models' operator, parameter count,
    device moves and config layout.

    Subclasses set :attr:`wrapped` (the models inside) and implement ``predict``.
    """

    def wrapped(self) -> list[nn.Module]:
        raise NotImplementedError

    @property
    def operator(self) -> Any:
        """The known forward operator of the (first) wrapped model."""
        return self.wrapped()[0].operator

    @property
    def n_free_parameters(self) -> int:
        """Number of trainable parameter entries (those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def to(self, *args: Any, **kwargs: Any) -> Wrapper:
        """``nn.Module.to``; a device is also passed to each wrapped model's own ``to``, which
        moves the operator of a :class:`~precisionrecon.models.ReconModel`."""
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        out = super().to(*args, **kwargs)
        if device is not None:
            for model in self.wrapped():
                model.to(device)
        return out

    def make_config(self, kwargs: dict[str, Any], **models: Any) -> dict[str, Any]:
        """``{"format", "class", "module", <models>, "kwargs"}``: the layout of
        :meth:`precisionrecon.models.ReconModel.config`, with the wrapped models' configs."""
        return {
            "format": CONFIG_FORMAT,
            "class": type(self).__name__,
            "module": type(self).__module__,
            **models,
            "kwargs": kwargs,
        }
