r"""Chunked execution of the 3-D operators: volume slabs times view ranges within a memory budget.

A projector ``A`` (volume -> projections) splits into blocks ``A_{s,v}``: the volume slab
``s`` (slices ``[z_0, z_1)`` of the first tensor axis, a :class:`~precisionrecon.Volume` of
its own with the centre shifted) projected onto the views ``v``. Because the kernels
interpolate with zeros outside the volume, the blocks add up exactly (in exact arithmetic):

.. math::

    (A x)_v = \sum_s A_{s,v} x_s, \qquad (A^T y)_s = \sum_v A_{s,v}^T y_v .

The same holds for the voxel-driven back-projector, FBP/FDK and HelicalFBP (their pre-weights
and ramp filter act view by view, so a block is the FBP of a view range into a slab, with the
pre-weights of the whole scan cut to the range).

What equals the unchunked call bit for bit (measured in ``tests/test_chunked.py`` and
``benchmarks/scale.py``):

- the forward projection split into view ranges only (one slab): every ray is computed
  alone, so each view's values do not depend on the others;
- nothing else: the slab blocks shift the volume's index origin, which rounds the ray
  parameters differently (relative differences of about ``1e-7`` in float32, ``1e-16`` in
  float64), and the back-projection of view ranges sums the views in another order.

The adjoint stays exact: ``ChunkedOperator.T`` applies exactly the transposed blocks, so
the dot-product test holds to rounding whatever the split.

Memory: a block costs about ``2 itemsize batch (slab voxels + view pixels)`` bytes (input and
output, and the kernels' padded work copies of each, see :func:`block_bytes`). With
``max_bytes=None`` the budget is :func:`memory_budget`: half of the free memory of a CUDA
compute device (``torch.cuda.mem_get_info``), or half of the available RAM on the CPU.

Streaming: with ``device="cpu"`` (the tensors' home) and ``compute_device="cuda"``, inputs
and outputs stay in (pinned) host memory; each block's input is uploaded on a copy stream
one block ahead of the kernels, and each result is downloaded on a second stream, so
copies overlap with compute (as TIGRE does for volumes larger than the GPU).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._validate import check_int
from ..geometry import VectorGeometry, Volume
from .backprojection import VoxelBackprojection
from .base import LinearFunction, LinearOperator, cached
from .fbp import FBP, build_backprojector, design_weights
from .helical import HelicalFBP
from .weights import ProjectionWeighting
from .xray import XRayTransform, check_tensor

__all__ = [
    "ChunkPlan",
    "ChunkedOperator",
    "ChunkedXRayTransform",
    "block_bytes",
    "memory_budget",
    "plan_chunks",
    "slab_operator",
    "volume_slab",
]

# the operators that split into slab x view blocks
CHUNKABLE = (XRayTransform, VoxelBackprojection, FBP, HelicalFBP)
# share of the free memory that the automatic budget takes (the rest: other tensors, fragmentation)
BUDGET_SHARE = 0.5


def volume_slab(volume: Volume, start: int, stop: int) -> Volume:
    """Slices ``[start, stop)`` of the first axis of ``volume`` as a volume of its own.

    Same spacing; the centre moves along the first axis to the slab's middle, so every
    voxel keeps its world position: voxel ``i`` of the slab is voxel ``start + i`` of
    ``volume``.

    Shape: ``(stop - start, *volume.shape[1:])``.
    """
    n = volume.shape[0]
    start = check_int(start, "start", minimum=0, maximum=n - 1)
    stop = check_int(stop, "stop", minimum=start + 1, maximum=n)
    centre = volume.center[0] + (start + stop - n) / 2 * volume.spacing[0]
    return Volume((stop - start, *volume.shape[1:]), volume.spacing, (centre, *volume.center[1:]))


def slab_operator(op: XRayTransform, start: int, stop: int) -> tuple[XRayTransform, tuple[int, int]]:
    r"""The sub-problem of a slab for slab-wise training: the projector of the slices
    ``[start, stop)`` onto the detector rows ``[r0, r1)`` that they alone determine.

    With parallel rays perpendicular to z and detector rows along z (``ParallelBeam3D``
    and its tilted-free vector forms), row ``r`` at height ``z_r`` samples only the slices
    around ``z_r``; the rows whose index coordinate lies in ``[start, stop - 1]`` see no
    voxel outside the slab, so ``A_slab x[start:stop] = (A x)[..., r0:r1, :]`` (to rounding).

    Returns
    -------
    (XRayTransform, (int, int))
        The slab's projector (a :class:`~precisionrecon.VectorGeometry` of the rows) and
        the rows ``(r0, r1)`` to take from the projections.

    Raises
    ------
    ValueError
        A geometry whose rays cross slices (cone beam, tilted rays or detector), or a slab
        that determines no row.
    """
    if not isinstance(op, XRayTransform) or op.volume.ndim != 3:
        raise TypeError(f"op must be a 3-D XRayTransform, got {type(op).__name__}")
    geom = op.geometry
    vec = geom.to_vectors()
    ray_z, u_z, v_xy = vec[:, 2], vec[:, 8], vec[:, 9:11]
    if geom.beam != "parallel" or bool(torch.any(ray_z != 0) | torch.any(u_z != 0) | torch.any(v_xy != 0)):
        raise ValueError("slab_operator needs parallel rays perpendicular to z and detector rows along z: in "
                         f"this {type(geom).__name__} the slabs are coupled (use ChunkedOperator instead)")
    vol = volume_slab(op.volume, start, stop)
    n_rows = geom.det_shape[0]
    heights = vec[:, 5:6] + (torch.arange(n_rows, dtype=vec.dtype) - (n_rows - 1) / 2) * vec[:, 11:12]
    if bool(torch.any(heights != heights[:1])):
        raise ValueError("slab_operator needs the same detector rows (heights) in every view")
    _, (sp_z, *_), (off_z, *_) = op.volume.kernel_params()
    index = heights[0] / sp_z + off_z  # the rows' index coordinates along z
    eps = 1e-9
    inside = torch.nonzero((index >= start - eps) & (index <= stop - 1 + eps)).flatten()
    if inside.numel() == 0:
        raise ValueError(f"the slices [{start}, {stop}) determine no detector row")
    r0, r1 = int(inside[0]), int(inside[-1]) + 1
    shifted = vec.clone()
    shifted[:, 3:6] += ((r0 + r1 - 1) / 2 - (n_rows - 1) / 2) * vec[:, 9:12]
    rows = VectorGeometry(vectors=shifted, det_shape=(r1 - r0, geom.det_shape[1]), beam="parallel")
    return XRayTransform(vol, rows, device=op.device), (r0, r1)


def memory_budget(device: Any) -> int:
    """Bytes a chunked operator may use on ``device`` when no ``max_bytes`` is given:
    :data:`BUDGET_SHARE` of the free device memory (``torch.cuda.mem_get_info``) on CUDA, of
    the available RAM (``MemAvailable`` of ``/proc/meminfo``, else the free pages) on the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(BUDGET_SHARE * free)
    return int(BUDGET_SHARE * _available_ram())


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover  (not Linux)
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")  # pragma: no cover


