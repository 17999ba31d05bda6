"""Chunked execution (``ChunkedOperator``): plans within the budget, results against the
unchunked operators (bitwise where the split allows it, else to rounding), exact adjoints,
gradients, learned FBP parts, configs and bad input. CUDA streaming is in ``test_gpu_scale.py``."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.models.serialize import operator_from_dict, operator_to_dict
from precisionrecon.operators import ChunkedOperator, ChunkPlan, plan_chunks, volume_slab
from precisionrecon.operators.chunked import block_bytes
from precisionrecon.testing import adjoint_error

F64 = torch.float64


def _helical(n_views: int = 14) -> pr.VectorGeometry:
    """A helical cone-beam trajectory (source and detector rise 1.5 mm per view)."""
    th = np.linspace(0.0, 3 * math.pi, n_views, endpoint=False)
    s, c, z = np.sin(th), np.cos(th), 1.5 * np.arange(n_views) - 10.0
    src = np.stack([50 * s, 50 * c, z], 1)
    det = np.stack([-40 * s, -40 * c, z], 1)
    u = np.stack([1.4 * c, -1.4 * s, 0 * z], 1)
    v = np.stack([0 * z, 0 * z, 1.4 + 0 * z], 1)
    return pr.VectorGeometry(vectors=np.concatenate([src, det, u, v], 1), det_shape=(16, 26), beam="cone")


VOLUME = pr.Volume((14, 16, 15), spacing=(1.0, 1.1, 0.9), center=(0.5, -1.0, 2.0))
GEOMETRIES: dict[str, Callable[[], pr.Geometry]] = {
    "cone-flat": lambda: pr.ConeBeam3D(angles=pr.angles(13, arc=2 * math.pi), det_shape=(20, 26), det_spacing=1.6,
                                       src_iso=60, src_det=110),
    "cone-cylindrical": lambda: pr.ConeBeam3D(angles=pr.angles(11, arc=2 * math.pi), det_shape=(20, 26),
                                              det_spacing=1.6, src_iso=60, src_det=110, detector="cylindrical"),
    "parallel3d": lambda: pr.ParallelBeam3D(angles=pr.angles(12), det_shape=(18, 24)),
    "helical": _helical,
}
# budgets (bytes per float64 item) that split views only, and slabs and views
VIEWS_ONLY = 2 * 8 * (math.prod(VOLUME.shape) + 3 * 26 * 20)
SLABS = 2 * 8 * (3 * 16 * 15 + 2 * 26 * 20)


def _rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _data(op: pr.LinearOperator, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(op.domain_shape, generator=gen, dtype=dtype),
            torch.randn(op.range_shape, generator=gen, dtype=dtype))


def test_volume_slab_keeps_world_positions() -> None:
    slab = volume_slab(VOLUME, 3, 8)
    assert slab.shape == (5, 16, 15) and slab.spacing == VOLUME.spacing and slab.center[1:] == VOLUME.center[1:]
    for i in range(5):  # world z of slab voxel i is that of volume voxel 3 + i
        full = VOLUME.center[0] + (3 + i - (VOLUME.shape[0] - 1) / 2) * VOLUME.spacing[0]
        assert slab.center[0] + (i - 2) * slab.spacing[0] == pytest.approx(full, abs=1e-12)
    assert volume_slab(VOLUME, 0, 14) == VOLUME
    with pytest.raises(ValueError, match="stop"):
        volume_slab(VOLUME, 5, 5)
    with pytest.raises(ValueError, match="start"):
        volume_slab(VOLUME, -1, 3)


@pytest.mark.parametrize("max_bytes", [10**9, 100_000, 40_000, 25_000, 13_000])
@pytest.mark.parametrize("batch", [1, 3])
def test_plans_cover_the_axes_within_the_budget(max_bytes: int, batch: int) -> None:
    proj_shape = (13, 20, 26)
    plan = plan_chunks(VOLUME, proj_shape, max_bytes=max_bytes, batch=batch, itemsize=8)
    for ranges, n in ((plan.slabs, VOLUME.shape[0]), (plan.views, 13), (plan.batches, batch)):
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a < b and b == c for (a, b), (c, _) in itertools.pairwise(ranges))
    slab = max(b - a for a, b in plan.slabs) * 16 * 15
    views = max(b - a for a, b in plan.views) * 20 * 26
    items = max(b - a for a, b in plan.batches)
    assert block_bytes(slab, views, batch=items, itemsize=8) <= max_bytes
    if max_bytes == 10**9:
        assert plan == ChunkPlan(((0, 14),), ((0, 13),), ((0, batch),))


def test_plan_keeps_the_volume_whole_when_a_view_fits() -> None:
    plan = plan_chunks(VOLUME, (13, 20, 26), max_bytes=VIEWS_ONLY, itemsize=8)
    assert plan.slabs == ((0, 14),) and len(plan.views) > 1
    with pytest.raises(ValueError, match="max_bytes=100 is too small"):
        plan_chunks(VOLUME, (13, 20, 26), max_bytes=100, itemsize=8)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_view_chunks_give_the_forward_bitwise(name: str, dtype: torch.dtype) -> None:
    """One slab, several view ranges: every ray is computed alone, so the projections are
    bitwise those of the unchunked call; the back-projection sums views in another order."""
    A = pr.XRayTransform(VOLUME, GEOMETRIES[name]())
    C = ChunkedOperator(A, max_bytes=VIEWS_ONLY * dtype.itemsize // 8)
    plan = C.plan(1, dtype)
    assert len(plan.slabs) == 1 and len(plan.views) > 1
    x, y = _data(A, dtype)
    assert torch.equal(C(x), A(x))
    assert _rel_max(C.T(y), A.T(y)) < (1e-6 if dtype == torch.float32 else 1e-14)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_slabs_and_views_agree_to_rounding(name: str, dtype: torch.dtype) -> None:
    A = pr.XRayTransform(VOLUME, GEOMETRIES[name]())
    C = ChunkedOperator(A, max_bytes=SLABS * dtype.itemsize // 8)
    plan = C.plan(1, dtype)
    assert len(plan.slabs) > 1 and len(plan.views) > 1
    x, y = _data(A, dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-13  # measured at most 4e-7 and 5e-15
    assert _rel_max(C(x), A(x)) < tol
    assert _rel_max(C.T(y), A.T(y)) < tol


def _vbp() -> pr.VoxelBackprojection:
    return pr.VoxelBackprojection(VOLUME, GEOMETRIES["cone-flat"](), distance_weight=True)


def _fdk(**kwargs: object) -> Callable[[], pr.FBP]:
    short = pr.ConeBeam3D(angles=pr.angles(11, arc=math.pi + 1.0), det_shape=(20, 26), det_spacing=1.6, src_iso=60,
                          src_det=110)
    return lambda: pr.FBP(pr.XRayTransform(VOLUME, short), **kwargs)  # type: ignore[arg-type]


CHUNKABLE: dict[str, Callable[[], pr.LinearOperator]] = {
    "xray-cone": lambda: pr.XRayTransform(VOLUME, GEOMETRIES["cone-flat"]()),
    "xray-helical": lambda: pr.XRayTransform(VOLUME, _helical()),
    "vbp-cone-weighted": _vbp,
    "fdk-short-parker": _fdk(),
    "fdk-hann-voxel-mean": _fdk(filter="hann", backprojector="voxel-mean"),
    "fbp-parallel3d": lambda: pr.FBP(pr.XRayTransform(VOLUME, GEOMETRIES["parallel3d"]())),
}


@pytest.mark.parametrize("name", sorted(CHUNKABLE))
def test_every_chunkable_operator_agrees_and_keeps_its_adjoint(name: str) -> None:
    op = CHUNKABLE[name]()
    C = ChunkedOperator(op, max_bytes=SLABS)
    assert C.plan(1, F64).n_blocks > 4
    x, y = _data(op, F64, 3)
    assert _rel_max(C(x), op(x)) < 1e-13 and _rel_max(C.T(y), op.T(y)) < 1e-13
    assert adjoint_error(C) < 1e-12
    assert C.T.T is C and C.domain_shape == op.domain_shape and C.range_shape == op.range_shape


def test_batches_and_split_batches() -> None:
    A = CHUNKABLE["xray-cone"]()
    x = torch.randn((2, 3, *A.domain_shape), dtype=F64)
    y = torch.randn((2, 3, *A.range_shape), dtype=F64)
    per_item = SLABS  # one item per block group at most: the batch is split as well
    C = ChunkedOperator(A, max_bytes=per_item)
    assert len(C.plan(6, F64).batches) > 1
    assert _rel_max(C(x), A(x)) < 1e-13 and _rel_max(C.T(y), A.T(y)) < 1e-13
    assert C(x).shape == (2, 3, *A.range_shape)


def test_gradcheck_and_double_backward() -> None:
    A = pr.XRayTransform(pr.Volume((4, 5, 6)), pr.ConeBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(5, 7),
                                                              det_spacing=1.5, src_iso=30, src_det=50))
    C = ChunkedOperator(A, max_bytes=2 * 8 * (2 * 30 + 2 * 35))
    assert C.plan(1, F64).n_blocks > 2
    x = torch.randn((1, *A.domain_shape), dtype=F64, requires_grad=True)
    y = torch.randn((1, *A.range_shape), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(C, (x,))
    assert torch.autograd.gradgradcheck(C, (x,))
    assert torch.autograd.gradcheck(C.T, (y,))


def test_learned_fbp_parts_get_the_same_gradients() -> None:
    """An FBP with a learnable response and weights is differentiated block by block."""
    fbp = _fdk()()
    response = torch.nn.Parameter(fbp.designed_response.clone())
    weights = torch.nn.Parameter(fbp.designed_weights.clone())
    learned = fbp.replace(response=response, weights=weights)
    C = ChunkedOperator(learned, max_bytes=SLABS)
    y = torch.randn(fbp.domain_shape, dtype=F64)
    grads = []
    for op in (learned, C):
        response.grad = weights.grad = None
        op(y).square().sum().backward()
        grads.append((response.grad.clone(), weights.grad.clone()))
    for got, want in zip(grads[1], grads[0], strict=True):
        assert _rel_max(got, want) < 1e-12


def test_automatic_budget_and_config_round_trip() -> None:
    A = CHUNKABLE["xray-cone"]()
    assert pr.operators.memory_budget("cpu") > 0
    auto = ChunkedOperator(A)  # a small problem fits the automatic budget: one block
    x = torch.randn(A.domain_shape)
    assert auto.plan(1, torch.float32).n_blocks == 1 and torch.equal(auto(x), A(x))
    C = ChunkedOperator(_fdk()(), max_bytes=SLABS)
    back = operator_from_dict(operator_to_dict(C))
    assert isinstance(back, ChunkedOperator) and back.max_bytes == SLABS
    y = torch.randn(C.domain_shape, dtype=F64)
    assert torch.equal(back(y), C(y))
    via = pr.ChunkedXRayTransform(VOLUME, GEOMETRIES["cone-flat"](), max_bytes=SLABS)
    assert torch.equal(via(x.double()), ChunkedOperator(A, max_bytes=SLABS)(x.double()))


def test_bad_input() -> None:
    A = CHUNKABLE["xray-cone"]()
    with pytest.raises(TypeError, match="op must be an XRayTransform, VoxelBackprojection, FBP or HelicalFBP"):
        ChunkedOperator(pr.RampFilter((3, 8)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes must be"):
        ChunkedOperator(A, max_bytes=0)
    with pytest.raises(ValueError, match="device must be a CPU or CUDA device"):
        ChunkedOperator(A, device="meta")
    with pytest.raises(ValueError, match="too small"):
        ChunkedOperator(A, max_bytes=64)(torch.zeros(A.domain_shape))
    C = ChunkedOperator(A, max_bytes=SLABS)
    with pytest.raises(ValueError, match=r"x must have shape"):
        C(torch.zeros(3, 4, 5))
    with pytest.raises(TypeError, match="y must be float32 or float64"):
        C.T(torch.zeros(A.range_shape, dtype=torch.int32))
