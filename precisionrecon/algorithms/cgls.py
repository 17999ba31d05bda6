"""CGLS: conjugate gradients on the (damped) normal equations, without forming them."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validate import check_int, check_operator, finite_float
from ..operators.base import LinearOperator
from ._common import Callback, Monitor, check_data, col, initial_x, sqnorm
from .result import Result


def cgls(
    A: LinearOperator,
    y: Tensor,
    n_iter: int,
    *,
    x0: Tensor | None = None,
    damp: float = 0.0,
    tol: float = 0.0,
    callback: Callback | None = None,
    progress: bool = False,
) -> Result:
    r"""Least squares ``min_x ||A x - y||^2 + damp^2 ||x||^2`` by CGLS.

    Conjugate gradients on ``(A^H A + damp^2 I) x = A^H y`` (Hestenes & Stiefel 1952;
    Björck 1996, alg. 7.4.1), applying ``A`` and ``A^H`` once per iteration and never
    forming ``A^H A``: with ``r = y - A x`` and ``s = A^H r - damp^2 x``,

    .. math::
        \alpha_k = \frac{\|s_k\|^2}{\|A p_k\|^2 + \mathrm{damp}^2 \|p_k\|^2},\quad
        x_{k+1} = x_k + \alpha_k p_k,\quad r_{k+1} = r_k - \alpha_k A p_k,\quad
        p_{k+1} = s_{k+1} + \frac{\|s_{k+1}\|^2}{\|s_k\|^2} p_k.

    ``damp`` follows the convention of SciPy's ``lsqr``/``lsmr``. The objective
    ``1/2 (||A x - y||^2 + damp^2 ||x||^2)`` decreases monotonically. Every problem of the
    batch has its own step sizes. Complex operators and data work (``<a, b> = sum(conj(a) b)``).

    Parameters
    ----------
    A : LinearOperator
    y : Tensor
        Data, shape ``(*batch, *A.range_shape)``; each leading index is an independent problem.
    n_iter : int
        Maximum number of iterations.
    x0 : Tensor, optional
        Initial guess, shape ``A.domain_shape`` or ``(*batch, *A.domain_shape)``; default zeros.
    damp : float
        Tikhonov damping (>= 0).
    tol : float
        A problem stops once ``||s_k|| <= tol * ||s_0||`` (relative normal-equation
        residual); 0 runs all iterations (a problem with ``s = 0`` exactly stops).
    callback : callable, optional
        ``callback(iteration, x, info)`` after each iteration (``iteration`` counts from 1;
        ``info`` holds this iteration's history values and ``"active"``); returning True stops.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Result
        ``x`` and history ``"objective"``, ``"residual_norm"`` (``||y - A x||``) and
        ``"normal_residual_norm"`` (``||s||``), each ``(n_iter_run, *batch)``.

    Notes
    -----
    Shape: ``(*batch, *A.range_shape) -> (*batch, *A.domain_shape)``.
    """
    A = check_operator(A, "A")
    batch = check_data(A, y)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    damp2 = finite_float(damp, "damp", minimum=0.0) ** 2
    tol = finite_float(tol, "tol", minimum=0.0)
    ndx, ndy = len(A.domain_shape), len(A.range_shape)

    x = initial_x(x0, tuple(A.domain_shape), batch, y)
    r = y - A(x) if x0 is not None else y.clone()
    s = A.T(r) - damp2 * x if damp2 else A.T(r)
    p = s
    gamma = sqnorm(s, ndx)
    s0_norm = gamma.sqrt()
    active = gamma > 0
    one = torch.ones_like(gamma)
    mon = Monitor("cgls", n_iter, batch, progress=progress, callback=callback)
    for k in range(n_iter):
        q = A(p)
        delta = sqnorm(q, ndy) + damp2 * sqnorm(p, ndx)
        ok = active & (delta > 0)
        alpha = torch.where(ok, gamma / torch.where(ok, delta, one), 0.0)
        x = x + col(alpha, ndx) * p
        r = r - col(alpha, ndy) * q
        s = A.T(r) - damp2 * x if damp2 else A.T(r)
        gamma_new = sqnorm(s, ndx)
        beta = torch.where(ok, gamma_new / torch.where(gamma > 0, gamma, one), 0.0)
        p = s + col(beta, ndx) * p
        gamma = torch.where(ok, gamma_new, gamma)
        res2 = sqnorm(r, ndy)
        s_norm = gamma.sqrt()
        active = ok & (s_norm > tol * s0_norm)
        info = {
            "objective": 0.5 * (res2 + damp2 * sqnorm(x, ndx)),
            "residual_norm": res2.sqrt(),
            "normal_residual_norm": s_norm,
        }
        if mon.step(k + 1, x, info, active, use_active=True):
            break
    return mon.result(x, gamma.sqrt() <= tol * s0_norm)
