"""Anatomy-like phantoms, fine-grid simulation (no inverse crime) and the training data options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.data import (
    analytic_projection,
    anatomy_images,
    anatomy_phantom,
    bin_detector,
    ellipse,
    ellipsoid,
    fine_projection,
    random_ellipse_images,
    rasterize,
    refine_geometry,
    refine_volume,
)
from precisionrecon.data.analytic import voxel_centres
from precisionrecon.data.anatomy import UNIT_MU, item_seed
from precisionrecon.training.config import DataConfig, TrainingConfig
from precisionrecon.training.data import NOISE_STREAM, PHANTOM_STREAM, SimulatedData, derive_seed

V64 = pr.Volume((64, 64), spacing=5.0)  # a 320 mm field of view


def _block_mean(x: torch.Tensor, f: int) -> torch.Tensor:
    split = [k for n in x.shape for k in (n // f, f)]
    return x.reshape(split).mean(tuple(range(1, 2 * x.dim(), 2)))


# -- phantoms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["body", "head", "random"])
def test_same_seed_same_phantom_other_seed_differs(kind: str) -> None:
    a = anatomy_phantom(V64, seed=7, kind=kind)
    assert torch.equal(a, anatomy_phantom(V64, seed=7, kind=kind))
    assert not torch.equal(a, anatomy_phantom(V64, seed=8, kind=kind))
    assert a.shape == (64, 64) and a.dtype == torch.float32


def test_units_range_and_scale() -> None:
    mu = anatomy_phantom(V64, seed=3, kind="body", units="mu", oversample=1, dtype=torch.float64)
    unit = anatomy_phantom(V64, seed=3, kind="body", units="unit", oversample=1, dtype=torch.float64)
    assert unit.min() >= 0 and unit.max() <= 1
    assert mu.min() >= 0 and mu.max() < 0.08
    # unit is mu / (3 mu_water) clipped at 2000 HU
    below = mu < UNIT_MU
    torch.testing.assert_close(unit[below], mu[below] / UNIT_MU, rtol=1e-12, atol=1e-12)
    # inside the body, the mean is that of a real CT slice in the same window (0.35), not ~0.01
    for seed in range(4):
        for kind in ("body", "head"):
            x = anatomy_phantom(V64, seed=seed, kind=kind)
            inside = x > 0.2
            assert 0.2 < float(inside.float().mean()) < 0.8
            assert 0.28 < float(x[inside].mean()) < 0.45


def test_shapes_2d_3d_and_batch_mixing() -> None:
    v3 = pr.Volume((12, 16, 16), spacing=20.0)
    x3 = anatomy_phantom(v3, seed=1, kind="body", dtype=torch.float64)
    assert x3.shape == (12, 16, 16) and x3.dtype == torch.float64
    assert not torch.equal(x3[0], x3[-1])  # the body changes along z
    batch = anatomy_images(V64, 6, seed=5, ellipse_fraction=0.5)
    assert batch.shape == (6, 64, 64)
    for i in range(6):  # item i depends on its own seed only
        s = item_seed(5, i)
        if np.random.default_rng(s).random() < 0.5:
            assert torch.equal(batch[i], random_ellipse_images(V64, 1, s, oversample=2)[0])
        else:
            assert torch.equal(batch[i], anatomy_phantom(V64, seed=s))
    assert torch.equal(anatomy_images(V64, 2, seed=5, ellipse_fraction=0.5), batch[:2])
    kinds = [np.random.default_rng(item_seed(5, i)).random() < 0.5 for i in range(6)]
    assert any(kinds) and not all(kinds)  # this seed draws both kinds
    assert torch.equal(
        anatomy_images(V64, 3, seed=5, ellipse_fraction=1.0)[1],
        random_ellipse_images(V64, 1, item_seed(5, 1), oversample=2)[0],
    )


@pytest.mark.parametrize("kind", ["body", "head"])
def test_structures_present(kind: str) -> None:
    v = pr.Volume((128, 128), spacing=3.0)
    for seed in range(3):
        mu = anatomy_phantom(v, seed=seed, kind=kind, units="mu", oversample=1)
        body = mu > 0.015
        assert (mu > 0.035).sum() >= 20, "cortical bone"
        assert ((mu > 0.0185) & (mu < 0.023)).sum() > 0.2 * body.sum(), "soft tissue"
        if kind == "body":
            # air (lungs, bowel, stomach) enclosed by the body: below 0.01 inside the body's rows
            rows = body.any(1).nonzero().squeeze(1)
            cols = body.any(0).nonzero().squeeze(1)
            inner = mu[rows[0] + 8 : rows[-1] - 8, cols[0] + 8 : cols[-1] - 8]
            assert (inner < 0.01).sum() >= 10, "air inside the body"


def test_oversampling_equals_block_mean_of_finer_render() -> None:
    for shape, spacing in (((32, 40), 4.0), ((8, 10, 12), 16.0)):
        coarse = pr.Volume(shape, spacing=spacing, center=2.0)
        fine = refine_volume(coarse, 2)
        for seed in range(2):
            a = anatomy_phantom(coarse, seed=seed, oversample=2, dtype=torch.float64)
            b = anatomy_phantom(fine, seed=seed, oversample=1, dtype=torch.float64)
            torch.testing.assert_close(a, _block_mean(b, 2), rtol=0, atol=1e-12)


def test_zoom_shows_a_magnified_part_of_the_same_object() -> None:
    """``zoom`` about ``center`` is a change of world coordinates: the zoomed render on a grid
    equals the plain render on a grid ``zoom`` times finer, cropped around ``center``; the
    defaults leave the phantom unchanged, and z (3-D) is not magnified."""
    plain = anatomy_phantom(V64, seed=4, oversample=1, dtype=torch.float64)
    assert torch.equal(anatomy_phantom(V64, seed=4, oversample=1, zoom=1.0, center=(0.0, 0.0), dtype=torch.float64),
                       plain)
    # zoom 2 about the point (y, x) = (0.25, -0.25) R (R = 160 mm here: 40 mm = 8 pixels of V64 on
    # either axis): the 2x finer plain render's pixels [64 + 16 - 32, 64 + 16 + 32) x [64 - 16 - 32, ...)
    fine = anatomy_phantom(refine_volume(V64, 2), seed=4, oversample=1, dtype=torch.float64)
    zoomed = anatomy_phantom(V64, seed=4, oversample=1, zoom=2.0, center=(0.25, -0.25), dtype=torch.float64)
    torch.testing.assert_close(zoomed, fine[48:112, 16:80], rtol=0, atol=1e-12)
    assert float(zoomed.mean()) > float(plain.mean())  # the body fills more of the field
    vol3 = pr.Volume((6, 16, 16), spacing=10.0)
    z3 = anatomy_phantom(vol3, seed=2, oversample=1, zoom=2.0, dtype=torch.float64)
    f3 = anatomy_phantom(pr.Volume((6, 32, 32), spacing=(10.0, 5.0, 5.0)), seed=2, oversample=1, dtype=torch.float64)
    torch.testing.assert_close(z3, f3[:, 8:24, 8:24], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="zoom"):
        anatomy_phantom(V64, seed=0, zoom=0.0)
    with pytest.raises(ValueError, match="center must be two numbers"):
        anatomy_phantom(V64, seed=0, center=(0.1,))


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="volume"):
        anatomy_phantom((64, 64), seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed"):
        anatomy_phantom(V64, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        anatomy_phantom(V64, seed=0, kind="knee")
    with pytest.raises(ValueError, match="units"):
        anatomy_phantom(V64, seed=0, units="HU")
    with pytest.raises(ValueError, match="ellipse_fraction"):
        anatomy_images(V64, 2, seed=0, ellipse_fraction=1.5)
    with pytest.raises(ValueError, match="factor"):
        bin_detector(torch.zeros(3, 10), 3, 2)


# -- simulation without inverse crime ---------------------------------------------------------------

_GEOMETRIES = {
    "parallel": (pr.Volume((32, 32)), pr.ParallelBeam2D(angles=pr.angles(16), det_count=48)),
    "fan-flat": (
        pr.Volume((32, 32)),
        pr.FanBeam2D(angles=pr.angles(16, 2 * math.pi), det_count=64, det_spacing=1.5, src_iso=60, src_det=100),
    ),
    "fan-arc": (
        pr.Volume((32, 32)),
        pr.FanBeam2D(
            angles=pr.angles(16, 2 * math.pi), det_count=64, det_spacing=1.5, src_iso=60, src_det=100, detector="arc"
        ),
    ),
    "parallel-3d": (pr.Volume((16, 16, 16)), pr.ParallelBeam3D(angles=pr.angles(8), det_shape=(20, 24))),
    "cone": (
        pr.Volume((16, 16, 16)),
        pr.ConeBeam3D(angles=pr.angles(8, 2 * math.pi), det_shape=(24, 28), det_spacing=1.4, src_iso=40, src_det=70),
    ),
}


def _gaussian(volume: pr.Volume, sigma: float, centre: tuple[float, ...]) -> torch.Tensor:
    grids = torch.meshgrid(
        *[torch.from_numpy(a) for a in voxel_centres(volume.shape, volume.spacing, volume.center)], indexing="ij"
    )
    return torch.exp(-sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) / (2 * sigma**2))


def test_refined_geometry_bins_to_the_same_cells() -> None:
    _, geom = _GEOMETRIES["cone"]
    fine = refine_geometry(geom, 2)
    assert fine.det_shape == (48, 56) and fine.n_views == geom.n_views
    vec, fvec = geom.to_vectors(), fine.to_vectors()
    torch.testing.assert_close(fvec[:, :6], vec[:, :6], rtol=0, atol=0)  # source and detector centre stay
    torch.testing.assert_close(fvec[:, 6:] * 2, vec[:, 6:], rtol=0, atol=0)
    y = torch.arange(2 * 8 * 48 * 56, dtype=torch.float64).reshape(2, 8, 48, 56)
    assert bin_detector(y, 2, 3).shape == (2, 8, 24, 28)
    assert float(bin_detector(y, 2, 3)[0, 0, 0, 0]) == float(y[0, 0, :2, :2].mean())


@pytest.mark.parametrize("name", list(_GEOMETRIES))
def test_fine_projection_of_smooth_phantom_agrees_with_direct(name: str) -> None:
    """For a Gaussian of width sigma the two simulations differ by discretisation errors only:
    averaging over a detector cell of width Delta (at the object) instead of the centre ray
    changes p by at most Delta^2 / 24 |p''| <= Delta^2 / (24 sigma^2) max p per detector axis,
    and Joseph's linear interpolation of voxels of size h by at most h^2 / 8 |f''| <=
    h^2 / (8 sigma^2) max f per interpolated axis, integrated along the ray (the fine grid adds
    a quarter of that). So |fine - direct| <= 1.25 (n_u Delta^2 / 24 + n_i h^2 / 8) / sigma^2 max p,
    with n_u, n_i = 1 in 2-D, 2 in 3-D."""
    volume, geom = _GEOMETRIES[name]
    a = pr.XRayTransform(volume, geom)
    sigma = 4.0 if volume.ndim == 2 else 3.0
    centre = (1.0, -2.0) if volume.ndim == 2 else (0.5, 1.0, -1.0)
    fine = fine_projection(lambda v: _gaussian(v, sigma, centre), a, factor=2)
    direct = a(_gaussian(volume, sigma, centre))
    assert fine.shape == direct.shape == (geom.n_views, *geom.det_shape)
    spacing = geom.det_spacing if volume.ndim == 2 else geom.det_spacing[1]
    delta = spacing * (geom.src_iso / geom.src_det if geom.beam == "cone" else 1.0)
    n = volume.ndim - 1
    bound = 1.25 * (n * delta**2 / 24 + n * 1.0 / 8) / sigma**2
    err = float((fine - direct).abs().max() / direct.abs().max())
    assert err <= bound
    assert err > 1e-6  # really a different discretisation


@pytest.mark.parametrize("name", list(_GEOMETRIES))
def test_fine_projection_is_closer_to_exact_line_integrals(name: str) -> None:
    volume, geom = _GEOMETRIES[name]
    if volume.ndim == 2:
        phantom = [ellipse((2, -1), (9, 6), 0.4, 1.0), ellipse((-4, 3), (3, 2), 1.0, 0.5)]
    else:
        phantom = [
            ellipsoid((1, -1, 0.5), (5, 4, 3.5), (0.3, 0.2, 0.1), 1.0),
            ellipsoid((-2, 2, 1), (2, 1.5, 2), (1, 0, 0), 0.5),
        ]
    exact = analytic_projection(phantom, geom, oversample=8)  # box-shaped detector cells
    a = pr.XRayTransform(volume, geom)
    fine = fine_projection(lambda v: rasterize(phantom, v), a, factor=2)
    direct = a(rasterize(phantom, volume))
    err_fine = float((fine - exact).norm() / exact.norm())
    err_direct = float((direct - exact).norm() / exact.norm())
    assert err_fine < 0.6 * err_direct


# -- training data -------------------------------------------------------------------------------


def test_data_config_round_trip_and_validation() -> None:
    cfg = TrainingConfig(data={"phantom": "mix", "anatomy_fraction": 0.25, "anatomy_kind": "head", "oversample": 2})
    back = TrainingConfig.from_dict(cfg.to_dict())
    assert back.data == cfg.data and back.data.oversample == 2 and back.data.phantom == "mix"
    assert DataConfig().phantom == "ellipses" and DataConfig().oversample == 1
    for bad, match in (
        ({"phantom": "shepp"}, "data.phantom"),
        ({"anatomy_fraction": 2.0}, "data.anatomy_fraction"),
        ({"anatomy_kind": "leg"}, "data.anatomy_kind"),
        ({"oversample": 0}, "data.oversample"),
        ({"zoom_max": 0.5}, "data.zoom_max"),
    ):
        with pytest.raises(ValueError, match=match):
            DataConfig(**bad)


def _ct_operator() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((24, 24)), pr.ParallelBeam2D(angles=pr.angles(12), det_count=36))


def test_old_configs_give_the_same_data_bit_for_bit() -> None:
    """The default (ellipses, oversample 1) is the data of before: random ellipses from the
    sample's seed, projected by the operator, plus the sample's noise."""
    a = _ct_operator()
    data = SimulatedData(a, DataConfig(val_size=0), 3, "float64", "cpu")
    y, x = data.batch(2, range(3), 4)
    for i in range(3):
        g = torch.Generator().manual_seed(derive_seed(3, PHANTOM_STREAM, 2 * 4 + i))
        ref = random_ellipse_images(a.volume, 1, generator=g, n_ellipses=50.0, dtype=torch.float64)[0]
        assert torch.equal(x[i], ref)
        noisy = pr.data.gaussian_noise(a(ref), 0.05, seed=derive_seed(3, NOISE_STREAM, 2, i), item_ndim=2)
        assert torch.equal(y[i], noisy)


def test_anatomy_and_fine_grid_training_data() -> None:
    a = _ct_operator()
    cfg = DataConfig(phantom="anatomy", anatomy_kind="body", oversample=2, noise="none", val_size=2)
    data = SimulatedData(a, cfg, 1, "float64", "cpu")
    y, x = data.batch(0, range(2), 2)
    assert x.shape == (2, 24, 24) and y.shape == (2, 12, 36)
    assert float(x[x > 0.2].mean()) > 0.25  # anatomy, not sparse ellipses
    # y is the fine-grid simulation: close to, but not, the projection of x
    rel = float((y - a(x)).norm() / y.norm())
    assert 1e-4 < rel < 0.05
    again = SimulatedData(a, cfg, 1, "float64", "cpu").batch(0, range(2), 2)
    assert torch.equal(again[0], y) and torch.equal(again[1], x)
    yv, xv = data.validation_set()
    assert xv.shape == (2, 24, 24) and yv.shape == (2, 12, 36)
    mixed = SimulatedData(a, DataConfig(phantom="mix", anatomy_fraction=0.5, val_size=0), 4, "float32", "cpu")
    _, xm = mixed.batch(0, range(8), 8)
    dense = [float((xi > 0.2).float().mean()) > 0.2 for xi in xm]
    assert any(dense) and not all(dense)  # both anatomy and ellipse samples
    with pytest.raises(ValueError, match="oversample"):
        SimulatedData(a @ pr.IdentityOperator(a.domain_shape), cfg, 1, "float64", "cpu")


def test_zoomed_anatomy_training_data_fill_the_field() -> None:
    """``zoom_max`` magnifies the anatomy samples (and only them) by a seeded random factor:
    the bodies fill more of the field and cross its border; the same seed, the same data."""
    a = _ct_operator()
    base = {"phantom": "anatomy", "anatomy_kind": "body", "noise": "none", "val_size": 0}
    plain = SimulatedData(a, DataConfig(**base), 2, "float64", "cpu").batch(0, range(6), 6)[1]
    cfg = DataConfig(**base, zoom_max=3.0)
    zoomed = SimulatedData(a, cfg, 2, "float64", "cpu").batch(0, range(6), 6)[1]
    border = torch.cat([zoomed[:, 0], zoomed[:, -1], zoomed[:, :, 0], zoomed[:, :, -1]], 1)
    plain_border = torch.cat([plain[:, 0], plain[:, -1], plain[:, :, 0], plain[:, :, -1]], 1)
    assert float((border > 0.2).float().mean()) > float((plain_border > 0.2).float().mean()) + 0.1
    assert float((zoomed > 0.2).float().mean()) > float((plain > 0.2).float().mean())
    assert not any(torch.equal(z, p) for z, p in zip(zoomed, plain, strict=True))
    assert torch.equal(SimulatedData(a, cfg, 2, "float64", "cpu").batch(0, range(6), 6)[1], zoomed)
    ellipses = {"phantom": "ellipses", "noise": "none", "val_size": 0}
    e1 = SimulatedData(a, DataConfig(**ellipses), 2, "float64", "cpu").batch(0, range(2), 2)[1]
    e2 = SimulatedData(a, DataConfig(**ellipses, zoom_max=3.0), 2, "float64", "cpu").batch(0, range(2), 2)[1]
    assert torch.equal(e1, e2)  # ellipse samples are not zoomed


def test_mr_anatomy_data() -> None:
    maps = pr.mr.birdcage_maps((2, 24, 24))
    mask = pr.mr.equispaced_lines((24, 24), 2, center_lines=6)
    op = pr.mr.SENSE(mask, maps)
    data = SimulatedData(op, DataConfig(phantom="anatomy", val_size=0), 0, "float32", "cpu")
    y, x = data.batch(0, range(2), 2)
    assert x.is_complex() and x.shape == (2, 24, 24) and y.shape == (2, *op.range_shape)
    assert float(x.abs()[x.abs() > 0.2].mean()) > 0.25
