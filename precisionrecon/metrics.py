"""Image quality metrics: RMSE, PSNR and SSIM, one value per batch item, differentiable.

The last ``ndim`` axes of the inputs form one image (2: ``(ny, nx)``, 3: ``(nz, ny, nx)``);
all leading axes are batch axes and the result has their shape. PSNR and SSIM need the
``data_range`` explicitly (the difference between the largest and smallest value the
images can take): estimating it from the data (max - min of the reference) changes the
score with the content and makes tables incomparable, so there is no default.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._validate import REAL, REAL_OR_COMPLEX, check_tensor

__all__ = ["psnr", "rmse", "ssim"]


def _check_pair(x: Any, ref: Any, ndim: Any, *, complex_ok: bool) -> None:
    for name, t in (("x", x), ("ref", ref)):
        check_tensor(t, name, dtype=REAL_OR_COMPLEX if complex_ok else REAL)
    if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim not in (1, 2, 3):
        raise ValueError(f"ndim (axes of one image) must be 1, 2 or 3, got {ndim!r}")
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    if x.ndim < ndim:
        raise ValueError(f"x must have at least ndim = {ndim} axes (*batch, *image), got shape {tuple(x.shape)}")
    if x.device != ref.device:
        raise ValueError(f"x and ref must be on the same device, got {x.device} and {ref.device}")


def _data_range(data_range: Any, batch: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``data_range`` as a real tensor of shape ``batch`` (validated: finite, > 0)."""
    real = dtype.to_real()
    if isinstance(data_range, Tensor):
        if data_range.is_complex() or data_range.dtype == torch.bool:
            raise TypeError(f"data_range must be real, got dtype {data_range.dtype}")
        value = data_range.to(device=device, dtype=real)
        try:
            ok = torch.broadcast_shapes(value.shape, batch) == batch
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"data_range of shape {tuple(value.shape)} must broadcast to the batch shape {tuple(batch)}"
            )
        value = value.expand(batch)
    elif isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.integer, np.floating)):
        raise TypeError(f"data_range must be a positive number or a tensor per batch item, got {data_range!r}")
    else:
        value = torch.full(batch, float(data_range), dtype=real, device=device)
    if not bool(torch.all(torch.isfinite(value) & (value > 0))):
        raise ValueError("data_range must be positive and finite (the max - min the images can take)")
    return value


def _mse(x: Tensor, ref: Tensor, ndim: int) -> Tensor:
    diff = x - ref
    sq = diff.real.square() + diff.imag.square() if diff.is_complex() else diff.square()
    return sq.mean(dim=tuple(range(-ndim, 0)))


def rmse(x: Tensor, ref: Tensor, *, ndim: int = 2) -> Tensor:
    r"""Root-mean-square error ``sqrt(mean |x - ref|^2)`` over each image.

    Parameters
    ----------
    x, ref : Tensor
        Same shape ``(*batch, *image)``, real or complex.
    ndim : int
        Axes of one image (2 or 3; 1 for profiles).

    Returns
    -------
    Tensor
        Shape: ``batch``.
    """
    _check_pair(x, ref, ndim, complex_ok=True)
    return _mse(x, ref, ndim).sqrt()


def psnr(x: Tensor, ref: Tensor, *, data_range: float | Tensor, ndim: int = 2) -> Tensor:
    r"""Peak signal-to-noise ratio ``10 log10(data_range^2 / mean |x - ref|^2)`` in dB.

    As ``skimage.metrics.peak_signal_noise_ratio(ref, x, data_range=...)``, per image;
    ``inf`` where ``x == ref``.

    Parameters
    ----------
    x, ref : Tensor
        Same shape ``(*batch, *image)``, real or complex (then ``|.|`` is the modulus).
    data_range : float or Tensor
        Required: the range of values the images can take, a number or a tensor that
        broadcasts to ``batch``.
    ndim : int
        Axes of one image (2 or 3; 1 for profiles).

    Returns
    -------
    Tensor
        Shape: ``batch``.
    """
    _check_pair(x, ref, ndim, complex_ok=True)
    batch = x.shape[: x.ndim - ndim]
    rng = _data_range(data_range, batch, torch.promote_types(x.dtype, ref.dtype), x.device)
    return 10.0 * torch.log10(rng.square() / _mse(x, ref, ndim))


def _window(win_size: int, gaussian: bool, sigma: float) -> list[float]:
    """Normalised 1-D window weights: uniform, or a Gaussian of std ``sigma`` (in pixels)."""
    if not gaussian:
        return [1.0 / win_size] * win_size
    half = (win_size - 1) / 2
    w = [math.exp(-0.5 * ((k - half) / sigma) ** 2) for k in range(win_size)]
    return [v / sum(w) for v in w]


