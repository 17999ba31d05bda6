"""SIRT: the simultaneous iterative reconstruction technique."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validate import check_int, check_operator, finite_float, positive_float
from ..operators.base import LinearOperator
from ._common import Callback, Monitor, check_data, dot, initial_x, keep, relative_change, sqnorm
from .result import Result


def sirt_weights(
    A: LinearOperator, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """SIRT's weights ``R = 1 / (A 1)`` (range) and ``C = 1 / (A^T 1)`` (domain).

    Entries whose sum is zero (rays that miss the volume, voxels no ray sees) get weight 0.
    Only meaningful for an operator with non-negative entries (such as the X-ray
    transform): a negative sum raises ``ValueError``. Shapes ``A.range_shape`` and
    ``A.domain_shape``, on ``device`` (default ``A.device``).
    """
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be float32 or float64 (SIRT weights are real), got {dtype}")
    device = A.device if device is None else torch.device(device)
    with torch.no_grad():
        row = A(torch.ones(tuple(A.domain_shape), dtype=dtype, device=device))
        column = A.T(torch.ones(tuple(A.range_shape), dtype=dtype, device=device))
    if row.is_complex() or column.is_complex():
        raise TypeError("SIRT needs a real operator: A 1 is complex, so 1 / (A 1) is not a weight; use cgls")
    if bool((row < 0).any()) or bool((column < 0).any()):
        raise ValueError(
            "SIRT needs an operator with non-negative entries (A 1 or A^T 1 has negative entries); use cgls"
        )
    R = torch.where(row > 0, 1.0 / torch.where(row > 0, row, 1.0), 0.0)
    C = torch.where(column > 0, 1.0 / torch.where(column > 0, column, 1.0), 0.0)
    return R, C


def sirt(
    A: LinearOperator,
    y: Tensor,
    n_iter: int,
    *,
    x0: Tensor | None = None,
    nonneg: bool = False,
    relax: float = 1.0,
    tol: float = 0.0,
    callback: Callback | None = None,
    progress: bool = False,
) -> Result:
    r"""SIRT (Gilbert 1972; the form of ASTRA and Gregor & Benson 2008).

    .. math:: x_{k+1} = P\left(x_k + \omega\, C A^T R\, (y - A x_k)\right),
              \qquad R = \frac{1}{A \mathbf 1},\ C = \frac{1}{A^T \mathbf 1}

    (elementwise, zero sums guarded to weight 0, see :func:`sirt_weights`), with ``P`` the
    projection onto ``x >= 0`` when ``nonneg``. It is (projected) gradient descent on
    ``1/2 ||A x - y||_R^2`` in the metric ``C^{-1}``, where the Lipschitz constant is at
    most 1, so for ``0 < relax < 2`` that weighted objective decreases monotonically.

    Parameters
    ----------
    A : LinearOperator
        A real operator with non-negative entries (the X-ray transform). Complex
        operators or data (MR) raise ``TypeError``: ``1 / (A 1)`` is no weight there;
        use :func:`cgls` instead.
    y : Tensor
        Real data, shape ``(*batch, *A.range_shape)``; each leading index is an independent problem.
    n_iter : int
        Maximum number of iterations.
    x0 : Tensor, optional
        Initial image, shape ``A.domain_shape`` or ``(*batch, *A.domain_shape)``; default zeros.
    nonneg : bool
        Clip negative values after every update.
    relax : float
        Relaxation ``omega`` in ``(0, 2)``.
    tol : float
        If > 0, a problem stops once ``||x_{k+1} - x_k|| <= tol ||x_{k+1}||``.
    callback : callable, optional
        ``callback(iteration, x, info)`` after each iteration (``iteration`` counts from 1;
        ``info`` holds this iteration's history values and ``"active"``); returning True stops.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Result
        ``x`` and history ``"objective"`` (``1/2 ||A x - y||_R^2``), ``"residual_norm"``
        (``||A x - y||``) and ``"change"`` (relative change of ``x``), each ``(n_iter_run, *batch)``.

    Notes
    -----
    Shape: ``(*batch, *A.range_shape) -> (*batch, *A.domain_shape)``.
    """
    A = check_operator(A, "A")
    batch = check_data(A, y)
    if y.is_complex():
        raise TypeError("sirt needs real data: its weights 1 / (A 1) assume a non-negative operator; use cgls")
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    relax = positive_float(relax, "relax")
    if relax >= 2.0:
        raise ValueError(f"relax must be in (0, 2), got {relax}")
    tol = finite_float(tol, "tol", minimum=0.0)
    ndx, ndy = len(A.domain_shape), len(A.range_shape)
    R, C = sirt_weights(A, y.dtype, y.device)

    x = initial_x(x0, tuple(A.domain_shape), batch, y)
    r = y - A(x)
    active = torch.ones(batch, dtype=torch.bool, device=y.device)
    mon = Monitor("sirt", n_iter, batch, progress=progress, callback=callback)
    for k in range(n_iter):
        x_new = x + relax * C * A.T(R * r)
        if nonneg:
            x_new = x_new.clamp(min=0.0)
        x_new = keep(active, x_new, x, ndx)
        change = relative_change(x_new, x, ndx)
        x = x_new
        r = y - A(x)
        info = {"objective": 0.5 * dot(r, R * r, ndy), "residual_norm": sqnorm(r, ndy).sqrt(), "change": change}
        if tol > 0:
            active = active & (change > tol)
        if mon.step(k + 1, x, info, active, use_active=tol > 0):
            break
    return mon.result(x, ~active if tol > 0 else torch.zeros_like(active))
