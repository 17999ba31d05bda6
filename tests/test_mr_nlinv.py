"""NLINV (issue 15): the model's derivative and adjoint, recovery of the true maps, batching, CUDA."""

from __future__ import annotations

import pytest
import torch

from precisionrecon import mr
from precisionrecon.metrics import psnr as psnr_db
from precisionrecon.mr.nlinv import _Model, _sobolev_weight


def _model(fov: tuple[int, int] = (12, 10), oversample: float = 1.5) -> _Model:
    grid = tuple(n + 2 * int((oversample - 1) * n / 2 + 0.999) for n in fov)
    mask = (torch.rand(fov, generator=torch.Generator().manual_seed(0)) > 0.5).double()
    return _Model(mask, _sobolev_weight(grid, 55.0, 24.0, torch.complex128, torch.device("cpu")), fov, grid)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(seed))


def test_derivative_and_adjoint_of_the_model() -> None:
    model = _model()
    nc, grid = 3, model.grid
    x, dx = _randn(2, 1 + nc, *grid, seed=1), _randn(2, 1 + nc, *grid, seed=2)
    x[:, 0], dx[:, 0] = model.pad(model.crop(x[:, 0])), model.pad(model.crop(dx[:, 0]))  # image on the FOV
    fx, rho, sens = model.forward(x)
    jac = model.derivative(rho, sens, dx)
    # the model is bilinear: F(x + t dx) = F(x) + t DF dx + t^2 P F(drho dS) exactly
    t = 0.3
    second = model.mask * mr.fftc(model.crop(dx[:, :1]) * model.sens(dx[:, 1:]))
    torch.testing.assert_close(model.forward(x + t * dx)[0], fx + t * jac + t**2 * second, rtol=1e-12, atol=1e-12)
    # normalized dot-product test of DF and DF^H (on image entries inside the FOV)
    dy = _randn(2, nc, *model.fov, seed=3)
    back = model.adjoint(rho, sens, dy)
    lhs = torch.vdot(jac.flatten(), dy.flatten())
    rhs = torch.vdot(dx.flatten(), back.flatten())
    assert float((lhs - rhs).abs() / (jac.norm() * dy.norm())) < 1e-12
    assert float(back[:, 0].abs().sum() - model.crop(back[:, 0]).abs().sum()) == 0.0  # no image outside the FOV


def _problem(n: int = 48, n_coils: int = 8, transpose: bool = False) -> tuple[torch.Tensor, ...]:
    x = mr.shepp_logan((n, n), dtype=torch.complex128)
    maps = mr.birdcage_maps((n_coils, n, n), dtype=torch.complex128)
    mask = mr.equispaced_lines((n, n), 4, center_lines=8, seed=0)
    if transpose:
        mask = mask.T.contiguous()
    return x, maps, mask, mask * mr.simulate_kspace(x, maps)


def test_nlinv_recovers_the_true_maps_and_image() -> None:
    x, maps, mask, y = _problem()
    res = mr.nlinv(y, mask)
    assert res.maps.shape == maps.shape and res.maps.dtype == torch.complex128 and res.image.shape == x.shape
    inside = x.abs() > 0
    true = maps * torch.exp(-1j * torch.angle(maps[:1]))  # the phase convention of the estimate
    err = (res.maps - true)[:, inside].norm() / true[:, inside].norm()
    assert float(err) < 0.02, float(err)
    torch.testing.assert_close(mr.rss(res.maps, dim=0), torch.ones(x.shape, dtype=torch.float64))
    assert float(res.maps[0].imag.abs().max()) < 1e-12 and bool((res.maps[0].real > 0).all())
    assert float(res.residual[-1]) < 0.01 * float(res.residual[0])
    # CG-SENSE with these maps is as good as with the true maps (PSNR of the magnitude, range 1)
    psnr = [float(psnr_db(mr.cg_sense(mr.SENSE(mask, m), y, 30).x.abs(), x.abs(), data_range=1.0))
            for m in (maps, res.maps)]
    assert psnr[1] > psnr[0] - 0.5, psnr
    # estimate_maps(method="nlinv") is these maps
    torch.testing.assert_close(mr.estimate_maps(y, mask, method="nlinv"), res.maps)


def test_nlinv_batches_over_slices_and_is_scale_invariant() -> None:
    _, _, mask, y = _problem(n=32, n_coils=4)
    y2 = torch.stack([y, 1e3 * y.flip(-1)])
    batch = mr.nlinv(y2, mask.flip(-1) & mask, n_newton=6)
    for b in range(2):
        single = mr.nlinv(y2[b], mask.flip(-1) & mask, n_newton=6)
        torch.testing.assert_close(batch.maps[b], single.maps, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(batch.image[b], single.image, rtol=1e-9, atol=1e-9 * float(single.image.abs().max()))
    # the data are scaled to a fixed norm: the maps do not depend on the scale of the data
    torch.testing.assert_close(mr.nlinv(1e3 * y, mask, n_newton=6).maps, mr.nlinv(y, mask, n_newton=6).maps)
    assert batch.residual.shape == (6, 2)


def test_nlinv_bad_input() -> None:
    _, _, mask, y = _problem(n=16, n_coils=2)
    with pytest.raises(ValueError, match="dims"):
        mr.nlinv(y, mask, dims=4)
    with pytest.raises(ValueError, match="kspace"):
        mr.nlinv(y[0, 0], mask)
    with pytest.raises(ValueError, match="mask"):
        mr.nlinv(y, mask[:8])
    with pytest.raises(ValueError, match="q"):
        mr.nlinv(y, mask, q=1.0)
    with pytest.raises(ValueError, match="alpha"):
        mr.nlinv(y, mask, alpha=0.0)
    with pytest.raises(ValueError, match="oversample"):
        mr.nlinv(y, mask, oversample=0.5)
    with pytest.raises(TypeError, match="sobolev"):
        mr.nlinv(y, mask, sobolev=55.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no signal"):
        mr.nlinv(torch.zeros_like(y), mask)
    with pytest.raises(TypeError, match="n_newton"):
        mr.nlinv(y, mask, n_newton=2.0)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_nlinv_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    _, _, mask, y = _problem(n=32, n_coils=4)
    cpu = mr.nlinv(y, mask, n_newton=8)
    gpu = mr.nlinv(y.cuda(), mask.cuda(), n_newton=8)
    assert gpu.maps.is_cuda and gpu.image.is_cuda
    torch.testing.assert_close(gpu.maps.cpu(), cpu.maps, rtol=1e-7, atol=1e-7)


def test_nlinv_3d() -> None:
    n, nz = 16, 8
    x = mr.shepp_logan((n, n), dtype=torch.complex128).expand(nz, n, n).contiguous()
    maps = mr.birdcage_maps((4, nz, n, n), coils_per_ring=2, dtype=torch.complex128)
    mask = torch.zeros(nz, n, n, dtype=torch.bool)
    mask[:, ::2] = True
    mask[nz // 2 - 2: nz // 2 + 2, n // 2 - 2: n // 2 + 2] = True  # a fully sampled centre
    y = mask * mr.simulate_kspace(x, maps)
    res = mr.nlinv(y, mask, dims=3, n_newton=20)  # measured: map error 0.012, residual 0.011
    assert res.maps.shape == maps.shape and res.image.shape == x.shape
    inside = x.abs() > 0
    true = maps * torch.exp(-1j * torch.angle(maps[:1]))
    err = (res.maps - true)[:, inside].norm() / true[:, inside].norm()
    assert float(err) < 0.03, float(err)
    assert float(res.residual[-1]) < 0.02 * float(res.residual[0])
