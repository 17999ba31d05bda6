"""Helical CT benchmark: accuracy of helical FBP (pitches, flying focal spot modes) against a
circular FDK of the same volume and CGLS, a DICOM-CT-PD round trip, and speed against diffct.

What is measured
----------------
Accuracy. A 3-D anatomy-like phantom (``pr.data.anatomy_phantom(kind="body", units="mu")``,
attenuation in 1/mm) on ``n x n x nz`` voxels, scanned by a clinical-like helix (source to
isocentre 595 mm, to detector 1085.6 mm, cylindrical detector) at pitch 0.5, 1.0 and 1.5, each
without a flying focal spot and with FFSXY / FFSZ / FFSXYZ (the focal spot alternates by a
quarter of a column pitch (in angle) / of a row pitch (in z) at the isocentre each way, so the
two focal positions interleave by half a pitch). Projections are simulated without inverse
crime: the phantom rendered and projected on a grid and detector twice as fine, binned back
(:func:`pr.data.fine_projection`). Reconstructions: :class:`pr.HelicalFBP` (Ram-Lak), the
circular FDK (:class:`pr.FBP`) of the same volume from a full circular scan with a detector tall
enough to cover it (the reference of what the same detector columns give without table feed),
and CGLS on the helical data (pitch 1, no FFS). Metrics: relative L2 error and PSNR (data
range: the phantom's maximum) over the whole volume, which lies inside the helix's valid range.

DICOM-CT-PD. The pitch-1 FFSXY scan is written with :func:`pr.data.write_dicom_ct_pd`,
reconstructed by the command line (``precisionrecon reconstruct FOLDER --out OUT``, DICOM series
in HU) and compared with the direct reconstruction.

Speed. 256 x 256 x 64 voxels, one rotation at pitch 1, 1152 views of 64 rows x 736 columns
(flat detector, so that diffct, whose curved detectors need a surface callback, does the same
work): our forward projection, its adjoint and ``HelicalFBP`` on all views; ours and diffct
2.5's PyTorch CPU back end (``Projector(..., backend="torch")``) on the same ``--peer-views``
views (default 1: diffct's CPU back end takes minutes per view at this size), interleaved after
one warm-up, median of ``--repeats`` runs. float32, ``torch.get_num_threads()`` threads.

Usage::

    python benchmarks/helical.py                       # full run (tens of minutes on 2 cores)
    python benchmarks/helical.py --quick --out /tmp/h  # smoke run

Outputs: ``<out>/helical.json``, ``<out>/helical.md``, ``<out>/helical.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from projectors import busy_warning, rel_l2, time_interleaved, write_atomic

import precisionrecon as pr
from precisionrecon._io import atomic_write_bytes
from precisionrecon.bench import format_ms, load_average, machine_info
from precisionrecon.cli import main as cli_main

R, D = 595.0, 1085.6  # clinical source-to-isocentre and source-to-detector distances (mm)
PITCHES = (0.5, 1.0, 1.5)
FFS = {"FFSNONE": (0, 0), "FFSXY": (1, 0), "FFSZ": (0, 1), "FFSXYZ": (1, 1)}
FULL = {"n": 96, "pixel": 2.5, "nz": 16, "dz": 1.5, "rows": 16, "dv": 1.8, "cols": 256, "du": 2.0, "vpr": 240,
        "cgls_iters": 12}
QUICK = {"n": 32, "pixel": 7.5, "nz": 6, "dz": 4.0, "rows": 8, "dv": 3.6, "cols": 64, "du": 8.0, "vpr": 60,
         "cgls_iters": 3}
SPEED = {"n": 256, "nz": 64, "pixel": 1.0, "dz": 0.6, "rows": 64, "cols": 736, "du": 1.2858, "dv": 1.0947,
         "vpr": 1152}
QUICK_SPEED = {"n": 32, "nz": 8, "pixel": 8.0, "dz": 4.8, "rows": 8, "cols": 92, "du": 10.3, "dv": 8.76, "vpr": 144}


def helix(cfg: dict[str, Any], pitch: float, mode: str, detector: str = "cylindrical") -> pr.HelicalConeBeam:
    """A helix whose valid z range covers the volume; FFS offsets of a quarter pitch at the isocentre."""
    rows, dv, du, vpr = cfg["rows"], cfg["dv"], cfg["du"], cfg["vpr"]
    h = pitch * rows * dv * R / D
    radius = 0.5 * cfg["n"] * cfg["pixel"]
    margin = 0.5 * rows * dv * (R + radius) / D + 0.5 * h
    half = 0.5 * cfg["nz"] * cfg["dz"]
    n = math.ceil((2 * half + 2 * margin) / h * vpr) + 4
    n += n % 4
    fa, fz = FFS[mode]
    ffs_angle = np.tile([1.0, -1.0], n // 2) * 0.25 * du / (D - R) * fa  # ray shift du R / D / 4 at the isocentre
    ffs_z = np.repeat(np.tile([1.0, -1.0], n // 4 + 1), 2)[:n] * 0.25 * dv * R / (D - R) * fz
    return pr.HelicalConeBeam(n_views=n, views_per_rotation=vpr, det_shape=(rows, cfg["cols"]), det_spacing=(dv, du),
                              src_iso=R, src_det=D, pitch=pitch, z_start=-half - margin - 0.5 * h, detector=detector,
                              ffs_angle=ffs_angle, ffs_z=ffs_z)


def psnr(rec: torch.Tensor, ref: torch.Tensor) -> float:
    mse = float((rec.double() - ref.double()).square().mean())
    return 10 * math.log10(float(ref.max()) ** 2 / mse)


def scores(rec: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    return {"rel_l2": rel_l2(rec.numpy(), ref.numpy()), "psnr_db": psnr(rec, ref)}


def accuracy(cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, Any]]:
    vol = pr.Volume((cfg["nz"], cfg["n"], cfg["n"]), (cfg["dz"], cfg["pixel"], cfg["pixel"]))
    phantom = pr.data.anatomy_phantom(vol, seed=1, kind="body", units="mu", dtype=torch.float64)

    def render(v: pr.Volume) -> torch.Tensor:
        return pr.data.anatomy_phantom(v, seed=1, kind="body", units="mu", dtype=torch.float64)

    rows: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {"phantom": phantom.numpy()}
    extra: dict[str, Any] = {}
    for pitch in PITCHES:
        for mode in FFS:
            g = helix(cfg, pitch, mode)
            lo, hi = g.z_range(0.5 * cfg["n"] * cfg["pixel"] * math.sqrt(2))
            A = pr.XRayTransform(vol, g)
            t0 = time.perf_counter()
            y = pr.data.fine_projection(render, A, factor=2)
            t_sim = time.perf_counter() - t0
            t0 = time.perf_counter()
            rec = pr.HelicalFBP(A)(y)
            t_fbp = time.perf_counter() - t0
            row = {"method": "helical FBP", "pitch": pitch, "ffs": mode, "views": g.n_views,
                   "volume_inside_valid_z": bool(lo <= -0.5 * cfg["nz"] * cfg["dz"] and hi >= 0.5 * cfg["nz"]
                                                 * cfg["dz"]),
                   **scores(rec, phantom), "time_s": t_fbp, "simulation_s": t_sim}
            rows.append(row)
            print(f"  pitch {pitch} {mode:7s} {g.n_views} views: rel L2 {row['rel_l2']:.4f}, "
                  f"PSNR {row['psnr_db']:.2f} dB ({t_fbp:.1f} s)", flush=True)
            if mode == "FFSNONE":
                images[f"helical FBP, pitch {pitch}"] = rec.numpy()
            if pitch == 1.0 and mode == "FFSXY":
                extra["dicom"] = dicom_round_trip(g, y, rec, vol)
            if pitch == 1.0 and mode == "FFSNONE":
                t0 = time.perf_counter()
                x = pr.algorithms.cgls(A, y, cfg["cgls_iters"]).x
                rows.append({"method": f"CGLS ({cfg['cgls_iters']} it.)", "pitch": pitch, "ffs": mode,
                             "views": g.n_views, **scores(x, phantom), "time_s": time.perf_counter() - t0})
                images["CGLS, pitch 1.0"] = x.numpy()
                print(f"  CGLS: rel L2 {rows[-1]['rel_l2']:.4f}, PSNR {rows[-1]['psnr_db']:.2f} dB", flush=True)
    # circular FDK of the same volume: a full turn, a detector tall enough for the whole volume
    half = 0.5 * cfg["nz"] * cfg["dz"]
    radius = 0.5 * cfg["n"] * cfg["pixel"] * math.sqrt(2)
    rows_c = 2 * math.ceil(half * D / (R - radius) / cfg["dv"]) + 2
    c = pr.ConeBeam3D(angles=pr.angles(cfg["vpr"], 2 * math.pi), det_shape=(rows_c, cfg["cols"]),
                      det_spacing=(cfg["dv"], cfg["du"]), src_iso=R, src_det=D, detector="cylindrical")
    Ac = pr.XRayTransform(vol, c)
    yc = pr.data.fine_projection(render, Ac, factor=2)
    t0 = time.perf_counter()
    rc = pr.FBP(Ac)(yc)
    rows.append({"method": "circular FDK", "pitch": 0.0, "ffs": "FFSNONE", "views": cfg["vpr"], **scores(rc, phantom),
                 "time_s": time.perf_counter() - t0})
    images["circular FDK"] = rc.numpy()
    print(f"  circular FDK: rel L2 {rows[-1]['rel_l2']:.4f}, PSNR {rows[-1]['psnr_db']:.2f} dB", flush=True)
    return rows, images, extra


def dicom_round_trip(g: pr.HelicalConeBeam, y: torch.Tensor, rec: torch.Tensor, vol: pr.Volume) -> dict[str, Any]:
    """Write the scan as DICOM-CT-PD, reconstruct it with the command line, compare in HU."""
    mu_water = 0.0192
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pr.data.write_dicom_ct_pd(Path(tmp) / "proj", y, g, water_attenuation=mu_water)
        t_write = time.perf_counter() - t0
        (nz, n, _), (dz, px, _) = vol.shape, vol.spacing
        z_lo = vol.center[0] - 0.5 * (nz - 1) * dz
        args = ["reconstruct", str(Path(tmp) / "proj"), "--out", str(Path(tmp) / "img"), "--size", str(n),
                "--fov", str(n * px), "--slice", str(dz), "--z-range", str(z_lo), str(z_lo + (nz - 1) * dz),
                "--no-progress"]
        t0 = time.perf_counter()
        status = cli_main(args)
        t_cli = time.perf_counter() - t0
        hu = pr.data.read_dicom_ct(Path(tmp) / "img", hounsfield=True).image.double()
    direct = (1000 * (rec - mu_water) / mu_water).clamp(-1024, 30000)
    return {"cli_status": status, "files": g.n_views, "write_s": t_write, "cli_s": t_cli,
            "max_abs_hu_difference_cli_vs_direct": float((hu - direct).abs().max()),
            "note": "the CLI reads the uint16 projections back (one rescale step) and stores HU as integers"}


def speed(cfg: dict[str, Any], peer_views: int, repeats: int) -> dict[str, Any]:
    vol = pr.Volume((cfg["nz"], cfg["n"], cfg["n"]), (cfg["dz"], cfg["pixel"], cfg["pixel"]))
    g = pr.HelicalConeBeam(n_views=cfg["vpr"], views_per_rotation=cfg["vpr"], det_shape=(cfg["rows"], cfg["cols"]),
                           det_spacing=(cfg["dv"], cfg["du"]), src_iso=R, src_det=D, pitch=1.0,
                           z_start=-0.5 * 1.0 * cfg["rows"] * cfg["dv"] * R / D, detector="flat")
    x = pr.data.anatomy_phantom(vol, seed=2, kind="body", units="mu", oversample=1).float()
    A = pr.XRayTransform(vol, g)
    out: dict[str, Any] = {"volume": list(vol.shape), "views": g.n_views, "detector": [cfg["rows"], cfg["cols"]],
                           "threads": torch.get_num_threads()}
    with torch.inference_mode():
        t0 = time.perf_counter()
        y = A(x)
        out["ours_forward_all_views_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        A.T(y)
        out["ours_adjoint_all_views_s"] = time.perf_counter() - t0
        fbp = pr.HelicalFBP(A)
        t0 = time.perf_counter()
        fbp(y)
        out["ours_helical_fbp_all_views_s"] = time.perf_counter() - t0
    print(f"  ours, all {g.n_views} views: forward {out['ours_forward_all_views_s']:.1f} s, adjoint "
          f"{out['ours_adjoint_all_views_s']:.1f} s, helical FBP {out['ours_helical_fbp_all_views_s']:.1f} s",
          flush=True)
    try:
        import diffct
    except ImportError as exc:
        out["diffct"] = f"not available: {exc}"
        return out
    sub = g[:: max(1, g.n_views // peer_views)][:peer_views]
    As = pr.XRayTransform(vol, sub)
    v = sub.to_vectors().float()
    traj = (v[:, 0:3].contiguous(), v[:, 3:6].contiguous(), (v[:, 6:9] / v[:, 6:9].norm(dim=1, keepdim=True)),
            (v[:, 9:12] / v[:, 9:12].norm(dim=1, keepdim=True)))
    P = diffct.Projector(traj, vol.shape, (cfg["cols"], cfg["rows"]), beam="cone",
                         detector_spacing=(cfg["du"], cfg["dv"]), voxel_spacing=(cfg["dz"], cfg["pixel"],
                                                                                 cfg["pixel"]),
                         backend="torch")
    ys = As(x)
    yd = P(x).transpose(-1, -2)
    with torch.inference_mode():
        timing = time_interleaved({
            "ours forward": lambda: As(x),
            "diffct forward": lambda: P(x),
            "ours adjoint": lambda: As.T(ys),
            "diffct backproject": lambda: P.backproject(yd.transpose(-1, -2).contiguous()),
        }, repeats)
    out["peer_views"] = sub.n_views
    out["diffct_version"] = getattr(diffct, "__version__", "?")
    out["timing_ms"] = {k: v["median_ms"] for k, v in timing.items()}
    out["ratio_forward"] = timing["diffct forward"]["median_ms"] / timing["ours forward"]["median_ms"]
    out["ratio_adjoint"] = timing["diffct backproject"]["median_ms"] / timing["ours adjoint"]["median_ms"]
    out["rel_l2_ours_vs_diffct_projection"] = rel_l2(yd.numpy(), ys.numpy())
    print(f"  {sub.n_views} views: ours forward {format_ms(out['timing_ms']['ours forward'])} ms, diffct "
          f"{format_ms(out['timing_ms']['diffct forward'])} ms ({out['ratio_forward']:.1f}x); adjoint "
          f"{format_ms(out['timing_ms']['ours adjoint'])} ms vs {format_ms(out['timing_ms']['diffct backproject'])} "
          f"ms ({out['ratio_adjoint']:.1f}x); projections differ by {out['rel_l2_ours_vs_diffct_projection']:.3f}",
          flush=True)
    return out


def figure(images: dict[str, np.ndarray], rows: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(images)
    fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 5.4))
    ref = images["phantom"]
    vmax = float(np.percentile(ref, 99.5))
    for j, name in enumerate(names):
        img = images[name]
        axes[0, j].imshow(img[img.shape[0] // 2], cmap="gray", vmin=0, vmax=vmax)
        axes[1, j].imshow(img[:, :, img.shape[2] // 2], cmap="gray", vmin=0, vmax=vmax, aspect="auto")
        score = "" if name == "phantom" else f"\nrel L2 {rel_l2(img, ref):.3f}"
        axes[0, j].set_title(name + score, fontsize=8)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.suptitle("Helical CT (anatomy phantom): axial middle slice (top), sagittal reformat (bottom)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], extra: dict[str, Any], spd: dict[str, Any],
             notes: list[str]) -> str:
    m = meta["machine"]
    out = [
        "# Helical CT benchmark", "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpus_usable']} usable cores · torch {m['torch']} "
        f"({torch.get_num_threads()} threads) · load average at start {m['loadavg_at_start']}, at end "
        f"{m['loadavg_at_end']}", "",
        f"## Accuracy ({meta['accuracy_config']['n']}² x {meta['accuracy_config']['nz']} voxels, anatomy phantom, "
        "mu in 1/mm)", "",
        "| method | pitch | flying focal spot | views | rel. L2 | PSNR (dB) | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pitch = "circular" if r["pitch"] == 0.0 else f"{r['pitch']:.1f}"
        out.append(f"| {r['method']} | {pitch} | {r['ffs']} | {r['views']} | {r['rel_l2']:.4f} | {r['psnr_db']:.2f} "
                   f"| {r['time_s']:.1f} |")
    if "dicom" in extra:
        d = extra["dicom"]
        out += ["", "## DICOM-CT-PD end to end (pitch 1, FFSXY)", "",
                f"{d['files']} projection files written in {d['write_s']:.1f} s; `precisionrecon reconstruct` "
                f"exit status {d['cli_status']} in {d['cli_s']:.1f} s; largest difference of the DICOM series from "
                f"the direct reconstruction: {d['max_abs_hu_difference_cli_vs_direct']:.2f} HU ({d['note']})."]
    out += ["", f"## Speed ({spd['volume'][2]}² x {spd['volume'][0]} voxels, {spd['views']} views of "
            f"{spd['detector'][0]} x {spd['detector'][1]}, float32, {spd['threads']} threads)", "",
            f"Ours on all views: forward {spd['ours_forward_all_views_s']:.1f} s, adjoint "
            f"{spd['ours_adjoint_all_views_s']:.1f} s, helical FBP {spd['ours_helical_fbp_all_views_s']:.1f} s.", ""]
    if "timing_ms" in spd:
        t = spd["timing_ms"]
        out += [f"Same {spd['peer_views']} views, interleaved, median of {meta['repeats']} runs:", "",
                "| operation | ours (ms) | diffct (ms) | diffct / ours |", "|---|---|---|---|",
                f"| forward projection | {format_ms(t['ours forward'])} | {format_ms(t['diffct forward'])} | "
                f"{spd['ratio_forward']:.1f} |",
                f"| back-projection | {format_ms(t['ours adjoint'])} | {format_ms(t['diffct backproject'])} | "
                f"{spd['ratio_adjoint']:.1f} |", "",
                f"Projections of ours (Joseph) and diffct (Siddon, cell-constant voxels) differ by relative L2 "
                f"{spd['rel_l2_ours_vs_diffct_projection']:.3f}."]
    else:
        out.append(f"diffct: {spd.get('diffct')}")
    out += ["", "## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each method against diffct (median)")
    p.add_argument("--peer-views", type=int, default=1,
                   help="views timed against diffct (its CPU back end takes minutes per view at full size)")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args(argv)
    out: Path = args.out or (Path("benchmarks") / "results" / ("quick" if args.quick else ""))
    cfg, speed_cfg = (QUICK, QUICK_SPEED) if args.quick else (FULL, SPEED)
    meta: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "quick": args.quick,
                            "accuracy_config": cfg, "speed_config": speed_cfg, "repeats": args.repeats,
                            "machine": machine_info(("diffct",)),
                            "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)])}
    m = meta["machine"]
    busy = busy_warning(m["loadavg_at_start"], m["cpus_usable"] or m["cpu_count"])
    print(f"helical benchmark: {cfg['n']}² x {cfg['nz']}, torch {m['torch']}, {torch.get_num_threads()} threads",
          flush=True)
    if busy:
        print(f"  WARNING: {busy}", flush=True)
    rows, images, extra = accuracy(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "helical.json", json.dumps({"metadata": meta, "accuracy": rows,
                                                   "dicom_ct_pd": extra.get("dicom")}, indent=2, default=str) + "\n")
    atomic_write_bytes(out / "helical.png", figure(images, rows))
    spd = {"skipped": True} if args.skip_speed else speed(speed_cfg, args.peer_views, args.repeats)
    m["loadavg_at_end"] = load_average()
    notes = [
        "Helical FBP: helical FDK with WFBP-style row weights (Q = 0.5) normalised over all measurements of a "
        "line at its chord midpoint, no rebinning (see precisionrecon/operators/helical.py); Ram-Lak filter.",
        "Data: the phantom rendered on a 2x finer grid and projected with a 2x finer detector, binned back "
        "(no inverse crime); no noise.",
        "Circular FDK: the same detector columns, a full turn of the same views per rotation, rows enough to "
        "cover the volume: what the detector gives without table feed.",
        "diffct runs its PyTorch CPU fallback (it is a Numba-CUDA library); on a GPU both would be much faster.",
        "Timings on a shared 2-core machine with other jobs running: ratios of interleaved runs are more "
        "reliable than absolute times, but both are noisy.",
        *([f"**{busy}**"] if busy else []),
    ]
    payload = {"metadata": meta, "accuracy": rows, "dicom_ct_pd": extra.get("dicom"), "speed": spd, "notes": notes}
    write_atomic(out / "helical.json", json.dumps(payload, indent=2, default=str) + "\n")
    written = [out / "helical.json", out / "helical.png"]
    if "views" in spd:  # the markdown report needs the speed part
        write_atomic(out / "helical.md", markdown(meta, rows, extra, spd, notes))
        written.append(out / "helical.md")
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
