"""Simulated projections without the inverse crime: a finer image grid and a finer detector.

Data made with the same discrete operator that reconstructs them flatter every method (the
"inverse crime"). :func:`fine_projection` renders the object on a grid ``factor`` times
finer, projects it onto a detector with ``factor`` times as many cells of ``1 / factor``
the size (same source, detector centre and axes, so the same geometry), and averages
each group of ``factor`` (``factor^2`` in 3-D) cells back to one task cell: a detector
cell of finite width, seen through a finer discretisation of the object.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .._validate import positive_int
from ..geometry import Geometry, VectorGeometry, Volume
from ..operators.xray import XRayTransform


def refine_volume(volume: Volume, factor: int) -> Volume:
    """The same box with ``factor`` times as many voxels per axis (spacing / ``factor``).

    Returns
    -------
    Volume
        Shape: ``tuple(n * factor for n in volume.shape)``.
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    f = positive_int(factor, "factor")
    return Volume(tuple(n * f for n in volume.shape), tuple(s / f for s in volume.spacing), volume.center)


def refine_geometry(geometry: Geometry, factor: int) -> VectorGeometry:
    """The same views with each detector cell split into ``factor`` (2-D) or
    ``factor x factor`` (3-D) cells.

    Built from the per-view vectors: the source (or ray direction), the detector centre
    (and a cylinder axis point) stay, the pixel steps ``u`` (and ``v``) shrink by ``factor``; a curved detector keeps
    its radius (``|u|`` is the arc length between cells). Group ``k`` of ``factor``
    consecutive fine cells covers task cell ``k`` exactly.

    Returns
    -------
    VectorGeometry
        Shape: projections ``(n_views, *[n * factor for n in geometry.det_shape])``.
    """
    if not isinstance(geometry, Geometry):
        raise TypeError(f"geometry must be a precisionrecon geometry, got {type(geometry).__name__}")
    f = positive_int(factor, "factor")
    vec = geometry.to_vectors().clone()
    d = geometry.ndim
    vec[:, 2 * d : 2 * d + (d - 1) * d] /= f  # u (and v); the source, the detector centre (and c) stay
    return VectorGeometry(
        vectors=vec,
        det_shape=tuple(n * f for n in geometry.det_shape),
        beam=geometry.beam,
        detector="curved" if geometry.curved else "flat",
    )


def bin_detector(y: Tensor, factor: int, ndim: int) -> Tensor:
    """Mean over groups of ``factor`` detector cells (``factor x factor`` in 3-D).

    Parameters
    ----------
    y : Tensor
        Shape: ``(*batch, n_views, n_det * factor)`` for ``ndim=2``,
        ``(*batch, n_views, rows * factor, cols * factor)`` for ``ndim=3``.
    factor : int
    ndim : {2, 3}
        Dimension of the geometry.

    Returns
    -------
    Tensor
        Shape: ``(*batch, n_views, n_det)`` or ``(*batch, n_views, rows, cols)``.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    f = positive_int(factor, "factor")
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    det = ndim - 1
    if y.dim() < det + 1 or any(n % f for n in y.shape[-det:]):
        raise ValueError(f"y must have {det} detector axes divisible by factor={f}, got shape {tuple(y.shape)}")
    if f == 1:
        return y
    if ndim == 2:
        return y.reshape(*y.shape[:-1], y.shape[-1] // f, f).mean(-1)
    rows, cols = y.shape[-2] // f, y.shape[-1] // f
    return y.reshape(*y.shape[:-2], rows, f, cols, f).mean((-3, -1))


def fine_projection(render: Callable[[Volume], Tensor], operator: XRayTransform, *, factor: int = 2) -> Tensor:
    """Projections of an object rendered and projected ``factor`` times finer, binned back.

    ``bin(A_f(render(V_f)))`` with ``V_f = refine_volume(A.volume, factor)``, ``A_f`` the
    :class:`~precisionrecon.XRayTransform` of ``V_f`` and ``refine_geometry(A.geometry,
    factor)``, and ``bin`` the mean of each group of fine cells (:func:`bin_detector`).
    Any geometry: parallel, fan (flat, arc), cone (flat, cylindrical), vectors.

    Parameters
    ----------
    render : callable
        ``render(volume) -> image`` of shape ``(*batch, *volume.shape)``, float32 or
        float64, e.g. ``lambda v: anatomy_phantom(v, seed=3)`` or
        ``lambda v: rasterize(phantom, v)``; it is called once, with the fine volume.
    operator : XRayTransform
        The task's projector (its volume, geometry and device are used).
    factor : int
        Refinement of the image grid (per axis) and of the detector cells.

    Returns
    -------
    Tensor
        Shape: ``(*batch, *operator.range_shape)`` on ``operator.device``.
    """
    if not isinstance(operator, XRayTransform):
        raise TypeError(f"operator must be an XRayTransform, got {type(operator).__name__}")
    if not callable(render):
        raise TypeError(f"render must be a callable volume -> image, got {type(render).__name__}")
    f = positive_int(factor, "factor")
    fine_volume = refine_volume(operator.volume, f)
    image = render(fine_volume)
    if not isinstance(image, Tensor) or tuple(image.shape[image.dim() - fine_volume.ndim :]) != fine_volume.shape:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"render must return a tensor of shape (*batch, {fine_volume.shape}), got {got}")
    fine_op = XRayTransform(fine_volume, refine_geometry(operator.geometry, f), device=operator.device)
    return bin_detector(fine_op(image.to(operator.device)), f, operator.geometry.ndim)


__all__ = ["bin_detector", "fine_projection", "refine_geometry", "refine_volume"]
