r"""Epistemic uncertainty by sampling: Monte-Carlo dropout and deep ensembles.

Both wrappers return the predictive mean and standard deviation of a uniform mixture of
predictions ``k = 1..K`` (dropout samples or ensemble members). With member means
``mu_k`` and, for heteroscedastic members, variances ``sigma_k^2``, the law of total
variance gives

.. math:: \mu = \frac1K \sum_k \mu_k, \qquad
   \sigma^2 = \underbrace{\frac1K \sum_k |\mu_k - \mu|^2}_{\text{epistemic}}
            + \underbrace{\frac1K \sum_k \sigma_k^2}_{\text{aleatoric}},

the exact variance of the mixture (Lakshminarayanan et al. 2017); the epistemic part uses
``1/K`` rather than ``1/(K - 1)`` for that reason. For complex images ``|.|^2`` is the
squared modulus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from .._validate import check_model, finite_float, positive_int
from ._common import Wrapper, model_config
from .heads import is_heteroscedastic

# hidden non-linearities after which MCDropout drops activations by default
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.PReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Softplus,
)


class _Moments:
    """Running mean and mean squared deviation of a stream of predictions (Welford)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None
        self.aleatoric: Tensor | None = None
        self.heteroscedastic: bool | None = None

    def add(self, output: Any) -> None:
        hetero = is_heteroscedastic(output)
        if self.heteroscedastic is not None and hetero != self.heteroscedastic:
            raise ValueError("all predictions must be (mean, log_var) pairs, or none: members are mixed")
        self.heteroscedastic = hetero
        mu, var = (output[0], torch.exp(output[1])) if hetero else (output, None)
        self.n += 1
        if self.mean is None:
            self.mean = mu.clone()
            self.m2 = torch.zeros(mu.shape, dtype=mu.real.dtype, device=mu.device)
        else:
            delta = mu - self.mean
            self.mean = self.mean + delta / self.n
            self.m2 = self.m2 + (delta.conj() * (mu - self.mean)).real
        if var is not None:
            self.aleatoric = var.clone() if self.aleatoric is None else self.aleatoric + (var - self.aleatoric) / self.n

    def result(self) -> tuple[Tensor, Tensor, Tensor]:
        assert self.mean is not None and self.m2 is not None
        aleatoric = self.aleatoric if self.aleatoric is not None else torch.zeros_like(self.m2)
        return self.mean, self.m2 / self.n, aleatoric


