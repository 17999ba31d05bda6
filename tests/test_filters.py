"""Ramp filters: design against Kak & Slaney / scikit-image, self-adjointness, windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.operators import fft_length, ramp_response


def test_ramp_matches_scikit_image_design() -> None:
    radon_transform = pytest.importorskip("skimage.transform.radon_transform")
    n = fft_length(100)
    theirs = radon_transform._get_fourier_filter(n, "ramp")[: n // 2 + 1, 0]
    # scikit-image normalises the ramp to 1 at Nyquist; ours is |nu| in cycles/mm (0.5/tau)
    np.testing.assert_allclose(2.0 * ramp_response(100, 1.0).numpy(), theirs, rtol=0, atol=1e-12)


def test_ramp_approximates_abs_frequency_in_per_mm() -> None:
    tau = 0.5
    r = ramp_response(64, tau)
    nu = torch.fft.rfftfreq(fft_length(64), d=tau, dtype=torch.float64)  # cycles per mm
    # at Nyquist the kernel's 1/k^2 tail beyond the FFT length is missing: a deficit of
    # about 4 / (pi^2 n) = 0.3 % for n = 128
    ratio = float(r[-1] / nu[-1])
    assert 1.0 - 4.0 / (np.pi**2 * fft_length(64)) * 1.5 < ratio <= 1.0
    mid = slice(5, len(r) - 5)
    torch.testing.assert_close(r[mid], nu[mid], rtol=0.02, atol=0.0)
    assert 0.0 < float(r[0]) < float(r[1])  # no DC hole, unlike a sampled |nu|


@pytest.mark.parametrize("window", ["shepp-logan", "cosine", "hamming", "hann"])
@pytest.mark.parametrize("cutoff", [1.0, 0.5])
def test_windows_attenuate_and_cut_off(window: str, cutoff: float) -> None:
    ram = ramp_response(80, 1.0)
    r = ramp_response(80, 1.0, window, cutoff)
    assert float(r[0]) == pytest.approx(float(ram[0]))
    assert torch.all(r <= ram + 1e-15)
    u = torch.fft.rfftfreq(fft_length(80), dtype=torch.float64) / (0.5 * cutoff)
    assert torch.all(r[u > 1.0] == 0)
    assert torch.all(r[1:][u[1:] < 0.9] < ram[1:][u[1:] < 0.9])


def test_filtering_is_a_linear_convolution_without_wraparound() -> None:
    f = pr.RampFilter((1, 32))
    y = torch.zeros(1, 32, dtype=torch.float64)
    y[0, 0] = 1.0  # an impulse at the first pixel
    out = f(y)[0]
    # Kak & Slaney kernel: h[0] = 1/4, h[odd k] = -1/(pi k)^2, h[even k] = 0 (tau = 1)
    k = torch.arange(32, dtype=torch.float64)
    expected = torch.where(k % 2 == 1, -1.0 / (torch.pi * k.clamp(min=1)) ** 2, torch.zeros_like(k))
    expected[0] = 0.25
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_learnable_response_receives_gradients() -> None:
    shape = (4, 30)
    designed = ramp_response(30, 1.0)
    param = torch.nn.Parameter(designed.clone())
    learned = pr.RampFilter(shape, response=param)
    y = torch.randn(2, *shape, dtype=torch.float64)
    torch.testing.assert_close(learned(y), pr.RampFilter(shape)(y), rtol=0, atol=0)
    learned(y).pow(2).sum().backward()
    assert param.grad is not None and torch.count_nonzero(param.grad) > 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="window must be one of"):
        pr.RampFilter((3, 10), window="butterworth")
    with pytest.raises(ValueError, match=r"cutoff must be in \(0, 1\]"):
        pr.RampFilter((3, 10), cutoff=0.0)
    with pytest.raises(ValueError, match="det_spacing must be positive"):
        pr.RampFilter((3, 10), det_spacing=-1.0)
    with pytest.raises(ValueError, match="response must be a tensor of shape"):
        pr.RampFilter((3, 10), response=torch.ones(5))
    f = pr.RampFilter((3, 10))
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 3, 10\)"):
        f(torch.zeros(3, 11))
    with pytest.raises(TypeError, match="real floating-point"):
        f(torch.zeros(3, 10, dtype=torch.int64))
