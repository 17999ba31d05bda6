"""Calibrate a fan-beam scanner from one scan of a known phantom.

The true geometry has a detector offset of 3.7 pixels and an angular offset of 0.8
degrees; the nominal geometry has neither. Both are recovered by gradient-based
minimisation of the data fidelity through the differentiable projector
(``pr.ParametricXRayTransform``), from noiseless data and from Poisson data (I0 = 1e4,
several noise seeds). The data are exact analytic line integrals of a smooth modified
Shepp-Logan (no inverse crime); the model image is the rasterised phantom. FBP with the
nominal and with the calibrated geometry shows the gain in PSNR.

Writes ``calibration.md``, ``calibration.json`` and ``calibration.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import precisionrecon as pr
from precisionrecon._io import atomic_write_text
from precisionrecon.calibration import fit_geometry
from precisionrecon.geometry import circular_vectors

SRC_ISO, SRC_DET = 250.0, 450.0
# Detector pitch (mm): 1.11 mm at the isocentre, so 1.5 * size pixels see the whole volume.
PITCH = 2.0


def setup(size: int, views: int, det: int, offset_px: float, angle_deg: float):
    vol = pr.Volume((size, size))
    th = pr.angles(views, arc=2 * math.pi)
    true_geom = pr.FanBeam2D(angles=(th + math.radians(angle_deg)).tolist(), det_count=det, det_spacing=PITCH,
                             src_iso=SRC_ISO, src_det=SRC_DET, det_offset=offset_px * PITCH)
    phantom = pr.data.with_power(pr.data.shepp_logan_2d(vol), 2)
    y = pr.data.analytic_projection(phantom, true_geom, oversample=2)
    x = pr.data.rasterize(phantom, vol, oversample=2)
    return vol, th, x, y


def calibrate(size: int = 128, views: int = 180, det: int = 192, offset_px: float = 3.7, angle_deg: float = 0.8,
              i0: float | None = None, seed: int = 0, mu_scale: float = 0.02) -> dict:
    """Recover (offset, angle); returns estimates, errors and FBP PSNRs."""
    vol, th, x, y = setup(size, views, det, offset_px, angle_deg)
    if i0 is not None:
        y = pr.data.poisson_noise(y, i0, seed=seed, mu_scale=mu_scale)
    projector = pr.ParametricXRayTransform(vol, det_shape=det, beam="cone")

    def vectors_of(offset: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        return circular_vectors(th + angle * (math.pi / 180), SRC_ISO, SRC_DET, PITCH, offset * PITCH)

    t0 = time.perf_counter()
    fit = fit_geometry(projector, vectors_of, x, y, {"offset": 0.0, "angle": 0.0}, n_iter=20)
    seconds = time.perf_counter() - t0
    est = {k: float(v) for k, v in fit.params.items()}
    data_range = float(x.max() - x.min())
    psnr = {}
    for name, (off, ang) in {"nominal": (0.0, 0.0), "calibrated": (est["offset"], est["angle"])}.items():
        shifted = pr.FanBeam2D(angles=(th + math.radians(ang)).tolist(), det_count=det, det_spacing=PITCH,
                               src_iso=SRC_ISO, src_det=SRC_DET, det_offset=off * PITCH)
        fbp = pr.FBP(pr.XRayTransform(vol, shifted))
        recon = fbp(y.to(torch.float64))
        psnr[name] = float(pr.metrics.psnr(recon, x, data_range=data_range))
    return {
        "size": size, "views": views, "det": det, "i0": i0, "seed": seed,
        "offset_px": est["offset"], "angle_deg": est["angle"],
        "offset_error_px": abs(est["offset"] - offset_px), "angle_error_deg": abs(est["angle"] - angle_deg),
        "psnr_nominal_db": psnr["nominal"], "psnr_calibrated_db": psnr["calibrated"],
        "iterations": len(fit.losses), "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=5, help="Poisson noise realisations")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "benchmarks" / "results")
    args = parser.parse_args(argv)
    det = int(args.size * 1.5)
    rows = [calibrate(args.size, 360, det)]
    print(rows[-1], flush=True)
    for seed in range(args.seeds):
        rows.append(calibrate(args.size, 360, det, i0=1e4, seed=seed))
        print(rows[-1], flush=True)
    noisy = rows[1:]
    off_err = [r["offset_error_px"] for r in noisy]
    ang_err = [r["angle_error_deg"] for r in noisy]
    lines = [
        "# Geometry calibration through the differentiable projector",
        "",
        f"Fan beam (flat detector), {args.size}² smooth modified Shepp-Logan, 360 views over 2π, {det} detectors; "
        "true detector offset 3.7 px, angular offset 0.8°; exact analytic data (2x sub-rays), model image rasterised. "
        "L-BFGS on the data fidelity, gradients from `pr.ParametricXRayTransform`. `examples/calibration.py` wrote "
        "this file.",
        "",
        "| data | offset (px) | error (px) | angle (°) | error (°) | FBP PSNR nominal | FBP PSNR calibrated | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = "noiseless" if r["i0"] is None else f"Poisson I0=1e4, seed {r['seed']}"
        lines.append(f"| {label} | {r['offset_px']:.4f} | {r['offset_error_px']:.4f} | {r['angle_deg']:.4f} | "
                     f"{r['angle_error_deg']:.4f} | {r['psnr_nominal_db']:.2f} | {r['psnr_calibrated_db']:.2f} | "
                     f"{r['seconds']:.1f} |")
    lines += ["", f"Poisson I0=1e4 over {len(noisy)} seeds: max offset error {max(off_err):.4f} px, max angle error "
              f"{max(ang_err):.4f}°."]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("calibration.md", "\n".join(lines) + "\n"), ("calibration.json", json.dumps(rows, indent=2))):
        atomic_write_text(args.out / name, text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
