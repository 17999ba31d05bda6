"""Baseline MR reconstructions on top of the operator-agnostic solvers of
:mod:`precisionrecon.algorithms`: zero-filled (adjoint), CG-SENSE and TV compressed sensing."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._validate import REAL, check_operator, check_tensor, finite_float
from ..algorithms import Result, cg, pdhg_tv
from ..operators.base import IdentityOperator, LinearOperator
from .sampling import Sampling


def _weighting(A: LinearOperator, weights: Tensor | None) -> LinearOperator | None:
    """Diagonal real weights on the data space of ``A`` (e.g. density compensation)."""
    if weights is None:
        return None
    check_tensor(weights, "weights", dtype=REAL)
    return Sampling(weights, tuple(A.range_shape))


def zero_filled(A: LinearOperator, y: Tensor, *, weights: Tensor | None = None) -> Tensor:
    r"""The zero-filled (adjoint) reconstruction :math:`A^H (w \odot y)`.

    For Cartesian :class:`~precisionrecon.mr.SENSE` data with maps of unit root-sum-of-squares
    this is the coil-combined inverse FFT of the zero-filled k-space (the optimal linear coil
    combination for known maps); for a :class:`~precisionrecon.mr.NUFFT` with density
    compensation ``weights`` it is the gridding reconstruction. Without maps, use
    ``rss(coil_images(kspace))`` (the fastMRI baseline).

    Shape: ``(*batch, *A.range_shape) -> (*batch, *A.domain_shape)``.
    """
    A = check_operator(A, "A")
    W = _weighting(A, weights)
    return A.T(y if W is None else W(y))


def cg_sense(
    A: LinearOperator,
    y: Tensor,
    n_iter: int = 30,
    *,
    lam: float = 0.0,
    weights: Tensor | None = None,
    normal: LinearOperator | None = None,
    x0: Tensor | None = None,
    tol: float = 0.0,
    callback: Any = None,
    progress: bool = False,
) -> Result:
    r"""CG-SENSE (Pruessmann et al., MRM 2001): conjugate gradients on the normal equations

    .. math:: (A^H W A + \lambda I)\, x = A^H W y

    for any MR forward model ``A`` (:class:`~precisionrecon.mr.SENSE`, ``NUFFT @ Coils``, ...),
    optional real data weights :math:`W` (e.g. density compensation, which speeds up the
    convergence of non-Cartesian CG-SENSE but changes the solution) and Tikhonov weight
    :math:`\lambda \ge 0`. The number of iterations regularises too (early stopping).

    Parameters
    ----------
    A : LinearOperator
        The forward model.
    y : Tensor
        Data, ``(*batch, *A.range_shape)``; leading axes are independent problems.
    n_iter : int
        Maximum number of CG iterations.
    lam : float
        Tikhonov weight.
    weights : Tensor, optional
        Real weights of shape ``A.range_shape``.
    normal : LinearOperator, optional
        A faster equivalent of :math:`A^H W A` (e.g. ``(nufft.toeplitz(w))`` inside a coil
        model); default the composition ``A.T @ W @ A``.
    x0 : Tensor, optional
        Initial image; default zeros.
    tol : float
        Relative residual at which a problem stops (0: run all iterations).
    callback, progress
        As in :func:`precisionrecon.algorithms.cg`.

    Returns
    -------
    Result
        ``result.x`` of shape ``(*batch, *A.domain_shape)`` and the CG history.
    """
    A = check_operator(A, "A")
    W = _weighting(A, weights)
    if normal is None:
        normal = A.T @ A if W is None else A.T @ W @ A
    else:
        check_operator(normal, "normal")
    lam = finite_float(lam, "lam", minimum=0.0)
    if lam > 0:
        normal = normal + lam * IdentityOperator(tuple(A.domain_shape))
    rhs = A.T(y if W is None else W(y))
    return cg(normal, rhs, n_iter, x0=x0, tol=tol, callback=callback, progress=progress)


def tv_recon(
    A: LinearOperator,
    y: Tensor,
    lam: float,
    n_iter: int = 200,
    *,
    x0: Tensor | None = None,
    op_norm: float | None = None,
    tol: float = 0.0,
    callback: Any = None,
    progress: bool = False,
) -> Result:
    r"""Total-variation compressed sensing (Lustig, Donoho and Pauly, MRM 2007; Block et al. 2007):

    .. math:: \min_x \tfrac12 \|A x - y\|_2^2 + \lambda \|\nabla x\|_{2,1}

    with the isotropic TV of the complex image (the modulus of the complex gradient at each
    pixel, summed), solved by :func:`precisionrecon.algorithms.pdhg_tv` (no positivity: MR
    images are complex). ``lam`` is in the units of the data: scale it with the data, e.g.
    a small fraction of ``zero_filled(A, y).abs().max()``.

    Parameters
    ----------
    A : LinearOperator
        The forward model (Cartesian SENSE, NUFFT, ...).
    y : Tensor
        Data, ``(*batch, *A.range_shape)``.
    lam : float
        TV weight (>= 0).
    n_iter : int
        Number of PDHG iterations.
    x0 : Tensor, optional
        Initial image (e.g. the CG-SENSE result); default zeros.
    op_norm : float, optional
        Norm of the stacked operator, from a previous ``result.info["op_norm"]``.
    tol, callback, progress
        As in :func:`precisionrecon.algorithms.pdhg_tv`.

    Returns
    -------
    Result
        ``result.x`` of shape ``(*batch, *A.domain_shape)``, history ``"objective"`` and
        ``"change"``.
    """
    A = check_operator(A, "A")
    return pdhg_tv(
        A, y, lam, n_iter, x0=x0, nonneg=False, op_norm=op_norm, tol=tol, callback=callback, progress=progress
    )
