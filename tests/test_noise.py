"""Noise models (``precisionrecon.data.noise``): statistics against theory, seeding, input checks."""

from __future__ import annotations

import math

import pytest
import torch

from precisionrecon.data import gaussian_noise, poisson_noise

# ---------------------------------------------------------------------------------------
# Poisson (Beer-Lambert, post-log)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu_scale", [1.0, 0.25])
def test_poisson_moments_match_the_delta_method(mu_scale: float) -> None:
    """For N ~ Poisson(lam), lam = i0 exp(-mu p), q = -log(N / i0) / mu has mean
    p + 1 / (2 lam mu) and variance 1 / (lam mu^2), up to O(lam^-2) (lam >= 183 here).
    40000 samples per value; both moments within 4 standard errors. The bias term
    matters: at lam = 183 it is 7 standard errors of the mean."""
    i0, m = 1e4, 40_000
    p = torch.tensor([0.0, 1.0, 2.5, 4.0], dtype=torch.float64) / mu_scale
    q = poisson_noise(p.expand(m, -1), i0, seed=0, mu_scale=mu_scale)
    lam = i0 * torch.exp(-mu_scale * p)
    mean = p + 1.0 / (2.0 * lam * mu_scale)
    var = 1.0 / (lam * mu_scale**2)
    z_mean = (q.mean(0) - mean) / (var / m).sqrt()
    z_var = (q.var(0) / var - 1.0) / math.sqrt(2 / m)
    assert z_mean.abs().max() < 4 and z_var.abs().max() < 4, (z_mean, z_var)
    assert ((q.mean(0) - p) / (var / m).sqrt())[-1] > 5  # without the bias term it would fail


def test_poisson_zero_counts_become_min_count() -> None:
    """lam = exp(-50): no photon arrives, -log(min_count / i0) / mu is reported instead of inf."""
    p = torch.full((3, 5), 50.0)
    torch.testing.assert_close(poisson_noise(p, 1.0, seed=0), torch.full_like(p, math.log(10.0)))
    q = poisson_noise(p, 1.0, seed=0, min_count=0.5, mu_scale=2.0)
    torch.testing.assert_close(q, torch.full_like(p, math.log(2.0) / 2.0))
    assert torch.isfinite(poisson_noise(torch.full((100,), 12.0), 10.0, seed=1)).all()


def test_poisson_seeded_batched_and_typed() -> None:
    p = torch.rand(2, 3, 8, 16, dtype=torch.float32)
    a = poisson_noise(p, 1e3, seed=7)
    assert a.shape == p.shape and a.dtype == torch.float32
    torch.testing.assert_close(poisson_noise(p, 1e3, seed=7), a, rtol=0, atol=0)
    g = torch.Generator().manual_seed(7)
    torch.testing.assert_close(poisson_noise(p, 1e3, generator=g), a, rtol=0, atol=0)
    assert not torch.equal(poisson_noise(p, 1e3, seed=8), a)
    assert not torch.equal(a[0, 0], a[1, 0])  # independent noise per batch item
    # float64 in, float64 out; a sample carries no gradient
    x = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    out = poisson_noise(x, 1e4, seed=0)
    assert out.dtype == torch.float64 and not out.requires_grad


def test_poisson_i0_per_item() -> None:
    """i0 as a tensor that broadcasts: the variance scales as 1 / i0 per item."""
    p = torch.full((2, 200, 100), 0.5, dtype=torch.float64)
    i0 = torch.tensor([1e3, 1e5], dtype=torch.float64).reshape(2, 1, 1)
    q = poisson_noise(p, i0, seed=3)
    var = q.var(dim=(1, 2))
    expect = 1.0 / (i0.reshape(2) * math.exp(-0.5))
    torch.testing.assert_close(var / expect, torch.ones(2, dtype=torch.float64), rtol=0, atol=4 * math.sqrt(2 / 2e4))


