r"""Variational network (Hammernik et al. 2018; Kobler et al. 2017): unrolled gradient steps
on a data term with the known operator and a learned fields-of-experts regulariser.

.. math::

    x_{t+1} = x_t - a_t \Big[ \tfrac{1}{L} A^H (A x_t - y)
              + \sum_{k=1}^{K} K_{t,k}^T \, \phi_{t,k}(K_{t,k} x_t) \Big],
    \qquad t = 0, \dots, T - 1,

with ``L = ||A||^2`` (so that the steps ``a_t`` and activations are free of the scale of
``A``; it is the same iteration as with steps ``a_t / L`` and activations ``L phi``),
learned convolution kernels ``K_{t,k}`` (zero mean, unit norm; ``K^T`` is the transposed
convolution with the same weights, the exact adjoint of the zero-padded convolution),
learned activations ``phi_{t,k}`` as combinations of Gaussian radial basis functions and
learned steps ``a_t``. Complex (MR) images enter the convolutions as two real channels.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional

from .._validate import MAX_UNROLLED, check_int, positive_int
from ..operators.base import LinearOperator
from .base import ReconModel, is_complex_operator, resolve_dtype
from .blocks import CONV_FN, CONV_TRANSPOSE_FN, channel_image, check_ndim, image_channels, odd_kernel
from .initial import INIT_ITER, InitialReconstruction, default_init, init_config
from .memory import check_memory_options, cnn_precision, memory_config, unrolled_step


def _rbf_sweep(
    z: Tensor, weights: Tensor, start: float, spacing: float, grad: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    r"""Evaluate ``phi_k(z) = sum_j w_kj exp(-(z - mu_j)^2 / (2 sigma^2))`` for centres
    ``mu_j = start + j * spacing`` and ``sigma = spacing``, or with ``grad`` its backward
    ``(grad * phi'(z), sum grad * g_j(z))``.

    Only the ``2 M + 1`` centres nearest to each entry are summed (``M = 6`` in float32,
    9 in float64): the next one is at least ``(M + 1/2) sigma`` away, so the omitted terms
    are below ``exp(-(M + 1/2)^2 / 2) max|w|`` (``7e-10`` and ``3e-20`` times ``max|w|``),
    under the dtype's rounding; with ``n_rbf = 31`` that is 13 (19) exponentials per entry
    instead of 31. The weights are read through a table padded with ``M`` zeros on both
    sides, so every entry uses one index (its nearest centre) for all offsets, and the
    offsets are measured from the nearest centre, without cancellation. Entries more than
    ``M + 1`` spacings outside the centres are clamped there (their ``phi`` is below the
    same bound, their gradient is zero).
    """
    n_channels, n_rbf = weights.shape
    m_max = min(9 if z.dtype == torch.float64 else 6, n_rbf - 1)
    lo, hi = start - (m_max + 1) * spacing, start + (n_rbf + m_max) * spacing
    zc = z.clamp(lo, hi)
    nearest = ((zc - start) / spacing).round().clamp(0, n_rbf - 1).long()
    centers = start + spacing * torch.arange(n_rbf, dtype=torch.float64, device=z.device)
    delta = (zc - centers.to(z.dtype)[nearest]) / spacing  # from the nearest centre: no cancellation
    shape = (1, n_channels) + (1,) * (z.dim() - 2)
    # row (channel, nearest) of the table, flat in z's logical order; int32 and index_select
    # gather several times faster than int64 advanced indexing (the same values)
    index = (torch.arange(n_channels, device=z.device).reshape(shape) * n_rbf + nearest).to(torch.int32).reshape(-1)
    # table[i, k * n_rbf + j] = w[k, j + i - M] (zero outside 0 .. n_rbf - 1), one contiguous row per offset
    table = functional.pad(weights, (m_max, m_max)).unfold(1, 2 * m_max + 1, 1).reshape(-1, 2 * m_max + 1)
    table = table.t().contiguous()
    out = torch.zeros_like(z)  # phi, or sum_m w g (delta - m) for phi'
    grad_table = None if grad is None else torch.zeros_like(table)
    for i in range(2 * m_max + 1):
        d = delta - (i - m_max)
        g = torch.exp(-0.5 * d * d)
        w_i = table[i].index_select(0, index).view(z.shape)
        if grad is None:
            out.addcmul_(w_i, g)
        else:
            out.addcmul_(w_i, g * d)
            grad_table[i].index_add_(0, index, (grad * g).reshape(-1))  # type: ignore[index]
    if grad is None or grad_table is None:
        return out, None
    grad_z = torch.where((z >= lo) & (z <= hi), grad * out * (-1.0 / spacing), 0.0)
    # fold the table's gradient back: w[k, j + i - M] was read as table[i, k * n_rbf + j]
    folded = grad_table.new_zeros(n_channels, n_rbf + 2 * m_max)
    rows = grad_table.t().reshape(n_channels, n_rbf, 2 * m_max + 1)
    for i in range(2 * m_max + 1):
        folded[:, i : i + n_rbf] += rows[:, :, i]
    return grad_z, folded[:, m_max : m_max + n_rbf]


class RBFFunction(torch.autograd.Function):
    """The activation of :func:`_rbf_sweep`; the backward recomputes the Gaussians, so only
    ``z`` is stored, not one value per entry and centre."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, weights: Tensor, start: float, spacing: float) -> Tensor:
        ctx.save_for_backward(z, weights)
        ctx.start, ctx.spacing = start, spacing
        return _rbf_sweep(z, weights, start, spacing)[0]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        z, weights = ctx.saved_tensors
        grad_z, grad_w = _rbf_sweep(z, weights, ctx.start, ctx.spacing, grad.contiguous())
        return (
            grad_z if ctx.needs_input_grad[0] else None,
            grad_w if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


class RBFActivation(nn.Module):
    r"""Per-channel learned activation
    ``phi_k(z) = sum_j w_kj exp(-(z - mu_j)^2 / (2 sigma^2))`` with ``n_rbf`` centres ``mu_j``
    equispaced in ``[-v_max, v_max]`` and ``sigma`` their spacing.

    Initialised to the least-squares fit of the line ``init_slope * z`` on ``[-v_max, v_max]``
    (a quadratic regulariser); outside the range ``phi`` decays to zero. Each entry sums
    only the Gaussians that matter at the dtype's precision (13 of 31 in float32, see
    :func:`_rbf_sweep`), and the backward recomputes them instead of storing them.

    Parameters
    ----------
    n_channels : int
    n_rbf : int
        Number of basis functions, >= 2 (Hammernik et al.: 31).
    v_max : float
        Half-width of the range of the centres.
    init_slope : float
    dtype : torch.dtype, optional

    Notes
    -----
    Shape: ``(N, n_channels, *spatial) -> (N, n_channels, *spatial)``.
    """

    def __init__(
        self, n_channels: int, n_rbf: int = 31, *, v_max: float = 1.0, init_slope: float = 0.1, dtype: Any = None
    ) -> None:
        super().__init__()
        n_channels = positive_int(n_channels, "n_channels")
        n_rbf = positive_int(n_rbf, "n_rbf")
        if n_rbf < 2:
            raise ValueError(f"n_rbf must be at least 2, got {n_rbf}")
        if not (isinstance(v_max, (int, float)) and math.isfinite(v_max) and v_max > 0):
            raise ValueError(f"v_max must be a positive number, got {v_max!r}")
        dt = resolve_dtype(dtype)
        centers = torch.linspace(-v_max, v_max, n_rbf, dtype=torch.float64)
        self.sigma = 2.0 * v_max / (n_rbf - 1)
        grid = torch.linspace(-v_max, v_max, 8 * n_rbf, dtype=torch.float64)
        basis = torch.exp(-0.5 * ((grid[:, None] - centers[None, :]) / self.sigma) ** 2)
        fit = torch.linalg.lstsq(basis, float(init_slope) * grid[:, None]).solution[:, 0]
        self.v_max = float(v_max)
        self.register_buffer("centers", centers.to(dt), persistent=False)
        self.weights = nn.Parameter(fit.to(dt).expand(n_channels, n_rbf).clone())

    def forward(self, z: Tensor) -> Tensor:
        return RBFFunction.apply(z, self.weights, -self.v_max, self.sigma)


class FieldsOfExperts(nn.Module):
    r"""Gradient of a fields-of-experts regulariser, ``sum_k K_k^T phi_k(K_k x)``.

    The kernels are parametrised as ``K = (W - mean W) / ||W - mean W||`` (zero mean per
    input channel, unit norm per filter), as Hammernik et al. constrain them.

    Parameters
    ----------
    in_channels : int
        1 for real images, 2 for complex ones.
    n_filters, kernel_size, n_rbf, v_max
        Number of kernels, their odd size (>= 3), and the activations (:class:`RBFActivation`).
    ndim : int
        Spatial axes.
    dtype : torch.dtype, optional

    Notes
    -----
    Shape: ``(N, in_channels, *spatial) -> (N, in_channels, *spatial)``.
    """

    def __init__(
        self,
        in_channels: int,
        n_filters: int,
        kernel_size: int,
        *,
        ndim: int = 2,
        n_rbf: int = 31,
        v_max: float = 1.0,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.ndim = check_ndim(ndim)
        k = odd_kernel(kernel_size)
        if k < 3:
            raise ValueError(f"kernel_size must be at least 3 (a zero-mean 1x1 kernel vanishes), got {k}")
        n_filters = positive_int(n_filters, "n_filters")
        dt = resolve_dtype(dtype)
        shape = (n_filters, positive_int(in_channels, "in_channels"), *(k,) * self.ndim)
        self.kernels = nn.Parameter(torch.randn(shape, dtype=dt) / math.sqrt(math.prod(shape[1:])))
        self.activation = RBFActivation(n_filters, n_rbf, v_max=v_max, init_slope=0.1 / n_filters, dtype=dt)
        self.padding = k // 2

    def filters(self) -> Tensor:
        """The normalised kernels, shape ``(n_filters, in_channels, k, ...)``."""
        spatial = tuple(range(2, 2 + self.ndim))
        w = self.kernels - self.kernels.mean(dim=spatial, keepdim=True)
        return w / torch.linalg.vector_norm(w, dim=(1, *spatial), keepdim=True).clamp_min(1e-12)

    def forward(self, x: Tensor) -> Tensor:
        k = self.filters()
        z = CONV_FN[self.ndim](x, k, padding=self.padding)
        # the activation in the kernels' dtype (a reduced-precision z under autocast is cast back)
        return CONV_TRANSPOSE_FN[self.ndim](self.activation(z.to(k.dtype)), k, padding=self.padding)


class VariationalNetwork(ReconModel):
    r"""Variational network (Hammernik et al. 2018): ``n_steps`` unrolled gradient steps on
    ``1/(2L) ||A x - y||^2 + R_t(x)`` with learned fields-of-experts regularisers (see the
    module docstring), for CT (any XRayTransform) and MR (SENSE, NUFFT).

    Parameters
    ----------
    operator : LinearOperator
        The forward operator ``A``; complex operators (MR) give complex images.
    n_steps : int
        Unrolled steps ``T`` (Hammernik et al.: 10).
    n_filters : int
        Kernels per step (Hammernik et al.: 24).
    kernel_size : int
        Odd kernel size >= 3 (Hammernik et al.: 11).
    n_rbf : int
        Radial basis functions per activation (Hammernik et al.: 31).
    v_max : float
        Range ``[-v_max, v_max]`` of the activations' centres: the expected size of the
        filter responses, for images of order one.
    init : {"fbp", "adjoint", "zero", "cg"}, optional
        Initial ``x0`` (:class:`~precisionrecon.models.initial.InitialReconstruction`);
        default FBP for CT with a circular geometry, else the scaled adjoint. ``"cg"``
        (CG-SENSE for MR) lets the steps refine the analytic reconstruction.
    init_iter : int
        CG iterations of ``init="cg"`` (recorded in the config only then).
    filter : str
        Ramp window of an FBP initialisation (its filter and weights are the known
        operators ``"filter"`` and ``"weights"``, frozen by default).
    op_norm : float, optional
        ``||A||``; computed by power iteration when not given (and then recorded in the config).
    dtype : torch.dtype or str, optional
        Parameter dtype.
    normalize : bool
        Normalise each sample by its data scale (:meth:`ReconModel.data_scale`), so that
        the filter responses fall in the activations' range ``[-v_max, v_max]`` whatever
        the object's intensity, and restore the scale on the output.
    checkpoint : bool
        Recompute each step in the backward instead of keeping its activations
        (:mod:`~precisionrecon.models.memory`): memory of one step, not ``n_steps``.
    mixed_precision : {None, "bfloat16", "float16"}
        Run the regularisers' convolutions under ``torch.autocast`` in this dtype (the
        activations, the operator and the iterates stay in ``dtype``).

    Notes
    -----
    Shape: ``(*batch, *operator.range_shape) -> (*batch, *operator.domain_shape)``.
    Known operators: ``"operator"`` (``A`` and ``A^H``, fixed) and those of an FBP ``init``.
    """

    def __init__(
        self,
        operator: LinearOperator,
        n_steps: int = 10,
        n_filters: int = 24,
        kernel_size: int = 11,
        n_rbf: int = 31,
        *,
        v_max: float = 1.0,
        init: str | None = None,
        init_iter: int = INIT_ITER,
        filter: str = "ram-lak",
        op_norm: float | None = None,
        dtype: Any = None,
        normalize: bool = True,
        checkpoint: bool = False,
        mixed_precision: str | None = None,
    ) -> None:
        super().__init__(operator, normalize=normalize)
        dt = resolve_dtype(dtype)
        self.checkpoint, self.mixed_precision = check_memory_options(checkpoint, mixed_precision)
        init = default_init(operator) if init is None else init
        n_steps = check_int(n_steps, "n_steps", minimum=1, maximum=MAX_UNROLLED)
        if op_norm is None:
            op_norm = operator.norm()
        if not (isinstance(op_norm, (int, float)) and math.isfinite(op_norm) and op_norm > 0):
            raise ValueError(f"op_norm must be a positive number, got {op_norm!r}")
        self.op_norm = float(op_norm)
        ndim = len(operator.domain_shape)
        channels = 2 if is_complex_operator(operator) else 1
        self.init = InitialReconstruction(operator, init, filter=filter, dtype=dt, iterations=init_iter)
        self.regularizers = nn.ModuleList(
            FieldsOfExperts(channels, n_filters, kernel_size, ndim=ndim, n_rbf=n_rbf, v_max=v_max, dtype=dt)
            for _ in range(n_steps)
        )
        self.steps = nn.Parameter(torch.ones(n_steps, dtype=dt))
        self.register_known_operator("operator", f"forward operator A and its adjoint ({type(operator).__name__})")
        self.init.register_parts(self, "init.", frozen=True)
        self.remember_config(
            n_steps=n_steps,
            n_filters=n_filters,
            kernel_size=kernel_size,
            n_rbf=n_rbf,
            v_max=v_max,
            **init_config(init, init_iter),
            filter=filter,
            op_norm=self.op_norm,
            dtype=dt,
            **memory_config(self.checkpoint, self.mixed_precision),
        )

    def bind_operator(self, operator: LinearOperator) -> None:
        super().bind_operator(operator)
        self.init.rebind(operator)

    def reconstruct(self, y: Tensor) -> Tensor:
        """The unrolled steps without normalisation. Shape: ``(N, *range) -> (N, *domain)``."""
        x = self.init(y)
        for t, reg in enumerate(self.regularizers):
            x = unrolled_step(functools.partial(self._step, t, reg), x, y, checkpoint=self.checkpoint)
        return x

    def _step(self, t: int, reg: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """One unrolled gradient step (module docstring)."""
        A, inv_l, cplx = self.operator, 1.0 / self.op_norm**2, self.is_complex
        with cnn_precision(x, self.mixed_precision):
            prior = reg(image_channels(x, cplx))
        grad = A.T(A(x) - y) * inv_l + channel_image(prior.to(x.real.dtype), 0, cplx)
        return x - self.steps[t] * grad
