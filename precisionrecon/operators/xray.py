"""The X-ray transform (ray-driven Joseph projector) and its exact adjoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import _validate
from .._kernels import ops
from .._validate import check_geometry_pair, check_sources_outside
from ..geometry import Geometry, Volume
from .base import LinearOperator, cached

_SUPPORTED_DEVICES = ("cpu", "cuda")
# the dtypes the compiled kernels take
KERNEL_DTYPES = (torch.float32, torch.float64)


def check_projector_args(volume: Any, geometry: Any, device: Any) -> torch.device:
    """Validate the arguments shared by the projectors; returns the device. A divergent
    beam whose source lies inside or on the volume box is refused (see README, "Bad input")."""
    check_geometry_pair(volume, geometry)
    check_sources_outside(volume, geometry)
    dev = torch.device(device)
    if dev.type not in _SUPPORTED_DEVICES:
        raise ValueError(f"device must be one of {_SUPPORTED_DEVICES}, got {dev}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is CUDA, but torch sees no CUDA device")
    return dev


def check_tensor(t: Any, name: str, trailing: tuple[int, ...], device: torch.device) -> None:
    """Type, dtype (what the kernels take), trailing shape and device of a projector input."""
    _validate.check_tensor(t, name, dtype=KERNEL_DTYPES, shape_suffix=trailing, device=device)


def kernel_args(volume: Volume, geometry: Geometry) -> tuple:
    """The plain arguments of the custom ops after ``vectors``."""
    n, sp, off = volume.kernel_params()
    beam = 0 if geometry.beam == "parallel" else 1
    return n, sp, off, list(geometry.det_shape), beam, geometry.curved_kind


@dataclass(frozen=True, init=False)
class XRayTransform(LinearOperator):
    r"""Forward projection ``A`` of a volume onto a detector and its exact adjoint.

    ``(A x)_r = \sum_j w_r \sum_k \lambda_{r,j,k} x_{k}``: ray ``r`` is sampled once per
    voxel slice ``j`` along its main axis, the volume is interpolated (bi)linearly between
    voxel centres with weights ``\lambda``, and ``w_r`` is the ray length per slice, so
    projections are line integrals in mm (Joseph 1982). ``A.T`` applies exactly the
    transposed weights.

    Parameters
    ----------
    volume : Volume
    geometry : Geometry
        Any 2-D geometry for a 2-D volume, any 3-D geometry for a 3-D volume.
    device : str or torch.device
        Device of the tensors the operator accepts.

    Notes
    -----
    Shape: ``(*batch, *volume.shape) -> (*batch, n_views, *det_shape)``; float32 or
    float64; differentiable (the gradient of ``A`` is ``A.T`` and vice versa).
    """

    volume: Volume
    geometry: Geometry
    device: torch.device = field(default=torch.device("cpu"))

    def __init__(self, volume: Volume, geometry: Geometry, device: Any = "cpu") -> None:
        dev = check_projector_args(volume, geometry, device)
        object.__setattr__(self, "volume", volume)
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "device", dev)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.volume.shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.geometry.proj_shape)

    @cached
    def _args(self) -> tuple:
        return kernel_args(self.volume, self.geometry)

    @cached
    def _vectors(self) -> Tensor:
        return self.geometry.to_vectors().to(self.device)

    def _check(self, t: Any, name: str, trailing: tuple[int, ...]) -> None:
        check_tensor(t, name, trailing, self.device)

    def apply(self, x: Tensor) -> Tensor:
        """Forward projection. Shape: ``(*batch, *volume.shape) -> (*batch, *proj_shape)``."""
        self._check(x, "x", self.domain_shape)
        return ops.xray_forward(x, self._vectors, *self._args)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Back-projection. Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``."""
        self._check(y, "y", self.range_shape)
        return ops.xray_adjoint(y, self._vectors, *self._args)

    def to(self, device: Any) -> XRayTransform:
        """The same operator for tensors on ``device``."""
        return XRayTransform(self.volume, self.geometry, device=device)
