r"""Learned primal-dual reconstruction (Adler & Öktem 2018).

With the normalised operator ``K = A / ||A||`` and data ``g = y / ||A||`` (the same
equations ``K x = g``), a primal memory ``f`` (``n_primal`` images) and a dual memory
``h`` (``n_dual`` data-space images), both zero at the start:

.. math::

    h_i &= h_{i-1} + \Gamma_i\big(h_{i-1},\, K f_{i-1}^{(2)},\, g\big) \\
    f_i &= f_{i-1} + \Lambda_i\big(f_{i-1},\, K^* h_i^{(1)}\big),
    \qquad i = 1, \dots, n_{iter},

and the reconstruction is ``f^{(1)}``, where ``^{(j)}`` is the j-th channel (counting from
one, as in the paper: the operator acts on the second primal channel, the adjoint on the
first dual channel). ``Gamma_i`` and ``Lambda_i`` are separate per iteration: three 3x3
convolutions with 32 channels and PReLU between them (:class:`~.blocks.ConvPReLUStack`).
The operator and its adjoint are applied in every iteration. Complex (MR) images and data
are stored as channel pairs (real, imaginary).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import MAX_UNROLLED, check_int, positive_int
from ..operators.base import LinearOperator
from .base import ReconModel, is_complex_operator, resolve_dtype
from .blocks import ConvPReLUStack, channel_image, check_ndim, image_channels
from .initial import INIT_ITER, InitialReconstruction, init_config
from .memory import check_memory_options, cnn_precision, memory_config, unrolled_step


def default_data_dims(operator: LinearOperator) -> int:
    """Trailing data axes that the dual networks convolve over: the trajectory axes of a
    NUFFT, else as many as the image has (e.g. the sinogram's ``(n_views, n_det)``, or
    ``(ny, nx)`` of multi-coil k-space with the coils folded into the batch), at most 3."""
    traj_shape = getattr(operator, "traj_shape", None)
    if isinstance(traj_shape, tuple) and traj_shape:
        return min(len(traj_shape), 3)
    return min(len(operator.domain_shape), len(operator.range_shape), 3)


class LearnedPrimalDual(ReconModel):
    r"""Learned primal-dual (Adler & Öktem 2018), their architecture by default.

    Parameters
    ----------
    operator : LinearOperator
        The forward operator ``A`` (CT or MR; complex operators give complex images).
    n_iter : int
        Unrolled iterations (10).
    n_primal, n_dual : int
        Memory channels of the primal and dual iterates (5 and 5).
    width : int
        Channels of the hidden convolutions (32).
    kernel_size : int
        Odd convolution size (3).
    n_layers : int
        Convolutions per update network (3).
    init : {"zero", "fbp", "adjoint", "cg"}
        Initial primal memory (every channel): zero as Adler & Öktem, or an FBP / scaled
        adjoint / CG on the normal equations
        (:class:`~precisionrecon.models.initial.InitialReconstruction`).
    init_iter : int
        CG iterations of ``init="cg"`` (recorded in the config only then).
    filter : str
        Ramp window of an FBP ``init`` (its parts frozen by default).
    data_dims : int, optional
        Trailing data axes convolved by the dual networks (:func:`default_data_dims`);
        the leading ones are folded into the batch.
    op_norm : float, optional
        ``||A||``; computed by power iteration when not given (and recorded in the config).
    dtype : torch.dtype or str, optional
    normalize : bool
        Normalise each sample by its data scale (:meth:`ReconModel.data_scale`), so that
        the networks see data and images of order one, and restore the scale on the output.
    checkpoint : bool
        Recompute each iteration in the backward instead of keeping its activations
        (:mod:`~precisionrecon.models.memory`): memory of one iteration, not ``n_iter``.
    mixed_precision : {None, "bfloat16", "float16"}
        Run the update networks under ``torch.autocast`` in this dtype; the operator and
        the memories stay in ``dtype``.

    Notes
    -----
    Shape: ``(*batch, *operator.range_shape) -> (*batch, *operator.domain_shape)``.
    Known operators: ``"operator"`` (fixed) and those of an FBP ``init``.
    """

    def __init__(
        self,
        operator: LinearOperator,
        n_iter: int = 10,
        n_primal: int = 5,
        n_dual: int = 5,
        width: int = 32,
        *,
        kernel_size: int = 3,
        n_layers: int = 3,
        init: str = "zero",
        init_iter: int = INIT_ITER,
        filter: str = "ram-lak",
        data_dims: int | None = None,
        op_norm: float | None = None,
        dtype: Any = None,
        normalize: bool = True,
        checkpoint: bool = False,
        mixed_precision: str | None = None,
    ) -> None:
        super().__init__(operator, normalize=normalize)
        dt = resolve_dtype(dtype)
        n_iter = check_int(n_iter, "n_iter", minimum=1, maximum=MAX_UNROLLED)
        self.checkpoint, self.mixed_precision = check_memory_options(checkpoint, mixed_precision)
        self.n_primal = positive_int(n_primal, "n_primal")
        self.n_dual = positive_int(n_dual, "n_dual")
        if op_norm is None:
            op_norm = operator.norm()
        if not (isinstance(op_norm, (int, float)) and math.isfinite(op_norm) and op_norm > 0):
            raise ValueError(f"op_norm must be a positive number, got {op_norm!r}")
        self.op_norm = float(op_norm)
        self.data_dims = check_ndim(default_data_dims(operator) if data_dims is None else data_dims, "data_dims")
        if self.data_dims > len(operator.range_shape):
            raise ValueError(
                f"data_dims must be at most {len(operator.range_shape)} (the data axes), got {self.data_dims}"
            )
        image_dims = check_ndim(len(operator.domain_shape), "the number of image axes")
        c = 2 if is_complex_operator(operator) else 1
        conv = {"width": width, "n_layers": n_layers, "kernel_size": kernel_size, "dtype": dt}
        self.dual_nets = nn.ModuleList(
            ConvPReLUStack(c * (self.n_dual + 2), c * self.n_dual, ndim=self.data_dims, **conv) for _ in range(n_iter)
        )
        self.primal_nets = nn.ModuleList(
            ConvPReLUStack(c * (self.n_primal + 1), c * self.n_primal, ndim=image_dims, **conv) for _ in range(n_iter)
        )
        self.init = InitialReconstruction(operator, init, filter=filter, dtype=dt, iterations=init_iter)
        self.register_known_operator("operator", f"forward operator A and its adjoint ({type(operator).__name__})")
        self.init.register_parts(self, "init.", frozen=True)
        self.remember_config(
            n_iter=n_iter,
            n_primal=n_primal,
            n_dual=n_dual,
            width=width,
            kernel_size=kernel_size,
            n_layers=n_layers,
            **init_config(init, init_iter),
            filter=filter,
            data_dims=self.data_dims,
            op_norm=self.op_norm,
            dtype=dt,
            **memory_config(self.checkpoint, self.mixed_precision),
        )

    def bind_operator(self, operator: LinearOperator) -> None:
        super().bind_operator(operator)
        self.init.rebind(operator)

    def _to_data_channels(self, d: Tensor) -> Tensor:
        """``(N, *range) -> (N * lead, c, *data_spatial)``."""
        k = self.data_dims
        return image_channels(d.reshape(-1, *d.shape[d.dim() - k :]), self.is_complex)

    def _from_data_channels(self, h: Tensor, index: int, n: int) -> Tensor:
        """Channel ``index`` of ``(N * lead, C, *data_spatial)`` as ``(N, *range)``."""
        return channel_image(h, index, self.is_complex).reshape(n, *self.operator.range_shape)

    def reconstruct(self, y: Tensor) -> Tensor:
        """The unrolled iterations without normalisation. Shape: ``(N, *range) -> (N, *domain)``."""
        A, scale, cplx = self.operator, 1.0 / self.op_norm, self.is_complex
        n = y.shape[0]
        g = self._to_data_channels(y * scale)
        primal = image_channels(self.init(y), cplx).repeat(1, self.n_primal, *(1,) * len(A.domain_shape))
        dual = g.new_zeros((g.shape[0], g.shape[1] * self.n_dual, *g.shape[2:]))
        for dual_net, primal_net in zip(self.dual_nets, self.primal_nets, strict=True):
            step = functools.partial(self._iteration, dual_net, primal_net, n)
            primal, dual = unrolled_step(step, primal, dual, g, checkpoint=self.checkpoint)
        return channel_image(primal, 0, cplx)

    def _iteration(
        self, dual_net: nn.Module, primal_net: nn.Module, n: int, primal: Tensor, dual: Tensor, g: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One unrolled iteration: the dual, then the primal update (module docstring)."""
        A, scale, cplx = self.operator, 1.0 / self.op_norm, self.is_complex
        second = 1 if self.n_primal > 1 else 0
        evaluated = self._to_data_channels(A(channel_image(primal, second, cplx)) * scale)
        with cnn_precision(g, self.mixed_precision):
            update = dual_net(torch.cat([dual, evaluated, g], dim=1))
        dual = dual + update.to(dual.dtype)
        back = A.T(self._from_data_channels(dual, 0, n)) * scale
        with cnn_precision(g, self.mixed_precision):
            update = primal_net(torch.cat([primal, image_channels(back, cplx)], dim=1))
        return primal + update.to(primal.dtype), dual
