r"""Heteroscedastic (aleatoric) uncertainty: a log-variance head and the Gaussian NLL.

A heteroscedastic model predicts, per pixel, a mean ``mu`` and a log-variance
``s = log sigma^2`` and is trained with the Gaussian negative log-likelihood (Kendall &
Gal 2017)

.. math:: \mathrm{NLL} = \tfrac12 \left(s + (x - \mu)^2 e^{-s}\right) \;(+ \tfrac12 \log 2\pi),

which for complex images (circularly-symmetric complex Gaussian with
``E|x - mu|^2 = sigma^2``) reads ``s + |x - mu|^2 e^{-s} (+ log pi)``. Predicting the
log-variance keeps ``sigma^2 > 0`` without constraints.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import REAL, REAL_OR_COMPLEX, check_model, check_tensor, finite_float, positive_int
from ._common import Wrapper, data_scale_of, model_config

REDUCTIONS = ("mean", "sum", "none")


def is_heteroscedastic(output: Any) -> bool:
    """Whether a model output is a ``(mean, log_variance)`` pair (as a
    :class:`HeteroscedasticHead` returns) rather than one image.

    Shape: a pair of tensors ``(*batch, *image)`` each, or one such tensor.
    """
    return isinstance(output, tuple) and len(output) == 2


def gaussian_nll(
    mean: Tensor, log_var: Tensor, target: Tensor, *, reduction: str = "mean", full: bool = False
) -> Tensor:
    r"""Gaussian negative log-likelihood of ``target`` under ``N(mean, exp(log_var))``, per pixel.

    Real: ``0.5 (log_var + (target - mean)^2 exp(-log_var))``; complex (circular complex
    Gaussian, ``E|n|^2 = exp(log_var)``): ``log_var + |target - mean|^2 exp(-log_var)``.
    ``full`` adds the constant ``0.5 log(2 pi)`` (real) or ``log(pi)`` (complex).

    Parameters
    ----------
    mean, target : Tensor
        Same shape, real or complex.
    log_var : Tensor
        Real, broadcastable to ``mean``.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        Shape: ``()`` for ``"mean"`` / ``"sum"``, else the broadcast shape.
    """
    check_tensor(mean, "mean", dtype=REAL_OR_COMPLEX)
    check_tensor(target, "target", dtype=REAL_OR_COMPLEX)
    check_tensor(log_var, "log_var", dtype=REAL)
    if mean.shape != target.shape:
        raise ValueError(f"mean and target must have the same shape, got {tuple(mean.shape)} and {tuple(target.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    diff = target - mean
    sq = diff.real.square() + diff.imag.square() if diff.is_complex() else diff.square()
    if diff.is_complex():
        nll = log_var + sq * torch.exp(-log_var) + (math.log(math.pi) if full else 0.0)
    else:
        nll = 0.5 * (log_var + sq * torch.exp(-log_var)) + (0.5 * math.log(2 * math.pi) if full else 0.0)
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    return nll


def _conv(ndim: int) -> type[nn.Module]:
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class HeteroscedasticHead(Wrapper):
    r"""Wraps a reconstruction model so that it also predicts a per-pixel log-variance.

    ``head(y) = (mean, log_var)`` with ``mean = model(y)`` and ``log_var`` computed from the
    mean by a small CNN (``depth`` convolutions, PReLU between them). The CNN sees the
    mean detached, so the variance branch does not reshape the mean's features; the mean
    still receives the NLL gradient ``(mean - x) / sigma^2``. The last convolution starts
    at zero weights and bias ``init_log_var``, so the untrained head predicts the constant
    variance ``exp(init_log_var)``. Train with :func:`gaussian_nll` (the trainer does this
    automatically for models that return a pair).

    With ``normalize`` (the default of new heads) the CNN sees the mean divided by the data
    scale ``s`` and the scale is restored on the variance,

    .. math:: \log \sigma^2 = \mathrm{CNN}(\mu / s) + 2 \log s,

    so that ``sigma`` scales with the data as the mean does (``y -> c y`` gives
    ``mu -> c mu`` and ``sigma -> c sigma`` for a scale-aware model) and the CNN sees images
    of order one. ``s`` is the wrapped model's ``data_scale(y)``
    (:meth:`~precisionrecon.models.ReconModel.data_scale`, through wrappers); for a model
    without one, the rms of the mean over the image axes, per item (also of degree one in
    the mean). It is detached, like the mean, and ``max(s, tiny)`` is used, so that
    ``y = 0`` gives a finite (very negative) log-variance.

    Parameters
    ----------
    model : nn.Module
        Any model ``y -> x``; complex outputs are fed to the CNN as (real, imaginary)
        channels when ``complex_valued``.
    hidden : int
        Channels of the hidden convolutions.
    depth : int
        Number of convolutions (>= 1).
    kernel_size : int
        Odd kernel side.
    ndim : {2, 3}
        Image dimension: 2-D images ``(*batch, ny, nx)`` or volumes ``(*batch, nz, ny, nx)``.
    complex_valued : bool
        The model returns complex images (MR).
    init_log_var : float
        Initial constant log-variance (of the normalised image with ``normalize``).
    normalize : bool
        Predict the log-variance of the mean divided by the data scale (see above).
        Configs written before this option existed build with ``normalize=False``.

    Notes
    -----
    Shape: ``y -> ((*batch, *image), (*batch, *image))``; ``log_var`` is real.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        hidden: int = 32,
        depth: int = 3,
        kernel_size: int = 3,
        ndim: int = 2,
        complex_valued: bool = False,
        init_log_var: float = 0.0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.model = check_model(model)
        self.hidden = positive_int(hidden, "hidden")
        self.depth = positive_int(depth, "depth")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
        self.ndim = ndim
        self.complex_valued = bool(complex_valued)
        # exp(+-80) is still a float32 number: a larger start over- or underflows the variance
        self.init_log_var = finite_float(init_log_var, "init_log_var", minimum=-80.0)
        if self.init_log_var > 80.0:
            raise ValueError(f"init_log_var must be <= 80.0, got {self.init_log_var}")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
        self.normalize = normalize
        conv = _conv(ndim)
        channels = [2 if self.complex_valued else 1] + [self.hidden] * (self.depth - 1) + [1]
        layers: list[nn.Module] = []
        for i in range(self.depth):
            layers.append(conv(channels[i], channels[i + 1], self.kernel_size, padding=self.kernel_size // 2))
            if i < self.depth - 1:
                layers.append(nn.PReLU(channels[i + 1]))
        # the head computes in the wrapped model's precision
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())
        self.head = nn.Sequential(*layers).to(dtype)
        last = layers[-1]
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, self.init_log_var)

    def wrapped(self) -> list[nn.Module]:
        return [self.model]

    def log_variance(self, mean: Tensor, scale: Tensor | None = None) -> Tensor:
        """The head alone: log-variance of a given mean image.

        Parameters
        ----------
        mean : Tensor
            Shape ``(*batch, *image)``.
        scale : Tensor, optional
            The data scale ``s``, shape ``(*batch,)``, used with ``normalize`` (ignored
            without); default the rms of ``mean`` per item.

        Returns
        -------
        Tensor
            Shape ``(*batch, *image)``, real.
        """
        check_tensor(mean, "mean", dtype=REAL_OR_COMPLEX)
        if mean.is_complex() != self.complex_valued:
            raise TypeError(
                f"the model returns {'complex' if mean.is_complex() else 'real'} images but the head was built "
                f"with complex_valued={self.complex_valued}"
            )
        if mean.ndim < self.ndim:
            raise ValueError(f"mean must have at least {self.ndim} axes (*batch, *image), got {tuple(mean.shape)}")
        image = mean.shape[mean.ndim - self.ndim :]
        batch = mean.shape[: mean.ndim - self.ndim]
        m = mean.detach().reshape(-1, 1, *image)
        if not self.normalize:
            return self.head(self._channels(m)).reshape(*batch, *image)
        if scale is None:
            s = m.abs().square().flatten(1).mean(1).sqrt()
        else:
            check_tensor(scale, "scale", dtype=REAL)
            if tuple(scale.shape) != tuple(batch):
                raise ValueError(f"scale must have the batch shape {tuple(batch)} of mean, got {tuple(scale.shape)}")
            s = scale.detach().reshape(-1)
        s = s.clamp_min(torch.finfo(s.dtype).tiny).reshape(-1, 1, *(1,) * self.ndim)
        log_var = self.head(self._channels(m / s)) + 2.0 * torch.log(s)
        return log_var.reshape(*batch, *image)

    def _channels(self, m: Tensor) -> Tensor:
        """``(N, 1, *image)``, complex as (real, imaginary) channels."""
        return torch.cat([m.real, m.imag], dim=1) if self.complex_valued else m

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.model(y)
        if is_heteroscedastic(mean):
            raise TypeError("the wrapped model already returns (mean, log_var); do not stack heteroscedastic heads")
        scale = data_scale_of(self.model, y) if self.normalize else None
        return mean, self.log_variance(mean, scale)

    def predict(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` with the aleatoric ``std = exp(log_var / 2)``."""
        mean, log_var = self(y)
        return mean, torch.exp(0.5 * log_var)

    def config(self) -> dict[str, Any]:
        options = {
            "hidden": self.hidden,
            "depth": self.depth,
            "kernel_size": self.kernel_size,
            "ndim": self.ndim,
            "complex_valued": self.complex_valued,
            "init_log_var": self.init_log_var,
            "normalize": self.normalize,
        }
        return self.make_config(options, model=model_config(self.model))
