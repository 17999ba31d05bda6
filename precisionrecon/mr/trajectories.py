"""Non-Cartesian k-space trajectories in radians per pixel (finufft / torchkbnufft units)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

GOLDEN_ANGLE = math.pi * (math.sqrt(5.0) - 1.0) / 2.0  # 111.25 deg: golden-ratio step of full spokes over pi


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def radial(n_spokes: int, n_readout: int, *, golden: bool = False, start: float = 0.0) -> Tensor:
    r"""2-D radial trajectory of full-diameter spokes.

    Spoke ``s`` has angle :math:`\theta_s = s\pi / n_\mathrm{spokes}` (uniform over
    :math:`[0, \pi)`), or :math:`s \cdot 111.25^\circ` modulo :math:`2\pi` with ``golden=True``
    (Winkelmann et al., 2007), plus ``start``. Readout sample ``r`` sits at
    :math:`k = \pi (r - n_\mathrm{readout}/2) / (n_\mathrm{readout}/2)` along the spoke
    direction :math:`(\cos\theta, \sin\theta)` in (x, y), so ``n_readout = 2 N`` samples per spoke
    oversample the readout of an ``N x N`` image twice and one sample sits at :math:`k = 0`
    for even ``n_readout``. Fully sampled (Nyquist on the edge of k-space) needs about
    :math:`\pi N / 2` spokes.

    Returns
    -------
    Tensor
        ``(n_spokes, n_readout, 2)`` float64, last axis ``(k_y, k_x)`` in radians per pixel
        (the order of the image axes), values in :math:`[-\pi, \pi)`.
    """
    _positive_int(n_spokes, "n_spokes")
    _positive_int(n_readout, "n_readout")
    s = torch.arange(n_spokes, dtype=torch.float64)
    theta = start + (s * GOLDEN_ANGLE if golden else s * math.pi / n_spokes)
    r = math.pi * (torch.arange(n_readout, dtype=torch.float64) - n_readout / 2) / (n_readout / 2)
    ky = r[None, :] * torch.sin(theta)[:, None]
    kx = r[None, :] * torch.cos(theta)[:, None]
    return torch.stack([ky, kx], dim=-1)


def spiral(n_interleaves: int, n_samples: int, *, n_turns: float, k_max: float = math.pi) -> Tensor:
    r"""2-D Archimedean spiral, uniformly rotated interleaves.

    Interleave ``l`` is :math:`k(t) = k_\max\, t\, e^{i(2\pi n_\mathrm{turns} t + 2\pi l / L)}` for
    :math:`t = j / n_\mathrm{samples}`, :math:`j = 0, \ldots, n_\mathrm{samples} - 1`
    (constant angular rate; :math:`k_x + i k_y`). The radial distance between neighbouring
    turns of all interleaves together is :math:`k_\max / (L\, n_\mathrm{turns})`; Nyquist
    sampling of an ``N x N`` image (:math:`2\pi / N` with :math:`k_\max = \pi`) needs
    :math:`n_\mathrm{turns} \ge N / (2L)`.

    Parameters
    ----------
    n_interleaves : int
        Number of interleaves :math:`L`.
    n_samples : int
        Samples per interleave.
    n_turns : float
        Turns of each interleave (> 0).
    k_max : float
        Largest radius in radians per pixel, in (0, pi].

    Returns
    -------
    Tensor
        ``(n_interleaves, n_samples, 2)`` float64, last axis ``(k_y, k_x)`` in radians per pixel.
    """
    _positive_int(n_interleaves, "n_interleaves")
    _positive_int(n_samples, "n_samples")
    if not (n_turns > 0 and math.isfinite(n_turns)):
        raise ValueError(f"n_turns must be positive and finite, got {n_turns}")
    if not 0 < k_max <= math.pi:
        raise ValueError(f"k_max must be in (0, pi], got {k_max}")
    t = torch.arange(n_samples, dtype=torch.float64) / n_samples
    rot = 2 * math.pi * torch.arange(n_interleaves, dtype=torch.float64) / n_interleaves
    phi = 2 * math.pi * n_turns * t[None, :] + rot[:, None]
    r = k_max * t[None, :]
    return torch.stack([r * torch.sin(phi), r * torch.cos(phi)], dim=-1)


def cartesian(shape: tuple[int, ...] | list[int]) -> Tensor:
    r"""The Cartesian grid of the centred FFT as a trajectory: :math:`2\pi (m - \lfloor N/2 \rfloor) / N`.

    On this trajectory :class:`~precisionrecon.mr.NUFFT` (``ortho=True``) equals the centred
    orthonormal FFT. Returns ``(*shape, len(shape))`` float64.
    """
    axes = [2 * math.pi * (torch.arange(n, dtype=torch.float64) - n // 2) / n for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