def test_poisson_bad_input() -> None:
    p = torch.zeros(4, 5)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="i0"):
            poisson_noise(p, bad, seed=0)
    with pytest.raises(ValueError, match="i0"):
        poisson_noise(p, torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0]), seed=0)
    with pytest.raises(ValueError, match="i0"):
        poisson_noise(p, torch.ones(3, 4, 5), seed=0)  # would change the output shape
    with pytest.raises(TypeError, match="i0"):
        poisson_noise(p, "1e4", seed=0)
    with pytest.raises(ValueError, match="mu_scale"):
        poisson_noise(p, 1e4, mu_scale=0.0)
    with pytest.raises(ValueError, match="min_count"):
        poisson_noise(p, 1e4, min_count=0.0)
    with pytest.raises(TypeError, match="sinogram"):
        poisson_noise(torch.zeros(4, 5, dtype=torch.int64), 1e4)
    with pytest.raises(TypeError, match="sinogram"):
        poisson_noise(p.numpy(), 1e4)
    with pytest.raises(ValueError, match="seed or generator"):
        poisson_noise(p, 1e4, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        poisson_noise(p, 1e4, generator=0)


# ---------------------------------------------------------------------------------------
# Gaussian
# ---------------------------------------------------------------------------------------


def test_gaussian_relative_std_per_item() -> None:
    """sigma = level * mean |y| of each item (the last item_ndim axes)."""
    y = torch.rand(3, 200, 150, dtype=torch.float64) * torch.tensor([1.0, 10.0, 100.0]).reshape(3, 1, 1)
    out = gaussian_noise(y, 0.05, seed=0)
    noise = out - y
    sigma = 0.05 * y.abs().mean(dim=(1, 2))
    n = 200 * 150
    torch.testing.assert_close(
        noise.std(dim=(1, 2)) / sigma, torch.ones(3, dtype=torch.float64), rtol=0, atol=4 / math.sqrt(2 * n)
    )
    torch.testing.assert_close(
        noise.mean(dim=(1, 2)) / sigma, torch.zeros(3, dtype=torch.float64), rtol=0, atol=4 / math.sqrt(n)
    )
    # 3-D items: one sigma per (views, rows, cols) stack
    y3 = torch.rand(2, 20, 30, 40, dtype=torch.float64) * torch.tensor([1.0, 5.0]).reshape(2, 1, 1, 1)
    noise3 = gaussian_noise(y3, 0.1, seed=1, item_ndim=3) - y3
    sigma3 = 0.1 * y3.abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(
        noise3.std(dim=(1, 2, 3)) / sigma3, torch.ones(2, dtype=torch.float64), rtol=0, atol=4 / math.sqrt(2 * 24_000)
    )


def test_gaussian_absolute() -> None:
    y = torch.rand(2, 300, 200) * 50
    noise = gaussian_noise(y, 0.3, seed=0, relative=False) - y
    torch.testing.assert_close(noise.std(dim=(1, 2)), torch.full((2,), 0.3), rtol=4 / math.sqrt(2 * 6e4), atol=0)
    torch.testing.assert_close(gaussian_noise(y, 0.0, seed=0), y, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_gaussian_complex(dtype: torch.dtype) -> None:
    """Circular complex noise: E|n|^2 = sigma^2, real and imaginary parts independent with
    variance sigma^2 / 2 each; sigma relative to the mean modulus."""
    y = torch.polar(
        torch.rand(2, 256, 256, dtype=torch.float64) + 0.5, 6 * torch.rand(2, 256, 256, dtype=torch.float64)
    )
    y = y.to(dtype)
    out = gaussian_noise(y, 0.05, seed=0)
    assert out.dtype == dtype and out.shape == y.shape
    noise = (out - y).to(torch.complex128)
    sigma2 = (0.05 * y.abs().double().mean(dim=(1, 2))) ** 2
    n = 256 * 256
    one = torch.ones(2, dtype=torch.float64)
    tol = 4 * math.sqrt(2 / n)
    torch.testing.assert_close(noise.abs().square().mean(dim=(1, 2)) / sigma2, one, rtol=0, atol=tol)
    torch.testing.assert_close(noise.real.square().mean(dim=(1, 2)) / sigma2, one / 2, rtol=0, atol=tol)
    torch.testing.assert_close(noise.imag.square().mean(dim=(1, 2)) / sigma2, one / 2, rtol=0, atol=tol)
    corr = (noise.real * noise.imag).mean(dim=(1, 2)) / sigma2
    torch.testing.assert_close(corr, 0 * one, rtol=0, atol=4 / math.sqrt(n))


def test_gaussian_seeded_and_differentiable() -> None:
    y = torch.rand(2, 16, 16, requires_grad=True)
    a = gaussian_noise(y, 0.05, seed=3)
    assert a.dtype == torch.float32
    torch.testing.assert_close(gaussian_noise(y, 0.05, seed=3), a, rtol=0, atol=0)
    torch.testing.assert_close(gaussian_noise(y, 0.05, generator=torch.Generator().manual_seed(3)), a, rtol=0, atol=0)
    assert not torch.equal(gaussian_noise(y, 0.05, seed=4), a)
    a.sum().backward()
    torch.testing.assert_close(y.grad, torch.ones_like(y))  # noise and sigma are constants


def test_gaussian_bad_input() -> None:
    y = torch.zeros(4, 5)
    with pytest.raises(ValueError, match="level"):
        gaussian_noise(y, -0.1)
    with pytest.raises(ValueError, match="level"):
        gaussian_noise(y, math.nan)
    with pytest.raises(TypeError, match="level"):
        gaussian_noise(y, "5%")
    with pytest.raises(ValueError, match="item_ndim"):
        gaussian_noise(y, 0.1, item_ndim=3)
    with pytest.raises(ValueError, match="item_ndim"):
        gaussian_noise(y, 0.1, item_ndim=0)
    with pytest.raises(TypeError, match="y"):
        gaussian_noise(torch.zeros(4, 5, dtype=torch.int32), 0.1)
    with pytest.raises(ValueError, match="seed or generator"):
        gaussian_noise(y, 0.1, seed=1, generator=torch.Generator())
