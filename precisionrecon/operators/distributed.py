r"""The X-ray transform split across processes (and devices) with ``torch.distributed``.

Rank ``r`` of ``P`` owns the views ``V_r`` (contiguous, as even as possible). With
``A_r`` the projector onto them,

.. math::

    A x = \operatorname{gather}_r (A_r x), \qquad A^T y = \sum_r A_r^T y_{V_r} ,

so the forward projects only the rank's views and gathers them (``all_gather``), and the
adjoint back-projects only the rank's views and sums the partial volumes
(``all_reduce``). Inputs and outputs are replicated: every rank passes the same ``x`` (or
``y``) and gets the full result, so algorithms and learned models run unchanged on every
rank, each doing ``1 / P`` of the projector's work. The forward is bitwise the
single-process result (each ray is computed alone); the adjoint sums the ranks' partial
volumes in the reduction's order, equal to rounding.

Every call is collective: all ranks of the group must make the same calls in the same
order. On CUDA the group's backend is NCCL with one device per rank (``device`` is the
rank's device); on the CPU it is gloo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .._validate import check_int
from ..geometry import Geometry, Volume
from .base import LinearFunction, LinearOperator, cached
from .chunked import ChunkedOperator
from .xray import XRayTransform, check_projector_args, check_tensor

__all__ = ["DistributedXRayTransform", "view_ranges"]


def view_ranges(n_views: int, world_size: int) -> tuple[tuple[int, int], ...]:
    """The views ``[start, stop)`` of each rank: contiguous, sizes differing by at most one.

    Raises
    ------
    ValueError
        Fewer views than ranks (a rank would own none).
    """
    n_views = check_int(n_views, "n_views", minimum=1)
    world_size = check_int(world_size, "world_size", minimum=1)
    if n_views < world_size:
        raise ValueError(f"the geometry has {n_views} views, fewer than the {world_size} processes; every "
                         "process needs at least one")
    bounds = [r * n_views // world_size for r in range(world_size + 1)]
    return tuple((bounds[r], bounds[r + 1]) for r in range(world_size))


@dataclass(frozen=True, init=False)
class DistributedXRayTransform(LinearOperator):
    r""":class:`XRayTransform` with its views split across the processes of a group (see the
    module docstring for the math and which results are bitwise).

    Parameters
    ----------
    volume : Volume
    geometry : Geometry
    device : str or torch.device
        This rank's device (its CUDA device with NCCL, the CPU with gloo).
    group : ProcessGroup, optional
        The processes to split across (default: the default group).
    max_bytes : int, optional
        Run the rank's projector in blocks of at most this many bytes
        (:class:`~.chunked.ChunkedOperator`); by default in one piece.

    Notes
    -----
    Shape: ``(*batch, *volume.shape) -> (*batch, n_views, *det_shape)``, the full
    projections on every rank. Differentiable: the gradient of the forward is the
    distributed adjoint and vice versa, so gradients are replicated as well.
    """

    volume: Volume
    geometry: Geometry
    device: torch.device = field(default=torch.device("cpu"))
    group: Any = None
    max_bytes: int | None = None

    def __init__(
        self, volume: Volume, geometry: Geometry, device: Any = "cpu", *, group: Any = None,
        max_bytes: int | None = None,
    ) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("torch.distributed is not initialised: call torch.distributed.init_process_group first")
        dev = check_projector_args(volume, geometry, device)
        object.__setattr__(self, "volume", volume)
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "device", dev)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "max_bytes", None if max_bytes is None else check_int(max_bytes, "max_bytes",
                                                                                        minimum=1))
        self.__dict__["_ranges"] = view_ranges(geometry.n_views, dist.get_world_size(group))

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.volume.shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.geometry.proj_shape)

    @property
    def rank(self) -> int:
        return dist.get_rank(self.group)

    @property
    def views(self) -> tuple[int, int]:
        """This rank's views ``[start, stop)``."""
        return self.__dict__["_ranges"][self.rank]

    @cached
    def local(self) -> LinearOperator:
        """The projector onto this rank's views (chunked when ``max_bytes`` is set)."""
        v0, v1 = self.views
        op = XRayTransform(self.volume, self.geometry[v0:v1], device=self.device)
        return op if self.max_bytes is None else ChunkedOperator(op, max_bytes=self.max_bytes)

    def apply(self, x: Tensor) -> Tensor:
        """Forward projection, gathered. Shape: ``(*batch, *volume.shape) -> (*batch, *proj_shape)``."""
        check_tensor(x, "x", self.domain_shape, self.device)
        return LinearFunction.apply(x, self, False)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Back-projection, summed over the ranks. Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``."""
        check_tensor(y, "y", self.range_shape, self.device)
        return LinearFunction.apply(y, self, True)

    def _run(self, t: Tensor, adjoint: bool) -> Tensor:
        if adjoint:
            v0, v1 = self.views
            axis = t.dim() - len(self.range_shape)
            partial = self.local.adjoint_apply(t.narrow(axis, v0, v1 - v0))
            dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=self.group)
            return partial
        local = self.local.apply(t)
        axis = t.dim() - len(self.domain_shape)
        # all_gather needs equal sizes: pad each rank's views to the largest share
        most = max(b - a for a, b in self.__dict__["_ranges"])
        pad = list(local.shape)
        pad[axis] = most - local.shape[axis]
        padded = torch.cat([local, local.new_zeros(pad)], dim=axis).contiguous()
        pieces = [torch.empty_like(padded) for _ in self.__dict__["_ranges"]]
        dist.all_gather(pieces, padded, group=self.group)
        parts = [p.narrow(axis, 0, b - a) for p, (a, b) in zip(pieces, self.__dict__["_ranges"], strict=True)]
        return torch.cat(parts, dim=axis)

    def _example_dtype(self) -> torch.dtype:
        return torch.float64

    def __repr__(self) -> str:
        return (f"DistributedXRayTransform({self.volume!r}, {self.geometry!r}, device={str(self.device)!r}, "
                f"max_bytes={self.max_bytes!r})")
