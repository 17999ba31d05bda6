r"""The shared base of the learned reconstructions: a known operator bound at construction,
named known-operator parts that can be frozen or freed, and a JSON config that rebuilds
the model without the training code.

Every model maps measured data to an image, ``model(y) -> x``, with the forward operator
``A = model.operator`` (e.g. an :class:`~precisionrecon.XRayTransform` or an MR
``SENSE``/``NUFFT``) fixed at construction. The parts of the model that are known
operators (the projector, a filter, redundancy weights) are listed by
:meth:`ReconModel.known_operators`; those with learnable pieces can be frozen
(:meth:`ReconModel.freeze`) or freed (:meth:`ReconModel.free`), which is how precision
learning is made visible: :attr:`ReconModel.n_free_parameters` counts what is learned.

``model.config()`` is a JSON-serialisable dict (class, constructor arguments, the operator
described by :mod:`precisionrecon.models.serialize`, the frozen parts);
:func:`build` rebuilds the model from it, and ``load_state_dict`` restores the learned
values (e.g. from ``safetensors.torch.load_file``).

Scale normalisation
-------------------
Learned networks see pixel values only in the range they were trained on, while the
scale of real data follows the object (and, for relative noise, so does the noise). With
``normalize=True`` (the default of new models) every model is made positively
homogeneous of degree one, ``model(c y) = c model(y)`` for ``c > 0``, by normalising each
sample by a scale taken from its own data and restoring it on the output:

.. math:: \hat x = s(y) \, f\big(y / s(y)\big), \qquad
          s(y) = \frac{\lVert y \rVert_2}{\lVert A \mathbf 1 \rVert_2},

with ``f`` the subclass's network (:meth:`ReconModel.reconstruct`), the norm over the data
axes of each batch item (``|.|`` for complex MR data) and ``A 1`` the operator applied to
the all-ones image. A uniform image of value ``v >= 0`` has ``s(A v 1) = v`` exactly, so
the normalised images are of order one whatever the object's intensity (for other objects
``s`` is a weighted rms of the image, e.g. between the mean and the maximum pixel of a
non-negative object). ``||A 1||`` is computed once per dtype and device and cached; it is
not part of the ``state_dict``. ``y = 0`` gives ``s = 0`` and the output 0 (the division
uses ``max(s, tiny)``). Configs written before this option existed have no
``"normalize"`` entry and build with ``normalize=False``: old checkpoints keep their
recorded behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import REAL_OR_COMPLEX, batch_shape, check_operator, check_tensor, dtype_name, parse_dtype
from ..operators.base import AdjointOperator, LinearOperator
from .allocator import retain_for_training
from .serialize import operator_from_dict, operator_to_dict

CONFIG_FORMAT = 1
# class name -> class of every ReconModel subclass (they register themselves when defined, see
# ReconModel.__init_subclass__); build() only ever looks names up here
_REGISTRY: dict[str, type[ReconModel]] = {}


def move_operator(op: LinearOperator, device: torch.device) -> LinearOperator:
    """The same operator for tensors on ``device``: its ``to(device)`` if it has one, else a
    copy of the (dataclass) operator with its tensor and operator fields moved."""
    if isinstance(op, AdjointOperator):
        return move_operator(op.op, device).T
    to = getattr(op, "to", None)
    if callable(to):
        return to(device)
    if not dataclasses.is_dataclass(op):
        raise TypeError(f"cannot move a {type(op).__name__} to {device}: it has no to() and is not a dataclass")
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if isinstance(value, Tensor):
            changes[f.name] = value.to(device)
        elif isinstance(value, LinearOperator):
            changes[f.name] = move_operator(value, device)
    return dataclasses.replace(op, **changes)  # type: ignore[type-var]


def is_complex_operator(op: LinearOperator) -> bool:
    """Whether the operator acts on complex images (MR) rather than real ones (CT)."""
    return op._example_dtype().is_complex


def jsonable(value: Any) -> Any:
    """Constructor arguments as JSON values: tuples as lists, dtypes by name."""
    if isinstance(value, torch.dtype):
        return dtype_name(value)
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a constructor argument of type {type(value).__name__} cannot be written to a config")


def resolve_dtype(dtype: Any) -> torch.dtype:
    """The parameter dtype of a model: ``None`` -> ``torch.get_default_dtype()``; names allowed."""
    dt = torch.get_default_dtype() if dtype is None else parse_dtype(dtype)
    if dt not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64 (the parameter dtype), got {dt}")
    return dt


def _broadcast(scale: Tensor, ndim: int) -> Tensor:
    """``(N,) -> (N, 1, ..., 1)`` with ``ndim`` trailing ones."""
    return scale.reshape(-1, *(1,) * ndim)


class ReconModel(nn.Module):
    r"""Base class of the learned reconstructions: ``model(y) -> x`` for a bound operator.

    Subclasses call ``super().__init__(operator, normalize=normalize)``, build their
    layers, declare their known-operator parts with :meth:`register_known_operator`,
    record their constructor arguments with :meth:`remember_config`, and implement
    :meth:`reconstruct` on validated data with the batch folded into one axis;
    ``forward(y)`` validates and folds ``y``, applies the scale normalisation (see the
    module docstring) and unfolds the result. They are registered by class name for
    :func:`build`. (A subclass that overrides ``forward`` itself bypasses the
    normalisation.)

    Parameters
    ----------
    operator : LinearOperator
        The forward operator ``A`` (image -> data), kept as :attr:`operator`.
    normalize : bool
        Reconstruct ``s(y) f(y / s(y))`` with the data scale ``s`` of :meth:`data_scale`
        (default), or ``f(y)``. Recorded in :meth:`config`.

    Notes
    -----
    Shape: ``(*batch, *operator.range_shape) -> (*batch, *operator.domain_shape)``; any
    number of leading batch dims. Real data (CT) give real images, complex data (MR)
    complex images. The data's real precision must match the parameters' dtype (build
    with ``dtype=torch.float64`` or call ``model.to(torch.float64)`` for float64 data).
    Moving the model to a device (``model.to(device)``, also as part of a parent module)
    moves the operator too.
    """

    def __init__(self, operator: LinearOperator, *, normalize: bool = True) -> None:
        super().__init__()
        self._operator = check_operator(operator, "operator")
        self._parts: dict[str, dict[str, Any]] = {}
        self._config_kwargs: dict[str, Any] = {}
        # ||A 1|| per (dtype, device); a plain dict, not a buffer, so that state_dicts stay as they were
        self._ones_norms: dict[tuple[torch.dtype, torch.device], Tensor] = {}
        self.normalize = normalize

    @property
    def normalize(self) -> bool:
        """Whether :meth:`forward` normalises each sample by its :meth:`data_scale`."""
        return self._normalize

    @normalize.setter
    def normalize(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"normalize must be a bool, got {type(value).__name__}")
        self._normalize = value

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # ------------------------------------------------------------------ operator
    @property
    def operator(self) -> LinearOperator:
        """The known forward operator ``A`` the model was built for."""
        return self._operator

    @property
    def is_complex(self) -> bool:
        """Whether images and data are complex (MR)."""
        return is_complex_operator(self._operator)

    def bind_operator(self, operator: LinearOperator) -> None:
        """Replace the operator by an equivalent one (e.g. the same on another device).
        Subclasses that derive operators from it extend this."""
        if tuple(operator.domain_shape) != tuple(self._operator.domain_shape) or tuple(operator.range_shape) != tuple(
            self._operator.range_shape
        ):
            raise ValueError(
                f"operator maps {tuple(operator.domain_shape)} -> {tuple(operator.range_shape)}, but the model was "
                f"built for {tuple(self._operator.domain_shape)} -> {tuple(self._operator.range_shape)}"
            )
        self._operator = operator
        self._ones_norms = {}

    def _apply(self, fn: Any, recurse: bool = True) -> ReconModel:
        # every device move (model.to, .cuda(), a parent module's .to, ...) passes here: the
        # operator follows the parameters
        out = super()._apply(fn, recurse)
        device = next((t.device for t in (*self.parameters(), *self.buffers())), None)
        if device is not None and device != self._operator.device:
            self.bind_operator(move_operator(self._operator, device))
        return out

    # ------------------------------------------------------------------ known operators
    def register_known_operator(
        self, name: str, description: str, parameters: Sequence[str] = (), *, frozen: bool = False
    ) -> None:
        """Declare a known-operator part: ``parameters`` are the (dotted) names of its
        learnable tensors, empty for a fixed operator such as the projector."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name in self._parts:
            raise ValueError(f"a known operator named {name!r} is registered already")
        names = tuple(parameters)
        for p in names:
            self.get_parameter(p)  # raises if there is no such parameter
        self._parts[name] = {"description": str(description), "parameters": names}
        if names:
            self._set_frozen(name, frozen)

    def _part(self, name: str) -> dict[str, Any]:
        if name not in self._parts:
            raise ValueError(f"name must be one of the known operators {sorted(self._parts)}, got {name!r}")
        return self._parts[name]

    def _set_frozen(self, name: str, frozen: bool) -> None:
        for p in self._part(name)["parameters"]:
            self.get_parameter(p).requires_grad_(not frozen)

    def freeze(self, name: str) -> ReconModel:
        """Fix the learnable pieces of the known operator ``name`` (no gradient, not counted
        in :attr:`n_free_parameters`). A part without learnable pieces is fixed already."""
        self._part(name)
        self._set_frozen(name, True)
        return self

    def free(self, name: str) -> ReconModel:
        """Learn the pieces of the known operator ``name`` again."""
        if not self._part(name)["parameters"]:
            raise ValueError(f"the known operator {name!r} has no learnable pieces, it cannot be freed")
        self._set_frozen(name, False)
        return self

    def is_frozen(self, name: str) -> bool:
        """Whether the known operator ``name`` receives no gradient."""
        return not any(self.get_parameter(p).requires_grad for p in self._part(name)["parameters"])

    def known_operators(self) -> dict[str, dict[str, Any]]:
        """The known-operator parts: ``{name: {"description", "n_parameters", "frozen"}}``."""
        out = {}
        for name, part in self._parts.items():
            n = sum(self.get_parameter(p).numel() for p in part["parameters"])
            out[name] = {"description": part["description"], "n_parameters": n, "frozen": self.is_frozen(name)}
        return out

    @property
    def n_parameters(self) -> int:
        """Number of parameter entries, learned or frozen."""
        return sum(p.numel() for p in self.parameters())

    @property
    def n_free_parameters(self) -> int:
        """Number of trainable parameter entries (those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ config
    def remember_config(self, **kwargs: Any) -> None:
        """Record the constructor arguments (besides the operator) for :meth:`config`."""
        self._config_kwargs = {k: jsonable(v) for k, v in kwargs.items()}

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description that rebuilds the model with :func:`build`:
        ``{"format", "class", "module", "operator", "kwargs", "frozen"}``, with
        ``kwargs["normalize"]`` the current :attr:`normalize`. The learned values are not
        in it: they are the ``state_dict``."""
        frozen = sorted(n for n, part in self._parts.items() if part["parameters"] and self.is_frozen(n))
        return {
            "format": CONFIG_FORMAT,
            "class": type(self).__name__,
            "module": type(self).__module__,
            "operator": operator_to_dict(self._operator),
            "kwargs": {**self._config_kwargs, "normalize": self.normalize},
            "frozen": frozen,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReconModel:
        """Build the model of :meth:`config` (untrained; load the ``state_dict`` after).

        A config without ``kwargs["normalize"]`` (written before the option existed)
        builds with ``normalize=False``, the behaviour its weights were trained with."""
        frozen = config.get("frozen", [])
        if not isinstance(frozen, list):
            raise ValueError(f"config['frozen'] must be a list of names, got {frozen!r}")
        kwargs = dict(config.get("kwargs", {}))
        normalize = kwargs.pop("normalize", False)
        if not isinstance(normalize, bool):
            raise ValueError(f"config['kwargs']['normalize'] must be true or false, got {normalize!r}")
        # set after construction, so that a subclass whose constructor lacks the option still builds
        model = cls(operator_from_dict(config["operator"]), **kwargs)
        model.normalize = normalize
        unknown = set(frozen) - set(model._parts)
        if unknown:
            raise ValueError(f"config['frozen'] names unknown parts {sorted(unknown)}")
        for name, part in model._parts.items():
            if part["parameters"]:
                model._set_frozen(name, name in frozen)
        return model

    # ------------------------------------------------------------------ forward helpers
    def parameter_dtype(self) -> torch.dtype | None:
        """The dtype of the floating-point parameters (``None`` without parameters)."""
        for p in self.parameters():
            if p.dtype.is_floating_point:
                return p.dtype
        return None

    def check_data(self, y: Any) -> tuple[Tensor, tuple[int, ...]]:
        """Validate ``y`` and fold its batch dims: returns ``(y of shape (N, *range), batch)``."""
        shape = tuple(self._operator.range_shape)
        check_tensor(y, "y", dtype=None)
        batch = batch_shape(y, shape, "y")
        if self.is_complex:
            check_tensor(y, "y", dtype=REAL_OR_COMPLEX)
            if not y.is_complex():
                y = y.to(torch.complex128 if y.dtype == torch.float64 else torch.complex64)
            real = y.real.dtype
        else:
            if y.dtype not in (torch.float32, torch.float64):
                raise TypeError(f"y must be float32 or float64 for a real operator, got {y.dtype}")
            real = y.dtype
        expected = self.parameter_dtype()
        if expected is not None and real != expected:
            raise TypeError(
                f"y has precision {real} but the model's parameters are {expected}; convert y or call "
                f"model.to({expected if real == torch.float32 else 'torch.float64'})"
            )
        return y.reshape(-1, *shape), batch

    def unfold(self, x: Tensor, batch: tuple[int, ...]) -> Tensor:
        """``(N, *domain) -> (*batch, *domain)``."""
        return x.reshape(*batch, *self._operator.domain_shape)

    # ------------------------------------------------------------------ scale and forward
    def ones_norm(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``||A 1||_2``, the norm of the operator applied to the all-ones image, as a
        0-dim tensor of the real ``dtype`` on ``device`` (computed once per dtype and device).

        Raises
        ------
        ValueError
            ``A 1 = 0``: the data scale is undefined (build the model with ``normalize=False``).
        """
        key = (dtype, torch.device(device))
        value = self._ones_norms.get(key)
        if value is None:
            image_dtype = dtype.to_complex() if self.is_complex else dtype
            with torch.no_grad():
                ones = torch.ones(tuple(self._operator.domain_shape), dtype=image_dtype, device=device)
                value = torch.linalg.vector_norm(self._operator(ones)).to(dtype)
            # the check synchronises; under torch.compile it would break the graph, so it is done eagerly only
            if not torch.compiler.is_compiling() and not bool(value > 0):
                raise ValueError(
                    f"the operator ({type(self._operator).__name__}) maps the all-ones image to zero, so the data "
                    "scale ||y|| / ||A 1|| is undefined; build the model with normalize=False"
                )
            self._ones_norms[key] = value
        return value

    def _folded_scale(self, yf: Tensor) -> Tensor:
        """``s(y)`` of validated, folded data: ``(N, *range) -> (N,)``, real."""
        norm = torch.linalg.vector_norm(yf.flatten(1), dim=1)  # |.| for complex data: a real norm
        return norm / self.ones_norm(norm.dtype, yf.device)

    def data_scale(self, y: Tensor) -> Tensor:
        r"""The scale of the data, ``s(y) = ||y||_2 / ||A 1||_2`` per batch item.

        Positively homogeneous of degree one (``s(c y) = c s(y)`` for ``c > 0``); a uniform
        image of value ``v >= 0`` gives ``s(A (v 1)) = v``; ``s(0) = 0``. Differentiable in ``y``.

        Parameters
        ----------
        y : Tensor
            Data, real (CT) or complex (MR).

        Returns
        -------
        Tensor
            Shape: ``(*batch, *operator.range_shape) -> (*batch,)``; the data's real dtype.
        """
        yf, batch = self.check_data(y)
        return self._folded_scale(yf).reshape(batch)

    def reconstruct(self, y: Tensor) -> Tensor:
        """The network ``f`` itself, on validated data with the batch folded, without the
        scale normalisation (implemented by subclasses; :meth:`forward` calls it).

        Shape: ``(N, *operator.range_shape) -> (N, *operator.domain_shape)``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement reconstruct(y)")

    def forward(self, y: Tensor) -> Tensor:
        """Reconstruct ``s(y) f(y / s(y))`` (``normalize=True``) or ``f(y)``.

        Shape: ``(*batch, *operator.range_shape) -> (*batch, *operator.domain_shape)``.

        The first call with autograd recording (a training step) makes the process keep
        freed memory for the next step (:func:`~precisionrecon.models.allocator.retain_freed_memory`).
        """
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():  # a process setting: eager only
            retain_for_training()
        yf, batch = self.check_data(y)
        if not self.normalize:
            return self.unfold(self.reconstruct(yf), batch)
        s = self._folded_scale(yf)
        # max(s, tiny) only matters for y = 0, where the output s f(0) is then exactly 0
        divisor = _broadcast(s.clamp_min(torch.finfo(s.dtype).tiny), yf.dim() - 1)
        x = self.reconstruct(yf / divisor)
        return self.unfold(x * _broadcast(s, x.dim() - 1), batch)

    def extra_repr(self) -> str:
        return (
            f"operator={type(self._operator).__name__} {tuple(self._operator.domain_shape)} -> "
            f"{tuple(self._operator.range_shape)}, normalize={self.normalize}"
        )


def registered_models() -> dict[str, type[ReconModel]]:
    """Class name -> class of every :class:`ReconModel` subclass imported so far."""
    return dict(_REGISTRY)


def build(config: dict[str, Any]) -> ReconModel:
    """Rebuild a model from its :meth:`ReconModel.config` (e.g. read back from JSON).

    The class is looked up by name among the registered models (:func:`registered_models`:
    every :class:`ReconModel` subclass defined so far, which includes all models of
    :mod:`precisionrecon.models`). Nothing is imported by a name from the config: its
    ``"module"`` entry is informational and ignored here, so a config cannot make this call
    run code (define, i.e. import, a model of your own before building it). The model is
    untrained and on the CPU: load its ``state_dict`` and move it with ``.to(device)``.
    A config without ``kwargs["normalize"]`` (written before the scale normalisation
    existed) builds with ``normalize=False``, so old checkpoints keep their behaviour.

    Raises
    ------
    TypeError
        ``config`` is not a dict.
    ValueError
        Unknown format or class, or a malformed operator description.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if config.get("format") != CONFIG_FORMAT:
        raise ValueError(f"config['format'] must be {CONFIG_FORMAT}, got {config.get('format')!r}")
    name = config.get("class")
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"config['class'] must name a registered model {sorted(_REGISTRY)}, got {name!r}")
    for key in ("operator", "kwargs"):
        if not isinstance(config.get(key), dict):
            raise ValueError(f"config[{key!r}] must be a dict, got {config.get(key)!r}")
    return _REGISTRY[name].from_config(config)
