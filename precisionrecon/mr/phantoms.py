"""Complex MR phantoms (Shepp-Logan magnitude with a smooth phase) and complex Gaussian noise."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .._validate import as_shape
from ..data.phantoms import SHEPP_LOGAN_2D, SHEPP_LOGAN_SEMI_AXES_Z
from ._common import as_complex

# The modified Shepp-Logan table and its z semi-axes live in data.phantoms (the lower floor).
# The 3-D MR phantom offsets three small ellipsoids along z (Kak & Slaney's head); the CT
# phantom keeps every centre at z = 0.
_CENTRES_Z = (0.0, 0.0, 0.0, 0.0, -0.15, 0.25, 0.25, 0.0, 0.0, 0.0)


def _coordinates(shape: tuple[int, ...]) -> list[Tensor]:
    """Normalised coordinates in [-1, 1]: x along the last axis (left to right), y along the
    second to last axis pointing *up* (row 0 at the top, the usual display), z along axis -3."""
    def axis(n: int) -> Tensor:
        return (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) / (n / 2)

    grids = torch.meshgrid(*(axis(n) for n in shape), indexing="ij")
    x, y = grids[-1], -grids[-2]
    return [x, y] if len(shape) == 2 else [x, y, grids[0]]


def smooth_phase(shape: Sequence[int], amplitude: float = math.pi / 2) -> Tensor:
    r"""A smooth phase map :math:`\varphi = a\,(0.5 x - 0.3 y + 0.4 (x^2 + y^2) - 0.2 x y\ [+ 0.3 z])`.

    Linear terms model a shifted echo or off-centre field of view, quadratic ones a smooth
    B0 / RF phase. Coordinates as in :func:`shepp_logan`. Shape ``shape`` (2-D or 3-D),
    float64, in radians; :math:`|\varphi| \le 1.8 a` over the field of view.
    """
    shape = as_shape(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be 2-D or 3-D, got {shape}")
    c = _coordinates(shape)
    x, y = c[0], c[1]
    phase = 0.5 * x - 0.3 * y + 0.4 * (x**2 + y**2) - 0.2 * x * y
    if len(shape) == 3:
        phase = phase + 0.3 * c[2]
    return amplitude * phase


def shepp_logan(
    shape: Sequence[int],
    *,
    phase_amplitude: float = math.pi / 2,
    dtype: torch.dtype = torch.complex64,
) -> Tensor:
    r"""Complex modified Shepp-Logan phantom: magnitude of Toft's modified Shepp-Logan (2-D) or
    its 3-D ellipsoid version, times :math:`e^{i\varphi}` with :func:`smooth_phase`.

    Coordinates are normalised to [-1, 1] on every axis (x to the right, y up with row 0 at
    the top, z along axis -3), so the head fills the field of view like the classic phantom
    and is stretched for non-square shapes. The magnitude is in [0, 1].

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``.
    phase_amplitude : float
        Amplitude :math:`a` of the phase (0 gives a real-valued phantom).
    dtype : torch.dtype
        ``torch.complex64`` or ``torch.complex128``.

    Returns
    -------
    Tensor
        Shape ``shape``, complex.
    """
    shape = as_shape(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (ny, nx) or (nz, ny, nx), got {shape}")
    if dtype not in (torch.complex64, torch.complex128):
        raise TypeError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    if not math.isfinite(phase_amplitude):
        raise ValueError(f"phase_amplitude must be finite, got {phase_amplitude}")
    c = _coordinates(shape)
    mag = torch.zeros(shape, dtype=torch.float64)
    if len(shape) == 2:
        for value, a, b, x0, y0, deg in SHEPP_LOGAN_2D:
            t = math.radians(deg)
            xr = (c[0] - x0) * math.cos(t) + (c[1] - y0) * math.sin(t)
            yr = -(c[0] - x0) * math.sin(t) + (c[1] - y0) * math.cos(t)
            mag += value * ((xr / a) ** 2 + (yr / b) ** 2 <= 1.0)
    else:
        for (value, a, b, x0, y0, deg), cc, z0 in zip(SHEPP_LOGAN_2D, SHEPP_LOGAN_SEMI_AXES_Z, _CENTRES_Z, strict=True):
            t = math.radians(deg)
            xr = (c[0] - x0) * math.cos(t) + (c[1] - y0) * math.sin(t)
            yr = -(c[0] - x0) * math.sin(t) + (c[1] - y0) * math.cos(t)
            mag += value * ((xr / a) ** 2 + (yr / b) ** 2 + ((c[2] - z0) / cc) ** 2 <= 1.0)
    mag = mag.clamp_min(0.0)
    return torch.polar(mag, smooth_phase(shape, phase_amplitude)).to(dtype)


def add_noise(
    x: Tensor,
    snr_db: float,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Add circularly symmetric complex Gaussian noise at a given signal-to-noise ratio.

    .. math:: y = x + n, \quad n \sim \mathcal{CN}(0, \sigma^2 I), \quad
       \sigma^2 = \frac{\operatorname{mean}|x|^2}{10^{\mathrm{SNR}/10}}

    (real and imaginary parts independent with variance :math:`\sigma^2/2`); the mean is taken
    over all entries of ``x``, zeros included. Apply it to fully sampled k-space before
    masking, so that the noise level does not depend on the mask.

    Parameters
    ----------
    x : Tensor
        Complex (or real, promoted) data of any shape.
    snr_db : float
        SNR in decibels, :math:`10 \log_{10}(\operatorname{mean}|x|^2 / \sigma^2)`.
    seed : int, optional
        Seed of a fresh CPU generator (ignored when ``generator`` is given).
    generator : torch.Generator, optional
        Generator to draw from.

    Returns
    -------
    Tensor
        ``x + n``, same shape and complex dtype as ``x``.
    """
    x = as_complex(x)
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    if generator is None:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    power = float((x.detach().abs() ** 2).mean())
    sigma = math.sqrt(power / 10 ** (snr_db / 10))
    noise = torch.randn(x.shape, dtype=x.dtype, generator=generator, device=generator.device)
    return x + sigma * noise.to(x.device)  # complex randn has E|n|^2 = 1
