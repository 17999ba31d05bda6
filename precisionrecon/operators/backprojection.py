"""Voxel-driven back-projection: the back-projector of FBP and FDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._kernels import ops
from ..geometry import Geometry, Volume
from .base import LinearOperator, cached
from .xray import check_projector_args, check_tensor, kernel_args


@dataclass(frozen=True, init=False)
class VoxelBackprojection(LinearOperator):
    r"""Voxel-driven back-projection ``B`` of projections into a volume, and its transpose.

    For every voxel centre ``x`` and view, the ray through ``x`` meets the detector at
    continuous pixel coordinates ``(u(x), v(x))``; the projection is interpolated there
    (linearly in u, bilinearly in u and v; zero outside the detector) and weighted:

    .. math:: (B q)(x) = \sum_{\text{views}} W(x) \, q_{\text{view}}(u(x), v(x))

    ``W = 1`` for parallel beams and without ``distance_weight``. With ``distance_weight``
    a divergent beam gets the back-projection weight of fan-beam FBP and FDK,
    ``W = (D / l)^2``:

    - flat detector: ``l = (x - s) . n``, the depth of ``x`` along the detector normal
      ``n`` (pointing away from the source ``s``), and ``D = -s . n``; for circular
      geometries ``l / D`` is Kak & Slaney's ``U`` (eq. 3.4.2), so ``W = 1 / U^2``;
    - curved detector (arc, cylinder): ``l = |(x - s)_\perp|``, the distance from the
      source perpendicular to the detector's v axis, and ``D = -s . \hat w`` with ``w``
      the in-plane direction from the source to the detector centre; ``W = D^2 / L^2``
      (Kak & Slaney eq. 3.4.1 times ``D^2``).

    For circular geometries ``D`` is the source-to-isocentre distance.

    With ``footprint=True`` (2-D only) each pixel gets the mean of the back-projected,
    linearly interpolated projection over its area instead of the value at its centre:
    along the detector the pixel's shadow is the trapezoid ``T`` spanned by the projected
    corners (exact for parallel beams; for divergent beams the trapezoid approximation of
    separable footprints, Long, Fessler & Balter 2010), normalised to unit area, and bin
    ``k`` gets the weight ``W \int T(t) \Lambda(t - k) dt`` with ``\Lambda`` the linear
    interpolation kernel (closed form in ``pixel_footprint`` of ``cuda_ext/xray_math.h``).

    ``B.T`` is the
    voxel-driven forward projection with exactly the transposed weights (a matched pair,
    unlike ``XRayTransform.T``, which is the transpose of the ray-driven projector).

    Parameters
    ----------
    volume : Volume
    geometry : Geometry
    distance_weight : bool
        Apply ``W = (D / l)^2`` for divergent beams (ignored for parallel beams).
    footprint : bool
        Pixel means over the footprint instead of point samples at the centres (2-D).
    device : str or torch.device

    Notes
    -----
    Shape: ``(*batch, n_views, *det_shape) -> (*batch, *volume.shape)``; float32 or float64;
    differentiable (the gradient of ``B`` is ``B.T`` and vice versa).
    """

    volume: Volume
    geometry: Geometry
    distance_weight: bool = False
    footprint: bool = False
    device: torch.device = field(default=torch.device("cpu"))

    def __init__(
        self,
        volume: Volume,
        geometry: Geometry,
        *,
        distance_weight: bool = False,
        footprint: bool = False,
        device: Any = "cpu",
    ):
        dev = check_projector_args(volume, geometry, device)
        for name, value in (("distance_weight", distance_weight), ("footprint", footprint)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        if footprint and volume.ndim != 2:
            raise ValueError(f"footprint=True needs a 2-D volume, got a {volume.ndim}-D one")
        object.__setattr__(self, "volume", volume)
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "distance_weight", distance_weight)
        object.__setattr__(self, "footprint", footprint)
        object.__setattr__(self, "device", dev)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.geometry.proj_shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.volume.shape)

    @cached
    def _args(self) -> tuple:
        # the kernels' flags: bit 0 distance weight, bit 1 footprint
        return (*kernel_args(self.volume, self.geometry), int(self.distance_weight) | 2 * int(self.footprint))

    @cached
    def _vectors(self) -> Tensor:
        return self.geometry.to_vectors().to(self.device)

    def apply(self, q: Tensor) -> Tensor:
        """Back-projection. Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``."""
        check_tensor(q, "q", self.domain_shape, self.device)
        return ops.vbp_backproject(q, self._vectors, *self._args)

    def adjoint_apply(self, x: Tensor) -> Tensor:
        """Voxel-driven projection. Shape: ``(*batch, *volume.shape) -> (*batch, *proj_shape)``."""
        check_tensor(x, "x", self.range_shape, self.device)
        return ops.vbp_project(x, self._vectors, *self._args)

    def to(self, device: Any) -> VoxelBackprojection:
        """The same operator for tensors on ``device``."""
        return VoxelBackprojection(
            self.volume, self.geometry, distance_weight=self.distance_weight, footprint=self.footprint, device=device
        )
