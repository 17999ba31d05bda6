"""``torch.library`` custom ops for the X-ray transform and its adjoint.

The ops take the geometry as a float64 tensor of per-view vectors plus plain lists, so
they are traceable by ``torch.compile``. The backward of the projection is the
back-projection op and vice versa (never the raw library call), which makes double
backward work for free.
"""

from __future__ import annotations

import ctypes
import math

import torch
from torch import Tensor

from . import reference
from .loader import cpu_library

__all__ = ["vbp_backproject", "vbp_project", "xray_adjoint", "xray_forward"]


def _geometry_args(vol_shape: list[int], vol_spacing: list[float], vol_offset: list[float], det_shape: list[int]):
    # Tensor order (z, y, x) -> kernel order (x, y, z); detector (rows, cols) -> (nu, nv).
    n = list(reversed(vol_shape))
    sp = list(reversed(vol_spacing))
    off = list(reversed(vol_offset))
    nu = det_shape[-1]
    nv = det_shape[0] if len(det_shape) == 2 else 1
    return n, sp, off, nu, nv


def _call_library(name: str, src: Tensor, dst: Tensor, batch: int, n, sp, off, vectors: Tensor, nu, nv, *ints) -> bool:
    """Call ``{name}_{f32|f64}`` of the CPU library; False when there is no library."""
    found = cpu_library()
    if found is None:
        return False
    lib, _ = found
    fn = getattr(lib, f"{name}_{'f32' if src.dtype == torch.float32 else 'f64'}")
    dim = len(n)
    c_n = (ctypes.c_int * 3)(*(n + [1] * (3 - dim)))
    c_sp = (ctypes.c_double * 3)(*(sp + [1.0] * (3 - dim)))
    c_off = (ctypes.c_double * 3)(*(off + [0.0] * (3 - dim)))
    err = fn(
        src.data_ptr(),
        dst.data_ptr(),
        batch,
        dim,
        c_n,
        c_sp,
        c_off,
        vectors.data_ptr(),
        vectors.shape[0],
        nu,
        nv,
        *ints,
        torch.get_num_threads(),
    )
    if err != 0:
        raise RuntimeError(f"precisionrecon kernel {name} rejected its arguments (code {err})")
    return True


def _check(t: Tensor, vectors: Tensor, trailing: list[int], what: str) -> None:
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{what} must be float32 or float64, got {t.dtype}")
    if list(t.shape[t.dim() - len(trailing) :]) != list(trailing) or t.dim() < len(trailing):
        raise ValueError(f"{what} must have trailing shape {tuple(trailing)}, got {tuple(t.shape)}")
    if vectors.dtype != torch.float64 or vectors.dim() != 2:
        raise TypeError("vectors must be a 2-D float64 tensor")


@torch.library.custom_op("precisionrecon::xray_forward", mutates_args=(), device_types="cpu")
def xray_forward(
    x: Tensor,
    vectors: Tensor,
    vol_shape: list[int],
    vol_spacing: list[float],
    vol_offset: list[float],
    det_shape: list[int],
    beam: int,
    curved: int,
) -> Tensor:
    """Forward projection ``(*batch, *vol_shape) -> (*batch, n_views, *det_shape)``."""
    _check(x, vectors, vol_shape, "x")
    batch_shape = x.shape[: x.dim() - len(vol_shape)]
    batch = math.prod(batch_shape)
    n, sp, off, nu, nv = _geometry_args(vol_shape, vol_spacing, vol_offset, det_shape)
    out = x.new_empty((*batch_shape, vectors.shape[0], *det_shape))
    if batch == 0:
        return out
    xc = x.contiguous()
    vc = vectors.detach().contiguous()
    if not _call_library("pr_xray_forward", xc, out, batch, n, sp, off, vc, nu, nv, beam, curved):
        flat = reference.forward(xc.reshape(batch, *vol_shape), vc, n, sp, off, nu, nv, beam, curved)
        out.copy_(flat.reshape(out.shape))
    return out


@torch.library.custom_op("precisionrecon::xray_adjoint", mutates_args=(), device_types="cpu")
def xray_adjoint(
    y: Tensor,
    vectors: Tensor,
    vol_shape: list[int],
    vol_spacing: list[float],
    vol_offset: list[float],
    det_shape: list[int],
    beam: int,
    curved: int,
) -> Tensor:
    """Back-projection ``(*batch, n_views, *det_shape) -> (*batch, *vol_shape)``."""
    _check(y, vectors, [vectors.shape[0], *det_shape], "y")
    batch_shape = y.shape[: y.dim() - 1 - len(det_shape)]
    batch = math.prod(batch_shape)
    n, sp, off, nu, nv = _geometry_args(vol_shape, vol_spacing, vol_offset, det_shape)
    out = y.new_empty((*batch_shape, *vol_shape))
    if batch == 0:
        return out
    yc = y.contiguous()
    vc = vectors.detach().contiguous()
    if not _call_library("pr_xray_adjoint", yc, out, batch, n, sp, off, vc, nu, nv, beam, curved):
        flat = reference.adjoint(yc.reshape(batch, -1), vc, n, sp, off, nu, nv, beam, curved)
        out.copy_(flat.reshape(out.shape))
    return out


