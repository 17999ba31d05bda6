"""Non-uniform FFT (finufft on the CPU, cufinufft on CUDA) with autograd, and its
Toeplitz-embedded normal operator."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import REAL, as_shape, batch_shape, check_tensor
from ..operators.base import LinearOperator
from ._common import as_complex, prod, real_dtype

_MAX_PLANS = 8  # plans cached per operator (one per batch size, precision, device, thread count)
_MIN_THREADED_WORK = 1 << 15  # points + grid cells (times the batch) below which finufft runs on one thread
_SINGLE_EPS = 1e-6  # finufft's floor for complex64 data (below it only warns and rounds)
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def _import(name: str) -> Any:
    """The module, or None when it is missing or cannot load (e.g. no CUDA driver for cufinufft)."""
    try:
        return __import__(name)
    except (ImportError, OSError):
        return None


# --------------------------------------------------------------------------- readable oracle


def _phases(traj: Tensor, grid: Sequence[int], dtype: torch.dtype) -> list[Tensor]:
    """Per axis ``exp(-i w_j (n - N // 2))``, shape ``(M, N_a)``."""
    w = traj.reshape(-1, len(grid)).to(real_dtype(dtype))
    out = []
    for a, n in enumerate(grid):
        idx = torch.arange(n, dtype=w.dtype, device=w.device) - n // 2
        out.append(torch.polar(torch.ones((), dtype=w.dtype, device=w.device), -w[:, a, None] * idx))
    return out


def nudft(x: Tensor, traj: Tensor, *, ortho: bool = True) -> Tensor:
    r"""Direct non-uniform DFT (the readable, slow reference of :class:`NUFFT`).

    .. math:: y_j = s \sum_n x[n]\, e^{-i\, \omega_j \cdot (n - \lfloor N/2 \rfloor)}, \qquad
       s = 1/\sqrt{\textstyle\prod_a N_a} \ (\texttt{ortho=True}) \text{ or } 1

    Cost :math:`O(M \prod N_a)`. Shape: ``(*batch, *grid) -> (*batch, *traj.shape[:-1])`` with
    ``d = traj.shape[-1]`` spatial axes.
    """
    x = as_complex(x)
    d = traj.shape[-1]
    grid = tuple(x.shape[-d:])
    e = _phases(traj.to(x.device), grid, x.dtype)
    letters = "abc"[:d]
    expr = f"...{letters}," + ",".join(f"j{c}" for c in letters) + "->...j"
    y = torch.einsum(expr, x, *e)
    if ortho:
        y = y / math.sqrt(prod(grid))
    return y.reshape(*x.shape[:-d], *traj.shape[:-1])


def nudft_adjoint(y: Tensor, traj: Tensor, grid: Sequence[int], *, ortho: bool = True) -> Tensor:
    r"""Adjoint of :func:`nudft`: :math:`x[n] = s \sum_j y_j e^{+i \omega_j \cdot (n - \lfloor N/2 \rfloor)}`.

    Shape: ``(*batch, *traj.shape[:-1]) -> (*batch, *grid)``.
    """
    y = as_complex(y, "y")
    grid = tuple(grid)
    d = len(grid)
    k = traj.dim() - 1
    yb = y.reshape(*y.shape[: y.dim() - k], -1)
    e = [p.conj() for p in _phases(traj.to(y.device), grid, y.dtype)]
    letters = "abc"[:d]
    expr = "...j," + ",".join(f"j{c}" for c in letters) + f"->...{letters}"
    x = torch.einsum(expr, yb, *e)
    if ortho:
        x = x / math.sqrt(prod(grid))
    return x


# --------------------------------------------------------------------------- plans


class _Plan:
    """A type-2 plan (forward) and its adjoint for one batch size, precision and device."""

    def __init__(self, lib: Any, cols: list[Any], grid: tuple[int, ...], n_trans: int, eps: float,
                 dtype: str, upsampfac: float, **kwargs: Any) -> None:
        self.cols = cols  # keep the points alive as long as the plan
        self.fwd = lib.Plan(2, grid, n_trans, eps, -1, dtype=dtype, upsampfac=upsampfac, **kwargs)
        self.fwd.setpts(*cols)
        self.adj = None
        if not hasattr(self.fwd, "execute_adjoint"):  # older finufft: a type-1 plan with the same kernel
            self.adj = lib.Plan(1, grid, n_trans, eps, 1, dtype=dtype, upsampfac=upsampfac, **kwargs)
            self.adj.setpts(*cols)

    def forward(self, f: Any, out: Any) -> None:
        self.fwd.execute(f, out=out)

    def adjoint(self, c: Any, out: Any) -> None:
        if self.adj is None:
            self.fwd.execute_adjoint(c, out=out)
        else:
            self.adj.execute(c, out=out)


class _Forward(torch.autograd.Function):
    """``(B, *grid) -> (B, M)``; its backward is the adjoint transform (so double backward works)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, op: NUFFT) -> Tensor:
        ctx.op = op
        return op._transform(x, adjoint=False)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return _Adjoint.apply(grad, ctx.op), None


class _Adjoint(torch.autograd.Function):
    """``(B, M) -> (B, *grid)``; its backward is the forward transform."""

    @staticmethod
    def forward(ctx: Any, y: Tensor, op: NUFFT) -> Tensor:
        ctx.op = op
        return op._transform(y, adjoint=True)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return _Forward.apply(grad, ctx.op), None


# --------------------------------------------------------------------------- operator


@dataclass(frozen=True, eq=False)
class NUFFT(LinearOperator):
    r"""Non-uniform discrete Fourier transform onto a k-space trajectory.

    .. math:: (A x)_j = s \sum_n x[n]\, e^{-i\, \omega_j \cdot (n - \lfloor N/2 \rfloor)}, \qquad
       (A^H y)[n] = s \sum_j y_j\, e^{+i\, \omega_j \cdot (n - \lfloor N/2 \rfloor)}

    with :math:`s = 1/\sqrt{\prod_a N_a}` for ``ortho=True`` (then, on the Cartesian grid
    :func:`~precisionrecon.mr.trajectories.cartesian`, ``A`` is the centred orthonormal FFT) or 1.
    The forward is a finufft type-2 transform (``isign=-1``) and the adjoint the adjoint of the
    same plan (type 1, ``isign=+1``, same kernel and points), so the pair is adjoint up to
    rounding, and each approximates the exact sum to the relative tolerance ``eps``. On CUDA
    tensors cufinufft is used when it is importable (otherwise the data go through the host,
    with one warning); without finufft the direct sum :func:`nudft` is the (slow) fallback.
    Both directions are ``torch.autograd.Function``\ s whose backward is the other direction.
    All batch dims (and channel dims, e.g. coils) are stacked into finufft's ``n_trans``; plans
    are cached per batch size, precision, device and thread count (``torch.get_num_threads()``,
    or 1 for transforms of fewer than 32768 points and grid cells).

    Parameters
    ----------
    traj : Tensor
        ``(*traj_shape, d)`` k-space positions :math:`\omega` in radians per pixel, last axis in
        the order of the image axes (``(k_y, k_x)`` or ``(k_z, k_y, k_x)``), within
        :math:`[-3\pi, 3\pi]` (the transform is :math:`2\pi`-periodic).
    image_shape : tuple of int
        Trailing input shape: any channel axes (e.g. coils) followed by the ``d`` spatial
        axes, e.g. ``(ny, nx)`` or ``(n_coils, ny, nx)``.
    eps : float
        Requested relative tolerance of finufft; complex64 data use ``max(eps, 1e-6)``.
    ortho : bool
        Scale by :math:`1/\sqrt{\prod_a N_a}` (default) or not (plain sum).
    upsampfac : float
        finufft's grid oversampling (2.0, or 1.25 for less memory and often more speed).

    Notes
    -----
    Shape: ``(*batch, *channels, *grid) -> (*batch, *channels, *traj_shape)``, complex (real
    input is promoted). Gradients flow to the data, not to ``traj``.
    """

    traj: Tensor
    image_shape: tuple[int, ...]
    eps: float = 1e-6
    ortho: bool = True
    upsampfac: float = 2.0

    def __post_init__(self) -> None:
        t = self.traj
        check_tensor(t, "traj", dtype=REAL)
        if t.requires_grad:
            raise ValueError("traj requires grad; gradients with respect to the trajectory are not supported")
        if t.numel() == 0:
            raise ValueError(f"traj must hold at least one sample point, got shape {tuple(t.shape)}")
        if t.dim() < 2 or t.shape[-1] not in (1, 2, 3):
            raise ValueError(f"traj must have shape (*traj_shape, d) with d in (1, 2, 3), got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()) or float(t.abs().max()) > 3 * math.pi:
            raise ValueError("traj must be finite and within [-3 pi, 3 pi] (radians per pixel)")
        object.__setattr__(self, "traj", t.detach().to(torch.float64, copy=True))  # immutable: own copy
        shape = as_shape(self.image_shape, "image_shape")
        if len(shape) < t.shape[-1]:
            raise ValueError(f"image_shape {shape} has fewer than d = {t.shape[-1]} spatial axes")
        object.__setattr__(self, "image_shape", shape)
        if not (isinstance(self.eps, (int, float)) and 1e-15 <= self.eps < 1):
            raise ValueError(f"eps must be in [1e-15, 1), got {self.eps!r}")
        if not isinstance(self.ortho, bool):
            raise TypeError(f"ortho must be a bool, got {self.ortho!r}")
        if not self.upsampfac > 1:
            raise ValueError(f"upsampfac must be > 1 (2.0 or 1.25), got {self.upsampfac!r}")
        self.__dict__["_plans"] = {}
        self.__dict__["_points"] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the finufft plans behind (rebuilt on first use)."""
        state = dict(self.__dict__)
        state["_plans"], state["_points"] = {}, {}
        state.pop("T", None)  # the cached adjoint refers back to this object
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ----------------------------------------------------------------- shapes
    @property
    def ndim(self) -> int:
        """Number of spatial axes ``d``."""
        return int(self.traj.shape[-1])

    @property
    def grid(self) -> tuple[int, ...]:
        """The spatial image shape (the last ``d`` axes of ``image_shape``)."""
        return self.image_shape[-self.ndim :]

    @property
    def traj_shape(self) -> tuple[int, ...]:
        return tuple(self.traj.shape[:-1])

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.image_shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.image_shape[: -self.ndim] + self.traj_shape

    @property
    def device(self) -> torch.device:
        return self.traj.device

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(prod(self.grid)) if self.ortho else 1.0

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    # ----------------------------------------------------------------- application
    def apply(self, x: Tensor) -> Tensor:
        """Image -> k-space samples. Shape: ``(*batch, *image_shape) -> (*batch, *range_shape)``."""
        x = as_complex(x)
        batch = batch_shape(x, self.image_shape, "x")
        y = _Forward.apply(x.reshape(-1, *self.grid), self)
        return y.reshape(*batch, *self.range_shape)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """k-space samples -> image. Shape: ``(*batch, *range_shape) -> (*batch, *image_shape)``."""
        y = as_complex(y, "y")
        batch = batch_shape(y, self.range_shape, "y")
        x = _Adjoint.apply(y.reshape(-1, prod(self.traj_shape)), self)
        return x.reshape(*batch, *self.image_shape)

    def toeplitz(self, weights: Tensor | None = None) -> ToeplitzNormal:
        """The normal operator ``A^H W A`` by Toeplitz embedding (see :class:`ToeplitzNormal`)."""
        return ToeplitzNormal(self, weights)

    # ----------------------------------------------------------------- back ends
    def _transform(self, data: Tensor, adjoint: bool) -> Tensor:
        """Run the transform on ``(B, *grid)`` (forward) or ``(B, M)`` (adjoint) data."""
        n_trans = data.shape[0]
        m = prod(self.traj_shape)
        out_shape = (n_trans, *self.grid) if adjoint else (n_trans, m)
        if n_trans == 0:
            return data.new_zeros(out_shape)
        data = data.detach().resolve_conj().resolve_neg().contiguous()
        if data.is_cuda:
            cufinufft = _import("cufinufft")
            if cufinufft is not None:
                return self._run(cufinufft, data, out_shape, adjoint)
            _warn_once("cufinufft", "cufinufft is not importable: the NUFFT runs through the host with finufft")
            return self._transform(data.cpu(), adjoint).to(data.device)
        finufft = _import("finufft")
        if finufft is None:
            _warn_once("finufft", "finufft is not importable: the NUFFT falls back to the slow direct sum (nudft)")
            traj = self.traj.reshape(-1, self.ndim)
            if adjoint:
                return nudft_adjoint(data, traj, self.grid, ortho=self.ortho)
            return nudft(data, traj, ortho=self.ortho)
        return self._run(finufft, data, out_shape, adjoint)

    def _run(self, lib: Any, data: Tensor, out_shape: tuple[int, ...], adjoint: bool) -> Tensor:
        plan = self._plan(lib, data)
        out = torch.empty(out_shape, dtype=data.dtype, device=data.device)
        if data.is_cuda:
            torch.cuda.current_stream(data.device).synchronize()  # cufinufft runs on its own stream
            (plan.adjoint if adjoint else plan.forward)(data, out)
            torch.cuda.synchronize(data.device)
        else:
            (plan.adjoint if adjoint else plan.forward)(data.numpy(), out.numpy())
        if self.ortho:
            out.mul_(self.scale)
        return out

    def _plan(self, lib: Any, data: Tensor) -> _Plan:
        cuda = data.is_cuda
        # One thread for small transforms: OpenMP start-up and barriers cost more than they
        # save there (milliseconds on a busy machine for a transform of microseconds).
        work = data.shape[0] * (prod(self.traj_shape) + prod(self.grid))
        threads = torch.get_num_threads() if work >= _MIN_THREADED_WORK else 1
        key = (str(data.device), data.shape[0], data.dtype, threads)
        plans: dict[Any, _Plan] = self.__dict__["_plans"]
        if key not in plans:
            if len(plans) >= _MAX_PLANS:
                plans.pop(next(iter(plans)))
            real = real_dtype(data.dtype)
            pkey = (str(data.device), real)
            points: dict[Any, list[Any]] = self.__dict__["_points"]
            if pkey not in points:
                flat = self.traj.reshape(-1, self.ndim).to(device=data.device, dtype=real)
                cols = [flat[:, a].contiguous() for a in range(self.ndim)]
                points[pkey] = cols if cuda else [c.numpy() for c in cols]
            dtype = "complex64" if data.dtype == torch.complex64 else "complex128"
            if cuda:
                kwargs: dict[str, Any] = {"gpu_device_id": data.device.index or 0}
            else:
                kwargs = {"nthreads": threads}
            eps = max(self.eps, _SINGLE_EPS) if dtype == "complex64" else self.eps
            plans[key] = _Plan(lib, points[pkey], self.grid, data.shape[0], eps, dtype, self.upsampfac, **kwargs)
        return plans[key]

    def __repr__(self) -> str:
        return (
            f"NUFFT(traj=<{tuple(self.traj.shape)}>, image_shape={self.image_shape}, eps={self.eps}, "
            f"ortho={self.ortho}, upsampfac={self.upsampfac})"
        )


@dataclass(frozen=True, eq=False)
class ToeplitzNormal(LinearOperator):
    r"""The normal operator :math:`A^H W A` of a :class:`NUFFT` by Toeplitz embedding.

    :math:`(A^H W A x)[n] = \sum_{n'} t(n - n')\, x[n']` with the kernel
    :math:`t(\delta) = s^2 \sum_j w_j e^{+i \omega_j \cdot \delta}` for
    :math:`\delta \in [-N+1, N-1]^d`, which one adjoint NUFFT onto a grid of twice the size
    gives once. The convolution is then circular on the doubled grid:
    ``crop(ifftn(P * fftn(zero_pad(x))))`` with ``P = fftn(t)``; no NUFFT is run per
    application (two FFTs of twice the size instead), and autograd goes through torch's FFTs.
    The kernel is computed in float64 (to the NUFFT's ``eps``) and cached per dtype and device.

    Parameters
    ----------
    nufft : NUFFT
        The operator :math:`A`.
    weights : Tensor, optional
        Real weights :math:`w` (e.g. density compensation), shape ``nufft.traj_shape``;
        default 1.

    Notes
    -----
    Shape: ``(*batch, *image_shape) -> (*batch, *image_shape)``.
    """

    nufft: NUFFT
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.nufft, NUFFT):
            raise TypeError(f"nufft must be a NUFFT, got {type(self.nufft).__name__}")
        w = self.weights
        if w is not None:
            check_tensor(w, "weights", dtype=REAL, finite=True)
            if bool((w < 0).any()):
                raise ValueError("weights must be >= 0 (density compensation), got negative values")
            if tuple(w.shape) != self.nufft.traj_shape:
                raise ValueError(f"weights must have shape {self.nufft.traj_shape}, got {tuple(w.shape)}")
        self.__dict__["_kernels"] = {}

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.nufft.image_shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.nufft.image_shape

    @property
    def device(self) -> torch.device:
        return self.nufft.device

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    def kernel(self, dtype: torch.dtype = torch.complex128, device: torch.device | str = "cpu") -> Tensor:
        """Spectrum ``P`` of the embedded kernel, shape ``2 * grid`` (cached)."""
        key = (dtype, str(device))
        cache: dict[Any, Tensor] = self.__dict__["_kernels"]
        if key not in cache:
            a = self.nufft
            d = a.ndim
            big = tuple(2 * n for n in a.grid)
            op2 = NUFFT(a.traj, big, eps=a.eps, ortho=False, upsampfac=a.upsampfac)
            w = torch.ones(a.traj_shape, dtype=torch.float64) if self.weights is None else self.weights.detach()
            with torch.no_grad():
                f = op2.adjoint_apply(w.to(device=a.device, dtype=torch.float64).to(torch.complex128))
            axes = tuple(range(-d, 0))
            t = torch.fft.ifftshift(f, dim=axes) * a.scale**2  # t[delta mod 2N]
            for ax, n in zip(axes, a.grid, strict=True):
                t.index_fill_(ax, torch.tensor([n], device=t.device), 0)  # delta = -N is never used
            cache[key] = torch.fft.fftn(t, dim=axes).to(device=device, dtype=dtype)
        return cache[key]

    def _convolve(self, x: Tensor, conj: bool) -> Tensor:
        x = as_complex(x)
        batch_shape(x, self.domain_shape, "x")
        grid = self.nufft.grid
        d = len(grid)
        axes = tuple(range(-d, 0))
        p = self.kernel(x.dtype, x.device)
        spec = torch.fft.fftn(x, s=tuple(2 * n for n in grid), dim=axes)  # zero-pads at the end
        out = torch.fft.ifftn(spec * (p.conj() if conj else p), dim=axes)
        return out[(..., *(slice(0, n) for n in grid))]

    def apply(self, x: Tensor) -> Tensor:
        """``A^H W A x``. Shape: ``(*batch, *image_shape) -> (*batch, *image_shape)``."""
        return self._convolve(x, conj=False)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return self._convolve(y, conj=True)

    def __repr__(self) -> str:
        return f"ToeplitzNormal({self.nufft!r}, weights={'None' if self.weights is None else '<tensor>'})"
