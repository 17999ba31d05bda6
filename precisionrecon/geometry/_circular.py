"""Per-view vectors of circular trajectories, as differentiable torch functions.

The geometry classes call these with floats; calibration and motion estimation call them
with tensors that require grad (angles, distances, offsets, tilt), and the vectors carry
the gradient into :class:`~precisionrecon.operators.ParametricXRayTransform`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _t(value: Any, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _angles(angles: Any) -> Tensor:
    th = torch.as_tensor(angles, dtype=torch.float64)
    if not th.is_floating_point():
        th = th.to(torch.float64)
    if th.dim() != 1:
        raise ValueError(f"angles must be 1-D, got shape {tuple(th.shape)}")
    return th


def circular_vectors(
    angles: Any,
    src_iso: Any,
    src_det: Any,
    du: Any,
    offset_u: Any = 0.0,
    curved: bool = False,
    dv: Any = None,
    offset_v: Any = 0.0,
    tilt: Any = 0.0,
) -> Tensor:
    """Vectors ``[src, det, u(, v)]`` of a source circling the z axis.

    The source sits at ``src_iso * (sin t, cos t)``, the detector centre at distance
    ``src_det`` from the source on the far side, the detector u axis along
    ``(cos t, -sin t)`` (ASTRA's fan/cone convention in row-major image coordinates).
    ``offset_u`` moves the detector along u: along the line (flat) or along the arc of
    radius ``src_det`` about the source (curved). 3-D when ``dv`` is given: v along +z.
    ``tilt`` (flat detectors) rotates the detector about its centre: in 2-D in the plane
    (u turns towards the source axis), in 3-D about the central ray (u turns towards v).
    Every argument except ``curved`` may be a tensor that requires grad (angles of shape
    ``(n_views,)``, the others scalars or ``(n_views,)``).

    Shape: ``(n_views, 6)`` (2-D) or ``(n_views, 12)`` (3-D), float64.
    """
    th = _angles(angles)
    s, c = torch.sin(th), torch.cos(th)
    zero = torch.zeros_like(th)
    src_iso, src_det, du, offset_u, tilt = (_t(v, th) for v in (src_iso, src_det, du, offset_u, tilt))
    src = src_iso[..., None] * torch.stack([s, c], dim=1)
    axis = -torch.stack([s, c], dim=1)  # unit vector from the source towards the isocentre
    uhat = torch.stack([c, -s], dim=1)
    if curved:
        beta = offset_u / src_det  # arc angle of the offset
        det = src + src_det[..., None] * (torch.cos(beta)[..., None] * axis + torch.sin(beta)[..., None] * uhat)
        uhat = torch.cos(beta)[..., None] * uhat - torch.sin(beta)[..., None] * axis
    else:
        det = src + src_det[..., None] * axis + offset_u[..., None] * uhat
    if dv is None:
        if not curved:
            uhat = torch.cos(tilt)[..., None] * uhat + torch.sin(tilt)[..., None] * axis
        return torch.cat([src, det, du[..., None] * uhat], dim=1)
    dv, offset_v = _t(dv, th), _t(offset_v, th)
    z = zero[:, None]
    vhat = torch.cat([z, z, z + 1.0], dim=1)
    uhat3 = torch.cat([uhat, z], dim=1)
    if not curved:
        ct, st = torch.cos(tilt)[..., None], torch.sin(tilt)[..., None]
        uhat3, vhat = ct * uhat3 + st * vhat, ct * vhat - st * uhat3
    return torch.cat(
        [torch.cat([src, z], 1), torch.cat([det, z + offset_v[..., None]], 1), du[..., None] * uhat3,
         dv[..., None] * vhat],
        dim=1,
    )


def parallel_vectors(
    angles: Any, du: Any = 1.0, offset_u: Any = 0.0, dv: Any = None, offset_v: Any = 0.0, tilt: Any = 0.0
) -> Tensor:
    """Vectors ``[ray, det, u(, v)]`` of a parallel beam rotating about z.

    The rays travel along ``(-sin t, -cos t)``, the detector u axis points along
    ``(cos t, -sin t)`` and its centre sits at ``offset_u`` along u (and ``offset_v``
    along +z in 3-D, when ``dv`` is given). ``tilt`` rotates the detector about its centre
    (2-D: u towards the ray; 3-D: u towards v). Arguments may be tensors that require grad.

    Shape: ``(n_views, 6)`` (2-D) or ``(n_views, 12)`` (3-D), float64.
    """
    th = _angles(angles)
    s, c = torch.sin(th), torch.cos(th)
    du, offset_u, tilt = (_t(v, th) for v in (du, offset_u, tilt))
    ray = torch.stack([-s, -c], dim=1)
    uhat = torch.stack([c, -s], dim=1)
    if dv is None:
        det = offset_u[..., None] * uhat
        uhat = torch.cos(tilt)[..., None] * uhat + torch.sin(tilt)[..., None] * ray
        return torch.cat([ray, det, du[..., None] * uhat], dim=1)
    dv, offset_v = _t(dv, th), _t(offset_v, th)
    z = torch.zeros_like(th)[:, None]
    vhat = torch.cat([z, z, z + 1.0], dim=1)
    uhat3 = torch.cat([uhat, z], dim=1)
    det = offset_u[..., None] * uhat3 + offset_v[..., None] * vhat
    ct, st = torch.cos(tilt)[..., None], torch.sin(tilt)[..., None]
    uhat3, vhat = ct * uhat3 + st * vhat, ct * vhat - st * uhat3
    return torch.cat([torch.cat([ray, z], 1), det, du[..., None] * uhat3, dv[..., None] * vhat], dim=1)
