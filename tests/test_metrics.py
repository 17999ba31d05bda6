"""PSNR, SSIM and RMSE (``precisionrecon.metrics``) against scikit-image and by definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.data import gaussian_noise, shepp_logan_image
from precisionrecon.metrics import psnr, rmse, ssim

skm = pytest.importorskip("skimage.metrics")


def _pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(x, ref) batches of shape (2, 3, ny, nx): random images and a noisy Shepp-Logan."""
    rng = np.random.default_rng(0)
    ref = rng.random((2, 3, 33, 40))
    x = ref + 0.1 * rng.standard_normal(ref.shape)
    sl = shepp_logan_image(pr.Volume((64, 48)), dtype=torch.float64)
    sl_ref = sl.expand(2, 3, 64, 48).clone()
    sl_x = gaussian_noise(sl_ref, 0.2, seed=0)
    return {"random": (x, ref), "shepp-logan": (sl_x.numpy(), sl_ref.numpy())}


PAIRS = _pairs()


def _per_item(fn, x: np.ndarray, ref: np.ndarray, **kw) -> np.ndarray:
    """scikit-image applied to each image of a (*batch, *image) pair."""
    batch = x.shape[:2]
    flat = [fn(r, xi, **kw) for xi, r in zip(x.reshape(-1, *x.shape[2:]), ref.reshape(-1, *x.shape[2:]), strict=True)]
    return np.asarray(flat).reshape(batch)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_psnr_matches_scikit_image(name: str) -> None:
    x, ref = PAIRS[name]
    ours = psnr(torch.from_numpy(x), torch.from_numpy(ref), data_range=1.0)
    assert ours.shape == (2, 3)
    np.testing.assert_allclose(ours.numpy(), _per_item(skm.peak_signal_noise_ratio, x, ref, data_range=1.0), rtol=1e-13)
    # one data range per batch item, broadcast over the batch shape
    rng = torch.tensor([[1.0], [2.5]], dtype=torch.float64)
    ours = psnr(torch.from_numpy(x), torch.from_numpy(ref), data_range=rng).numpy()
    expect = _per_item(skm.peak_signal_noise_ratio, x, ref, data_range=1.0) + 20 * math.log10(2.5) * np.array(
        [[0], [1]]
    )
    np.testing.assert_allclose(ours, expect, rtol=1e-13)


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"gaussian_weights": True},
        {"gaussian_weights": True, "use_sample_covariance": False},
        {"win_size": 5, "K1": 0.02, "K2": 0.05},
    ],
    ids=["default", "gaussian", "wang", "custom"],
)
def test_ssim_matches_scikit_image(name: str, options: dict) -> None:
    """Same window, constants, covariance and crop as skimage: float64 agrees to rounding
    (measured 2e-16), float32 to 5e-8 (the brief asked for 1e-3)."""
    x, ref = PAIRS[name]
    expect = _per_item(skm.structural_similarity, x, ref, data_range=1.0, **options)
    ours = ssim(torch.from_numpy(x), torch.from_numpy(ref), data_range=1.0, **options)
    assert ours.shape == (2, 3) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expect, rtol=0, atol=1e-12)
    ours32 = ssim(torch.from_numpy(x).float(), torch.from_numpy(ref).float(), data_range=1.0, **options)
    assert ours32.dtype == torch.float32
    np.testing.assert_allclose(ours32.numpy(), expect, rtol=0, atol=1e-5)


def test_ssim_3d_volumes_and_data_range() -> None:
    """ndim=3: a 7x7x7 window over (nz, ny, nx), as skimage does for 3-D arrays; the data
    range enters through C1 and C2 only."""
    rng = np.random.default_rng(1)
    ref = rng.random((2, 11, 13, 15))
    x = ref + 0.2 * rng.standard_normal(ref.shape)
    ours = ssim(torch.from_numpy(x), torch.from_numpy(ref), data_range=torch.tensor([1.0, 4.0]), ndim=3)
    expect = [skm.structural_similarity(ref[i], x[i], data_range=r) for i, r in enumerate((1.0, 4.0))]
    assert ours.shape == (2,)
    np.testing.assert_allclose(ours.numpy(), expect, rtol=0, atol=1e-12)
    assert expect[1] > expect[0] + 0.01  # a larger range forgives more: the test sees data_range


