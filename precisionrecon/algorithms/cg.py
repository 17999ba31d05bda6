"""Conjugate gradients for a Hermitian positive-definite operator (e.g. CG-SENSE)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._validate import batch_shape, check_int, check_tensor, finite_float
from ..operators.base import LinearOperator
from ._common import Callback, Monitor, col, dot, initial_x, sqnorm
from .result import Result


def cg(
    normal_op: LinearOperator | Callable[[Tensor], Tensor],
    rhs: Tensor,
    n_iter: int,
    *,
    x0: Tensor | None = None,
    ndim: int | None = None,
    tol: float = 0.0,
    callback: Callback | None = None,
    progress: bool = False,
) -> Result:
    r"""Solve ``M x = b`` for Hermitian positive-definite ``M`` by conjugate gradients.

    Each problem of the batch runs its own recursion (Hestenes & Stiefel 1952):

    .. math::
        \alpha_k = \frac{\|r_k\|^2}{\langle p_k, M p_k\rangle},\quad
        x_{k+1} = x_k + \alpha_k p_k,\quad r_{k+1} = r_k - \alpha_k M p_k,\quad
        p_{k+1} = r_{k+1} + \frac{\|r_{k+1}\|^2}{\|r_k\|^2} p_k,

    with ``<a, b> = sum(conj(a) b)``, so complex data (MR) work. CG minimises
    ``f(x) = 1/2 <x, M x> - Re <b, x>`` over growing Krylov spaces; ``f`` decreases
    monotonically (recorded as ``"objective"``, from ``f(x) = -1/2 Re <x, b + r>``).

    Parameters
    ----------
    normal_op : LinearOperator or callable
        ``M``, Hermitian positive definite, e.g. ``A.T @ A + lam * I`` or a callable
        ``x -> A^H(A(x)) + lam x``. It must map ``(*batch, *shape)`` to the same shape.
    rhs : Tensor
        ``b``, shape ``(*batch, *shape)``; each leading index is an independent problem.
    n_iter : int
        Maximum number of iterations.
    x0 : Tensor, optional
        Initial guess, shape ``shape`` or ``(*batch, *shape)``; default zeros.
    ndim : int, optional
        Number of trailing axes of ``rhs`` forming one unknown. Default: the length of
        ``normal_op.domain_shape`` for a LinearOperator, all axes of ``rhs`` (no batch)
        for a callable.
    tol : float
        A problem stops once ``||r_k|| <= tol * ||b||`` (``r = b - M x``); 0 runs all
        iterations (a problem with an exactly zero residual stops).
    callback : callable, optional
        ``callback(iteration, x, info)`` after each iteration (``iteration`` counts from 1;
        ``info`` holds this iteration's history values and ``"active"``); returning True stops.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Result
        ``x`` and history ``"residual_norm"`` (``||r_k||``, the recursively updated residual)
        and ``"objective"`` (``f(x_k)``), each ``(n_iter_run, *batch)``.

    Notes
    -----
    Shape: ``(*batch, *shape) -> (*batch, *shape)``. A problem whose curvature
    ``<p, M p>`` is not positive (breakdown, or ``M`` not positive definite) stops there.
    """
    check_tensor(rhs, "rhs")
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    tol = finite_float(tol, "tol", minimum=0.0)
    if isinstance(normal_op, LinearOperator):
        if tuple(normal_op.domain_shape) != tuple(normal_op.range_shape):
            raise ValueError(
                f"normal_op must be square (domain = range), got {tuple(normal_op.domain_shape)} -> "
                f"{tuple(normal_op.range_shape)}"
            )
        shape = tuple(normal_op.domain_shape)
        if ndim is not None and ndim != len(shape):
            raise ValueError(f"ndim must equal len(normal_op.domain_shape) = {len(shape)}, got {ndim}")
        apply = normal_op.apply
    elif callable(normal_op):
        if ndim is None:
            ndim = rhs.dim()
        if isinstance(ndim, bool) or not isinstance(ndim, int) or not 0 <= ndim <= rhs.dim():
            raise ValueError(f"ndim must be an int in [0, rhs.dim()={rhs.dim()}], got {ndim!r}")
        shape = tuple(rhs.shape[rhs.dim() - ndim :])
        apply = normal_op
    else:
        raise TypeError(f"normal_op must be a LinearOperator or a callable, got {type(normal_op).__name__}")
    nd = len(shape)
    batch = batch_shape(rhs, shape, "rhs")

    x = initial_x(x0, shape, batch, rhs)
    r = rhs - apply(x) if x0 is not None else rhs.clone()
    if r.shape != rhs.shape:
        raise ValueError(f"normal_op must return the shape of its input {tuple(rhs.shape)}, got {tuple(r.shape)}")
    p = r
    rs = sqnorm(r, nd)
    b_norm = sqnorm(rhs, nd).sqrt()
    active = rs > 0
    one = torch.ones_like(rs)
    mon = Monitor("cg", n_iter, batch, progress=progress, callback=callback)
    for k in range(n_iter):
        q = apply(p)
        curvature = dot(p, q, nd).real
        ok = active & (curvature > 0)
        alpha = torch.where(ok, rs / torch.where(ok, curvature, one), 0.0)
        x = x + col(alpha, nd) * p
        r = r - col(alpha, nd) * q
        rs_new = sqnorm(r, nd)
        beta = torch.where(ok, rs_new / torch.where(rs > 0, rs, one), 0.0)
        p = r + col(beta, nd) * p
        rs = torch.where(ok, rs_new, rs)
        r_norm = rs.sqrt()
        active = ok & (r_norm > tol * b_norm)
        info = {"residual_norm": r_norm, "objective": -0.5 * dot(x, rhs + r, nd).real}
        if mon.step(k + 1, x, info, active, use_active=True):
            break
    return mon.result(x, sqnorm(r, nd).sqrt() <= tol * b_norm)
