"""NLINV / ENLIVE: joint estimation of image and coil sensitivities, in torch, batched over slices."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validate import check_int, check_tensor, finite_float
from ..algorithms import cg
from ._common import as_complex, real_dtype
from .fft import fftc, ifftc


@dataclass(frozen=True)
class NlinvResult:
    """The result of :func:`nlinv`.

    Attributes
    ----------
    image : Tensor
        The coil-combined image, ``(*batch, *spatial)`` for one set, else
        ``(*batch, n_sets, *spatial)``: the image of each set times the root-sum-of-squares of
        its coil sensitivities, in the units of the data.
    maps : Tensor
        Sensitivities of unit root-sum-of-squares over the coils of each set, phase relative to
        coil 0: ``(*batch, n_coils, *spatial)`` for one set, else ``(*batch, n_sets, n_coils, *spatial)``.
    residual : Tensor
        ``||y - F(x)|| / ||y||`` after each Newton step, ``(n_newton, *batch)``.
    """

    image: Tensor
    maps: Tensor
    residual: Tensor


def _sobolev_weight(grid: tuple[int, ...], a: float, l: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    r""":math:`w(k) = (1 + a |k|^2)^{-l/2}`, ``k`` in cycles per pixel, centred (index ``n // 2`` is 0)."""
    k2 = torch.zeros(grid, dtype=torch.float64, device=device)
    for i, n in enumerate(grid):
        view = [1] * len(grid)
        view[i] = n
        k2 = k2 + ((torch.arange(n, dtype=torch.float64, device=device) - n // 2) / n).view(view) ** 2
    return (1.0 + a * k2).pow(-l / 2).to(dtype)


@dataclass(frozen=True, eq=False)
class _Model:
    r"""The NLINV signal model and its derivatives around one estimate (internal).

    Unknowns ``x = (rho, c)`` packed as one tensor ``(B, n_sets * (1 + n_coils), *grid)``: the images
    ``rho_s`` (zero outside the field of view when the grid is larger) and the coil coefficients
    ``c_{s,j}`` in k-space, with the sensitivities :math:`S_{s,j} = \mathcal F^{-1}(w \odot c_{s,j})`
    restricted to the field of view. The model is

    .. math:: F(x)_j = P \mathcal F\, \mathrm{crop}\Big(\sum_s \rho_s S_{s,j}\Big),

    with the centred orthonormal FFTs (of the grid for the coils, of the field of view for the data).
    """

    mask: Tensor  # (*fov) real 0/1, broadcast over batch and coils
    weight: Tensor  # (*grid) Sobolev weight
    n_sets: int
    n_coils: int
    fov: tuple[int, ...]
    grid: tuple[int, ...]

    @property
    def dims(self) -> int:
        return len(self.fov)

    def crop(self, z: Tensor) -> Tensor:
        return z[(..., *self.window)]

    @property
    def window(self) -> tuple[slice, ...]:
        """The field of view inside the grid (centred: the grids have the same parity)."""
        return tuple(slice((g - n) // 2, (g - n) // 2 + n) for g, n in zip(self.grid, self.fov, strict=True))

    def pad(self, z: Tensor) -> Tensor:
        out = z.new_zeros((*z.shape[: -self.dims], *self.grid))
        out[(..., *self.window)] = z
        return out

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, c = self.n_sets, self.n_coils
        rho = x[:, :s]
        coef = x[:, s:].reshape(x.shape[0], s, c, *self.grid)
        return rho, coef

    def join(self, rho: Tensor, coef: Tensor) -> Tensor:
        return torch.cat([rho, coef.flatten(1, 2)], dim=1)

    def sens(self, coef: Tensor) -> Tensor:
        """Sensitivities on the field of view, ``(B, n_sets, n_coils, *fov)``."""
        return self.crop(ifftc(coef * self.weight, self.dims))

    def forward(self, rho: Tensor, sens: Tensor) -> Tensor:
        """``F(x)``: ``(B, n_coils, *fov)`` masked k-space."""
        return self.mask * fftc((self.crop(rho).unsqueeze(2) * sens).sum(1), self.dims)

    def derivative(self, rho: Tensor, sens: Tensor, dx: Tensor) -> Tensor:
        r""":math:`DF(x)\,dx = P \mathcal F \sum_s (d\rho_s S_s + \rho_s dS_s)`."""
        drho, dcoef = self.split(dx)
        image = self.crop(drho).unsqueeze(2) * sens + self.crop(rho).unsqueeze(2) * self.sens(dcoef)
        return self.mask * fftc(image.sum(1), self.dims)

    def adjoint(self, rho: Tensor, sens: Tensor, dy: Tensor) -> Tensor:
        r""":math:`DF(x)^H dy`: :math:`d\rho_s = \sum_j \bar S_{s,j} r_j`,
        :math:`dc_{s,j} = w \odot \mathcal F(\mathrm{pad}(\bar\rho_s r_j))`, ``r = F^H P dy``."""
        r = ifftc(self.mask * dy, self.dims).unsqueeze(1)  # (B, 1, n_coils, *fov)
        drho = self.pad((sens.conj() * r).sum(2))
        dcoef = self.weight * fftc(self.pad(self.crop(rho).conj().unsqueeze(2) * r), self.dims)
        return self.join(drho, dcoef)


def nlinv(
    kspace: Tensor,
    mask: Tensor,
    *,
    dims: int = 2,
    n_sets: int = 1,
    n_newton: int = 10,
    alpha: float = 1.0,
    q: float = 2.0 / 3.0,
    a: float = 220.0,
    l: float = 32.0,
    oversample: float = 1.0,
    cg_iter: int = 100,
    cg_tol: float = 0.1,
) -> NlinvResult:
    r"""Joint image and coil sensitivity estimation by regularised nonlinear inversion.

    NLINV (Uecker, Hohage, Block and Frahm, MRM 2008) fits the bilinear model
    :math:`y_j = P \mathcal F(\rho\, S_j)` for the image :math:`\rho` and all coil sensitivities
    :math:`S_j` at once, using every acquired sample (not only the calibration region).
    The sensitivities are parametrised in k-space, :math:`S_j = \mathcal F^{-1}(w \odot c_j)`,
    with the Sobolev weight :math:`w(k) = (1 + a |k|^2)^{-l/2}` (``k`` in cycles per pixel), so a
    plain penalty on :math:`c_j` is a strong smoothness penalty on :math:`S_j`. The iteratively
    regularised Gauss-Newton method (IRGNM) solves at step :math:`n`

    .. math:: \big(DF(x_n)^H DF(x_n) + \alpha_n I\big)\, \delta
              = DF(x_n)^H \big(y - F(x_n)\big) - \alpha_n x_n,\qquad
              x_{n+1} = x_n + \delta,\quad \alpha_{n+1} = q\, \alpha_n

    by conjugate gradients, from :math:`\rho = 1, c = 0`, with the data scaled to norm 100.

    With ``n_sets > 1`` the model is ENLIVE's (Holme et al., MRM 2019):
    :math:`y_j = P \mathcal F \sum_s \rho_s S_{s,j}`, several sets of maps as in ESPIRiT's
    soft-SENSE, for objects whose coil images jump at the edge of the field of view.
    With ``oversample > 1`` the coils live on a grid ``oversample`` times the field of view and are
    restricted to it, so they need not be periodic across its edge (an object that fills the
    field of view, whose periodic coil images a smooth periodic map cannot match there).

    Parameters
    ----------
    kspace : Tensor
        Centred multi-coil k-space, ``(*batch, n_coils, *spatial)`` with ``dims`` spatial axes,
        zero where not sampled. Leading axes are independent problems (slices).
    mask : Tensor
        Sampling mask, broadcastable to ``spatial``.
    dims : int
        Number of spatial axes (2 or 3).
    n_sets : int
        Sets of maps (1: NLINV; 2 or more: ENLIVE).
    n_newton : int
        Gauss-Newton steps.
    alpha : float
        Initial regularisation weight :math:`\alpha_0` (data scaled to norm 100).
    q : float
        Reduction of :math:`\alpha` per step, in (0, 1).
    a, l : float
        Sobolev weight of the coils, :math:`(1 + a |k|^2)^{-l/2}` (Uecker et al.: 220 and 32).
    oversample : float
        Size of the coil grid relative to the field of view, at least 1.
    cg_iter : int
        Largest number of CG iterations of each Newton step.
    cg_tol : float
        Relative residual at which each inner CG stops.

    Returns
    -------
    NlinvResult
        ``image``, ``maps`` (normalised, phase relative to coil 0) and the relative data
        ``residual`` after each step.

    Notes
    -----
    Shape: ``(*batch, n_coils, *spatial)`` -> image ``(*batch, *spatial)`` and maps
    ``(*batch, n_coils, *spatial)``; with ``n_sets > 1`` image ``(*batch, n_sets, *spatial)`` and
    maps ``(*batch, n_sets, n_coils, *spatial)``.
    """
    kspace = as_complex(kspace, "kspace")
    if isinstance(dims, bool) or dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    if kspace.dim() < dims + 1:
        raise ValueError(f"kspace must have shape (*batch, n_coils, *spatial) with {dims} spatial axes, "
                         f"got {tuple(kspace.shape)}")
    check_tensor(mask, "mask", dtype=None)
    n_sets = check_int(n_sets, "n_sets", minimum=1)
    n_newton = check_int(n_newton, "n_newton", minimum=1)
    cg_iter = check_int(cg_iter, "cg_iter", minimum=1)
    alpha = finite_float(alpha, "alpha")
    q = finite_float(q, "q")
    a = finite_float(a, "a", minimum=0.0)
    l = finite_float(l, "l", minimum=0.0)
    cg_tol = finite_float(cg_tol, "cg_tol", minimum=0.0)
    oversample = finite_float(oversample, "oversample", minimum=1.0)
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    fov = tuple(kspace.shape[-dims:])
    nc = kspace.shape[-dims - 1]
    batch = tuple(kspace.shape[: -dims - 1])
    try:
        m = torch.broadcast_to(mask, fov)
    except RuntimeError:
        raise ValueError(f"mask must be broadcastable to the spatial shape {fov}, got {tuple(mask.shape)}") from None
    m = (m != 0).to(device=kspace.device, dtype=real_dtype(kspace.dtype))
    grid = tuple(n + 2 * math.ceil((oversample - 1) * n / 2) for n in fov)  # same parity: centres align
    model = _Model(m, _sobolev_weight(grid, a, l, kspace.dtype, kspace.device), n_sets, nc, fov, grid)

    y = kspace.reshape(-1, nc, *fov) * m
    b = y.shape[0]
    nd = dims + 1
    norm = y.flatten(1).norm(dim=1).clamp_min(torch.finfo(m.dtype).tiny)
    scale = (100.0 / norm).view(-1, *(1,) * nd)
    y = y * scale
    rho = torch.zeros((b, n_sets, *grid), dtype=kspace.dtype, device=kspace.device)
    rho[:, 0] = model.pad(torch.ones(fov, dtype=kspace.dtype, device=kspace.device))
    x = model.join(rho, torch.zeros((b, n_sets, nc, *grid), dtype=kspace.dtype, device=kspace.device))
    support = model.join(model.pad(torch.ones((1, n_sets, *fov), dtype=m.dtype, device=m.device)),
                         torch.ones((1, n_sets, nc, *grid), dtype=m.dtype, device=m.device))
    residual = []
    for _ in range(n_newton):
        rho, coef = model.split(x)
        sens = model.sens(coef)
        r = y - model.forward(rho, sens)
        residual.append(r.flatten(1).norm(dim=1) / 100.0)
        rhs = model.adjoint(rho, sens, r) - alpha * x

        def normal(dx: Tensor, rho: Tensor = rho, sens: Tensor = sens, alpha: float = alpha) -> Tensor:
            return support * model.adjoint(rho, sens, model.derivative(rho, sens, dx)) + alpha * dx

        x = x + cg(normal, support * rhs, cg_iter, ndim=nd, tol=cg_tol).x
        alpha *= q

    rho, coef = model.split(x)
    sens = model.sens(coef)  # (B, S, C, *fov)
    rss = (sens.abs() ** 2).sum(2).sqrt()
    maps = sens / rss.clamp_min(torch.finfo(rss.dtype).tiny).unsqueeze(2)
    phase = torch.exp(-1j * torch.angle(maps[:, :, :1]))
    maps = maps * phase
    image = model.crop(rho) * rss / phase[:, :, 0] / scale
    residual_t = torch.stack(residual)
    if n_sets == 1:
        return NlinvResult(image[:, 0].reshape(*batch, *fov), maps[:, 0].reshape(*batch, nc, *fov),
                           residual_t.reshape(n_newton, *batch))
    return NlinvResult(image.reshape(*batch, n_sets, *fov), maps.reshape(*batch, n_sets, nc, *fov),
                       residual_t.reshape(n_newton, *batch))


__all__ = ["NlinvResult", "nlinv"]