def test_single_image_and_identity() -> None:
    x = torch.from_numpy(PAIRS["shepp-logan"][1][0, 0])
    assert ssim(x, x, data_range=1.0).shape == ()
    assert float(ssim(x, x, data_range=1.0)) == pytest.approx(1.0, abs=1e-12)
    assert float(psnr(x, x, data_range=1.0)) == math.inf
    assert float(rmse(x, x)) == 0.0


def test_rmse() -> None:
    x, ref = (torch.from_numpy(a) for a in PAIRS["random"])
    expect = np.sqrt(np.mean((x.numpy() - ref.numpy()) ** 2, axis=(-2, -1)))
    np.testing.assert_allclose(rmse(x, ref).numpy(), expect, rtol=1e-13)
    np.testing.assert_allclose(rmse(x, ref, ndim=3).numpy(), np.sqrt(np.mean(expect**2, axis=-1)), rtol=1e-13)
    # complex: the modulus of the difference (MR)
    z = torch.complex(x, ref)
    np.testing.assert_allclose(
        rmse(z, torch.zeros_like(z)).numpy(), np.sqrt(np.mean(np.abs(z.numpy()) ** 2, axis=(-2, -1))), rtol=1e-13
    )


def test_metrics_are_differentiable() -> None:
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 6, 5, dtype=torch.float64, generator=g)
    x = (ref + 0.1 * torch.rand(2, 6, 5, dtype=torch.float64, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ssim(t, ref, data_range=1.0, win_size=3), (x,))
    assert torch.autograd.gradcheck(lambda t: ssim(t, ref, data_range=1.0, win_size=5, gaussian_weights=True), (x,))
    assert torch.autograd.gradcheck(lambda t: psnr(t, ref, data_range=1.0), (x,))
    assert torch.autograd.gradcheck(lambda t: rmse(t, ref), (x,))
    # SSIM as a loss: a gradient step towards ref raises it
    loss = 1 - ssim(x, ref, data_range=1.0, win_size=3).mean()
    loss.backward()
    with torch.no_grad():
        stepped = x - 0.05 * x.grad / x.grad.norm()
    assert ssim(stepped, ref, data_range=1.0, win_size=3).mean() > 1 - loss


def test_bad_input() -> None:
    x = torch.rand(2, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:, :15], data_range=1.0)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[0], data_range=1.0)
    with pytest.raises(TypeError, match="data_range"):
        psnr(x, x)  # no silent max - min default
    with pytest.raises(TypeError, match="data_range"):
        ssim(x, x)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="data_range"):
            psnr(x, x, data_range=bad)
        with pytest.raises(ValueError, match="data_range"):
            ssim(x, x, data_range=bad)
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=torch.ones(3))  # batch is (2,)
    with pytest.raises(TypeError, match="data_range"):
        psnr(x, x, data_range="1")
    with pytest.raises(ValueError, match="win_size"):
        ssim(x, x, data_range=1.0, win_size=4)
    with pytest.raises(ValueError, match="win_size"):
        ssim(x, x, data_range=1.0, win_size=17)
    with pytest.raises(ValueError, match="ndim"):
        ssim(x, x, data_range=1.0, ndim=4)
    with pytest.raises(ValueError, match="ndim"):
        rmse(x[0, 0], x[0, 0])  # a 1-D tensor is not a (ny, nx) image
    with pytest.raises(TypeError, match="x"):
        ssim(torch.complex(x, x), torch.complex(x, x), data_range=1.0)
    with pytest.raises(TypeError, match="x"):
        rmse(torch.ones(4, 4, dtype=torch.int64), torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="ref"):
        rmse(x, x.numpy())
