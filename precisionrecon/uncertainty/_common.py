"""Helpers shared by the uncertainty wrappers: argument checks and the wrapper base class."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def check_tensor(x: Any, name: str, *, real: bool = True) -> Tensor:
    """``x`` if it is a floating (or, unless ``real``, complex) tensor, else a TypeError naming it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or (not real and x.is_complex())):
        kind = "a real floating" if real else "a floating or complex"
        raise TypeError(f"{name} must have {kind} dtype, got {x.dtype}")
    return x


def check_model(model: Any, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def model_config(model: nn.Module, name: str = "model") -> dict[str, Any]:
    """``model.config()``, or a TypeError when the model cannot describe itself."""
    config = getattr(model, "config", None)
    if not callable(config):
        raise TypeError(f"{name} ({type(model).__name__}) has no config() method, so it cannot be saved and rebuilt")
    return config()


def is_heteroscedastic(output: Any) -> bool:
    """Whether a model output is a ``(mean, log_variance)`` pair rather than one image."""
    return isinstance(output, tuple) and len(output) == 2


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
