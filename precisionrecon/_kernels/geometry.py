"""Gradients of the X-ray transform with respect to its geometry (the per-view vectors).

Joseph's projection of ray ``r`` is ``y_r = w_r sum_j S(f(j))`` with the (bi)linear
interpolation ``S`` at the sample coordinates ``f_k(j) = a_k + b_k j`` along the ray.
Its derivatives with respect to the line parameters are

.. math::
    \\partial y / \\partial a_k = w \\sum_j \\partial S / \\partial f_k, \\quad
    \\partial y / \\partial b_k = w \\sum_j j \\, \\partial S / \\partial f_k, \\quad
    \\partial y / \\partial w = y / w.

The kernels compute the two sums per ray and axis (``xray_sensitivity``: the derivative
of the interpolation weights along the ray, analytically, CPU and CUDA); the line
parameters ``(a, b, w)`` are computed here from the vectors with the formulas of
``ray_setup`` in ``cuda_ext/xray_math.h``, and autograd carries the chain rule to the
vectors (and from there to angles, distances, offsets, tilts or motion parameters).
The main axis of each ray is held fixed (it changes only where a ray crosses a diagonal,
a kink of Joseph's method).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import ops
from .ops import geometry_args
from .reference import _pixel_positions


def line_parameters(
    vectors: Tensor, n: list[int], sp: list[float], off: list[float], nu: int, nv: int, beam: int, curved: int
) -> dict[str, Tensor]:
    """Joseph line parameters of every ray, differentiable in ``vectors``.

    ``n``, ``sp``, ``off`` in kernel order (x, y(, z)). Returns ``a1, b1, w`` (and
    ``a2, b2`` in 3-D), each of shape ``(n_views * nv * nu,)``.
    """
    dim = len(n)
    pix = _pixel_positions(vectors, dim, nu, nv, curved).reshape(-1, dim)
    src = vectors[:, :dim].repeat_interleave(nu * nv, dim=0)
    direction = src if beam == 0 else pix - src
    origin = pix if beam == 0 else src
    spt = torch.tensor(sp, dtype=vectors.dtype, device=vectors.device)
    offt = torch.tensor(off, dtype=vectors.dtype, device=vectors.device)
    o = origin / spt + offt
    dq = direction / spt
    m = torch.argmax(dq.detach().abs(), dim=1, keepdim=True)  # first maximum, as the kernel
    dqm = dq.gather(1, m)[:, 0]
    om = o.gather(1, m)[:, 0]
    others = torch.tensor([[1, 2], [0, 2], [0, 1]], device=vectors.device)[:, : dim - 1][m[:, 0]]
    out = {"w": torch.linalg.vector_norm(direction, dim=1) / dqm.abs()}
    for k in range(dim - 1):
        ok = others[:, k : k + 1]
        b = dq.gather(1, ok)[:, 0] / dqm
        out[f"b{k + 1}"] = b
        out[f"a{k + 1}"] = o.gather(1, ok)[:, 0] - om * b
    return out


class _ParametricProjection(torch.autograd.Function):
    """``y = A(vectors) x`` with gradients for ``x`` (the adjoint) and for ``vectors``."""

    @staticmethod
    def forward(ctx, x: Tensor, vectors: Tensor, geometry: tuple) -> Tensor:
        y = ops.xray_forward(x, vectors.detach(), *geometry)
        ctx.save_for_backward(x, vectors, y)
        ctx.geometry = geometry
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        x, vectors, y = ctx.saved_tensors
        geometry = ctx.geometry
        grad_x = ops.xray_adjoint(grad_y, vectors.detach(), *geometry) if ctx.needs_input_grad[0] else None
        grad_vec = None
        if ctx.needs_input_grad[1]:
            vol_shape, vol_spacing, vol_offset, det_shape, beam, curved = geometry
            n, sp, off, nu, nv = geometry_args(vol_shape, vol_spacing, vol_offset, det_shape)
            dim = len(vol_shape)
            sens = ops.xray_sensitivity(x.detach(), vectors.detach(), *geometry).to(torch.float64)
            # (batch, n_rays); note sum(dim=()) would reduce everything, so fold the batch
            gy = grad_y.reshape(-1, sens.shape[-2]).to(torch.float64)
            yy = y.reshape(gy.shape).to(torch.float64)
            sens = sens.reshape(gy.shape[0], -1, sens.shape[-1])
            batch_dims = (0,)
            with torch.enable_grad():
                vec = vectors.detach().to(torch.float64).requires_grad_(True)
                lp = line_parameters(vec, n, sp, off, nu, nv, beam, curved)
                w = lp["w"]
                wd = w.detach()
                # d y_r = w (P0 da1 + P1 db1 [+ P2 da2 + P3 db2]) + (y_r / w) dw, summed against grad_y
                coef = [(gy * sens[..., k]).sum(batch_dims) * wd for k in range(sens.shape[-1])]
                surrogate = (coef[0] * lp["a1"]).sum() + (coef[1] * lp["b1"]).sum()
                if dim == 3:
                    surrogate = surrogate + (coef[2] * lp["a2"]).sum() + (coef[3] * lp["b2"]).sum()
                surrogate = surrogate + ((gy * yy).sum(batch_dims) / wd * w).sum()
                (grad_vec,) = torch.autograd.grad(surrogate, vec)
            grad_vec = grad_vec.to(vectors.dtype)
        return grad_x, grad_vec, None


def parametric_projection(x: Tensor, vectors: Tensor, geometry: tuple) -> Tensor:
    """Project ``x`` with per-view ``vectors`` that may require grad.

    ``geometry`` is ``(vol_shape, vol_spacing, vol_offset, det_shape, beam, curved)`` as
    for the custom ops. Shape: ``(*batch, *vol_shape) -> (*batch, n_views, *det_shape)``.
    """
    return _ParametricProjection.apply(x, vectors, geometry)
