"""Linear operator algebra: adjoint, composition, sums, scaling, norm.

Operators are immutable. ``A(x)`` applies, ``A.T(y)`` applies the adjoint (``A.T`` is
cached, so ``A.T.T is A``), ``A @ B`` composes, ``A + B``, ``A - B``, ``c * A`` combine,
``A.norm()`` estimates the operator norm by power iteration and ``A.replace(...)``
returns a new operator with changed fields. The adjoint of a composition is the
reversed composition of adjoints, of a sum the sum of adjoints, of ``c A`` it is
``conj(c) A^T``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

_T = TypeVar("_T")


class cached(Generic[_T]):  # noqa: N801  (used like functools.cached_property)
    """Lock-free cached property (``functools.cached_property`` holds an RLock on Python
    3.11, which ``torch.compile`` cannot trace). Works on frozen dataclasses."""

    def __init__(self, fn: Callable[[Any], _T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value


class LinearOperator:
    """Base class. Subclasses implement :meth:`apply` and :meth:`adjoint_apply`.

    Attributes
    ----------
    domain_shape, range_shape : tuple of int
        Trailing shapes of inputs and outputs; any leading batch dims pass through.
    """

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]

    def apply(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint_apply(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)

    @cached
    def T(self) -> LinearOperator:  # noqa: N802  (math notation)
        """The adjoint operator (cached: ``A.T.T is A``)."""
        return AdjointOperator(self)

    @property
    def H(self) -> LinearOperator:  # noqa: N802
        """Alias of :attr:`T` (the adjoint is the conjugate transpose for complex operators)."""
        return self.T

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator):
            return ComposedOperator(self, other)
        if isinstance(other, Tensor):
            return self.apply(other)
        return NotImplemented

    def __add__(self, other: Any) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, other)

    def __sub__(self, other: Any) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, ScaledOperator(-1.0, other))

    def __neg__(self) -> LinearOperator:
        return ScaledOperator(-1.0, self)

    def __mul__(self, scalar: Any) -> LinearOperator:
        if isinstance(scalar, (int, float, complex)) and not isinstance(scalar, bool):
            return ScaledOperator(scalar, self)
        return NotImplemented

    __rmul__ = __mul__

    def replace(self, **changes: Any) -> LinearOperator:
        """A new operator with some fields changed (``self`` is left as it is)."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} has no replaceable fields")
        return dataclasses.replace(self, **changes)

    def norm(self, *, n_iter: int = 100, rtol: float = 1e-7, seed: int = 0, dtype: torch.dtype | None = None) -> float:
        """Operator norm ``||A||_2`` by power iteration on ``A^T A`` (cached per arguments)."""
        cache = self.__dict__.setdefault("_norm_cache", {})
        key = (n_iter, rtol, seed, dtype)
        if key not in cache:
            cache[key] = power_norm(self, n_iter=n_iter, rtol=rtol, seed=seed, dtype=dtype)
        return cache[key]

    def _example_dtype(self) -> torch.dtype:
        return torch.float64

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def power_norm(
    op: LinearOperator, *, n_iter: int = 100, rtol: float = 1e-7, seed: int = 0, dtype: torch.dtype | None = None
) -> float:
    """Largest singular value of ``op`` by power iteration on ``op.T @ op``."""
    dtype = dtype or op._example_dtype()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(op.domain_shape, generator=gen, dtype=dtype).to(op.device)
    x = x / torch.linalg.vector_norm(x)
    sigma = 0.0
    with torch.no_grad():
        for _ in range(n_iter):
            z = op.T(op(x))
            nz = float(torch.linalg.vector_norm(z))
            if nz == 0.0:
                return 0.0
            new_sigma = nz**0.5
            x = z / nz
            if abs(new_sigma - sigma) <= rtol * new_sigma:
                sigma = new_sigma
                break
            sigma = new_sigma
    return sigma