def _mean_std(parts: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    mean, epistemic, aleatoric = parts
    return mean, torch.sqrt(epistemic + aleatoric)


class MCDropout(Wrapper):
    r"""Monte-Carlo dropout (Gal & Ghahramani 2016) over any model, without changing its code.

    Forward hooks apply ``dropout(p)`` (inverted scaling ``1 / (1 - p)``) to the output of
    every hidden non-linearity of ``model`` (the module types in :data:`ACTIVATIONS`), or
    of the ``modules`` given. Dropout is active in training *and* at inference, so
    ``wrapper(y)`` is one random sample (train the wrapper itself, so that the network
    learns with the dropout it is sampled with) and :meth:`predict` returns the mean and
    standard deviation of ``n_samples`` samples. Dropout layers the model already has
    keep following ``train()``/``eval()``. The hooks live on the wrapped model's modules:
    :meth:`remove` takes them off to use the model without dropout again.

    Parameters
    ----------
    model : nn.Module
        Any model ``y -> x`` or ``y -> (mean, log_var)``.
    p : float
        Drop probability in (0, 1).
    n_samples : int
        Samples drawn by :meth:`predict`.
    modules : sequence of nn.Module types or instances, optional
        Where to drop (outputs of these modules); default the activations. A model whose
        last layer is an activation needs this, or its output pixels would be dropped.
    channelwise : bool
        Drop whole feature channels (``dropout2d``/``dropout3d``, for convolutional
        features ``(N, C, *spatial)``) instead of single activations.

    Notes
    -----
    Shape: ``forward``: as ``model``; ``predict``: ``y -> ((*batch, *image), (*batch, *image))``.
    """

    def __init__(
        self,
        model: nn.Module,
        p: float = 0.1,
        n_samples: int = 20,
        *,
        modules: Sequence[type[nn.Module] | nn.Module] | None = None,
        channelwise: bool = False,
    ) -> None:
        super().__init__()
        self.model = check_model(model)
        self.p = finite_float(p, "p")
        if not 0.0 < self.p < 1.0:
            raise ValueError(f"p must be in (0, 1), got {p}")
        self.n_samples = positive_int(n_samples, "n_samples")
        self.channelwise = bool(channelwise)
        self._custom_modules = modules is not None
        targets = self._targets(modules)
        if not targets:
            raise ValueError(
                f"{type(model).__name__} has no hidden activation modules "
                f"({', '.join(t.__name__ for t in ACTIVATIONS)}) to apply dropout after; pass modules=[...]"
            )
        self._handles = [m.register_forward_hook(self._hook) for m in targets]

    def _targets(self, modules: Sequence[type[nn.Module] | nn.Module] | None) -> list[nn.Module]:
        if modules is None:
            types: tuple[type[nn.Module], ...] = ACTIVATIONS
            instances: list[nn.Module] = []
        else:
            if isinstance(modules, (nn.Module, type)) or not isinstance(modules, Iterable):
                raise TypeError("modules must be a sequence of nn.Module types or instances")
            types = tuple(m for m in modules if isinstance(m, type) and issubclass(m, nn.Module))
            instances = [m for m in modules if isinstance(m, nn.Module)]
            if len(types) + len(instances) != len(modules):
                raise TypeError("modules must hold nn.Module types or instances only")
        owned = {id(m) for m in self.model.modules()}
        for m in instances:
            if id(m) not in owned:
                raise ValueError(f"modules holds a {type(m).__name__} that is not part of the model")
        picked = {id(m): m for m in instances}
        picked.update({id(m): m for m in self.model.modules() if isinstance(m, types)})
        return list(picked.values())

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        if not isinstance(output, Tensor):
            return output
        if self.channelwise and output.ndim in (4, 5):
            drop: Callable[..., Tensor] = functional.dropout2d if output.ndim == 4 else functional.dropout3d
            return drop(output, self.p, training=True)
        return functional.dropout(output, self.p, training=True)

    def wrapped(self) -> list[nn.Module]:
        return [self.model]

    def remove(self) -> nn.Module:
        """Take the dropout hooks off the wrapped model and return it (this wrapper is then
        deterministic too)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return self.model

    def forward(self, y: Tensor) -> Any:
        """One dropout sample of the model's output."""
        return self.model(y)

    def decompose(self, y: Tensor, n_samples: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean, epistemic_var, aleatoric_var)`` over ``n_samples`` (default: the wrapper's)
        dropout samples; the aleatoric part is zero unless the model is heteroscedastic."""
        n = self.n_samples if n_samples is None else positive_int(n_samples, "n_samples")
        moments = _Moments()
        for _ in range(n):
            moments.add(self.model(y))
        return moments.result()

    def predict(self, y: Tensor, n_samples: int | None = None) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the predictive distribution, see the module docstring."""
        return _mean_std(self.decompose(y, n_samples))

    def config(self) -> dict[str, Any]:
        if self._custom_modules:
            raise TypeError("an MCDropout with custom modules cannot be described by a config; use the default")
        options = {"p": self.p, "n_samples": self.n_samples, "channelwise": self.channelwise}
        return self.make_config(options, model=model_config(self.model))


class DeepEnsemble(Wrapper):
    r"""A deep ensemble (Lakshminarayanan et al. 2017): mean and spread over independently
    trained members.

    Members are trained separately (different seeds; the trainer trains one member per
    run) and combined here; heteroscedastic members (returning ``(mean, log_var)``) add
    their aleatoric variance, see the module docstring. ``ensemble(y)`` is
    :meth:`predict`.

    Parameters
    ----------
    models : sequence of nn.Module
        At least two members, all mapping the same ``y`` to images of the same shape.

    Notes
    -----
    Shape: ``y -> ((*batch, *image), (*batch, *image))``.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if isinstance(models, nn.Module) or not isinstance(models, Iterable):
            raise TypeError("models must be a sequence of nn.Module")
        members = [check_model(m, f"models[{i}]") for i, m in enumerate(models)]
        if len(members) < 2:
            raise ValueError(f"a deep ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def wrapped(self) -> list[nn.Module]:
        return list(self.members)

    def decompose(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean, epistemic_var, aleatoric_var)`` over the members."""
        moments = _Moments()
        for member in self.members:
            moments.add(member(y))
        return moments.result()

    def predict(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the ensemble's mixture."""
        return _mean_std(self.decompose(y))

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.predict(y)

    def config(self) -> dict[str, Any]:
        members = [model_config(m, f"members[{i}]") for i, m in enumerate(self.members)]
        return self.make_config({}, members=members)
