"""Noise models for simulated measurements: Poisson (Beer-Lambert) and white Gaussian."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .._validate import positive_float
from ._random import make_generator


def poisson_noise(
    sinogram: Tensor,
    i0: float | Tensor,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    mu_scale: float = 1.0,
    min_count: float = 0.1,
) -> Tensor:
    r"""Photon-counting noise on line integrals (Beer-Lambert law), post-log.

    ``N ~ Poisson(i0 * exp(-mu_scale * p))`` photons reach each detector pixel; the
    measurement is ``-log(N / i0) / mu_scale``, in the units of ``p``. A pixel that counts
    no photon has no logarithm, so ``N = 0`` is replaced by ``min_count`` photons (0.1 by
    default, as in LoDoPaB-CT, Leuschner et al. 2021): a finite, large attenuation
    ``log(i0 / min_count) / mu_scale`` instead of infinity.

    For large counts ``lambda = i0 exp(-mu_scale p)`` the delta method gives mean
    ``p + 1 / (2 lambda mu_scale)`` and variance ``1 / (lambda mu_scale^2)``.

    Parameters
    ----------
    sinogram : Tensor
        Noise-free line integrals ``p``, any shape, real floating dtype, any device.
    i0 : float or Tensor
        Incident photons per pixel (> 0): a number, or a tensor that broadcasts against
        ``sinogram`` (e.g. ``(batch, 1, 1)`` per item or ``(n_det,)`` for a bow-tie).
    seed, generator : optional
        An int seed or a ``torch.Generator`` on the sinogram's device (not both); neither
        draws from torch's global generator. The same seed on the same device gives the
        same noise.
    mu_scale : float
        Converts ``p`` to optical depth (dimensionless), e.g. the attenuation per unit
        of the phantom values in 1/mm when ``p`` is in value * mm.
    min_count : float
        Photons assumed where none were counted (> 0).

    Returns
    -------
    Tensor
        Shape: as ``sinogram``, same dtype and device; a sample, so not differentiable
        (computed in float64, then cast).
    """
    if not isinstance(sinogram, Tensor):
        raise TypeError(f"sinogram must be a torch.Tensor, got {type(sinogram).__name__}")
    if not sinogram.is_floating_point():
        raise TypeError(f"sinogram must have a real floating dtype, got {sinogram.dtype}")
    mu = positive_float(mu_scale, "mu_scale")
    floor = positive_float(min_count, "min_count")
    if isinstance(i0, Tensor):
        if i0.is_complex() or not bool(torch.all(torch.isfinite(i0) & (i0 > 0))):
            raise ValueError("i0 must hold positive, finite real numbers")
        try:
            ok = torch.broadcast_shapes(i0.shape, sinogram.shape) == sinogram.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"i0 of shape {tuple(i0.shape)} must broadcast to the sinogram's {tuple(sinogram.shape)}")
        flux = i0.detach().to(device=sinogram.device, dtype=torch.float64)
    else:
        flux = torch.tensor(positive_float(i0, "i0"), dtype=torch.float64, device=sinogram.device)
    g = make_generator(seed, generator, sinogram.device)
    with torch.no_grad():
        p = sinogram.detach().to(torch.float64)
        counts = torch.poisson(flux * torch.exp(-mu * p), generator=g)
        counts = torch.where(counts > 0, counts, torch.full_like(counts, floor))
        out = -torch.log(counts / flux) / mu
    return out.to(sinogram.dtype)


def gaussian_noise(
    y: Tensor,
    level: float,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    relative: bool = True,
    item_ndim: int = 2,
) -> Tensor:
    r"""``y`` plus white Gaussian noise.

    The standard deviation is ``sigma = level * mean(|y|)`` per item when ``relative``
    (the mean over the last ``item_ndim`` axes; Adler & Öktem's "5 % noise" is
    ``level=0.05`` on each sinogram), else ``sigma = level``. For complex ``y`` the noise
    is circularly-symmetric complex Gaussian with the same ``sigma`` meaning
    ``E|n|^2 = sigma^2``: real and imaginary parts are independent with standard
    deviation ``sigma / sqrt(2)`` (and ``|y|`` is the modulus).

    Parameters
    ----------
    y : Tensor
        Real floating or complex, any device.
    level : float
        Relative (fraction of the mean modulus) or absolute standard deviation, >= 0.
    seed, generator : optional
        An int seed or a ``torch.Generator`` on ``y``'s device (not both); neither draws
        from torch's global generator.
    relative : bool
        Scale by ``mean(|y|)`` of each item.
    item_ndim : int
        Trailing axes that form one item: 2 for sinograms ``(n_views, n_det)`` and images,
        3 for 3-D projections or volumes, ... Only used when ``relative``.

    Returns
    -------
    Tensor
        Shape: as ``y``, same dtype and device. Differentiable in ``y`` (the noise and
        ``sigma`` are constants).
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if not (y.is_floating_point() or y.is_complex()):
        raise TypeError(f"y must have a floating or complex dtype, got {y.dtype}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)):
        raise TypeError(f"level must be a real number, got {type(level).__name__}")
    level = float(level)
    if not (math.isfinite(level) and level >= 0):
        raise ValueError(f"level must be finite and >= 0, got {level}")
    g = make_generator(seed, generator, y.device)
    if relative:
        if isinstance(item_ndim, bool) or not isinstance(item_ndim, int) or not 1 <= item_ndim <= y.ndim:
            raise ValueError(f"item_ndim must be an int in [1, y.ndim = {y.ndim}], got {item_ndim!r}")
        dims = tuple(range(y.ndim - item_ndim, y.ndim))
        sigma = level * y.detach().abs().mean(dim=dims, keepdim=True)
    else:
        sigma = torch.tensor(level, dtype=y.real.dtype, device=y.device)
    # torch.randn of a complex dtype draws real and imaginary parts with variance 1/2 each
    noise = torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device)
    return y + sigma * noise
