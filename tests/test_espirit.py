"""ESPIRiT coil maps (issue 15): agreement with the true maps, batching, 3-D, sigpy, CUDA."""

from __future__ import annotations

import pytest
import torch

from precisionrecon import mr


def _data(n: int = 48, n_coils: int = 8, dtype: torch.dtype = torch.complex128) -> tuple[torch.Tensor, ...]:
    x = mr.shepp_logan((n, n), dtype=dtype)
    maps = mr.birdcage_maps((n_coils, n, n), dtype=dtype)
    return x, maps, mr.simulate_kspace(x, maps)


def _phase_free(maps: torch.Tensor) -> torch.Tensor:
    """Maps ``(n_coils, *spatial)`` with the phase of coil 0 removed: comparable up to one phase per pixel."""
    return maps * torch.exp(-1j * torch.angle(maps[:1]))


def test_espirit_recovers_true_maps_and_crops_background() -> None:
    x, maps, kspace = _data()
    est = mr.espirit(kspace, calib_size=24)
    assert est.shape == maps.shape and est.dtype == torch.complex128
    inside = x.abs() > 0
    err = (est - _phase_free(maps))[:, inside].norm() / maps[:, inside].norm()
    assert float(err) < 0.01
    # unit root-sum-of-squares inside the object, zero outside it (no data there)
    torch.testing.assert_close(mr.rss(est, dim=0)[inside], torch.ones(int(inside.sum()), dtype=torch.float64))
    assert float(mr.rss(est, dim=0)[:4, :4].max()) == 0.0
    # phase referenced to coil 0
    assert float(est[0][inside].imag.abs().max()) < 1e-10
    assert bool((est[0][inside].real > 0).all())
    # without the crop, the maps are defined everywhere
    assert float(mr.rss(mr.espirit(kspace, crop=0.0), dim=0).min()) == pytest.approx(1.0)


def test_espirit_uses_the_mask_acs_and_batches_over_slices() -> None:
    _, _, kspace = _data(n=32)
    mask = mr.equispaced_lines((32, 32), 4, center_lines=10, seed=0)
    y = mask * kspace
    other = mask * mr.simulate_kspace(mr.shepp_logan((32, 32), phase_amplitude=0.0, dtype=torch.complex128),
                                      mr.birdcage_maps((8, 32, 32), radius=1.3, dtype=torch.complex128))
    batch = torch.stack([y, other]).unsqueeze(0)  # (1, 2, coils, ny, nx)
    out = mr.espirit(batch, mask)
    assert out.shape == batch.shape
    torch.testing.assert_close(out[0, 0], mr.espirit(y, mask))
    torch.testing.assert_close(out[0, 1], mr.espirit(other, mask))
    # only the ACS enters: changing the data outside it changes nothing
    torch.testing.assert_close(mr.espirit(y + (~mask) * 1e3, mask), mr.espirit(y, mask))


def test_espirit_3d() -> None:
    shape = (8, 12, 20, 20)
    x = mr.shepp_logan(shape[1:], dtype=torch.complex128)
    maps = mr.birdcage_maps(shape, coils_per_ring=4, dtype=torch.complex128)
    kspace = mr.simulate_kspace(x, maps)
    est = mr.espirit(kspace, dims=3, calib_size=12, kernel_size=4)
    inside = x.abs() > 0.5
    err = (est - _phase_free(maps))[:, inside].norm() / maps[:, inside].norm()
    assert est.shape == shape and float(err) < 0.03


def test_espirit_bad_input() -> None:
    _, _, kspace = _data(n=16)
    with pytest.raises(ValueError, match="dims"):
        mr.espirit(kspace, dims=1)
    with pytest.raises(ValueError, match="kernel_size"):
        mr.espirit(kspace, calib_size=8, kernel_size=9)
    with pytest.raises(ValueError, match="threshold"):
        mr.espirit(kspace, threshold=0.0)
    with pytest.raises(ValueError, match="crop"):
        mr.espirit(kspace, crop=1.0)
    with pytest.raises(ValueError, match="calib_size"):
        mr.espirit(kspace, calib_size=(8, 8, 8))
    with pytest.raises(TypeError, match="kspace"):
        mr.espirit(torch.zeros(2, 8, 8, dtype=torch.int32))
    # 3 ACS lines (the 8x mask at 64² with a 4 % centre): maps constant along x, CG-SENSE diverged
    mask = mr.equispaced_lines((16, 16), 8, center_lines=3, seed=0)
    with pytest.raises(ValueError, match="too small for ESPIRiT"):
        mr.espirit(mask * kspace, mask)
    with pytest.raises(ValueError, match="too small for ESPIRiT"):
        mr.estimate_maps(mask * kspace, mask, method="espirit")


def test_espirit_agrees_with_sigpy() -> None:
    sigpy_mri = pytest.importorskip("sigpy.mri")
    x, _, kspace = _data(n=48)
    ours = mr.espirit(kspace, calib_size=24, kernel_size=6, threshold=0.02, crop=0.95)
    theirs = torch.from_numpy(
        sigpy_mri.app.EspiritCalib(kspace.numpy(), calib_width=24, kernel_width=6, thresh=0.02, crop=0.95,
                                   show_pbar=False).run()
    )
    inside = x.abs() > 0
    # equal up to one phase per pixel: |<ours, theirs>| over the coils is 1
    agreement = (ours.conj() * theirs).sum(0).abs()[inside]
    assert float(agreement.min()) > 0.99


@pytest.mark.gpu
def test_espirit_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, _, kspace = _data(n=32)
    mask = mr.equispaced_lines((32, 32), 4, center_lines=10, seed=0)
    cpu = mr.espirit(mask * kspace, mask)
    gpu = mr.espirit((mask * kspace).cuda(), mask.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-8, rtol=1e-8)


def test_espirit_second_set_of_maps() -> None:
    """Soft-SENSE maps: set 0 is the one-set result, the sets are orthonormal per pixel, and a
    second set appears only where the coil images jump at the edge of an object filling the FOV."""
    n = 32
    x = mr.shepp_logan((n, n), dtype=torch.complex128)
    x = x + 0.5 * (x.abs() == 0)  # bright up to the edges of the field of view
    maps = mr.birdcage_maps((8, n, n), radius=1.2, dtype=torch.complex128)
    kspace = mr.simulate_kspace(x, maps)
    two = mr.espirit(kspace, calib_size=24, n_maps=2, crop=0.8)
    assert two.shape == (2, *kspace.shape)
    torch.testing.assert_close(two[0], mr.espirit(kspace, calib_size=24, crop=0.8))
    inner = (two[0].conj() * two[1]).sum(0)
    assert float(inner.abs().max()) < 1e-10
    edge = torch.zeros(n, n, dtype=torch.bool)
    edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = True, True, True, True
    second = mr.rss(two[1], dim=0)
    assert float(second[edge].mean()) > 0.5  # a second set along the edges ...
    assert float(second[8:-8, 8:-8].max()) == 0.0  # ... and none in the middle
    # soft-SENSE reproduces the data better than one set of maps
    misfit = []
    for A in (mr.SENSE(torch.ones(n, n), two[0]), mr.SENSE(torch.ones(n, n), two, sets=True)):
        misfit.append(float((A(mr.cg_sense(A, kspace, 50).x) - kspace).norm() / kspace.norm()))
    assert misfit[1] < 0.5 * misfit[0], misfit
    with pytest.raises(ValueError, match="n_maps"):
        mr.espirit(kspace, n_maps=9)
    with pytest.raises(ValueError, match="n_maps"):
        mr.estimate_maps(kspace, torch.ones(n, n), method="walsh", n_maps=2)
