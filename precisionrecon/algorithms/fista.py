"""FISTA: the fast iterative shrinkage-thresholding algorithm (with its monotone variant)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._validate import check_int, check_operator, finite_float, positive_float
from ..operators.base import LinearOperator
from ._common import NORM_SAFETY, Callback, Monitor, check_data, initial_x, keep, relative_change, sqnorm
from .prox import ProxOperator
from .result import Result


def fista(
    A: LinearOperator,
    y: Tensor,
    n_iter: int,
    *,
    prox: ProxOperator | Callable[[Tensor, float], Tensor] | None,
    lam: float,
    step: float | None = None,
    x0: Tensor | None = None,
    monotone: bool = True,
    tol: float = 0.0,
    callback: Callback | None = None,
    progress: bool = False,
) -> Result:
    r"""``min_x F(x) = 1/2 ||A x - y||^2 + lam R(x)`` by FISTA (Beck & Teboulle 2009).

    .. math::
        u_k = \mathrm{prox}_{\tau \lambda R}\left(w_k - \tau A^H (A w_k - y)\right),\quad
        t_{k+1} = \frac{1 + \sqrt{1 + 4 t_k^2}}{2},\quad
        w_{k+1} = x_k + \frac{t_k}{t_{k+1}}(u_k - x_k) + \frac{t_k - 1}{t_{k+1}}(x_k - x_{k-1}),

    with ``x_k = u_k`` (FISTA) or, when ``monotone``, ``x_k`` the one of ``u_k`` and
    ``x_{k-1}`` with the smaller ``F`` (MFISTA, Beck & Teboulle 2009b: same
    ``O(1/k^2)`` rate, ``F`` never increases; the choice is made per problem). ``A w`` is
    obtained by linearity from ``A x`` and ``A u``, so each iteration applies ``A`` and
    ``A^H`` once and the objective comes free.

    Parameters
    ----------
    A : LinearOperator
        Any operator, real or complex.
    y : Tensor
        Data, shape ``(*batch, *A.range_shape)``; each leading index is an independent problem.
    n_iter : int
        Maximum number of iterations.
    prox : ProxOperator or callable or None
        ``R``: a :class:`~precisionrecon.algorithms.prox.ProxOperator` (``L1()``,
        ``TV(shape)``, ``NonNegativity()``, ``TransformL1(W)``), or a plain callable
        ``prox(v, t)`` (then ``monotone=False`` is required and the recorded objective
        omits ``R``), or None for ``R = 0`` (accelerated gradient descent).
    lam : float
        Regularisation weight (>= 0).
    step : float, optional
        Step ``tau``; default ``1 / (1.01 ||A||)^2`` with ``||A||`` from ``A.norm()``.
    x0 : Tensor, optional
        Initial image, shape ``A.domain_shape`` or ``(*batch, *A.domain_shape)``; default zeros.
    monotone : bool
        Use MFISTA (default) instead of plain FISTA.
    tol : float
        If > 0, a problem stops once the prox-gradient step is small:
        ``||u_k - w_k|| <= tol ||u_k||``.
    callback : callable, optional
        ``callback(iteration, x, info)`` after each iteration (``iteration`` counts from 1;
        ``info`` holds this iteration's history values and ``"active"``); returning True stops.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Result
        ``x`` and history ``"objective"`` (``F(x_k)``), ``"residual_norm"`` (``||A x_k - y||``)
        and ``"change"`` (``||u_k - w_k|| / ||u_k||``), each ``(n_iter_run, *batch)``, and
        ``info["step"]``.

    Notes
    -----
    Shape: ``(*batch, *A.range_shape) -> (*batch, *A.domain_shape)``.
    """
    A = check_operator(A, "A")
    batch = check_data(A, y)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    lam = finite_float(lam, "lam", minimum=0.0)
    tol = finite_float(tol, "tol", minimum=0.0)
    if not isinstance(monotone, bool):
        raise TypeError(f"monotone must be a bool, got {type(monotone).__name__}")
    if prox is not None and not callable(prox):
        raise TypeError(f"prox must be a ProxOperator, a callable prox(v, t) or None, got {type(prox).__name__}")
    has_value = prox is None or isinstance(prox, ProxOperator)
    if monotone and not has_value:
        raise ValueError("monotone=True needs R's value: pass a ProxOperator as prox, or monotone=False")
    if step is None:
        step = 1.0 / (NORM_SAFETY * A.norm(dtype=y.dtype)) ** 2
    else:
        step = positive_float(step, "step")
    ndx, ndy = len(A.domain_shape), len(A.range_shape)

    def objective(x: Tensor, Ax: Tensor) -> Tensor:
        f = 0.5 * sqnorm(Ax - y, ndy)
        if isinstance(prox, ProxOperator) and lam > 0:
            f = f + lam * prox.value(x, ndx)
        return f

    x = initial_x(x0, tuple(A.domain_shape), batch, y)
    Ax = A(x)
    F = objective(x, Ax)
    w, Aw = x, Ax
    t = 1.0
    active = torch.ones(batch, dtype=torch.bool, device=y.device)
    mon = Monitor("fista", n_iter, batch, progress=progress, callback=callback)
    for k in range(n_iter):
        v = w - step * A.T(Aw - y)
        u = v if prox is None else prox(v, lam * step)
        Au = A(u)
        Fu = objective(u, Au)
        change = relative_change(u, w, ndx)
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        if monotone:
            take = Fu <= F
            x_new, Ax_new = keep(take, u, x, ndx), keep(take, Au, Ax, ndy)
            F_new = torch.where(take, Fu, F)
        else:
            x_new, Ax_new, F_new = u, Au, Fu
        a, b = t / t_new, (t - 1.0) / t_new
        w_new = x_new + a * (u - x_new) + b * (x_new - x)
        Aw_new = Ax_new + a * (Au - Ax_new) + b * (Ax_new - Ax)
        # problems that stopped keep their state
        x, w = keep(active, x_new, x, ndx), keep(active, w_new, w, ndx)
        Ax, Aw = keep(active, Ax_new, Ax, ndy), keep(active, Aw_new, Aw, ndy)
        F = torch.where(active, F_new, F)
        t = t_new
        info = {"objective": F, "residual_norm": sqnorm(Ax - y, ndy).sqrt(), "change": change}
        if tol > 0:
            active = active & (change > tol)
        if mon.step(k + 1, x, info, active, use_active=tol > 0):
            break
    result = mon.result(x, ~active if tol > 0 else torch.zeros_like(active))
    result.info["step"] = step
    return result
