"""The geometry-gradient examples: calibration and motion estimation (small versions)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

import precisionrecon as pr
from precisionrecon.calibration import rigid_motion_vectors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import calibration
import motion


def test_calibration_recovers_offset_and_angle_from_noiseless_data() -> None:
    r = calibration.calibrate(size=64, views=90, det=96)
    assert r["offset_error_px"] < 0.05
    assert r["angle_error_deg"] < 0.01
    assert r["psnr_calibrated_db"] > r["psnr_nominal_db"] + 1.0


def test_calibration_with_poisson_noise() -> None:
    """64², 180 views, I0 = 1e4: over seeds 0-3 the errors were at most 0.021 px and 0.31 degrees
    (the full example at 128², 360 views: 0.010 px and 0.075 degrees); FBP gains over 4 dB."""
    r = calibration.calibrate(size=64, views=180, det=96, i0=1e4, seed=1)
    assert r["offset_error_px"] < 0.1
    assert r["angle_error_deg"] < 0.5
    assert r["psnr_calibrated_db"] > r["psnr_nominal_db"] + 2.0


def test_motion_estimation_reduces_the_observable_motion_error() -> None:
    r = motion.estimate_motion(size=48, views=120, outer=6)
    assert r["shift_rmse_px"] < 0.5 * r["shift_rms_px"]
    assert r["rotation_rmse_deg"] < 0.7 * r["rotation_rms_deg"]
    assert r["psnr_corrected_db"] > r["psnr_uncorrected_db"] + 0.5


def test_rigid_motion_vectors_moves_the_object() -> None:
    """Projecting a shifted/rotated phantom == projecting the static one with moved vectors."""
    vol = pr.Volume((40, 40))
    geom = pr.FanBeam2D(angles=pr.angles(6, arc=2 * math.pi), det_count=64, det_spacing=1.0, src_iso=80, src_det=150)
    shift = torch.tensor([[2.0, -1.0]] * 6, dtype=torch.float64)
    rot = torch.full((6,), 0.2, dtype=torch.float64)
    phantom = pr.data.shepp_logan_2d(vol, half_extent=(15.0, 12.0))
    moved_vectors = rigid_motion_vectors(geom.to_vectors(), shift, rot, beam="cone")
    y_moved_geometry = pr.data.analytic_projection(phantom, pr.VectorGeometry(vectors=moved_vectors, det_shape=64,
                                                                                beam="cone"))
    c, s = math.cos(0.2), math.sin(0.2)
    moved = []
    for e in phantom:
        cx, cy = e.center
        rows = torch.tensor(e.rotation, dtype=torch.float64)
        R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        moved.append(pr.data.Ellipsoid(center=(c * cx - s * cy + 2.0, s * cx + c * cy - 1.0),
                                       semi_axes=e.semi_axes, rotation=(R @ rows).numpy(), density=e.density,
                                       power=e.power))
    y_moved_object = pr.data.analytic_projection(moved, geom)
    torch.testing.assert_close(y_moved_geometry, y_moved_object, rtol=1e-9, atol=1e-9)
