"""Chunked and distributed execution on CUDA (``pytest -m gpu``; skipped without CUDA):
host-resident volumes streamed through the GPU, chunks on the device, NCCL with one GPU
per rank (two GPUs or more)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import precisionrecon as pr
from precisionrecon.testing import adjoint_error

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _op(device: str = "cuda") -> pr.XRayTransform:
    vol = pr.Volume((24, 28, 26))
    geom = pr.ConeBeam3D(angles=pr.angles(21, arc=2 * math.pi), det_shape=(30, 40), det_spacing=1.6, src_iso=90,
                         src_det=160)
    return pr.XRayTransform(vol, geom, device=device)


BUDGET = 2 * 8 * (6 * 28 * 26 + 4 * 30 * 40)  # float64: slabs of about 6 slices, 4 views


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "pageable"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_streaming_a_host_volume_through_the_gpu(pinned: bool, dtype: torch.dtype) -> None:
    A = _op()
    streamed = pr.ChunkedOperator(A, max_bytes=BUDGET, device="cpu")
    assert streamed.plan(1, dtype).n_blocks > 4 and streamed.compute_device.type == "cuda"
    x = torch.randn((2, *A.domain_shape), dtype=dtype)
    y = torch.randn((2, *A.range_shape), dtype=dtype)
    if pinned:
        x, y = x.pin_memory(), y.pin_memory()
    fx, ty = streamed(x), streamed.T(y)
    assert fx.device.type == "cpu" and ty.device.type == "cpu" and fx.is_pinned()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert _rel(fx, A(x.cuda())) < tol and _rel(ty, A.T(y.cuda())) < tol


def test_streamed_operator_keeps_its_adjoint_and_gradients() -> None:
    streamed = pr.ChunkedOperator(_op(), max_bytes=BUDGET, device="cpu")
    assert adjoint_error(streamed) < 1e-12
    small = pr.XRayTransform(pr.Volume((4, 5, 6)), pr.ConeBeam3D(
        angles=pr.angles(5, arc=2 * math.pi), det_shape=(5, 7), det_spacing=1.5, src_iso=30, src_det=50),
        device="cuda")
    C = pr.ChunkedOperator(small, max_bytes=2 * 8 * (2 * 30 + 2 * 35), device="cpu")
    x = torch.randn((1, *small.domain_shape), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(C, (x,))


def test_chunks_on_the_device() -> None:
    A = _op()
    x = torch.randn((1, *A.domain_shape), device="cuda")
    views_only = pr.ChunkedOperator(A, max_bytes=4 * 2 * (math.prod(A.domain_shape) + 5 * 30 * 40))
    assert len(views_only.plan(1, torch.float32).slabs) == 1
    assert torch.equal(views_only(x), A(x))  # every ray computed alone, as on the CPU
    slabs = pr.ChunkedOperator(A, max_bytes=BUDGET // 2)
    assert _rel(slabs(x), A(x)) < 1e-5
    assert pr.operators.memory_budget("cuda") > 0


def _nccl_worker(rank: int, world_size: int, store: str) -> None:
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        A = _op(f"cuda:{rank}")
        D = pr.DistributedXRayTransform(A.volume, A.geometry, device=f"cuda:{rank}")
        gen = torch.Generator().manual_seed(0)
        x = torch.randn((1, *A.domain_shape), generator=gen).to(f"cuda:{rank}")
        y = torch.randn((1, *A.range_shape), generator=gen).to(f"cuda:{rank}")
        assert torch.equal(D(x), A(x))
        assert _rel(D.T(y), A.T(y)) < 1e-5
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_nccl_one_gpu_per_rank(tmp_path: Path) -> None:
    mp.spawn(_nccl_worker, args=(2, str(tmp_path / "store")), nprocs=2, join=True)
