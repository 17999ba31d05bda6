"""Orthonormal wavelet operator (ptwt) and L1-wavelet compressed sensing (issue 15)."""

from __future__ import annotations

import pytest
import torch

from precisionrecon import mr
from precisionrecon.metrics import psnr

pytest.importorskip("ptwt")


@pytest.mark.parametrize(("wavelet", "level"), [("haar", 3), ("db4", 2), ("sym8", 1)])
def test_wavelet_is_orthonormal(wavelet: str, level: int) -> None:
    W = mr.Wavelet((32, 48), wavelet, level)
    x = torch.randn(2, 32, 48, dtype=torch.complex128)
    c = W(x)
    assert c.shape == (2, 32 * 48)
    torch.testing.assert_close(c.norm(dim=-1), x.norm(dim=(-2, -1)), rtol=1e-12, atol=0)  # W^H W = I
    torch.testing.assert_close(W.T(c), x, rtol=0, atol=1e-11)  # sym8 (16 taps): 1.1e-12 measured
    y = torch.randn(32 * 48, dtype=torch.complex128)
    torch.testing.assert_close(W(W.T(y)), y, rtol=0, atol=1e-11)  # W W^H = I: square and orthogonal
    # the transform is the one of pywt: the approximation band comes first
    import pywt

    ref = pywt.wavedec2(x[0].real.numpy(), wavelet, level=level, mode="periodization")
    assert ref[0].shape == ((32 >> level), (48 >> level))
    approx = c[0, : ref[0].size].real.reshape(ref[0].shape)
    if wavelet == "haar":  # no boundary filters: identical to pywt
        torch.testing.assert_close(approx, torch.from_numpy(ref[0]), rtol=1e-12, atol=1e-12)


def test_wavelet_sparsifies_the_phantom() -> None:
    x = mr.shepp_logan((64, 64), dtype=torch.complex128)

    def energy_of_top_fifth(c: torch.Tensor) -> float:
        top = c.abs().flatten().sort(descending=True).values
        return float(top[: c.numel() // 5].square().sum() / top.square().sum())

    # a fifth of the coefficients hold 99 % of the energy (measured 0.992; the image's Fourier
    # coefficients 0.815)
    assert energy_of_top_fifth(mr.Wavelet((64, 64), "db4", 3)(x)) > 0.99
    assert energy_of_top_fifth(mr.fftc(x)) < 0.9


def test_wavelet_bad_input() -> None:
    with pytest.raises(ValueError, match="divisible"):
        mr.Wavelet((30, 32), "haar", 2)
    with pytest.raises(ValueError, match="orthogonal"):
        mr.Wavelet((32, 32), "bior2.2", 1)
    with pytest.raises(ValueError, match="wavelet"):
        mr.Wavelet((32, 32), "nope", 1)
    with pytest.raises(ValueError, match="too deep"):
        mr.Wavelet((16, 16), "db8", 3)
    with pytest.raises(ValueError, match="shape"):
        mr.Wavelet((8, 8, 8), "haar", 1)
    with pytest.raises(ValueError, match="shape"):
        mr.Wavelet((16, 16), "haar", 1)(torch.zeros(8, 16, dtype=torch.complex64))


def test_wavelet_recon_beats_cg_sense() -> None:
    torch.set_num_threads(1)
    n = 128
    x = mr.shepp_logan((n, n))
    maps = mr.birdcage_maps((8, n, n))
    mask = mr.equispaced_lines((n, n), 4, center_lines=12, seed=0)
    A = mr.SENSE(mask, maps)
    y = mr.Sampling(mask, A.range_shape)(mr.add_noise(mr.simulate_kspace(x, maps), 30, seed=1))

    def score(image: torch.Tensor) -> float:
        return float(psnr(image.abs(), x.abs(), data_range=1.0))

    best_cg = max(score(mr.cg_sense(A, y, k).x) for k in (10, 20, 40))  # best early stopping
    lam = 0.001 * float(mr.zero_filled(A, y).abs().max())
    result = mr.wavelet_recon(A, y, lam, 100)
    assert result.x.shape == (n, n)
    assert score(result.x) > best_cg + 2.0  # measured 26.6 dB against 23.6 dB
    assert bool((result.history["objective"].diff() <= 1e-6 * result.history["objective"][0]).all())  # MFISTA
