"""``torch.library`` custom ops for the X-ray transform, the voxel-driven back-projector
and their adjoints, on CPU and CUDA.

The ops take the geometry as a float64 tensor of per-view vectors plus plain lists, so
they are traceable by ``torch.compile``. CPU tensors go to the OpenMP library (or the
pure-PyTorch reference when it is missing), CUDA tensors to the CUDA library on torch's
current stream; callers never branch on the device. The backward of each op is its
partner op (never the raw library call), which makes double backward work for free.
"""

from __future__ import annotations

import ctypes
import math
import threading

import torch
from torch import Tensor

from . import reference
from .loader import cpu_library, cuda_library

__all__ = ["vbp_backproject", "vbp_project", "xray_adjoint", "xray_forward", "xray_sensitivity"]

# op codes of pr_cuda_launch
_FORWARD, _ADJOINT, _VBP_BACKPROJECT, _VBP_PROJECT, _SENSITIVITY = 0, 1, 2, 3, 4
_CPU_NAMES = {
    _FORWARD: "pr_xray_forward",
    _ADJOINT: "pr_xray_adjoint",
    _VBP_BACKPROJECT: "pr_vbp_backproject",
    _VBP_PROJECT: "pr_vbp_project",
    _SENSITIVITY: "pr_xray_sensitivity",
}
_CUDA_DTYPES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
# Samples (batch x rays x samples per ray) of one CPU library call, about 0.1-0.5 s. Larger
# calls run in chunks so that Ctrl-C (a Python signal handler, run between two ctypes calls,
# which release the GIL) interrupts a long projection within a chunk's time. A larger
# back-projection of one image cannot be split without changing its summation order: it
# runs in a worker thread that the library stops on request (see _call_cpu_interruptible).
CHUNK_SAMPLES = 1 << 28
LIBRARY_BATCH = 16  # images per SIMD group of the CPU library (run() in cuda_ext/xray_cpu.cpp)
_CANCELLED = 98  # pr::kCancelled of cuda_ext/xray_cpu.cpp
_HALF = (torch.float16, torch.bfloat16)


def geometry_args(vol_shape: list[int], vol_spacing: list[float], vol_offset: list[float], det_shape: list[int]):
    # Tensor order (z, y, x) -> kernel order (x, y, z); detector (rows, cols) -> (nu, nv).
    n = list(reversed(vol_shape))
    sp = list(reversed(vol_spacing))
    off = list(reversed(vol_offset))
    nu = det_shape[-1]
    nv = det_shape[0] if len(det_shape) == 2 else 1
    return n, sp, off, nu, nv


def c_geometry(n: list[int], sp: list[float], off: list[float]):
    dim = len(n)
    return (
        (ctypes.c_int * 3)(*(n + [1] * (3 - dim))),
        (ctypes.c_double * 3)(*(sp + [1.0] * (3 - dim))),
        (ctypes.c_double * 3)(*(off + [0.0] * (3 - dim))),
    )


def _call_cpu(op: int, src: Tensor, dst: Tensor, batch: int, n, sp, off, vectors: Tensor, nu, nv, *ints,
              threads: int | None = None) -> bool:
    """Call the CPU library; False when there is no library (then the reference runs).

    ``threads`` defaults to torch's thread count of the calling thread.
    """
    found = cpu_library()
    if found is None:
        return False
    lib, _ = found
    fn = getattr(lib, f"{_CPU_NAMES[op]}_{'f32' if src.dtype == torch.float32 else 'f64'}")
    c_n, c_sp, c_off = c_geometry(n, sp, off)
    err = fn(src.data_ptr(), dst.data_ptr(), batch, len(n), c_n, c_sp, c_off, vectors.data_ptr(), vectors.shape[0],
             nu, nv, *ints, torch.get_num_threads() if threads is None else threads)
    if err == _CANCELLED:
        raise RuntimeError(f"precisionrecon kernel {_CPU_NAMES[op]} was cancelled (an interrupt in another thread)")
    if err != 0:
        raise RuntimeError(f"precisionrecon kernel {_CPU_NAMES[op]} rejected its arguments (code {err})")
    return True


