"""Geometry calibration and motion estimation through the differentiable projector.

Both fit geometry parameters by gradient-based minimisation of the data fidelity
``1/2 ||A(g(p)) x - y||^2``, with gradients from :class:`ParametricXRayTransform`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .operators.parametric import ParametricXRayTransform


@dataclass
class FitResult:
    """Fitted parameters (name -> tensor) and the loss per iteration."""

    params: dict[str, Tensor]
    losses: list[float] = field(default_factory=list)


def fit_geometry(
    projector: ParametricXRayTransform,
    vectors_of: Callable[..., Tensor],
    x: Tensor,
    y: Tensor,
    init: dict[str, float | Tensor],
    *,
    n_iter: int = 50,
    callback: Callable[[int, dict[str, Tensor], float], None] | None = None,
) -> FitResult:
    """Fit the parameters of ``vectors_of(**params)`` to data ``y`` of a known image ``x``.

    Minimises ``1/2 ||A(vectors_of(**p)) x - y||^2 / ||y||^2`` over ``p`` with L-BFGS
    (strong Wolfe line search); the gradients come from the projector's analytic geometry
    derivatives. ``init`` gives the starting values (floats or tensors); choose units of
    comparable size (e.g. pixels and degrees) for a well-conditioned problem.

    Shape: ``x (*volume.shape)``, ``y (n_views, *det_shape)``.
    """
    params = {k: torch.as_tensor(v, dtype=torch.float64).clone().requires_grad_(True) for k, v in init.items()}
    scale = float((y.double() ** 2).sum())
    opt = torch.optim.LBFGS(list(params.values()), lr=1.0, max_iter=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)
    result = FitResult(params=params)

    def closure() -> Tensor:
        opt.zero_grad()
        residual = projector(x, vectors_of(**params)) - y
        loss = 0.5 * (residual.double() ** 2).sum() / scale
        loss.backward()
        return loss

    for it in range(n_iter):
        loss = float(opt.step(closure).detach())
        result.losses.append(loss)
        if callback is not None:
            callback(it, params, loss)
        if it > 0 and abs(result.losses[-2] - loss) <= 1e-14 * max(loss, 1e-30):
            break
    result.params = {k: v.detach() for k, v in params.items()}
    return result


def rigid_motion_vectors(vectors: Tensor, shift: Tensor, rotation: Tensor, *, beam: str) -> Tensor:
    """Per-view vectors seen by an object that moved rigidly in the plane.

    In view ``i`` the object is rotated by ``rotation[i]`` (radians, about the z axis
    through the world origin) and then shifted by ``shift[i]`` (mm, x and y). Projecting
    the moved object with the nominal geometry equals projecting the static object with
    the inversely moved geometry: points ``p -> R^-1 (p - t)`` (detector centre, and the
    source of divergent beams) and directions ``r -> R^-1 r`` (rays of parallel beams,
    detector axes). Differentiable in ``shift`` and ``rotation``.

    Shape: ``vectors (n_views, 6 | 12 | 15)`` (15: the cylinder axis point ``c`` moves as a
    point), ``shift (n_views, 2)``, ``rotation (n_views,)``.
    """
    if beam not in ("parallel", "cone"):
        raise ValueError(f"beam must be 'parallel' or 'cone', got {beam!r}")
    dim = 2 if vectors.shape[1] == 6 else 3
    c, s = torch.cos(rotation), torch.sin(rotation)

    def inv_rotate(v: Tensor) -> Tensor:  # R(-phi) applied to the x, y components
        x, y = v[:, 0], v[:, 1]
        out = [c * x + s * y, -s * x + c * y]
        if v.shape[1] == 3:
            out.append(v[:, 2])
        return torch.stack(out, dim=1)

    pad = torch.zeros(vectors.shape[0], dim - 2, dtype=vectors.dtype, device=vectors.device)
    t = torch.cat([shift.to(vectors.dtype), pad], dim=1)
    blocks = [vectors[:, k * dim : (k + 1) * dim] for k in range(vectors.shape[1] // dim)]
    src, det = blocks[0], blocks[1]
    first = inv_rotate(src - t) if beam == "cone" else inv_rotate(src)
    axes = [inv_rotate(b) for b in blocks[2:4]]  # u (and v): directions
    axis_point = [inv_rotate(b - t) for b in blocks[4:]]  # 15-wide vectors: the cylinder axis point c
    return torch.cat([first, inv_rotate(det - t), *axes, *axis_point], dim=1)