def block_bytes(slab_voxels: int, view_pixels: int, *, batch: int = 1, itemsize: int = 4) -> int:
    """Estimated peak bytes of one block: input and output, each twice (the kernels' padded,
    batch-last work copies, and the accumulator of the partial sums).

    ``slab_voxels``: voxels of the slab; ``view_pixels``: detector pixels of all its views.
    Not counted: the output of the whole call (it must exist anyway) and the CPU adjoint's
    table of ray set-ups (80 bytes per ray, at most 2^19 rays: up to 40 MiB per call).
    """
    return 2 * itemsize * batch * (slab_voxels + view_pixels)


@dataclass(frozen=True)
class ChunkPlan:
    """How a chunked operator splits: ``slabs`` along the volume's first axis, ``views`` and
    ``batches`` (groups of the flattened batch items), each a tuple of ``(start, stop)``
    ranges covering its axis in order."""

    slabs: tuple[tuple[int, int], ...]
    views: tuple[tuple[int, int], ...]
    batches: tuple[tuple[int, int], ...] = ((0, 1),)

    @property
    def n_blocks(self) -> int:
        """Blocks per batch group."""
        return len(self.slabs) * len(self.views)


def _ranges(n: int, step: int) -> tuple[tuple[int, int], ...]:
    """``[start, stop)`` ranges of at most ``step`` covering ``range(n)``, as even as possible."""
    parts = math.ceil(n / max(1, step))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return tuple((bounds[i], bounds[i + 1]) for i in range(parts))


