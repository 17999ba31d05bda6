r"""Exact noise variance of linear reconstructions: the analytic baseline of learned uncertainty.

A linear estimate ``x = L y`` of data with independent noise of variance ``Var(y_j)``
(e.g. FBP of post-log CT data) has the pixel variance

.. math:: \operatorname{Var}(x_i) = \sum_j |L_{ij}|^2 \operatorname{Var}(y_j),

computed here exactly from the operator alone: row ``i`` of ``L`` is the adjoint applied
to the unit image ``e_i`` (``L^T e_i``, one adjoint per pixel, in batches) or, when the
data are smaller than the image, column ``j`` is ``L e_j`` (one application per datum).
For post-log Poisson data the variance of the measurement ``-log(N / I_0)`` is
``1 / (I_0 e^{-p})`` to first order (the delta method, see
:func:`~precisionrecon.data.poisson_noise`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._validate import check_operator, choice, finite_float, positive_int
from ..operators import LinearOperator

METHODS = ("auto", "rows", "columns")


def post_log_poisson_variance(sinogram: Tensor, i0: float | Tensor, *, mu_scale: float = 1.0) -> Tensor:
    r"""Variance of post-log Poisson data to first order: ``1 / (i0 exp(-mu_scale p) mu_scale^2)``,
    in the squared units of ``p`` (the variance of :func:`~precisionrecon.data.poisson_noise`).

    Parameters
    ----------
    sinogram : Tensor
        Noise-free line integrals ``p`` (or, as an estimate, the measured ones).
    i0 : float or Tensor
        Incident photons per pixel (> 0), broadcastable to ``sinogram``.
    mu_scale : float
        As in :func:`~precisionrecon.data.poisson_noise`.

    Returns
    -------
    Tensor
        Shape: as ``sinogram``.
    """
    if not isinstance(sinogram, Tensor) or not sinogram.is_floating_point():
        raise TypeError("sinogram must be a real floating torch.Tensor")
    mu = finite_float(mu_scale, "mu_scale")
    if mu <= 0:
        raise ValueError(f"mu_scale must be > 0, got {mu_scale}")
    flux = torch.as_tensor(i0, dtype=sinogram.dtype, device=sinogram.device)
    if not bool((torch.isfinite(flux) & (flux > 0)).all()):
        raise ValueError("i0 must be positive and finite")
    return 1.0 / (flux * torch.exp(-mu * sinogram) * mu**2)


def _variance_input(noise_var: Any, L: LinearOperator, dtype: torch.dtype | None) -> tuple[Tensor, torch.dtype]:
    domain = tuple(L.domain_shape)
    if isinstance(noise_var, Tensor):
        if not noise_var.is_floating_point():
            raise TypeError(f"noise_var must be a real floating tensor, got {noise_var.dtype}")
        var = noise_var.detach()
    else:
        var = torch.tensor(finite_float(noise_var, "noise_var"), dtype=dtype or torch.float64)
    real = (dtype or var.dtype).to_real()
    var = var.to(device=L.device, dtype=real)
    if var.ndim < len(domain):
        var = var.reshape((1,) * (len(domain) - var.ndim) + tuple(var.shape))
    batch = var.shape[: var.ndim - len(domain)]
    try:
        var = var.expand(*batch, *domain)
    except RuntimeError as exc:
        raise ValueError(
            f"noise_var of shape {tuple(noise_var.shape)} must broadcast to (*batch, *L.domain_shape) with "
            f"L.domain_shape = {domain}"
        ) from exc
    if not bool((torch.isfinite(var) & (var >= 0)).all()):
        raise ValueError("noise_var must be finite and >= 0")
    work = dtype or var.dtype
    if L._example_dtype().is_complex and not work.is_complex:
        work = {torch.float32: torch.complex64, torch.float64: torch.complex128}.get(work, torch.complex128)
    return var, work


def _units(start: int, count: int, total: int, shape: tuple[int, ...], dtype: torch.dtype, device: Any) -> Tensor:
    """``count`` unit vectors ``e_start .. e_{start+count-1}`` of length ``total``, reshaped to ``shape``."""
    e = torch.zeros(count, total, dtype=dtype, device=device)
    idx = torch.arange(count, device=device)
    e[idx, start + idx] = 1
    return e.reshape(count, *shape)


def propagate_variance(
    L: LinearOperator,
    noise_var: float | Tensor,
    *,
    method: str = "auto",
    batch_size: int = 256,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Exact pixel variance ``Var(x_i) = sum_j |L_ij|^2 Var(y_j)`` of ``x = L y`` with independent noise.

    Parameters
    ----------
    L : LinearOperator
        The linear reconstruction ``y -> x`` (e.g. :class:`~precisionrecon.operators.fbp.FBP`),
        real or complex; only ``L`` and ``L.T`` are applied.
    noise_var : float or Tensor
        Variance of each datum (``E|n_j|^2`` for complex data), broadcastable to
        ``(*batch, *L.domain_shape)``; leading axes give one variance map per item.
    method : {"auto", "rows", "columns"}
        ``"rows"``: ``L.T`` on every unit image (``prod(L.range_shape)`` adjoints);
        ``"columns"``: ``L`` on every unit datum (``prod(L.domain_shape)`` applications);
        ``"auto"`` takes the fewer. Both are exact (they differ by rounding only).
    batch_size : int
        Unit vectors per operator call (memory ``batch_size`` times one image and one datum).
    dtype : torch.dtype, optional
        Working precision; default ``noise_var``'s (float64 for a number); the complex
        counterpart for complex operators.

    Returns
    -------
    Tensor
        Shape: ``(*batch, *L.range_shape)``, real.
    """
    check_operator(L, "L")
    choice(method, "method", METHODS)
    chunk = positive_int(batch_size, "batch_size")
    var, work = _variance_input(noise_var, L, dtype)
    domain, image = tuple(L.domain_shape), tuple(L.range_shape)
    n_in, n_out = math.prod(domain), math.prod(image)
    batch = var.shape[: var.ndim - len(domain)]
    v = var.reshape(-1, n_in)
    if method == "auto":
        method = "rows" if n_out <= n_in else "columns"
    out = torch.zeros(v.shape[0], n_out, dtype=v.dtype, device=v.device)
    with torch.no_grad():
        if method == "rows":
            for start in range(0, n_out, chunk):
                k = min(chunk, n_out - start)
                rows = L.T(_units(start, k, n_out, image, work, v.device)).reshape(k, n_in)
                out[:, start : start + k] = v @ rows.abs().square().T.to(v.dtype)
        else:
            for start in range(0, n_in, chunk):
                k = min(chunk, n_in - start)
                cols = L(_units(start, k, n_in, domain, work, v.device)).reshape(k, n_out)
                out += v[:, start : start + k] @ cols.abs().square().to(v.dtype)
    return out.reshape(*batch, *image)
