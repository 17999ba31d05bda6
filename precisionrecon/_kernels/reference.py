"""Pure-PyTorch X-ray transform: the readable oracle of the compiled kernels.

It evaluates the same Joseph weights as ``cuda_ext/xray_math.h`` (same formulas, float64
geometry), builds them view chunk by view chunk as (ray, voxel, weight) triples and
applies them with ``gather``/``index_add_``. It is the fallback when no compiled library
is present and the reference the kernels are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MAX_ENTRIES = 1 << 22  # ray x slice x tap entries per chunk


def _pixel_positions(vec: Tensor, dim: int, nu: int, nv: int, curved: int) -> Tensor:
    """World positions of all detector pixels, shape ``(views, nv, nu, dim)``.

    ``curved``: 0 flat, 1 cylinder (arc) about the axis through the source along v, 2 about
    the axis through the point ``c = vec[:, 12:15]`` along v (15-wide 3-D vectors).
    """
    s, d, u = vec[:, None, None, :dim], vec[:, None, None, dim : 2 * dim], vec[:, None, None, 2 * dim : 3 * dim]
    dt = vec.dtype
    cu = (torch.arange(nu, dtype=dt, device=vec.device) - 0.5 * (nu - 1))[None, None, :, None]
    cv = (torch.arange(nv, dtype=dt, device=vec.device) - 0.5 * (nv - 1))[None, :, None, None] if dim == 3 else None
    v = vec[:, None, None, 3 * dim : 4 * dim] if dim == 3 else None
    if not curved:
        pos = d + cu * u
    else:
        w = d - (vec[:, None, None, 12:15] if curved == 2 else s)
        if dim == 3:
            vhat = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
            w = w - (w * vhat).sum(-1, keepdim=True) * vhat
        radius = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
        un = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        alpha = cu * un / radius
        pos = d + (torch.cos(alpha) - 1.0) * w + torch.sin(alpha) * radius * (u / un)
    if dim == 3:
        pos = pos + cv * v
    return pos.expand(vec.shape[0], nv, nu, dim)


def _taps(
    vec: Tensor, n: list[int], sp: list[float], off: list[float], nu: int, nv: int, beam: int, curved: int
) -> tuple[Tensor, Tensor]:
    """Padded voxel indices and weights of every ray of the views in ``vec``.

    ``n``, ``sp``, ``off`` are per axis x, y(, z). Returns ``(index, weight)`` of shape
    ``(rays, slices, taps)``; missing taps have weight 0 and index 0 (a padding voxel).
    """
    dim = len(n)
    dt = torch.float64
    pix = _pixel_positions(vec, dim, nu, nv, curved).reshape(-1, dim)
    s = vec[:, :dim].repeat_interleave(nu * nv, dim=0)
    direction = s if beam == 0 else pix - s
    origin = pix if beam == 0 else s
    dev = vec.device
    spt, offt = torch.tensor(sp, dtype=dt, device=dev), torch.tensor(off, dtype=dt, device=dev)
    o = origin / spt + offt
    dq = direction / spt
    m = torch.argmax(dq.abs(), dim=1)  # first maximum on ties, as in the kernel
    dqm = dq.gather(1, m[:, None])[:, 0]
    valid = dqm.abs() > 0
    dqm = torch.where(valid, dqm, torch.ones_like(dqm))
    length = torch.sqrt((direction * direction).sum(1))
    w = length / dqm.abs()
    others = torch.tensor([[1, 2], [0, 2], [0, 1]], device=dev)[:, : dim - 1][m]  # (rays, dim-1)
    nt = torch.tensor(n, device=dev)
    padded = [ni + 2 for ni in n]
    stride = torch.tensor([1, padded[0], padded[0] * padded[1]], device=dev)[:dim]
    base = int(stride.sum())
    jmax = max(n)
    j = torch.arange(jmax, dtype=dt, device=dev)[None, :]
    om = o.gather(1, m[:, None])
    in_range = (j < nt[m][:, None].to(dt)) & valid[:, None]
    index = base + j.long() * stride[m][:, None]
    taps_w = [w[:, None].expand(-1, jmax)]
    taps_i = [index]
    # o2 first, then o1: the same products in the same order as joseph_sample()
    for k in reversed(range(dim - 1)):
        ok = others[:, k]
        b = dq.gather(1, ok[:, None]) / dqm[:, None]
        a = o.gather(1, ok[:, None]) - om * b
        f = a + b * j
        fl = torch.floor(f)
        good = (fl >= -1) & (fl <= (nt[ok] - 1)[:, None].to(dt))
        in_range &= good
        t = f - fl
        fl = torch.where(good, fl, torch.zeros_like(fl)).long()
        so = stride[ok][:, None]
        # weight (1 - t) on voxel fl, t on voxel fl + 1
        taps_w = [wk * s for wk in taps_w for s in (1.0 - t, t)]
        taps_i = [ik + f * so for ik in taps_i for f in (fl, fl + 1)]
    weight = torch.stack(taps_w, dim=-1)
    index = torch.stack(taps_i, dim=-1)
    weight = torch.where(in_range[..., None], weight, torch.zeros_like(weight))
    index = torch.where(in_range[..., None], index, torch.zeros_like(index))
    return index, weight


def _view_chunks(n_views: int, rays_per_view: int, jmax: int, ntaps: int) -> int:
    return max(1, _MAX_ENTRIES // max(1, rays_per_view * jmax * ntaps))


def _padded_size(n: list[int]) -> int:
    size = 1
    for ni in n:
        size *= ni + 2
    return size


def _unpad(flat: Tensor, n: list[int]) -> Tensor:
    shape = [ni + 2 for ni in reversed(n)]
    vol = flat.reshape(flat.shape[0], *shape)
    sl = tuple(slice(1, -1) for _ in n)
    return vol[(slice(None), *sl)]


def _pad(x: Tensor, n: list[int]) -> Tensor:
    return torch.nn.functional.pad(x, [1, 1] * len(n)).reshape(x.shape[0], -1)


def forward(
    x: Tensor, vectors: Tensor, n: list[int], sp: list[float], off: list[float],
    nu: int, nv: int, beam: int, curved: int,
) -> Tensor:
    """Forward projection. ``x``: ``(B, [nz,] ny, nx)`` -> ``(B, views * nv * nu)``."""
    xp = _pad(x, n)
    rays_per_view = nu * nv
    step = _view_chunks(vectors.shape[0], rays_per_view, max(n), 2 ** (len(n) - 1))
    out = []
    for v0 in range(0, vectors.shape[0], step):
        index, weight = _taps(vectors[v0 : v0 + step], n, sp, off, nu, nv, beam, curved)
        vals = xp[:, index.reshape(-1)].reshape(x.shape[0], *index.shape)
        out.append((vals * weight.to(x.dtype)).sum(dim=(-1, -2)))
    return torch.cat(out, dim=1)


def adjoint(
    y: Tensor, vectors: Tensor, n: list[int], sp: list[float], off: list[float],
    nu: int, nv: int, beam: int, curved: int,
) -> Tensor:
    """Adjoint (back-projection) with the same weights. ``y``: ``(B, views * nv * nu)``."""
    acc = y.new_zeros(y.shape[0], _padded_size(n))
    rays_per_view = nu * nv
    step = _view_chunks(vectors.shape[0], rays_per_view, max(n), 2 ** (len(n) - 1))
    for v0 in range(0, vectors.shape[0], step):
        index, weight = _taps(vectors[v0 : v0 + step], n, sp, off, nu, nv, beam, curved)
        yc = y[:, v0 * rays_per_view : v0 * rays_per_view + index.shape[0]]
        contrib = yc[:, :, None, None] * weight.to(y.dtype)
        acc.index_add_(1, index.reshape(-1), contrib.reshape(y.shape[0], -1))
    return _unpad(acc, n)


# --- voxel-driven (FBP/FDK) back-projection: the math of view_projection / voxel_taps ---


def _voxel_centres(n: list[int], sp: list[float], off: list[float], device: torch.device) -> Tensor:
    """World coordinates of all voxel centres, ``(nvox, 3)`` in memory order (x fastest)."""
    axes = [(torch.arange(n[k], dtype=torch.float64, device=device) - off[k]) * sp[k] for k in range(len(n))]
    grids = torch.meshgrid(*reversed(axes), indexing="ij")  # (z,) y, x
    pts = torch.stack([g.reshape(-1) for g in reversed(grids)], dim=1)
    if pts.shape[1] == 2:
        pts = torch.cat([pts, torch.zeros_like(pts[:, :1])], dim=1)
    return pts


def _project_points(
    vec: Tensor, pts: Tensor, dim: int, nu: int, nv: int, beam: int, curved: int, weighted: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``project_point``: continuous detector coordinates ``cu``, ``cv``, the distance
    weight and a validity mask of points ``(P, 3)`` in one view (no detector range test)."""
    z = torch.zeros(3, dtype=torch.float64, device=vec.device)
    s, d, u, v = z.clone(), z.clone(), z.clone(), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=vec.device)
    s[:dim], d[:dim], u[:dim] = vec[:dim], vec[dim : 2 * dim], vec[2 * dim : 3 * dim]
    if dim == 3:
        v = vec[9:12].clone()
    cone = beam == 1
    weight = torch.ones(pts.shape[0], dtype=torch.float64, device=vec.device)
    ok = torch.ones(pts.shape[0], dtype=torch.bool, device=vec.device)
    if not curved:
        if cone:
            e = s - d
            rows = [torch.linalg.cross(e, v), torch.linalg.cross(u, e), torch.linalg.cross(u, v)]
            num_a, num_b, den = ((pts - s) @ r for r in rows)
            front = -1.0 if float((d - s) @ rows[2]) < 0 else 1.0
            ok &= den * front > 0  # at or behind the source
        else:
            c0, c1 = torch.linalg.cross(v, s), torch.linalg.cross(s, u)
            num_a, num_b = (pts - d) @ c0, (pts - d) @ c1
            den = torch.full_like(num_a, float(u @ torch.linalg.cross(v, s)))
        ok &= den != 0
        den = torch.where(ok, den, torch.ones_like(den))
        if weighted and cone:
            n = torch.linalg.cross(u, v)
            n = n * (-1.0 if float(n @ (d - s)) < 0 else 1.0) / torch.linalg.vector_norm(n)
            depth = (pts - s) @ n
            big_d = float(-(s @ n))
            ok &= depth > 0
            depth = torch.where(ok, depth, torch.ones_like(depth))
            weight = (big_d / depth) ** 2
        cu = num_a / den + 0.5 * (nu - 1)
        cv = num_b / den + 0.5 * (nv - 1)
    else:
        vhat = v / torch.linalg.vector_norm(v)
        axis = vec[12:15] if curved == 2 else s  # the cylinder axis passes through it along v
        w = d - axis
        w = w - (w @ vhat) * vhat
        radius = torch.linalg.vector_norm(w)
        what, un = w / radius, torch.linalg.vector_norm(u)
        uhat = u / un
        r = pts - s
        rv = r @ vhat
        r = r - rv[:, None] * vhat
        rn = torch.linalg.vector_norm(r, dim=1)
        ok &= rn > 0
        rn = torch.where(ok, rn, torch.ones_like(rn))
        wv = float((d - s) @ vhat)
        if curved == 2:
            # the ray s + t (x - s) meets the cylinder at t = tau / rho (see xray_math.h)
            a = (s - axis) - ((s - axis) @ vhat) * vhat
            ar = (r @ a) / rn
            disc = ar * ar - (a @ a - radius * radius)
            ok &= disc > 0
            t = (torch.sqrt(torch.where(ok, disc, torch.ones_like(disc))) - ar) / rn
            h = a + t[:, None] * r
            cu = torch.atan2(h @ uhat, h @ what) * radius / un + 0.5 * (nu - 1)
            cv = (t * rv - wv) / torch.linalg.vector_norm(v) + 0.5 * (nv - 1)
        else:
            cu = torch.atan2(r @ uhat, r @ what) * radius / un + 0.5 * (nu - 1)
            cv = ((radius / rn) * rv - wv) / torch.linalg.vector_norm(v) + 0.5 * (nv - 1)
        if weighted:
            weight = (float(-(s @ what)) / rn) ** 2
    return cu, cv, weight, ok