def plan_chunks(
    volume: Volume, proj_shape: tuple[int, ...], *, max_bytes: int, batch: int = 1, itemsize: int = 4
) -> ChunkPlan:
    """The split of a volume and its projections into blocks of at most ``max_bytes`` each
    (estimated by :func:`block_bytes`).

    The whole volume is kept in one slab when it leaves room for at least one view (then
    the forward projection is bitwise the unchunked one); else the slab takes about half
    the budget and the views the rest. A batch that does not fit with one slice and one
    view is split into groups first.

    Raises
    ------
    ValueError
        ``max_bytes`` is too small for one slice and one view of one item.
    """
    max_bytes = check_int(max_bytes, "max_bytes", minimum=1)
    batch = check_int(batch, "batch", minimum=1)
    n_slices, slice_voxels = volume.shape[0], math.prod(volume.shape[1:])
    n_views, view_pixels = proj_shape[0], math.prod(proj_shape[1:])

    def cost(slices: int, views: int, items: int) -> int:
        return block_bytes(slices * slice_voxels, views * view_pixels, batch=items, itemsize=itemsize)

    if cost(1, 1, 1) > max_bytes:
        raise ValueError(
            f"max_bytes={max_bytes} is too small: one slice and one view need about {cost(1, 1, 1)} bytes"
        )
    items = min(batch, max_bytes // cost(1, 1, 1))  # a batch too large for one slice and view is split too
    batches = _ranges(batch, items)
    items = max(b - a for a, b in batches)
    whole = ((0, n_slices),)
    if cost(n_slices, n_views, items) <= max_bytes:
        return ChunkPlan(whole, ((0, n_views),), batches)
    per_view = cost(0, 1, items)
    if cost(n_slices, 1, items) <= max_bytes:
        return ChunkPlan(whole, _ranges(n_views, (max_bytes - cost(n_slices, 0, items)) // per_view), batches)
    slices = min(n_slices - 1, max(1, (max_bytes // 2) // cost(1, 0, items)))
    views = (max_bytes - cost(slices, 0, items)) // per_view
    if views < 1:  # a view takes more than half the budget: the slab gets the rest
        slices, views = (max_bytes - per_view) // cost(1, 0, items), 1
    return ChunkPlan(_ranges(n_slices, slices), _ranges(n_views, min(views, n_views)), batches)


def _view_part(t: Tensor | None, n_views: int, n_trailing: int, v0: int, v1: int) -> Tensor | None:
    """Views ``[v0, v1)`` of a tensor broadcastable to ``(n_views, *trailing)`` (``n_trailing``
    trailing axes), or the tensor itself where it has no view axis of its own."""
    if t is None or t.dim() <= n_trailing or t.shape[t.dim() - n_trailing - 1] != n_views or n_views == 1:
        return t
    return t.narrow(t.dim() - n_trailing - 1, v0, v1 - v0)


class _Transfers:
    """Moves blocks between the storage device (where the operator's tensors live) and the
    compute device. From host memory to CUDA, uploads run one block ahead on a copy stream
    and downloads on another stream, so that both overlap with the kernels."""

    def __init__(self, storage: torch.device, compute: torch.device) -> None:
        self.storage, self.compute = storage, compute
        self.streaming = storage.type == "cpu" and compute.type == "cuda"
        if self.streaming:
            self.upload_stream = torch.cuda.Stream(compute)
            self.download_stream = torch.cuda.Stream(compute)

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        """The output on the storage device (pinned when streaming, for asynchronous downloads)."""
        return torch.empty(shape, dtype=like.dtype, device=self.storage, pin_memory=self.streaming)

    def inputs(self, parts: list[Tensor]) -> Iterator[Tensor]:
        """``parts`` on the compute device, in order; when streaming, part ``i + 1`` is copied
        while the caller computes on part ``i``."""
        if not self.streaming:
            for part in parts:
                yield part.to(self.compute)
            return
        compute_stream = torch.cuda.current_stream(self.compute)
        pending = self._upload(parts[0]) if parts else None
        for i in range(len(parts)):
            tensor, ready = pending  # type: ignore[misc]
            pending = self._upload(parts[i + 1]) if i + 1 < len(parts) else None
            compute_stream.wait_event(ready)
            tensor.record_stream(compute_stream)  # the allocator must not reuse it before the kernels ran
            yield tensor

    def _upload(self, part: Tensor) -> tuple[Tensor, torch.cuda.Event]:
        host = part if part.is_contiguous() and part.is_pinned() else part.contiguous().pin_memory()
        with torch.cuda.stream(self.upload_stream):
            tensor = host.to(self.compute, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self.upload_stream)
        return tensor, ready

    def output(self, dst: Tensor, src: Tensor) -> None:
        """Write a result block into its place ``dst`` of the output."""
        if not self.streaming:
            dst.copy_(src)
            return
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.compute))
        self.download_stream.wait_event(done)
        with torch.cuda.stream(self.download_stream):
            src.record_stream(self.download_stream)
            dst.copy_(src, non_blocking=True)

    def finish(self) -> None:
        """Wait for the last downloads (the output is complete on return)."""
        if self.streaming:
            self.download_stream.synchronize()


@dataclass(frozen=True, init=False)
class ChunkedOperator(LinearOperator):
    r"""An :class:`XRayTransform`, :class:`VoxelBackprojection` or :class:`FBP`, applied in
    blocks of volume slabs times view ranges that fit a memory budget (see the module
    docstring for the math and for which results are bitwise those of ``op``).

    Parameters
    ----------
    op : XRayTransform, VoxelBackprojection or FBP
        The operator to split; its ``device`` is where the kernels run (the compute device).
    max_bytes : int, optional
        Budget of one block in bytes (:func:`block_bytes`); default :func:`memory_budget`
        of the compute device, read at each call.
    device : str or torch.device, optional
        Where the operator's inputs and outputs live; default ``op.device``. A CPU device
        with a CUDA ``op`` streams host-resident (pinned) data through the GPU.

    Notes
    -----
    Shape: that of ``op``. Differentiable: the gradient of the chunked operator is its
    chunked adjoint (one autograd node, :class:`~.base.LinearFunction`, which never
    holds the blocks' slices of the input); an FBP with learnable
    ``response`` or ``weights`` is differentiated block by block instead.
    """

    op: LinearOperator
    max_bytes: int | None = None
    device: torch.device = field(default=torch.device("cpu"))

    def __init__(self, op: LinearOperator, *, max_bytes: int | None = None, device: Any = None) -> None:
        if not isinstance(op, CHUNKABLE):
            raise TypeError(
                f"op must be an XRayTransform, VoxelBackprojection, FBP or HelicalFBP, got {type(op).__name__}"
            )
        if max_bytes is not None:
            max_bytes = check_int(max_bytes, "max_bytes", minimum=1)
        storage = op.device if device is None else torch.device(device)
        if storage.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be a CPU or CUDA device, got {storage}")
        if storage.type == "cuda" and storage != op.device:
            raise ValueError(f"device {storage} must be the CPU or op's device {op.device}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "max_bytes", max_bytes)
        object.__setattr__(self, "device", storage)

    # --- shapes and parts -------------------------------------------------------------
    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.op.domain_shape)

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.op.range_shape)

    @property
    def compute_device(self) -> torch.device:
        """Where the kernels run (``op.device``)."""
        return self.op.device

    @cached
    def _xray(self) -> Any:
        """The projector-like operator holding volume and geometry (``FBP.A`` for FBP)."""
        return self.op.A if isinstance(self.op, (FBP, HelicalFBP)) else self.op

    @property
    def volume(self) -> Volume:
        return self._xray.volume

    @property
    def geometry(self) -> Any:
        return self._xray.geometry

    @property
    def _to_volume(self) -> bool:
        """``op`` maps projections to the volume (VoxelBackprojection, FBP)."""
        return not isinstance(self.op, XRayTransform)

    def plan(self, batch: int = 1, dtype: torch.dtype = torch.float32) -> ChunkPlan:
        """The split for ``batch`` items of ``dtype`` (:func:`plan_chunks`)."""
        budget = self.max_bytes if self.max_bytes is not None else memory_budget(self.compute_device)
        itemsize = torch.empty(0, dtype=dtype).element_size()
        return plan_chunks(self.volume, self.geometry.proj_shape, max_bytes=budget, batch=batch, itemsize=itemsize)

    def block(self, slab: tuple[int, int], views: tuple[int, int]) -> LinearOperator:
        """The operator of one block: ``op`` restricted to the slices ``slab`` of the volume
        and the views ``views`` (same orientation as ``op``)."""
        (z0, z1), (v0, v1) = slab, views
        vol = volume_slab(self.volume, z0, z1)
        geom = self.geometry[v0:v1]
        op, dev = self.op, self.compute_device
        if isinstance(op, XRayTransform):
            return XRayTransform(vol, geom, device=dev)
        if isinstance(op, VoxelBackprojection):
            return VoxelBackprojection(vol, geom, distance_weight=op.distance_weight, footprint=op.footprint,
                                       device=dev)
        return self._fbp_block(vol, geom, v0, v1)

    def _fbp_block(self, vol: Volume, geom: Any, v0: int, v1: int) -> LinearOperator:
        """FBP's (or HelicalFBP's) ``B @ H @ P`` for one block: the back-projector of the block,
        the ramp filter of ``op`` and ``op``'s pre-weights (those of the whole scan) cut to the views."""
        op: FBP | HelicalFBP = self.op  # type: ignore[assignment]
        n_views, n_det = self.geometry.n_views, len(self.geometry.det_shape)
        shape = geom.proj_shape
        if op.weights is not None:
            pre: LinearOperator = ProjectionWeighting(shape, _view_part(op.weights, n_views, n_det, v0, v1))
        else:  # the designed factors, applied one after the other as FBP does
            view_w, det_w = (_view_part(w, n_views, n_det, v0, v1) for w in self._fbp_factors)
            pre = ProjectionWeighting(shape, view_w) @ ProjectionWeighting(shape, det_w)
        ramp = op.ramp.replace(shape=shape)
        back: LinearOperator
        if isinstance(op, HelicalFBP):
            back = VoxelBackprojection(vol, geom, distance_weight=True, device=self.compute_device)
        else:
            back = build_backprojector(op.backprojector_used, XRayTransform(vol, geom, device=self.compute_device),
                                       op.ramp.det_spacing)
        return back @ ramp @ pre

    @cached
    def _fbp_factors(self) -> tuple[Tensor, Tensor]:
        """The view and detector factors of FBP's designed pre-weights for the whole scan."""
        op = self.op
        if isinstance(op, HelicalFBP):
            return op.__dict__["_weight_factors"]
        return design_weights(op.A.volume, op.A.geometry, op.backprojector_used, short_scan=op.short_scan,
                              parker=op.parker)

    def _blocks(self, plan: ChunkPlan) -> dict[tuple[tuple[int, int], tuple[int, int]], LinearOperator]:
        """The blocks of ``plan`` by ``(slab, views)``, built once per plan (their vectors stay on the device)."""
        cache = self.__dict__.setdefault("_block_cache", {})
        key = (plan.slabs, plan.views)
        if key not in cache:
            cache.clear()  # one split at a time: a new batch size or dtype may replace the blocks
            cache[key] = {(s, v): self.block(s, v) for s in plan.slabs for v in plan.views}
        return cache[key]

    def _learnable(self) -> bool:
        op = self.op
        learnable = (op.response, op.weights) if isinstance(op, (FBP, HelicalFBP)) else ()
        return any(t is not None and t.requires_grad for t in learnable)

    # --- application ------------------------------------------------------------------
    def apply(self, x: Tensor) -> Tensor:
        """``op(x)`` block by block. Shape: ``(*batch, *op.domain_shape) -> (*batch, *op.range_shape)``."""
        check_tensor(x, "x" if not self._to_volume else "y", self.domain_shape, self.device)
        return self._run(x, False) if self._learnable() else LinearFunction.apply(x, self, False)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """``op.T(y)`` block by block. Shape: ``(*batch, *op.range_shape) -> (*batch, *op.domain_shape)``."""
        check_tensor(y, "y" if not self._to_volume else "x", self.range_shape, self.device)
        return self._run(y, True) if self._learnable() else LinearFunction.apply(y, self, True)

    def _run(self, t: Tensor, adjoint: bool) -> Tensor:
        """Apply ``op`` (or its adjoint) to ``t`` in blocks; writes into a new output."""
        to_volume = self._to_volume != adjoint  # this call maps projections to the volume
        in_trailing, out_trailing = (self.geometry.proj_shape, self.volume.shape)[:: 1 if to_volume else -1]
        batch = t.shape[: t.dim() - len(in_trailing)]
        plan = self.plan(math.prod(batch), t.dtype)
        if plan.n_blocks == 1 and len(plan.batches) == 1 and self.device == self.compute_device:
            return self.op.adjoint_apply(t) if adjoint else self.op.apply(t)
        blocks = self._blocks(plan)
        # slabs and views are both the first axis after the (flattened) batch: axis 1
        flat = t.reshape(-1, *in_trailing)
        moves = _Transfers(self.device, self.compute_device)
        out = moves.empty(t, (flat.shape[0], *out_trailing))
        # outer loop over the output's pieces, inner loop over the blocks that sum into each
        outer, inner = (plan.slabs, plan.views) if to_volume else (plan.views, plan.slabs)
        order = [(b, o, i) for b in plan.batches for o in outer for i in inner]
        parts = [flat[b[0] : b[1]].narrow(1, i[0], i[1] - i[0]) for b, _, i in order]
        acc: Tensor | None = None
        for k, ((b, o, i), part) in enumerate(zip(order, moves.inputs(parts), strict=True)):
            blk = blocks[(o, i) if to_volume else (i, o)]
            result = blk.adjoint_apply(part) if adjoint else blk.apply(part)
            # in place unless autograd records the sum (learnable FBP parts): one buffer per output piece
            acc = result if acc is None else acc + result if torch.is_grad_enabled() else acc.add_(result)
            if k + 1 == len(order) or order[k + 1][:2] != (b, o):
                moves.output(out[b[0] : b[1]].narrow(1, o[0], o[1] - o[0]), acc)
                acc = None
        moves.finish()
        return out.reshape(*batch, *out_trailing)

    def norm(self, **kwargs: Any) -> float:
        """``op.norm()``: the blocks add up to ``op``, so the norm is its norm."""
        return self.op.norm(**kwargs)

    def to(self, device: Any) -> ChunkedOperator:
        """The same split with tensors and kernels on ``device``."""
        return ChunkedOperator(self.op.to(device), max_bytes=self.max_bytes)  # type: ignore[attr-defined]

    def _example_dtype(self) -> torch.dtype:
        return torch.float64

    def __repr__(self) -> str:
        return f"ChunkedOperator({self.op!r}, max_bytes={self.max_bytes!r}, device={str(self.device)!r})"


def ChunkedXRayTransform(  # noqa: N802  (a constructor by its role)
    volume: Volume, geometry: Any, *, max_bytes: int | None = None, device: Any = "cpu", compute_device: Any = None
) -> ChunkedOperator:
    """An :class:`XRayTransform` of ``volume`` and ``geometry`` applied in blocks
    (:class:`ChunkedOperator`): tensors live on ``device``, kernels run on
    ``compute_device`` (default ``device``; ``device="cpu", compute_device="cuda"`` streams
    host-resident volumes through the GPU).

    Shape: ``(*batch, *volume.shape) -> (*batch, n_views, *det_shape)``.
    """
    compute = device if compute_device is None else compute_device
    return ChunkedOperator(XRayTransform(volume, geometry, device=compute), max_bytes=max_bytes, device=device)
