"""Sparse-view CT: TV-regularised PDHG against SIRT and FBP on exact, noisy data.

A 64 x 64 piecewise-constant random-ellipse phantom (Adler & Öktem), 30 parallel-beam views
over pi, its exact sinogram with detector-cell integration (no inverse crime: the data do
not come from the projector that reconstructs) plus 2 % relative Gaussian noise, seeded.
The competitors get their best: FBP with the best of the five windows, SIRT at its best
(early-stopped) iteration, both chosen by the PSNR against the truth, which TV-PDHG with
one fixed ``lam`` does not see.
"""

from __future__ import annotations

import math

import pytest
import torch

import precisionrecon as pr
from precisionrecon.algorithms import pdhg_tv, sirt

N, VIEWS, NOISE, LAM, ITERATIONS, BURN_IN = 64, 30, 0.02, 0.5, 200, 20


@pytest.fixture(scope="module")
def problem() -> dict:
    vol = pr.Volume((N, N))
    det = math.ceil(math.sqrt(2.0) * N)
    det += (det - N) % 2  # cell edges on the pixel edges at angle 0
    geom = pr.ParallelBeam2D(angles=pr.angles(VIEWS), det_count=det)
    phantom = pr.data.random_ellipses(20, volume=vol, seed=3, interior=True)
    truth = pr.data.rasterize(phantom, vol, oversample=4)
    clean = pr.data.analytic_projection(phantom, geom, oversample=4)
    y = pr.data.gaussian_noise(clean, NOISE, seed=11)
    data_range = float(truth.max() - truth.min())  # the values this phantom takes (some negative)
    A = pr.XRayTransform(vol, geom)
    tv = pdhg_tv(A, y, LAM, ITERATIONS, nonneg=False)
    return {"A": A, "truth": truth, "y": y, "data_range": data_range, "tv": tv}


def _psnr(x: torch.Tensor, p: dict) -> float:
    return float(pr.metrics.psnr(x, p["truth"], data_range=p["data_range"]))


def test_tv_pdhg_beats_sirt_and_fbp(problem: dict) -> None:
    # measured: TV 36.0 dB, SIRT 29.8 (best at iteration 71), FBP 29.6 (cosine window)
    A, y = problem["A"], problem["y"]
    assert float(problem["truth"].min()) < 0  # signed ellipse values: no non-negativity for anyone
    fbp = max(
        _psnr(pr.FBP(A, window)(y), problem) for window in ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")
    )
    sirt_psnr: list[float] = []
    sirt(A, y, 150, callback=lambda k, x, info: sirt_psnr.append(_psnr(x, problem)))
    # SIRT peaked well inside the 150 iterations (measured: iteration 71), then fitted the noise
    assert sirt_psnr.index(max(sirt_psnr)) < 120 and sirt_psnr[-1] < max(sirt_psnr)
    assert _psnr(problem["tv"].x, problem) > max(fbp, max(sirt_psnr)) + 3.0


def test_tv_pdhg_objective_decreases_after_burn_in(problem: dict) -> None:
    obj = problem["tv"].history["objective"]
    assert obj.shape == (ITERATIONS,)
    tail = obj[BURN_IN:]
    # non-increasing up to the rounding of the values (measured: strictly decreasing throughout)
    assert bool((tail[1:] <= tail[:-1] * (1.0 + 1e-12)).all())
    assert float(obj[-1]) < 0.05 * float(obj[0])  # measured 1858 -> 53
    # the last iterations move little: near the minimum (measured 4e-5 relative over the last 10)
    assert float(obj[-10] - obj[-1]) < 1e-3 * float(obj[-1])
