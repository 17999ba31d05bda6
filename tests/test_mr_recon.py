"""Baseline MR reconstructions: zero-filled, CG-SENSE and TV compressed sensing on the phantom."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import pytest
import torch

from precisionrecon import mr
from precisionrecon.metrics import psnr, ssim

N_COILS = 8


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Moderate problem sizes: on a busy shared machine, OpenMP barriers of two threads cost
    more than they save (runs of this file varied from 5 s to 80 s), so run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scores(image: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """PSNR and SSIM of the magnitudes (data range 1: the phantom's magnitude is in [0, 1])."""
    a, r = image.abs().float(), truth.abs().float()
    return float(psnr(a, r, data_range=1.0)), float(ssim(a, r, data_range=1.0))


def _problem(n: int, acceleration: int, snr_db: float = 30.0, **mask_args: object):
    x = mr.shepp_logan((n, n))
    maps = mr.birdcage_maps((N_COILS, n, n))
    kspace = mr.add_noise(mr.simulate_kspace(x, maps), snr_db, seed=1)  # noise on the full grid, then mask
    mask = mr.equispaced_lines((n, n), acceleration, seed=0, **mask_args)
    A = mr.SENSE(mask, maps)
    return x, maps, mask, A, mr.Sampling(mask, A.range_shape)(kspace)


def test_cg_sense_beats_zero_filled_at_4x() -> None:
    x, _, mask, A, y = _problem(256, 4, center_lines=24)
    assert mr.acceleration(mask) == pytest.approx(4.0, rel=0.02)
    zf = _scores(mr.zero_filled(A, y), x)
    zf_rss = _scores(mr.rss(mr.coil_images(y)), x)  # the fastMRI baseline, without maps
    result = mr.cg_sense(A, y, 10)
    cg = _scores(result.x, x)
    assert cg[0] > max(zf[0], zf_rss[0]) + 1.0
    assert cg[1] > max(zf[1], zf_rss[1])
    assert bool((result.history["objective"].diff() <= 1e-6).all())  # CG decreases its objective
    # with ESPIRiT maps estimated from the 24 ACS lines instead of the true ones
    est = mr.estimate_maps(y, mask, method="espirit")
    cg_est = _scores(mr.cg_sense(mr.SENSE(mask, est), y, 10).x, x)
    assert cg_est[0] > max(zf[0], zf_rss[0]) + 1.0 and cg_est[1] > max(zf[1], zf_rss[1])


def test_tv_beats_cg_sense_at_8x() -> None:
    x, _, mask, A, y = _problem(128, 8, center_fraction=0.04)
    assert mr.acceleration(mask) == pytest.approx(8.0, rel=0.1)
    cg = [_scores(mr.cg_sense(A, y, n_iter).x, x) for n_iter in (5, 10, 20, 40)]  # best early stopping
    lam = 0.01 * float(mr.zero_filled(A, y).abs().max())
    tv = _scores(mr.tv_recon(A, y, lam, 200).x, x)
    assert tv[0] > max(c[0] for c in cg) + 1.0
    assert tv[1] > max(c[1] for c in cg) + 0.1


def test_non_cartesian_cg_sense_and_toeplitz() -> None:
    n = 64
    x = mr.shepp_logan((n, n))
    maps = mr.birdcage_maps((N_COILS, n, n))
    traj = mr.radial(40, 2 * n)  # about 40 % of the spokes of a fully sampled disc
    F = mr.NUFFT(traj, (N_COILS, n, n))
    A = F @ mr.Coils(maps)
    y = mr.add_noise(A(x), 30, seed=2)
    w = mr.radial_density(traj, (n, n))
    gridded = _scores(mr.zero_filled(A, y, weights=w), x)
    cg = _scores(mr.cg_sense(A, y, 15).x, x)
    assert cg[0] > gridded[0] + 1.0 and cg[1] > gridded[1]
    # the Toeplitz normal operator gives the same iterates (float64, NUFFT tolerance 1e-10)
    F64 = mr.NUFFT(traj, (N_COILS, n, n), eps=1e-10)
    C64 = mr.Coils(maps.to(torch.complex128))
    y64 = y.to(torch.complex128)
    plain = mr.cg_sense(F64 @ C64, y64, 10)
    fast = mr.cg_sense(F64 @ C64, y64, 10, normal=C64.T @ F64.toeplitz() @ C64)
    assert float((fast.x - plain.x).abs().max() / plain.x.abs().max()) < 1e-8


def test_batched_problems_and_tikhonov() -> None:
    n = 32
    maps = mr.birdcage_maps((4, n, n), dtype=torch.complex128)
    mask = mr.random_lines((n, n), 2, center_lines=8, seed=0)
    A = mr.SENSE(mask, maps)
    phantom = mr.shepp_logan((n, n), dtype=torch.complex128)
    x = torch.stack([phantom, phantom.flip(-1)])
    y = A(x)
    batch = mr.cg_sense(A, y, 20, lam=1e-3)
    for b in range(2):
        single = mr.cg_sense(A, y[b], 20, lam=1e-3)
        torch.testing.assert_close(batch.x[b], single.x, rtol=1e-10, atol=1e-10)
    # the Tikhonov solution solves (A^H A + lam I) x = A^H y
    res = mr.cg_sense(A, y[0], 200, lam=0.1, tol=1e-12).x
    torch.testing.assert_close(A.T(A(res)) + 0.1 * res, A.T(y[0]), rtol=1e-8, atol=1e-8)
    # fully sampled, unit maps: zero-filled and CG-SENSE are exact
    full = mr.SENSE(torch.ones(n, n, dtype=torch.bool), maps)
    torch.testing.assert_close(mr.zero_filled(full, full(x)), x)
    torch.testing.assert_close(mr.cg_sense(full, full(x), 3).x, x)


def test_bad_input() -> None:
    A = mr.SENSE(torch.ones(8, 8, dtype=torch.bool), mr.birdcage_maps((2, 8, 8)))
    y = torch.zeros(2, 8, 8, dtype=torch.complex64)
    with pytest.raises(TypeError, match="LinearOperator"):
        mr.cg_sense(lambda v: v, y)
    with pytest.raises(ValueError, match="lam"):
        mr.cg_sense(A, y, 5, lam=-1.0)
    with pytest.raises(TypeError, match="weights"):
        mr.zero_filled(A, y, weights=torch.ones(2, 8, 8, dtype=torch.complex64))
    with pytest.raises(TypeError, match="normal"):
        mr.cg_sense(A, y, 5, normal="toeplitz")
    with pytest.raises(ValueError, match="shape"):
        mr.tv_recon(A, torch.zeros(3, 8, 8, dtype=torch.complex64), 0.1, 5)
    assert math.isfinite(float(mr.zero_filled(A, y).abs().sum()))


@pytest.mark.parametrize("transpose", [False, True], ids=["lines-x", "lines-y"])
@pytest.mark.parametrize("snr_db", [None, 30.0], ids=["noiseless", "noisy"])
def test_cg_sense_with_estimated_maps_matches_true_maps(transpose: bool, snr_db: float | None) -> None:
    """Issue 15: CG-SENSE with maps estimated from 8 ACS lines (the default, ESPIRiT) is within
    1 dB of CG-SENSE with the true maps, and does not fall behind as the iterations grow (the
    former Walsh default lost 4 dB after 30 and 14 dB after 100 iterations here)."""
    n = 64
    x = mr.shepp_logan((n, n))
    maps = mr.birdcage_maps((N_COILS, n, n))
    mask = mr.equispaced_lines((n, n), 4, center_lines=8, seed=0)
    if transpose:
        mask = mask.T.contiguous()
    kspace = mr.simulate_kspace(x, maps)
    if snr_db is not None:
        kspace = mr.add_noise(kspace, snr_db, seed=1)
    y = mr.Sampling(mask, (N_COILS, n, n))(kspace)
    est = mr.estimate_maps(y, mask)
    true_A, est_A = mr.SENSE(mask, maps), mr.SENSE(mask, est)
    for n_iter in (30, 100):
        true_psnr = _scores(mr.cg_sense(true_A, y, n_iter).x, x)[0]
        est_psnr = _scores(mr.cg_sense(est_A, y, n_iter).x, x)[0]
        assert est_psnr > true_psnr - 1.0, (n_iter, est_psnr, true_psnr)


def _real_slice_problem(transpose: bool, snr_db: float | None):
    """``MR_small.dcm`` as the bench loads it (it fills the field of view), 12 coils at radius
    1.2, 4x with 8 centre lines, and the bench's ESPIRiT maps (two sets)."""
    from precisionrecon.bench.real import real_images
    from precisionrecon.bench.tasks import MR_ESPIRIT

    names, images, _ = real_images("MR", 64)
    if images is None or "MR_small.dcm" not in names:
        pytest.skip("MR_small.dcm is not in the installed pydicom")
    x = images[names.index("MR_small.dcm")].to(torch.complex128)
    maps = mr.birdcage_maps((12, 64, 64), radius=1.2, dtype=torch.complex128)
    mask = mr.equispaced_lines((64, 64), 4, center_lines=8, seed=0)
    if transpose:
        mask = mask.T.contiguous()
    kspace = mr.simulate_kspace(x, maps)
    if snr_db is not None:
        kspace = mr.add_noise(kspace, snr_db, seed=1)
    y = mr.Sampling(mask, maps.shape)(kspace)
    kernel = MR_ESPIRIT["kernel_size"][::-1] if transpose else MR_ESPIRIT["kernel_size"]
    est = mr.espirit(y, mask, **{**MR_ESPIRIT, "kernel_size": kernel})
    return x, y, mr.SENSE(mask, maps), mr.SENSE(mask, est, sets=True), mr.SENSE(mask, est[0])


@pytest.mark.parametrize("transpose", [False, True], ids=["lines-x", "lines-y"])
def test_soft_sense_gains_on_the_real_slice(transpose: bool) -> None:
    """The real slice fills the field of view: two sets of ESPIRiT maps beat one."""
    x, y, _, two, one = _real_slice_problem(transpose, 30.0)
    psnr_two = _scores(mr.rss(mr.cg_sense(two, y, 30).x, dim=-3), x)[0]
    psnr_one = _scores(mr.cg_sense(one, y, 30).x, x)[0]
    assert psnr_two > psnr_one + 2.0, (psnr_two, psnr_one)


@functools.cache
def _nlinv_maps(transpose: bool, snr_db: float | None) -> torch.Tensor:
    """NLINV maps (defaults) of the real-slice problem, shared by the tests below."""
    _, y, true_A, _, _ = _real_slice_problem(transpose, snr_db)
    return mr.estimate_maps(y, true_A.mask, method="nlinv")


@pytest.mark.parametrize("transpose", [False, True], ids=["lines-x", "lines-y"])
@pytest.mark.parametrize("snr_db", [None, 30.0], ids=["noiseless", "noisy"])
def test_nlinv_maps_on_the_real_slice(transpose: bool, snr_db: float | None) -> None:
    """NLINV's joint estimation on a coil grid larger than the field of view: on the real slice
    its maps stay within 2.5 dB of the true maps after 30 iterations and 6 dB after 100 (measured
    with the defaults: 1.2-1.9 and 2.2-4.9 dB), where two sets of ESPIRiT maps lose 6-11 and
    10-24 dB, and beat ESPIRiT's by more than 3 dB (measured: 4.6-9.6 dB after 30 iterations)."""
    x, y, true_A, espirit_A, _ = _real_slice_problem(transpose, snr_db)
    nlinv_A = mr.SENSE(true_A.mask, _nlinv_maps(transpose, snr_db))
    for n_iter, margin in ((30, 2.5), (100, 6.0)):
        true_psnr = _scores(mr.cg_sense(true_A, y, n_iter).x, x)[0]
        nlinv_psnr = _scores(mr.cg_sense(nlinv_A, y, n_iter).x, x)[0]
        espirit_psnr = _scores(mr.rss(mr.cg_sense(espirit_A, y, n_iter).x, dim=-3), x)[0]
        assert nlinv_psnr > true_psnr - margin, (n_iter, nlinv_psnr, true_psnr)
        assert nlinv_psnr > espirit_psnr + 3.0, (n_iter, nlinv_psnr, espirit_psnr)


@pytest.mark.xfail(strict=True, reason="known limit (issue 15): on MR_small.dcm (filling the FOV) with 8 ACS lines the "
                   "NLINV maps (defaults, 14 Newton steps) lose 1.2-1.9 dB against the true maps after 30 "
                   "iterations and 2.2-4.9 dB after 100; more Newton steps bring the noiseless cases closer "
                   "(28 steps, lines along x: 0.4 and 1.1 dB) but fit the noise of the 30 dB cases")
@pytest.mark.parametrize("transpose", [False, True], ids=["lines-x", "lines-y"])
@pytest.mark.parametrize("snr_db", [None, 30.0], ids=["noiseless", "noisy"])
def test_cg_sense_with_estimated_maps_matches_true_maps_on_the_real_slice(transpose: bool,
                                                                          snr_db: float | None) -> None:
    """Issue 15's criterion on the real slice: within 1 dB of the true maps after 30 and 100 iterations."""
    x, y, true_A, _, _ = _real_slice_problem(transpose, snr_db)
    est_A = mr.SENSE(true_A.mask, _nlinv_maps(transpose, snr_db))
    for n_iter in (30, 100):
        true_psnr = _scores(mr.cg_sense(true_A, y, n_iter).x, x)[0]
        est_psnr = _scores(mr.cg_sense(est_A, y, n_iter).x, x)[0]
        assert est_psnr > true_psnr - 1.0, (n_iter, est_psnr, true_psnr)