class AdjointOperator(LinearOperator):
    """The adjoint of an operator; its own adjoint is the original object."""

    def __init__(self, op: LinearOperator) -> None:
        self.op = op
        self.domain_shape = op.range_shape
        self.range_shape = op.domain_shape
        self.__dict__["T"] = op  # A.T.T is A

    def apply(self, x: Tensor) -> Tensor:
        return self.op.adjoint_apply(x)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return self.op.apply(y)

    def norm(self, **kwargs: Any) -> float:
        return self.op.norm(**kwargs)

    def _example_dtype(self) -> torch.dtype:
        return self.op._example_dtype()

    @property
    def device(self) -> torch.device:
        return self.op.device

    def replace(self, **changes: Any) -> LinearOperator:
        return self.op.replace(**changes).T

    def __repr__(self) -> str:
        return f"{self.op!r}.T"


@dataclass(frozen=True)
class ComposedOperator(LinearOperator):
    """``left @ right``: ``x -> left(right(x))``, adjoint ``right.T(left.T(y))``."""

    left: LinearOperator
    right: LinearOperator

    def __post_init__(self) -> None:
        if tuple(self.left.domain_shape) != tuple(self.right.range_shape):
            raise ValueError(
                f"cannot compose: left operator's domain {tuple(self.left.domain_shape)} differs from "
                f"right operator's range {tuple(self.right.range_shape)}"
            )

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.right.domain_shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.left.range_shape)

    def apply(self, x: Tensor) -> Tensor:
        return self.left.apply(self.right.apply(x))

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return self.right.adjoint_apply(self.left.adjoint_apply(y))

    def _example_dtype(self) -> torch.dtype:
        return self.right._example_dtype()

    @property
    def device(self) -> torch.device:
        return self.right.device


@dataclass(frozen=True)
class SumOperator(LinearOperator):
    """``first + second`` on the same domain and range."""

    first: LinearOperator
    second: LinearOperator

    def __post_init__(self) -> None:
        a, b = self.first, self.second
        if tuple(a.domain_shape) != tuple(b.domain_shape) or tuple(a.range_shape) != tuple(b.range_shape):
            raise ValueError(
                f"cannot add operators {tuple(a.domain_shape)}->{tuple(a.range_shape)} and "
                f"{tuple(b.domain_shape)}->{tuple(b.range_shape)}"
            )

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.first.domain_shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.first.range_shape)

    def apply(self, x: Tensor) -> Tensor:
        return self.first.apply(x) + self.second.apply(x)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return self.first.adjoint_apply(y) + self.second.adjoint_apply(y)

    def _example_dtype(self) -> torch.dtype:
        return self.first._example_dtype()

    @property
    def device(self) -> torch.device:
        return self.first.device


@dataclass(frozen=True)
class ScaledOperator(LinearOperator):
    """``scalar * op``; the adjoint scales by the complex conjugate."""

    scalar: complex | float
    op: LinearOperator

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.op.domain_shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.op.range_shape)

    def apply(self, x: Tensor) -> Tensor:
        return self.scalar * self.op.apply(x)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        c = self.scalar.conjugate() if isinstance(self.scalar, complex) else self.scalar
        return c * self.op.adjoint_apply(y)

    def norm(self, **kwargs: Any) -> float:
        return abs(self.scalar) * self.op.norm(**kwargs)

    def _example_dtype(self) -> torch.dtype:
        return self.op._example_dtype()

    @property
    def device(self) -> torch.device:
        return self.op.device


@dataclass(frozen=True)
class IdentityOperator(LinearOperator):
    """``x -> x`` on tensors with trailing shape ``shape``."""

    shape: tuple[int, ...]

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.shape)

    def apply(self, x: Tensor) -> Tensor:
        return x

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return y

    def norm(self, **kwargs: Any) -> float:
        return 1.0


class LinearFunction(torch.autograd.Function):
    """Apply an operator that works in pieces (chunks, processes) as one autograd node.

    ``op`` provides ``_run(t, adjoint)``, the operator (``adjoint=False``) or its adjoint
    applied without autograd. The backward is the adjoint, applied through this node again
    (so double backward works); nothing but the operator is saved.
    """

    @staticmethod
    def forward(ctx: Any, t: Tensor, op: Any, adjoint: bool) -> Tensor:
        ctx.op, ctx.adjoint = op, adjoint
        return op._run(t, adjoint)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return LinearFunction.apply(grad, ctx.op, not ctx.adjoint), None, None