def _voxel_taps(
    vec: Tensor, pts: Tensor, dim: int, nu: int, nv: int, beam: int, curved: int, weighted: int
) -> tuple[Tensor, Tensor]:
    """Detector indices ``(nvox, 4)`` (flat, per view) and weights ``(nvox, 4)`` of one view."""
    cu, cv, weight, ok = _project_points(vec, pts, dim, nu, nv, beam, curved, weighted)
    ok &= (cu > -1) & (cu < nu)
    if dim == 3:
        ok &= (cv > -1) & (cv < nv)
    else:
        cv = torch.zeros_like(cv)
    cu, cv = torch.where(ok, cu, torch.zeros_like(cu)), torch.where(ok, cv, torch.zeros_like(cv))
    fu, fv = torch.floor(cu), torch.floor(cv)
    tu, tv = cu - fu, cv - fv
    iu, iv = fu.long(), fv.long()
    wu = [(1 - tu) * weight * (iu >= 0), tu * weight * (iu + 1 <= nu - 1)]
    wvs = [(1 - tv) * (iv >= 0), tv * (iv + 1 <= nv - 1)] if dim == 3 else [torch.ones_like(tv), torch.zeros_like(tv)]
    weights = torch.stack([wu[0] * wvs[0], wu[1] * wvs[0], wu[0] * wvs[1], wu[1] * wvs[1]], dim=1)
    weights = weights * ok[:, None]
    iu_t = torch.stack([iu, iu + 1, iu, iu + 1], dim=1).clamp(0, nu - 1)
    iv_t = torch.stack([iv, iv, iv + 1, iv + 1], dim=1).clamp(0, nv - 1)
    return iv_t * nu + iu_t, weights


