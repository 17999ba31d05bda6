"""Density compensation weights of non-Cartesian trajectories."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .._validate import as_shape, check_tensor, positive_float, positive_int
from ._common import prod
from .nufft import NUFFT


def pipe_menon_density(
    traj: Tensor,
    image_shape: Sequence[int],
    *,
    n_iter: int = 30,
    kernel_width: float = 0.5,
    eps: float = 1e-9,
) -> Tensor:
    r"""Density compensation by the fixed-point iteration of Pipe and Menon (MRM 1999).

    .. math:: w^{(k+1)}_i = \frac{w^{(k)}_i}{\sum_j K(\omega_i - \omega_j)\, w^{(k)}_j},
       \qquad w^{(0)} = 1

    with a positive, Gaussian-like kernel
    :math:`K(\Delta) = \sum_{m} g(m)\, e^{-i \Delta \cdot m}`, :math:`g` a Gaussian over the
    offsets :math:`m \in [-N+1, N-1]^d` with standard deviation
    :math:`N / (2\pi c)` pixels (:math:`c` = ``kernel_width``), so :math:`K` has a standard
    deviation of :math:`c` k-space cells (:math:`2\pi/N`). :math:`K` is :math:`2\pi`-periodic
    like the NUFFT itself (samples near :math:`+\pi` and :math:`-\pi` are neighbours). Wider
    kernels ring at the edge of the sampled region (0.5 cells gave the most accurate
    ``A.T(w * A(x))`` on radial and spiral tests); where neighbouring samples are more than
    about a cell apart (strong undersampling) a sample gets at most the kernel's area,
    :math:`(\sqrt{2\pi}\, c)^d` cells. The convolution
    :math:`\sum_j K(\omega_i - \omega_j) w_j` is evaluated exactly (to ``eps``) as
    :math:`A_2 (g \odot A_2^H w)` with a :class:`NUFFT` :math:`A_2` on the doubled grid, so no
    gridding kernel needs matching. The result is scaled so that a fully sampled Cartesian
    trajectory gets weights 1: weights are k-space areas in units of the Cartesian cell
    :math:`\prod_a 2\pi / N_a`, the scale for which ``A.T(w * A(x))`` approximates ``x``
    with ``A = NUFFT(traj, image_shape)`` (``ortho=True``).

    Parameters
    ----------
    traj : Tensor
        ``(*traj_shape, d)`` trajectory in radians per pixel.
    image_shape : tuple of int
        The image grid (last ``d`` axes used).
    n_iter : int
        Number of iterations.
    kernel_width : float
        Kernel standard deviation in k-space cells (> 0).
    eps : float
        Tolerance of the NUFFTs.

    Returns
    -------
    Tensor
        Weights, shape ``traj_shape``, float64.
    """
    positive_int(n_iter, "n_iter")
    kernel_width = positive_float(kernel_width, "kernel_width")
    check_tensor(traj, "traj", dtype=None)
    d = traj.shape[-1] if traj.dim() >= 2 else 0
    grid = as_shape(image_shape, "image_shape")[-d:] if d else ()
    op = NUFFT(traj, tuple(2 * n for n in grid), eps=eps, ortho=False)  # validates traj
    window = torch.ones((), dtype=torch.float64)
    for n in grid:
        m = torch.arange(2 * n, dtype=torch.float64) - n
        g = torch.exp(-0.5 * (m * 2 * math.pi * kernel_width / n) ** 2)
        g[0] = 0.0  # offset -N has no mirror image: keep K real
        window = window[..., None] * g
    window = window.to(op.device)
    w = torch.ones(op.traj_shape, dtype=torch.float64, device=op.device)
    with torch.no_grad():
        for _ in range(n_iter):
            conv = op(window * op.T(w.to(torch.complex128))).real
            w = w / conv.clamp_min(torch.finfo(torch.float64).tiny)
    # K is 2 pi-periodic, and the N points of a Cartesian lattice sum it to N g(0) = N per axis
    # (only the offset m = 0 survives the sum over the lattice): scale its weights to 1.
    return w * prod(grid)


def radial_density(traj: Tensor, image_shape: Sequence[int]) -> Tensor:
    r"""Analytic density compensation of a 2-D radial trajectory of full spokes.

    A sample at radius :math:`r = |\omega|` represents the area :math:`r\, \Delta r\, \Delta\theta`
    (the ramp, or Ram-Lak, filter), with :math:`\Delta r` the sample spacing along a spoke and
    :math:`\Delta\theta = \pi / n_\mathrm{spokes}` (spokes spread over :math:`\pi`, uniformly or
    by the golden angle). A sample at the centre gets its share of the central disc,
    :math:`\pi (\Delta r / 2)^2 / n_\mathrm{spokes}`, i.e. :math:`r` replaced by
    :math:`\Delta r / 4`. Areas are in units of the Cartesian cell :math:`(2\pi)^2 / (N_y N_x)`,
    as in :func:`pipe_menon_density`.

    Parameters
    ----------
    traj : Tensor
        ``(n_spokes, n_readout, 2)`` radial trajectory (e.g. :func:`~precisionrecon.mr.radial`).
    image_shape : tuple of int
        ``(..., ny, nx)``.

    Returns
    -------
    Tensor
        Weights, shape ``(n_spokes, n_readout)``, float64.
    """
    check_tensor(traj, "traj", dtype=None)
    if traj.dim() != 3 or traj.shape[-1] != 2 or traj.shape[1] < 2:
        raise ValueError(f"traj must have shape (n_spokes, n_readout >= 2, 2), got {tuple(traj.shape)}")
    ny, nx = as_shape(image_shape, "image_shape")[-2:]
    t = traj.to(torch.float64)
    dr = float(torch.linalg.vector_norm(t[:, 1:] - t[:, :-1], dim=-1).median())
    r = torch.linalg.vector_norm(t, dim=-1)
    area = torch.clamp(r, min=dr / 4) * dr * (math.pi / t.shape[0])
    return area * (ny * nx) / (2 * math.pi) ** 2
