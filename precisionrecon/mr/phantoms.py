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


def random_phase(
    shape: Sequence[int],
    amplitude: float = math.pi / 2,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""A random smooth phase map, as a real image's phase looks after SENSE with estimated maps.

    .. math::

        \varphi = \varphi_0 + u\,\frac{q}{\max |q|} + w\,\angle(-p_c,\ p - p_c)

    - :math:`\varphi_0` uniform in :math:`[-\pi, \pi]`: the global phase;
    - :math:`q` a polynomial of degree 2 without constant term (2-D: :math:`x, y, x^2, xy,
      y^2`; 3-D adds :math:`z, z^2, xz, yz`) with coefficients uniform in [-1, 1], and
      :math:`u` uniform in :math:`[0, 1.8 a]` (the range of :func:`smooth_phase`): B0 and
      off-centre phase;
    - :math:`\angle(-p_c, p - p_c)` the angle in the x-y plane between the directions from
      a point :math:`p_c` to the centre and to the position, with :math:`p_c` at a uniform
      azimuth and a distance uniform in [1.5, 2.5] half fields of view (beyond the corners:
      the angle stays in :math:`(-\pi/2, \pi/2)`, continuous), and :math:`w` uniform in
      [-1, 1]: the phase of a loop coil outside the field of view, which maps normalised to
      a reference coil (NLINV, ESPIRiT) leave in the image.

    Coordinates as in :func:`shepp_logan`.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``.
    amplitude : float
        :math:`a \ge 0`.
    generator : torch.Generator, optional
        Source of the random draws (seeded: the same map for the same state).

    Returns
    -------
    Tensor
        Shape ``shape``, float64, in radians.
    """
    shape = as_shape(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be 2-D or 3-D, got {shape}")
    if not math.isfinite(amplitude) or amplitude < 0:
        raise ValueError(f"amplitude must be a finite number >= 0, got {amplitude}")

    def uniform(lo: float, hi: float, n: int = 1) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    c = _coordinates(shape)
    x, y = c[0], c[1]
    terms = [x, y, x * x, x * y, y * y]
    if len(shape) == 3:
        z = c[2]
        terms += [z, z * z, x * z, y * z]
    coeffs = uniform(-1.0, 1.0, len(terms))
    q = sum(float(a) * t for a, t in zip(coeffs, terms, strict=True))
    q = q / q.abs().max().clamp_min(1e-12)
    offset, u, w, angle, dist = (float(v) for v in torch.cat([
        uniform(-math.pi, math.pi), uniform(0.0, 1.8 * amplitude), uniform(-1.0, 1.0),
        uniform(0.0, 2 * math.pi), uniform(1.5, 2.5)]))
    px, py = dist * math.cos(angle), dist * math.sin(angle)
    # the angle from -p_c to p - p_c; |p_c| > sqrt(2) >= |p| keeps it within (-pi/2, pi/2)
    coil = torch.atan2(-px * (y - py) + py * (x - px), -px * (x - px) - py * (y - py))
    return offset + u * q + w * coil


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
