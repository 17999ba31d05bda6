"""CUDA kernels on a real GPU (``pytest -m gpu``; skipped without CUDA).

CUDA against the CPU library, dot-product tests, float64 gradcheck, opcheck, determinism,
half precision, CUDA graphs and torch.compile.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import OPERATORS

import precisionrecon as pr
from precisionrecon._kernels import ops
from precisionrecon.operators import VoxelBackprojection
from precisionrecon.testing import adjoint_error

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _cuda(op):
    return op.to("cuda")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


VBP = {
    "fan-flat": lambda: VoxelBackprojection(
        pr.Volume((24, 26)),
        pr.FanBeam2D(angles=pr.angles(30, arc=2 * math.pi), det_count=41, det_spacing=1.5, src_iso=40, src_det=70),
        distance_weight=True,
    ),
    "cone-cylindrical": lambda: VoxelBackprojection(
        pr.Volume((10, 12, 11)),
        pr.ConeBeam3D(angles=pr.angles(12, arc=2 * math.pi), det_shape=(14, 20), det_spacing=1.4, src_iso=40,
                      src_det=70, detector="cylindrical"),
        distance_weight=True,
    ),
    "parallel3d": lambda: VoxelBackprojection(
        pr.Volume((8, 9, 10)), pr.ParallelBeam3D(angles=pr.angles(9), det_shape=(10, 14))
    ),
    "fan-arc-footprint": lambda: VoxelBackprojection(
        pr.Volume((24, 26)),
        pr.FanBeam2D(angles=pr.angles(30, arc=2 * math.pi), det_count=61, det_spacing=0.8, src_iso=40, src_det=70,
                     detector="arc"),
        distance_weight=True,
        footprint=True,
    ),
    "parallel2d-footprint": lambda: VoxelBackprojection(
        pr.Volume((24, 26)), pr.ParallelBeam2D(angles=pr.angles(31), det_count=71, det_spacing=0.5), footprint=True
    ),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cuda_matches_cpu(name: str, dtype: torch.dtype, tol: float) -> None:
    cpu = OPERATORS[name]()
    gpu = _cuda(cpu)
    x = torch.randn(3, *cpu.domain_shape, dtype=dtype)
    y = torch.randn(3, *cpu.range_shape, dtype=dtype)
    assert rel(gpu(x.cuda()), cpu(x)) < tol
    assert rel(gpu.T(y.cuda()), cpu.T(y)) < tol
    torch.use_deterministic_algorithms(True)
    try:
        assert rel(gpu.T(y.cuda()), cpu.T(y)) < tol
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("name", sorted(OPERATORS))
@pytest.mark.parametrize("deterministic", [False, True])
def test_cuda_dot_product(name: str, deterministic: bool) -> None:
    gpu = _cuda(OPERATORS[name]())
    torch.use_deterministic_algorithms(deterministic)
    try:
        assert adjoint_error(gpu, dtype=torch.float64, batch_shape=(2,)) < 1e-12
        assert adjoint_error(gpu, dtype=torch.float32, batch_shape=(2,)) < 1e-5
    finally:
        torch.use_deterministic_algorithms(False)


def test_deterministic_backprojection_is_bitwise_reproducible() -> None:
    gpu = _cuda(OPERATORS["cone-flat"]())
    y = torch.randn(4, *gpu.range_shape, device="cuda")
    torch.use_deterministic_algorithms(True)
    try:
        a, b = gpu.T(y), gpu.T(y)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(VBP))
def test_voxel_backprojection_cuda(name: str) -> None:
    cpu = VBP[name]()
    gpu = cpu.to("cuda")
    q = torch.randn(3, *cpu.domain_shape, dtype=torch.float64)
    x = torch.randn(3, *cpu.range_shape, dtype=torch.float64)
    assert rel(gpu(q.cuda()), cpu(q)) < 1e-12
    assert rel(gpu.T(x.cuda()), cpu.T(x)) < 1e-12
    assert adjoint_error(gpu, dtype=torch.float64) < 1e-12
    torch.use_deterministic_algorithms(True)
    try:
        assert rel(gpu.T(x.cuda()), cpu.T(x)) < 1e-12
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype: torch.dtype) -> None:
    cpu = OPERATORS["fan-flat"]()
    gpu = _cuda(cpu)
    x = torch.rand(2, *cpu.domain_shape)
    y = torch.rand(2, *cpu.range_shape)
    out = gpu(x.to("cuda", dtype))
    assert out.dtype == dtype
    tol = 1e-2 if dtype == torch.float16 else 3e-2
    assert rel(out, cpu(x.to(dtype).float())) < tol
    assert rel(gpu.T(y.to("cuda", dtype)), cpu.T(y.to(dtype).float())) < tol


def test_gradcheck_and_opcheck_cuda() -> None:
    gpu = pr.XRayTransform(
        pr.Volume((4, 5)), pr.FanBeam2D(angles=pr.angles(3, arc=2 * math.pi), det_count=7, det_spacing=1.4,
                                        src_iso=12, src_det=20), device="cuda"
    )
    x = torch.randn(2, *gpu.domain_shape, dtype=torch.float64, device="cuda", requires_grad=True)
    y = torch.randn(2, *gpu.range_shape, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(gpu, (x,))
    assert torch.autograd.gradgradcheck(gpu, (x,))
    assert torch.autograd.gradcheck(gpu.T, (y,))
    torch.library.opcheck(ops.xray_forward, (x, gpu._vectors, *gpu._args))
    torch.library.opcheck(ops.xray_adjoint, (y, gpu._vectors, *gpu._args))
    vbp = VBP["fan-flat"]().to("cuda")
    q = torch.randn(vbp.domain_shape, dtype=torch.float64, device="cuda", requires_grad=True)
    torch.library.opcheck(ops.vbp_backproject, (q, vbp._vectors, *vbp._args))


def test_cuda_graph_capture() -> None:
    gpu = _cuda(OPERATORS["parallel2d-even"]())
    x = torch.randn(4, *gpu.domain_shape, device="cuda")
    y = torch.randn(4, *gpu.range_shape, device="cuda")
    gpu(x), gpu.T(y)  # warm-up (library loading) outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = gpu.T(gpu(x) - y)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    expected = gpu.T(gpu(x) - y)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


def test_torch_compile_cuda() -> None:
    gpu = _cuda(OPERATORS["cone-flat"]())

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x - 0.01 * gpu.T(gpu(x) - y)

    compiled = torch.compile(step, fullgraph=True)
    x = torch.rand(2, *gpu.domain_shape, device="cuda")
    y = torch.rand(2, *gpu.range_shape, device="cuda")
    torch.testing.assert_close(compiled(x, y), step(x, y), rtol=1e-4, atol=1e-4)


def test_geometry_gradient_cuda() -> None:
    """Geometry gradients on CUDA: gradcheck and agreement with the CPU path."""
    vol = pr.Volume((6, 7, 8))
    geom = pr.ConeBeam3D(angles=pr.angles(2, arc=2 * math.pi, start=0.1), det_shape=(5, 6), det_spacing=2.0,
                         src_iso=30, src_det=50)
    grids = torch.meshgrid(*[torch.linspace(-1, 1, s, dtype=torch.float64) for s in vol.shape], indexing="ij")
    x = torch.clamp(1 - sum(g**2 for g in grids) / 0.7, min=0) ** 3
    cpu = pr.ParametricXRayTransform(vol, det_shape=geom.det_shape, beam="cone")
    gpu = pr.ParametricXRayTransform(vol, det_shape=geom.det_shape, beam="cone", device="cuda")
    vec = geom.to_vectors().clone().requires_grad_(True)
    vec_gpu = geom.to_vectors().cuda().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: gpu(x.cuda(), v), (vec_gpu,), eps=1e-6, atol=1e-5, rtol=1e-3)
    g = torch.randn(geom.proj_shape, dtype=torch.float64)
    (g_cpu,) = torch.autograd.grad((cpu(x, vec) * g).sum(), vec)
    (g_gpu,) = torch.autograd.grad((gpu(x.cuda(), vec_gpu) * g.cuda()).sum(), vec_gpu)
    assert rel(g_gpu, g_cpu) < 1e-10