FOOTPRINT_MIN_GAP = 1e-4  # kFootprintMinGap of xray_math.h


def _hat_c(s: Tensor) -> Tensor:
    """``C(s) = R3(s + 1) - 2 R3(s) + R3(s - 1)``, ``R3(s) = max(s, 0)^3 / 6``: the second
    antiderivative of the linear interpolation kernel."""
    r3 = lambda t: t.clamp(min=0) ** 3 / 6  # noqa: E731
    return r3(s + 1) - 2 * r3(s) + r3(s - 1)


def _footprint_taps(
    vec: Tensor, pts: Tensor, sp: list[float], nu: int, beam: int, curved: int, weighted: int
) -> tuple[Tensor, Tensor]:
    """Pixel-footprint weights of one view (2-D; ``pixel_footprint`` of xray_math.h):
    detector indices and weights, both ``(npix, K)``."""
    _, _, weight, ok = _project_points(vec, pts, 2, nu, 1, beam, curved, weighted)
    corners = []
    for sx in (-0.5, 0.5):
        for sy in (-0.5, 0.5):
            shift = torch.tensor([sx * sp[0], sy * sp[1], 0.0], dtype=torch.float64, device=pts.device)
            cu, _, _, ok_k = _project_points(vec, pts + shift, 2, nu, 1, beam, curved, 0)
            corners.append(cu)
            ok &= ok_k
    t = torch.sort(torch.stack(corners, dim=1), dim=1).values
    t = torch.where(ok[:, None], t, torch.zeros_like(t))
    ok &= (t[:, 3] > -1) & (t[:, 0] < nu)
    area = 0.5 * (t[:, 3] + t[:, 2] - t[:, 1] - t[:, 0])
    ok &= area > 0
    for p in (0, 2):
        mid = 0.5 * (t[:, p] + t[:, p + 1])
        narrow = t[:, p + 1] - t[:, p] < FOOTPRINT_MIN_GAP
        t[:, p] = torch.where(narrow, mid - 0.5 * FOOTPRINT_MIN_GAP, t[:, p])
        t[:, p + 1] = torch.where(narrow, mid + 0.5 * FOOTPRINT_MIN_GAP, t[:, p + 1])
    k0 = torch.floor(t[:, 0] - 1) + 1
    width = int((torch.ceil(t[:, 3] + 1) - 1 - k0)[ok].max().item()) + 1 if bool(ok.any()) else 1
    k = k0[:, None] + torch.arange(width, dtype=torch.float64, device=pts.device)
    d = t[:, None, :] - k[:, :, None]  # (npix, K, 4)
    c = _hat_c(d)
    w = (c[..., 3] - c[..., 2]) / (t[:, 3] - t[:, 2])[:, None] - (c[..., 1] - c[..., 0]) / (t[:, 1] - t[:, 0])[:, None]
    w = w * (weight / torch.where(ok, area, torch.ones_like(area)))[:, None]
    w = w * (ok[:, None] & (k >= 0) & (k <= nu - 1) & (k < t[:, 3:4] + 1))
    return k.clamp(0, nu - 1).long(), w


