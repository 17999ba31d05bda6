"""Cartesian MR operators: FFT, Sampling, Coils, SENSE; masks, coil maps, phantoms and noise."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from registry import random_maps, random_mask

import precisionrecon as pr
from precisionrecon import mr


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The problems here are tiny: on a busy shared machine, OpenMP start-up and barriers of
    two threads cost milliseconds per call (more than the transforms), so run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_norm_of_sense_with_unit_rss_maps_is_one() -> None:
    maps = mr.birdcage_maps((6, 12, 10), dtype=torch.complex128)
    A = mr.SENSE(torch.ones(12, 10, dtype=torch.bool), maps)
    assert abs(A.norm() - 1.0) < 1e-6


# --------------------------------------------------------------------------- FFT


@pytest.mark.parametrize("shape", [(8, 6), (7, 9), (5, 4, 6), (3, 5, 7)])
def test_fft_matches_numpy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *shape)) + 1j * rng.normal(size=(2, *shape))
    axes = tuple(range(-len(shape), 0))
    ref = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)
    F = mr.FFT(shape)
    np.testing.assert_allclose(F(torch.from_numpy(x)).numpy(), ref, rtol=1e-12, atol=1e-12)
    inv = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)
    np.testing.assert_allclose(F.T(torch.from_numpy(x)).numpy(), inv, rtol=1e-12, atol=1e-12)


def test_fft_is_unitary_and_centred() -> None:
    F = mr.FFT((9, 8))
    x = torch.randn(9, 8, dtype=torch.complex128)
    torch.testing.assert_close(F.T(F(x)), x)
    ones = torch.ones(9, 8, dtype=torch.complex128)
    k = F(ones)
    assert abs(k[9 // 2, 8 // 2] - math.sqrt(72)) < 1e-12  # DC at index n // 2
    assert float(k.abs().sum() - k.abs()[9 // 2, 8 // 2]) < 1e-12


def test_fft_only_transforms_spatial_axes() -> None:
    F = mr.FFT((3, 6, 5), dims=2)
    x = torch.randn(3, 6, 5, dtype=torch.complex128)
    for c in range(3):
        torch.testing.assert_close(F(x)[c], mr.FFT((6, 5))(x[c]))


def test_fft_promotes_real_input() -> None:
    F = mr.FFT((4, 4))
    assert F(torch.randn(4, 4)).dtype == torch.complex64
    assert F(torch.randn(4, 4, dtype=torch.float64)).dtype == torch.complex128


# --------------------------------------------------------------------------- SENSE


def test_sense_full_sampling_unit_maps_is_identity() -> None:
    shape = (10, 12)
    full = torch.ones(shape, dtype=torch.bool)
    x = torch.randn(2, *shape, dtype=torch.complex128)
    single = mr.SENSE(full, torch.ones(1, *shape, dtype=torch.complex128))
    torch.testing.assert_close(single(x)[:, 0], mr.fftc(x))  # one unit coil: the FFT itself
    for maps in (torch.ones(1, *shape, dtype=torch.complex128), mr.birdcage_maps((8, *shape), dtype=torch.complex128)):
        A = mr.SENSE(full, maps)
        torch.testing.assert_close(A.T(A(x)), x, rtol=1e-12, atol=1e-12)


def test_sense_is_the_composition() -> None:
    mask, maps = random_mask((7, 8)), random_maps((3, 7, 8))
    A = mr.SENSE(mask, maps)
    x = torch.randn(7, 8, dtype=torch.complex128)
    expected = mask * mr.fftc(maps * x)
    torch.testing.assert_close(A(x), expected)
    y = torch.randn(3, 7, 8, dtype=torch.complex128)
    torch.testing.assert_close(A.T(y), (maps.conj() * mr.ifftc(mask * y)).sum(0))
    assert isinstance(A.op, pr.operators.ComposedOperator)


def test_sense_replace_mask() -> None:
    maps = random_maps((2, 6, 6))
    A = mr.SENSE(random_mask((6, 6)), maps)
    m2 = torch.ones(6, 6, dtype=torch.bool)
    B = A.replace(mask=m2)
    assert B.mask is m2 and B.maps is maps and A.mask is not m2
    x = torch.randn(6, 6, dtype=torch.complex128)
    torch.testing.assert_close(B(x), mr.fftc(maps * x))


def test_coils_gradient_reaches_maps() -> None:
    maps = random_maps((3, 5, 4)).requires_grad_(True)
    x = torch.randn(5, 4, dtype=torch.complex128)
    assert torch.autograd.gradcheck(lambda m: mr.Coils(m)(x), (maps,))


def test_rss() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 5, 6)) + 1j * rng.normal(size=(2, 4, 5, 6))
    np.testing.assert_allclose(mr.rss(torch.from_numpy(x)).numpy(), np.sqrt((np.abs(x) ** 2).sum(axis=1)))


# --------------------------------------------------------------------------- masks


def test_random_lines_fastmri_conventions() -> None:
    m = mr.random_lines((20, 128), 4, center_fraction=0.08, seed=3)
    assert m.shape == (20, 128) and m.dtype == torch.bool
    assert bool((m == m[0]).all())  # whole lines along the other axis
    n_low = round(128 * 0.08)
    pad = (128 - n_low + 1) // 2
    assert bool(m[0, pad : pad + n_low].all())
    assert torch.equal(m, mr.random_lines((20, 128), 4, center_fraction=0.08, seed=3))
    # the expected number of lines is n / R: average over seeds
    counts = [int(mr.random_lines((256,), 4, center_lines=20, seed=s).sum()) for s in range(200)]
    assert abs(np.mean(counts) - 64) < 1.5


@pytest.mark.parametrize(("n", "acc", "center"), [(256, 4, 24), (128, 4, 24), (368, 8, 15), (100, 3, 10)])
def test_equispaced_lines_fraction(n: int, acc: int, center: int) -> None:
    m = mr.equispaced_lines((n,), acc, center_lines=center, seed=0)
    pad = (n - center + 1) // 2
    assert bool(m[pad : pad + center].all())
    assert abs(int(m.sum()) - n / acc) <= 2  # fastMRI's EquispacedMaskFractionFunc: total fraction 1 / R
    outer = torch.nonzero(~torch.zeros(n, dtype=torch.bool).index_fill(0, torch.arange(pad, pad + center), True)
                          & m).flatten()
    gaps = torch.diff(outer).float()
    adjusted = acc * (center - n) / (center * acc - n)
    assert float(gaps.min()) >= math.floor(adjusted) - 1 and float(gaps.median()) <= math.ceil(adjusted) + 1


def test_equispaced_lines_grappa_style() -> None:
    m = mr.equispaced_lines((64,), 4, center_lines=8, seed=1, count_center=False)
    outer = torch.nonzero(m).flatten()
    offset = int(outer[0])
    assert bool(m[offset::4].all())
    assert int(m.sum()) == len(range(offset, 64, 4)) + sum(1 for i in range(28, 36) if (i - offset) % 4)


def test_gaussian_mask_exact_acceleration_and_density() -> None:
    m = mr.gaussian_mask((64, 80), 5, sigma=0.3, center=0.1, seed=0)
    assert int(m.sum()) == round(64 * 80 / 5)
    assert bool(m[29:35, 36:44].all())  # centre box (round(6.4) x 8 around index n // 2)
    ny, nx = torch.meshgrid(torch.arange(64) - 32, torch.arange(80) - 40, indexing="ij")
    r = torch.sqrt((ny / 32.0) ** 2 + (nx / 40.0) ** 2)
    inner, outer = m[(r > 0.2) & (r < 0.4)].float().mean(), m[r > 0.8].float().mean()
    assert inner > 3 * outer  # variable density
    assert not torch.equal(m, mr.gaussian_mask((64, 80), 5, sigma=0.3, center=0.1, seed=1))


@pytest.mark.parametrize("acc", [3, 6])
def test_poisson_disc_mask(acc: float) -> None:
    m = mr.poisson_disc_mask((48, 40), acc, variable_density=0.0, center=8, seed=2)
    assert abs(m.numel() / int(m.sum()) - acc) / acc <= 0.02
    assert bool(m[20:28, 16:24].all())
    assert torch.equal(m, mr.poisson_disc_mask((48, 40), acc, variable_density=0.0, center=8, seed=2))
    # a uniform Poisson disc at R >= 3 never samples two grid neighbours outside the centre box
    outside = m.clone()
    outside[19:29, 15:25] = False  # centre box and its rim
    assert not bool((outside[1:] & outside[:-1]).any() or (outside[:, 1:] & outside[:, :-1]).any())


def test_poisson_disc_variable_density_and_3d() -> None:
    m = mr.poisson_disc_mask((64, 64), 4, variable_density=2.0, center=6, seed=0)
    ny, nx = torch.meshgrid(torch.arange(64) - 32, torch.arange(64) - 32, indexing="ij")
    r = torch.sqrt(ny.double() ** 2 + nx.double() ** 2) / 32
    assert m[(r > 0.2) & (r < 0.4)].float().mean() > 1.5 * m[r > 0.8].float().mean()
    m3 = mr.poisson_disc_mask((12, 14, 16), 4, seed=0)
    assert m3.shape == (12, 14, 16) and abs(m3.numel() / int(m3.sum()) - 4) / 4 <= 0.02


def test_acceleration_and_acs_region() -> None:
    m = mr.equispaced_lines((32, 64), 4, center_lines=10, seed=0)
    assert mr.acceleration(m) == pytest.approx(64 / int(m[0].sum()))
    assert mr.Sampling(m, (3, 32, 64)).acceleration == mr.acceleration(m)
    box = mr.acs_region(m)
    assert box[0] == slice(0, 32) and box[1].stop - box[1].start >= 10
    assert bool(m[box].all())
    g = mr.gaussian_mask((40, 40), 4, center=10, seed=0)
    gb = mr.acs_region(g)
    assert bool(g[gb].all()) and math.prod(s.stop - s.start for s in gb) >= 100
    with pytest.raises(ValueError, match="centre"):
        mr.acs_region(torch.zeros(8, 8, dtype=torch.bool))


# --------------------------------------------------------------------------- coil maps


def test_birdcage_maps() -> None:
    maps = mr.birdcage_maps((8, 32, 40))
    assert maps.shape == (8, 32, 40) and maps.dtype == torch.complex64
    torch.testing.assert_close(mr.rss(maps, dim=0), torch.ones(32, 40), rtol=1e-5, atol=1e-5)
    # coil 0 sits at +x: it is most sensitive on the right edge
    assert float(maps[0, 16, -1].abs()) > float(maps[0, 16, 0].abs())
    maps3 = mr.birdcage_maps((8, 6, 16, 16), coils_per_ring=4, dtype=torch.complex128)
    torch.testing.assert_close(mr.rss(maps3, dim=0), torch.ones(6, 16, 16, dtype=torch.float64))
    assert float(maps3[0, 0].abs().mean()) > float(maps3[0, -1].abs().mean())  # ring 0 is at low z


@pytest.mark.parametrize("method", ["espirit", "walsh", "lowres"])
def test_estimate_maps_recovers_birdcage(method: str) -> None:
    n = 64
    x = mr.shepp_logan((n, n), dtype=torch.complex128)
    maps = mr.birdcage_maps((8, n, n), dtype=torch.complex128)
    mask = mr.equispaced_lines((n, n), 4, center_lines=24, seed=0)
    y = mr.Sampling(mask, (8, n, n))(mr.simulate_kspace(x, maps))
    est = mr.estimate_maps(y, mask, method=method)
    assert est.shape == maps.shape and est.dtype == torch.complex128
    inside = x.abs() > 0.5  # bright skull: the low-resolution image is well above zero there
    # equal up to one phase per pixel: compare with the phase of coil 0 removed from both
    ref = maps * torch.exp(-1j * torch.angle(maps[:1]))
    err = (est - ref).abs()[:, inside].max()
    assert float(err) < 0.05
    torch.testing.assert_close(mr.rss(est, dim=0)[inside], torch.ones(int(inside.sum()), dtype=torch.float64))


# --------------------------------------------------------------------------- phantoms and noise


def test_shepp_logan_phantom() -> None:
    x = mr.shepp_logan((64, 48))
    assert x.shape == (64, 48) and x.dtype == torch.complex64
    assert float(x.abs().max()) == pytest.approx(1.0) and float(x.abs().min()) == 0.0
    real = mr.shepp_logan((64, 48), phase_amplitude=0.0, dtype=torch.complex128)
    assert float(real.imag.abs().max()) == 0.0 and float(real.real.min()) >= 0.0
    torch.testing.assert_close(x.abs(), real.abs().float())
    # smooth phase: neighbouring pixels inside the object differ by little
    phase = mr.smooth_phase((64, 48))
    assert float(phase.diff(dim=0).abs().max()) < 0.1 and float(phase.diff(dim=1).abs().max()) < 0.1
    # the ellipse at y = +0.35 (0.3 on the 0.2 brain) is in the upper half (row 0 at the top)
    profile = real.real[:, 24]
    assert float(profile[18:22].min()) > 0.25 and float(profile[41:45].max()) < 0.25
    x3 = mr.shepp_logan((16, 24, 24))
    assert x3.shape == (16, 24, 24) and float(x3.abs().max()) == pytest.approx(1.0)


def test_random_phase_is_smooth_seeded_and_bounded() -> None:
    maps = [mr.random_phase((64, 48), generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert maps[0].shape == (64, 48) and maps[0].dtype == torch.float64
    assert torch.equal(maps[0], maps[1]) and not torch.allclose(maps[0], maps[2])
    for phase in maps:  # smooth: neighbours differ by little (a 2 pi wrap would show here)
        assert float(phase.diff(dim=0).abs().max()) < 0.25 and float(phase.diff(dim=1).abs().max()) < 0.25
    # amplitude 0 leaves the global phase and the coil term, which stays within pi / 2 of it
    flat = [mr.random_phase((32, 32), 0.0, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    spread = [float((p - p[16, 16]).abs().max()) for p in flat]
    assert max(spread) < math.pi / 2 + 0.1 and max(spread) > 0.1
    offsets = torch.tensor([float(p[16, 16]) for p in flat])
    assert float(offsets.min()) < -1.0 and float(offsets.max()) > 1.0  # a global phase over [-pi, pi]
    # the polynomial part reaches up to 1.8 a
    big = [mr.random_phase((32, 32), 1.0, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    assert max(float((p - p[16, 16]).abs().max()) for p in big) > 1.5
    assert mr.random_phase((8, 16, 16), generator=torch.Generator().manual_seed(0)).shape == (8, 16, 16)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        mr.random_phase((16,))
    with pytest.raises(ValueError, match="amplitude must be"):
        mr.random_phase((16, 16), -1.0)


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_add_noise_snr(snr_db: float) -> None:
    x = mr.fftc(mr.shepp_logan((128, 128), dtype=torch.complex128))
    y = mr.add_noise(x, snr_db, seed=0)
    n = y - x
    measured = 10 * math.log10(float((x.abs() ** 2).mean()) / float((n.abs() ** 2).mean()))
    assert abs(measured - snr_db) < 0.1
    assert abs(float(n.real.var() / n.imag.var()) - 1.0) < 0.05  # circular
    torch.testing.assert_close(y, mr.add_noise(x, snr_db, seed=0))
    assert not torch.equal(y, mr.add_noise(x, snr_db, seed=1))


# --------------------------------------------------------------------------- bad input


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="dims"):
        mr.FFT((4, 4), dims=3)
    with pytest.raises(ValueError, match="shape"):
        mr.FFT((4, 4))(torch.zeros(4, 5, dtype=torch.complex64))
    with pytest.raises(TypeError, match="complex"):
        mr.FFT((4, 4))(torch.zeros(4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="mask"):
        mr.Sampling(torch.zeros(4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="broadcast"):
        mr.Sampling(torch.ones(3, 4, dtype=torch.bool), (4, 4))
    with pytest.raises(ValueError, match="maps"):
        mr.Coils(torch.zeros(4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="broadcast"):
        mr.SENSE(torch.ones(5, 4, dtype=torch.bool), torch.ones(2, 4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="shape"):
        mr.SENSE(torch.ones(4, 4, dtype=torch.bool), torch.ones(2, 4, 4, dtype=torch.complex64))(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="acceleration"):
        mr.random_lines((32,), 0.5, center_lines=4)
    with pytest.raises(ValueError, match="exactly one"):
        mr.equispaced_lines((32,), 4)
    with pytest.raises(ValueError, match="center_lines"):
        mr.equispaced_lines((32,), 4, center_lines=40)
    with pytest.raises(ValueError, match="sigma"):
        mr.gaussian_mask((16, 16), 4, sigma=0.0)
    with pytest.raises(ValueError, match="method"):
        mr.estimate_maps(torch.zeros(2, 8, 8, dtype=torch.complex64), torch.ones(8, 8), method="bogus")
    k8 = torch.zeros(2, 8, 8, dtype=torch.complex64)
    with pytest.raises(ValueError, match="kernel_size applies to method 'espirit' or 'walsh', not 'nlinv'"):
        mr.estimate_maps(k8, torch.ones(8, 8), method="nlinv", kernel_size=5)
    with pytest.raises(ValueError, match="crop applies to method 'espirit', not 'walsh'"):
        mr.estimate_maps(k8, torch.ones(8, 8), method="walsh", crop=0.9)
    with pytest.raises(ValueError, match="n_maps > 1 needs method='espirit'"):
        mr.estimate_maps(k8, torch.ones(8, 8), method="lowres", n_maps=2)
    with pytest.raises(ValueError, match="coils_per_ring"):
        mr.birdcage_maps((8, 4, 16, 16), coils_per_ring=3)
    with pytest.raises(ValueError, match="snr_db"):
        mr.add_noise(torch.zeros(4, dtype=torch.complex64), float("nan"))