def _call_cpu_interruptible(op: int, src: Tensor, dst: Tensor, batch: int, n, sp, off, vectors: Tensor, nu, nv,
                            *ints) -> bool:
    """:func:`_call_cpu` in a worker thread while the main thread waits, so that Ctrl-C works.

    Python runs signal handlers only in the main thread, between bytecodes: during one long
    ctypes call they would wait for its end. Here the main thread waits in ``join`` (which a
    signal interrupts); on KeyboardInterrupt (or any exception) it asks the library to stop
    (``pr_set_cancel``: the back-projections return at their next block of views or image
    row), waits for the worker and re-raises. The result of an uninterrupted call is that of
    :func:`_call_cpu`, bit for bit (same library call, same thread count).
    """
    found = cpu_library()
    if found is None:
        return False
    threads = torch.get_num_threads()  # OpenMP's thread count is per thread: take the caller's
    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        return _call_cpu(op, src, dst, batch, n, sp, off, vectors, nu, nv, *ints, threads=threads)
    outcome: list[BaseException | bool] = []

    def work() -> None:
        try:
            outcome.append(_call_cpu(op, src, dst, batch, n, sp, off, vectors, nu, nv, *ints, threads=threads))
        except BaseException as err:  # re-raised in the calling thread
            outcome.append(err)

    worker = threading.Thread(target=work, name="precisionrecon-kernel", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except BaseException:
        found[0].pr_set_cancel(1)
        worker.join()
        found[0].pr_set_cancel(0)
        raise
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _call_cuda(op: int, src: Tensor, dst: Tensor, batch: int, n, sp, off, vectors: Tensor, nu, nv, beam, curved,
               weighted: int) -> None:
    """Launch on torch's current CUDA stream (no host synchronisation)."""
    lib = cuda_library()
    deterministic = torch.are_deterministic_algorithms_enabled()
    if src.dtype in _HALF:
        if op == _VBP_PROJECT:
            raise TypeError("the voxel-driven projection (the transpose of VoxelBackprojection) needs float32 or "
                            f"float64 input, got {src.dtype}")
        deterministic = deterministic or op == _ADJOINT  # half precision: the gather, never atomics
    if vectors.device != src.device:
        vectors = vectors.to(src.device)
    c_n, c_sp, c_off = c_geometry(n, sp, off)
    with torch.cuda.device(src.device):
        stream = torch.cuda.current_stream(src.device).cuda_stream
        err = lib.pr_cuda_launch(op, _CUDA_DTYPES[src.dtype], src.data_ptr(), dst.data_ptr(), batch, len(n), c_n,
                                 c_sp, c_off, vectors.data_ptr(), vectors.shape[0], nu, nv, beam, curved, weighted,
                                 int(deterministic), ctypes.c_void_p(stream))
    if err != 0:
        raise RuntimeError(f"precisionrecon CUDA kernel failed: {lib.pr_cuda_error_string(err).decode()} "
                           f"(code {err})")


def _chunks(n: int, per_item: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)`` of about :data:`CHUNK_SAMPLES` samples each."""
    step = max(1, CHUNK_SAMPLES // max(per_item, 1))
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _call_cpu_chunked(op: int, src: Tensor, dst: Tensor, batch: int, n, sp, off, vectors: Tensor, nu, nv,
                      *ints) -> bool:
    """:func:`_call_cpu` in chunks that keep the result bitwise identical to one call.

    The library takes a batch in groups of :data:`LIBRARY_BATCH` images (one SIMD lane per
    image; a group of one image takes the single-image walks), so the chunks hold whole groups,
    aligned as in one call. Projections (forward, voxel-driven projection, sensitivities) are
    computed ray by ray, so a group too large for one chunk is split into chunks of views
    (each into its own buffer, copied into ``dst``). The back-projections sum over the views
    in an order of the library's own, so only the batch is split for them; a group too large
    for one chunk stays one call, made interruptible by :func:`_call_cpu_interruptible`.
    """
    samples = max(n) * nu * nv  # per view and image
    n_views = vectors.shape[0]
    if batch * n_views * samples <= CHUNK_SAMPLES:
        return _call_cpu(op, src, dst, batch, n, sp, off, vectors, nu, nv, *ints)
    if cpu_library() is None:
        return False
    to_volume = op in (_ADJOINT, _VBP_BACKPROJECT)
    src_items, dst_items = src.reshape(batch, -1), dst.view(batch, -1)
    per_group = LIBRARY_BATCH * n_views * samples
    step = LIBRARY_BATCH * max(1, CHUNK_SAMPLES // per_group)  # whole groups per chunk
    for b0 in range(0, batch, step):
        b1 = min(b0 + step, batch)
        nb = b1 - b0
        if nb * n_views * samples <= CHUNK_SAMPLES:
            _call_cpu(op, src_items[b0:b1], dst_items[b0:b1], nb, n, sp, off, vectors, nu, nv, *ints)
        elif to_volume:
            _call_cpu_interruptible(op, src_items[b0:b1], dst_items[b0:b1], nb, n, sp, off, vectors, nu, nv, *ints)
        else:  # at most one group: chunks of views
            out = dst_items[b0:b1].view(nb, n_views, -1)
            for v0, v1 in _chunks(n_views, nb * samples):
                part = out.new_empty((nb, v1 - v0, out.shape[2]))
                _call_cpu(op, src_items[b0:b1], part, nb, n, sp, off, vectors[v0:v1], nu, nv, *ints)
                out[:, v0:v1] = part
    return True


def _sensitivity_shape(vectors: Tensor, vol_shape: list[int], det_shape: list[int]) -> tuple[int, int]:
    """``(n_rays, K)`` of the geometry sensitivities: K = 2 sums per ray in 2-D, 4 in 3-D."""
    return vectors.shape[0] * math.prod(det_shape), 2 if len(vol_shape) == 2 else 4


def _check(t: Tensor, vectors: Tensor, trailing: list[int], what: str) -> None:
    allowed = (torch.float32, torch.float64, *(_HALF if t.device.type == "cuda" else ()))
    if t.dtype not in allowed:
        raise TypeError(f"{what} must be float32 or float64 (or float16/bfloat16 on CUDA), got {t.dtype}")
    if list(t.shape[t.dim() - len(trailing) :]) != list(trailing) or t.dim() < len(trailing):
        raise ValueError(f"{what} must have trailing shape {tuple(trailing)}, got {tuple(t.shape)}")
    if vectors.dtype != torch.float64 or vectors.dim() != 2:
        raise TypeError("vectors must be a 2-D float64 tensor")
    if t.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{what} must be a CPU or CUDA tensor, got device {t.device}")


def _run(op: int, src: Tensor, vectors: Tensor, vol_shape, vol_spacing, vol_offset, det_shape, beam: int,
         curved: int, weighted: int | None = None) -> Tensor:
    """Shared body of the four ops: shapes, batch folding and device dispatch."""
    to_volume = op in (_ADJOINT, _VBP_BACKPROJECT)
    trailing = [vectors.shape[0], *det_shape] if to_volume else list(vol_shape)
    _check(src, vectors, trailing, "y" if op == _ADJOINT else "q" if op == _VBP_BACKPROJECT else "x")
    if curved not in (0, 1, 2) or (curved == 2 and (len(vol_shape) != 3 or beam != 1)):
        raise ValueError(f"curved must be 0, 1 or 2 (2: 3-D cone beam only), got {curved}")
    width = 6 if len(vol_shape) == 2 else (15 if curved == 2 else 12)
    if vectors.shape[1] != width:
        raise ValueError(f"vectors must have {width} columns for a {len(vol_shape)}-D geometry with curved={curved}, "
                         f"got shape {tuple(vectors.shape)}")
    batch_shape = src.shape[: src.dim() - len(trailing)]
    batch = math.prod(batch_shape)
    out_shape = (*batch_shape, *vol_shape) if to_volume else (*batch_shape, vectors.shape[0], *det_shape)
    if op == _SENSITIVITY:
        out_shape = (*batch_shape, *_sensitivity_shape(vectors, vol_shape, det_shape))
    out = src.new_empty(out_shape)
    if batch == 0:
        return out
    n, sp, off, nu, nv = geometry_args(vol_shape, vol_spacing, vol_offset, det_shape)
    sc = src.contiguous()
    vc = vectors.detach().contiguous()
    extra = () if weighted is None else (weighted,)
    if src.device.type == "cuda":
        _call_cuda(op, sc, out, batch, n, sp, off, vc, nu, nv, beam, curved, weighted or 0)
        return out
    if _call_cpu_chunked(op, sc, out, batch, n, sp, off, vc, nu, nv, beam, curved, *extra):
        return out
    geo = (vc, n, sp, off, nu, nv, beam, curved)
    if op == _SENSITIVITY:
        raise RuntimeError(
            "precisionrecon: geometry gradients need the compiled kernels; build them with "
            "`python -m precisionrecon._kernels.build`"
        )
    if op == _FORWARD:
        flat = reference.forward(sc.reshape(batch, *vol_shape), *geo)
    elif op == _ADJOINT:
        flat = reference.adjoint(sc.reshape(batch, -1), *geo)
    elif op == _VBP_BACKPROJECT:
        flat = reference.vbp_backproject(sc.reshape(batch, vectors.shape[0], -1), *geo, weighted)
    else:
        flat = reference.vbp_project(sc.reshape(batch, -1), *geo, weighted)
    out.copy_(flat.reshape(out.shape))
    return out


@torch.library.custom_op("precisionrecon::xray_forward", mutates_args=())
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
    return _run(_FORWARD, x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved)


@torch.library.custom_op("precisionrecon::xray_adjoint", mutates_args=())
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
    """Back-projection ``(*batch, n_views, *det_shape) -> (*batch, *vol_shape)``.

    On CUDA, a gather of the exactly transposed weights (deterministic, no atomics) for
    3-D geometries, half-precision input and when
    ``torch.are_deterministic_algorithms_enabled()``; 2-D otherwise scatters with atomics.
    """
    return _run(_ADJOINT, y, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved)


@torch.library.custom_op("precisionrecon::vbp_backproject", mutates_args=())
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
    """Voxel-driven (FBP) back-projection ``(*batch, n_views, *det_shape) -> (*batch, *vol_shape)``.

    ``weighted`` holds flags: bit 0 the distance weight of divergent beams, bit 1 pixel-footprint
    weights instead of point taps (2-D; see ``pixel_footprint`` in ``cuda_ext/xray_math.h``), bit 2
    no skipping of the image rows a view's detector cannot reach (CPU, 3-D; ``row_segment_reaches``:
    the same result, slower, for tests and timings).
    """
    return _run(_VBP_BACKPROJECT, q, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved, weighted)


@torch.library.custom_op("precisionrecon::vbp_project", mutates_args=())
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
    """Transpose of :func:`vbp_backproject`: ``(*batch, *vol_shape) -> (*batch, n_views, *det_shape)``.

    On CUDA, deterministic (one thread per view, slow) when
    ``torch.are_deterministic_algorithms_enabled()``, else atomics.
    """
    return _run(_VBP_PROJECT, x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved, weighted)


@torch.library.custom_op("precisionrecon::xray_sensitivity", mutates_args=())
def xray_sensitivity(
    x: Tensor,
    vectors: Tensor,
    vol_shape: list[int],
    vol_spacing: list[float],
    vol_offset: list[float],
    det_shape: list[int],
    beam: int,
    curved: int,
) -> Tensor:
    """Geometry sensitivities of the projection, ``(*batch, *vol_shape) -> (*batch, n_rays, K)``.

    Per ray, ``K = 2`` (2-D) or 4 (3-D) sums along the ray of the derivative of the
    interpolated value with respect to the sample coordinates ``f = a + b j``:
    ``sum_j dS/df1``, ``sum_j j dS/df1`` (and the same for ``f2``); see
    ``joseph_sensitivity_ray`` in ``cuda_ext/xray_cuda_kernels.h``. Not differentiable
    itself (used inside the geometry backward).
    """
    return _run(_SENSITIVITY, x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved)


@xray_sensitivity.register_fake
def _(x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved):
    batch_shape = x.shape[: x.dim() - len(vol_shape)]
    return x.new_empty((*batch_shape, *_sensitivity_shape(vectors, vol_shape, det_shape)))


def _to_volume_fake(src, vectors, vol_shape, det_shape):
    batch_shape = src.shape[: src.dim() - 1 - len(det_shape)]
    return src.new_empty((*batch_shape, *vol_shape))


def _to_projection_fake(src, vectors, vol_shape, det_shape):
    batch_shape = src.shape[: src.dim() - len(vol_shape)]
    return src.new_empty((*batch_shape, vectors.shape[0], *det_shape))


@xray_forward.register_fake
def _(x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved):
    return _to_projection_fake(x, vectors, vol_shape, det_shape)


@xray_adjoint.register_fake
def _(y, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved):
    return _to_volume_fake(y, vectors, vol_shape, det_shape)


@vbp_backproject.register_fake
def _(q, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved, weighted):
    return _to_volume_fake(q, vectors, vol_shape, det_shape)


@vbp_project.register_fake
def _(x, vectors, vol_shape, vol_spacing, vol_offset, det_shape, beam, curved, weighted):
    return _to_projection_fake(x, vectors, vol_shape, det_shape)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.geometry = inputs[2:]


def _backward_with(partner):
    def backward(ctx, grad: Tensor):
        (vectors,) = ctx.saved_tensors
        return (partner(grad, vectors, *ctx.geometry),) + (None,) * (1 + len(ctx.geometry))

    return backward


xray_forward.register_autograd(_backward_with(xray_adjoint), setup_context=_setup_context)
xray_adjoint.register_autograd(_backward_with(xray_forward), setup_context=_setup_context)
vbp_backproject.register_autograd(_backward_with(vbp_project), setup_context=_setup_context)
vbp_project.register_autograd(_backward_with(vbp_backproject), setup_context=_setup_context)