def _view_taps(
    vec: Tensor, pts: Tensor, n: list[int], sp: list[float], nu: int, nv: int, beam: int, curved: int, flags: int
) -> tuple[Tensor, Tensor]:
    """Point taps (:func:`_voxel_taps`) or, with flag bit 1 in 2-D, footprint weights."""
    if len(n) == 2 and flags & 2:
        return _footprint_taps(vec, pts, sp, nu, beam, curved, flags & 1)
    return _voxel_taps(vec, pts, len(n), nu, nv, beam, curved, flags & 1)


def vbp_backproject(
    q: Tensor, vectors: Tensor, n: list[int], sp: list[float], off: list[float],
    nu: int, nv: int, beam: int, curved: int, weighted: int,
) -> Tensor:
    """Voxel-driven back-projection. ``q``: ``(B, views, nv * nu)`` -> ``(B, nvox)``."""
    pts = _voxel_centres(n, sp, off, vectors.device)
    out = q.new_zeros(q.shape[0], pts.shape[0], dtype=torch.float64)
    for i in range(vectors.shape[0]):
        index, weight = _view_taps(vectors[i], pts, n, sp, nu, nv, beam, curved, weighted)
        out += (q[:, i, index.reshape(-1)].reshape(q.shape[0], *index.shape).double() * weight).sum(-1)
    return out.to(q.dtype)


def vbp_project(
    x: Tensor, vectors: Tensor, n: list[int], sp: list[float], off: list[float],
    nu: int, nv: int, beam: int, curved: int, weighted: int,
) -> Tensor:
    """Transpose of :func:`vbp_backproject`. ``x``: ``(B, nvox)`` -> ``(B, views, nv * nu)``."""
    pts = _voxel_centres(n, sp, off, vectors.device)
    out = x.new_zeros(x.shape[0], vectors.shape[0], nu * nv, dtype=torch.float64)
    for i in range(vectors.shape[0]):
        index, weight = _view_taps(vectors[i], pts, n, sp, nu, nv, beam, curved, weighted)
        contrib = x.double()[:, :, None] * weight
        out[:, i].index_add_(1, index.reshape(-1), contrib.reshape(x.shape[0], -1))
    return out.to(x.dtype)