@xray_forward.register_fake
def _(x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved):
    batch_shape = x.shape[: x.dim() - len(vol_shape)]
    return x.new_empty((*batch_shape, vectors.shape[0], *det_shape))


@xray_adjoint.register_fake
def _(y, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved):
    batch_shape = y.shape[: y.dim() - 1 - len(det_shape)]
    return y.new_empty((*batch_shape, *vol_shape))


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.geometry = inputs[2:]


def _forward_backward(ctx, grad: Tensor):
    (vectors,) = ctx.saved_tensors
    return (xray_adjoint(grad, vectors, *ctx.geometry),) + (None,) * 7


def _adjoint_backward(ctx, grad: Tensor):
    (vectors,) = ctx.saved_tensors
    return (xray_forward(grad, vectors, *ctx.geometry),) + (None,) * 7


xray_forward.register_autograd(_forward_backward, setup_context=_setup_context)
xray_adjoint.register_autograd(_adjoint_backward, setup_context=_setup_context)


@torch.library.custom_op("precisionrecon::vbp_backproject", mutates_args=(), device_types="cpu")
def vbp_backproject(
    q: Tensor,
    vectors: Tensor,
    vol_shape: list[int],
    vol_spacing: list[float],
    vol_offset: list[float],
    det_shape: list[int],
    beam: int,
    curved: int,
    weighted: int,
) -> Tensor:
    """Voxel-driven (FBP) back-projection ``(*batch, n_views, *det_shape) -> (*batch, *vol_shape)``."""
    _check(q, vectors, [vectors.shape[0], *det_shape], "q")
    batch_shape = q.shape[: q.dim() - 1 - len(det_shape)]
    batch = math.prod(batch_shape)
    n, sp, off, nu, nv = _geometry_args(vol_shape, vol_spacing, vol_offset, det_shape)
    out = q.new_empty((*batch_shape, *vol_shape))
    if batch == 0:
        return out
    qc = q.contiguous()
    vc = vectors.detach().contiguous()
    if not _call_library("pr_vbp_backproject", qc, out, batch, n, sp, off, vc, nu, nv, beam, curved, weighted):
        flat = reference.vbp_backproject(
            qc.reshape(batch, vectors.shape[0], -1), vc, n, sp, off, nu, nv, beam, curved, weighted
        )
        out.copy_(flat.reshape(out.shape))
    return out


@torch.library.custom_op("precisionrecon::vbp_project", mutates_args=(), device_types="cpu")
def vbp_project(
    x: Tensor,
    vectors: Tensor,
    vol_shape: list[int],
    vol_spacing: list[float],
    vol_offset: list[float],
    det_shape: list[int],
    beam: int,
    curved: int,
    weighted: int,
) -> Tensor:
    """Transpose of :func:`vbp_backproject`: ``(*batch, *vol_shape) -> (*batch, n_views, *det_shape)``."""
    _check(x, vectors, vol_shape, "x")
    batch_shape = x.shape[: x.dim() - len(vol_shape)]
    batch = math.prod(batch_shape)
    n, sp, off, nu, nv = _geometry_args(vol_shape, vol_spacing, vol_offset, det_shape)
    out = x.new_empty((*batch_shape, vectors.shape[0], *det_shape))
    if batch == 0:
        return out
    xc = x.contiguous()
    vc = vectors.detach().contiguous()
    if not _call_library("pr_vbp_project", xc, out, batch, n, sp, off, vc, nu, nv, beam, curved, weighted):
        flat = reference.vbp_project(xc.reshape(batch, -1), vc, n, sp, off, nu, nv, beam, curved, weighted)
        out.copy_(flat.reshape(out.shape))
    return out


@vbp_backproject.register_fake
def _(q, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved, weighted):
    batch_shape = q.shape[: q.dim() - 1 - len(det_shape)]
    return q.new_empty((*batch_shape, *vol_shape))


@vbp_project.register_fake
def _(x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved, weighted):
    batch_shape = x.shape[: x.dim() - len(vol_shape)]
    return x.new_empty((*batch_shape, vectors.shape[0], *det_shape))


def _vbp_backproject_backward(ctx, grad: Tensor):
    (vectors,) = ctx.saved_tensors
    return (vbp_project(grad, vectors, *ctx.geometry),) + (None,) * 8


def _vbp_project_backward(ctx, grad: Tensor):
    (vectors,) = ctx.saved_tensors
    return (vbp_backproject(grad, vectors, *ctx.geometry),) + (None,) * 8


vbp_backproject.register_autograd(_vbp_backproject_backward, setup_context=_setup_context)
vbp_project.register_autograd(_vbp_project_backward, setup_context=_setup_context)