def _filter_valid(t: Tensor, window: list[float], ndim: int) -> Tensor:
    """Separable correlation of ``(..., *image)`` with ``window`` along each of the last
    ``ndim`` axes, keeping only the fully covered positions (``n - win_size + 1`` per axis).

    A sum of shifted slices rather than ``conv2d``/``conv3d``: as fast for these short
    windows, and free of the convolution back ends' slow paths for float64 and tiny inputs.
    """
    w = len(window)
    for axis in range(t.ndim - ndim, t.ndim):
        n = t.shape[axis] - w + 1
        out = t.narrow(axis, 0, n) * window[0]
        for k in range(1, w):
            out.add_(t.narrow(axis, k, n), alpha=window[k])
        t = out
    return t


def ssim(
    x: Tensor,
    ref: Tensor,
    *,
    data_range: float | Tensor,
    ndim: int = 2,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    K1: float = 0.01,
    K2: float = 0.03,
    use_sample_covariance: bool = True,
) -> Tensor:
    r"""Mean structural similarity (Wang et al. 2004) of each image, as scikit-image computes it.

    With local means ``mu``, variances ``v`` and covariance ``v_xr`` over a sliding
    window, ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` and ``L = data_range``:

    ``S = (2 mu_x mu_r + C1)(2 v_xr + C2) / ((mu_x^2 + mu_r^2 + C1)(v_x + v_r + C2))``,

    averaged over the window positions that lie fully inside the image (scikit-image
    computes ``S`` everywhere and crops the border of width ``(win_size - 1) // 2``, which
    is the same). The defaults equal ``skimage.metrics.structural_similarity``'s: a
    uniform 7x7 (7x7x7 for ``ndim=3``) window, sample covariances (factor
    ``N / (N - 1)``, ``N = win_size^ndim``), ``K1 = 0.01``, ``K2 = 0.03``. With
    ``gaussian_weights`` the window is a normalised Gaussian of standard deviation
    ``sigma`` truncated to ``win_size`` taps, default ``2 * int(3.5 sigma + 0.5) + 1``
    (11 for ``sigma = 1.5``), as scikit-image; Wang et al.'s exact setting adds
    ``use_sample_covariance=False``. Differentiable, so ``1 - ssim`` can be a loss.

    Parameters
    ----------
    x, ref : Tensor
        Same shape ``(*batch, *image)``, real floating (images at least ``win_size``
        along every image axis).
    data_range : float or Tensor
        Required: the range of values the images can take, a number or a tensor that
        broadcasts to ``batch``.
    ndim : int
        Axes of one image: 2 ``(ny, nx)`` or 3 ``(nz, ny, nx)`` (3-D window); 1 for profiles.
    win_size : int, optional
        Odd window side (>= 3); default 7, or as above with ``gaussian_weights``.
    gaussian_weights : bool
    sigma : float
        Standard deviation of the Gaussian window, in pixels.
    K1, K2 : float
        Stabilising constants (>= 0).
    use_sample_covariance : bool

    Returns
    -------
    Tensor
        Shape: ``batch``.
    """
    _check_pair(x, ref, ndim, complex_ok=False)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    for name, k in (("K1", K1), ("K2", K2)):
        if not (isinstance(k, (int, float)) and math.isfinite(k) and k >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {k!r}")
    if win_size is None:
        win_size = 2 * int(3.5 * sigma + 0.5) + 1 if gaussian_weights else 7
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd int >= 3, got {win_size!r}")
    image = x.shape[x.ndim - ndim :]
    if min(image) < win_size:
        raise ValueError(f"win_size = {win_size} exceeds the image size {tuple(image)}; pass a smaller odd win_size")
    batch = x.shape[: x.ndim - ndim]
    dtype = torch.promote_types(x.dtype, ref.dtype)
    rng = _data_range(data_range, batch, dtype, x.device)

    window = _window(win_size, gaussian_weights, float(sigma))
    a = x.to(dtype).reshape(-1, *image)
    b = ref.to(dtype).reshape(-1, *image)
    n = a.shape[0]
    ux, uy, uxx, uyy, uxy = _filter_valid(torch.stack([a, b, a * a, b * b, a * b]), window, ndim).unbind(0)
    n_window = win_size**ndim
    cov_norm = n_window / (n_window - 1) if use_sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    shape = (n,) + (1,) * ndim
    c1 = (K1 * rng.reshape(shape)) ** 2
    c2 = (K2 * rng.reshape(shape)) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=tuple(range(1, ndim + 1))).reshape(batch)
