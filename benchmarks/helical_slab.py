"""Helical reconstruction speed: the voxel-driven back-projector with and without skipping the
image rows a view's cone cannot reach.

What is measured
----------------
``HelicalFBP = B @ H @ P`` spends nearly all its time in the voxel-driven back-projector ``B``
(:class:`pr.VoxelBackprojection`). On the CPU, ``B`` and its transpose now test every image row
(and every segment of 32 voxels of it) against each view's detector rows
(``row_segment_reaches`` in ``cuda_ext/xray_math.h``, a conservative bound) and skip what the
view cannot reach; flag bit 2 of the kernel turns the test off, which is the back-projector as it
was before (every view into every voxel). Both variants run here on the same data, interleaved
(one warm-up, median of ``--repeats`` runs), and their outputs are compared bit for bit.

Cases: the geometry of the issue's speed case (source to isocentre 595 mm, to detector 1085.6 mm,
64 x 736 detector of 1.0947 x 1.2858 mm, 1152 views per turn, pitch 1, a 256 mm field of view)
scaled down by ``--scale`` per axis (integer division; default 3: 85² x 21 voxels, 21 x 245
detector, 384 views per turn), over 1, 3 and 6.5 turns (the volume stretched in z over the scanned length, so the voxel
count stays fixed and the work of the old back-projector grows with the views), flat detector
(the issue's case) and cylindrical with FFSXY (clinical). float32, ``torch.get_num_threads()``
threads. ``HelicalFBP`` is timed once per case as well (after: with skipping).

Usage::

    python benchmarks/helical_slab.py                 # default cases (minutes on 2 cores)
    python benchmarks/helical_slab.py --quick --out /tmp/h

Outputs: ``<out>/helical_slab.json``, ``<out>/helical_slab.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from projectors import busy_warning, time_interleaved, write_atomic

import precisionrecon as pr
from precisionrecon._kernels import ops
from precisionrecon.bench import format_ms, load_average, machine_info

R, D = 595.0, 1085.6
FULL = {"n": 256, "pixel": 1.0, "nz_per_turn": 64, "rows": 64, "dv": 1.0947, "cols": 736, "du": 1.2858, "vpr": 1152}
CASES = [(1.0, "flat", False), (3.0, "flat", False), (6.5, "flat", False), (3.0, "cylindrical", True)]


def scaled(scale: int) -> dict[str, Any]:
    c = dict(FULL)
    for key in ("n", "nz_per_turn", "rows", "cols", "vpr"):
        c[key] = FULL[key] // scale
    for key in ("pixel", "dv", "du"):
        c[key] = FULL[key] * scale
    return c


def setup(cfg: dict[str, Any], turns: float, detector: str, ffs: bool) -> tuple[pr.Volume, pr.HelicalConeBeam]:
    """A helix of ``turns`` turns at pitch 1 and the volume it scans (z stretched over the feed)."""
    feed = cfg["rows"] * cfg["dv"] * R / D  # pitch 1
    n_views = round(turns * cfg["vpr"])
    n_views += n_views % 2
    nz = cfg["nz_per_turn"]
    vol = pr.Volume((nz, cfg["n"], cfg["n"]), (turns * feed / nz, cfg["pixel"], cfg["pixel"]))
    ffs_angle = np.tile([1.0, -1.0], n_views // 2) * 0.25 * cfg["du"] / (D - R) if ffs else 0.0
    g = pr.HelicalConeBeam(n_views=n_views, views_per_rotation=cfg["vpr"], det_shape=(cfg["rows"], cfg["cols"]),
                           det_spacing=(cfg["dv"], cfg["du"]), src_iso=R, src_det=D, pitch=1.0,
                           z_start=-0.5 * turns * feed, detector=detector, ffs_angle=ffs_angle)
    return vol, g


def run_case(cfg: dict[str, Any], turns: float, detector: str, ffs: bool, repeats: int) -> dict[str, Any]:
    vol, g = setup(cfg, turns, detector, ffs)
    A = pr.XRayTransform(vol, g)
    B = pr.VoxelBackprojection(vol, g, distance_weight=True)
    *args, flags = B._args
    vec = B._vectors
    gen = torch.Generator().manual_seed(0)
    q = torch.rand(g.proj_shape, generator=gen, dtype=torch.float32)
    x = torch.rand(vol.shape, generator=gen, dtype=torch.float32)
    fns = {
        "B skip": lambda: ops.vbp_backproject(q, vec, *args, flags),
        "B all": lambda: ops.vbp_backproject(q, vec, *args, flags | 4),
        "B.T skip": lambda: ops.vbp_project(x, vec, *args, flags),
        "B.T all": lambda: ops.vbp_project(x, vec, *args, flags | 4),
    }
    with torch.inference_mode():
        same_b = torch.equal(fns["B skip"](), fns["B all"]())
        same_t = torch.equal(fns["B.T skip"](), fns["B.T all"]())
        timing = time_interleaved(fns, repeats)
        fbp = pr.HelicalFBP(A)
        t0 = time.perf_counter()
        fbp(q)
        fbp_s = time.perf_counter() - t0
    ms = {k: v["median_ms"] for k, v in timing.items()}
    out = {
        "turns": turns, "detector": detector, "ffs": "FFSXY" if ffs else "FFSNONE", "volume": list(vol.shape),
        "voxel_mm": list(vol.spacing), "views": g.n_views, "det_shape": list(g.det_shape),
        "vector_width": g.vector_width, "timing_ms": ms, "samples_ms": {k: v["samples_ms"] for k, v in timing.items()},
        "speedup_backprojection": ms["B all"] / ms["B skip"], "speedup_transpose": ms["B.T all"] / ms["B.T skip"],
        "bitwise_equal": bool(same_b and same_t), "helical_fbp_s": fbp_s,
    }
    print(f"  {turns:g} turns, {detector}{' FFSXY' if ffs else ''}, {g.n_views} views: B {format_ms(ms['B all'])} -> "
          f"{format_ms(ms['B skip'])} ms ({out['speedup_backprojection']:.2f}x), B.T {format_ms(ms['B.T all'])} -> "
          f"{format_ms(ms['B.T skip'])} ms ({out['speedup_transpose']:.2f}x), bitwise equal: {out['bitwise_equal']}, "
          f"HelicalFBP {fbp_s:.1f} s", flush=True)
    return out


def markdown(meta: dict[str, Any], cfg: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    m = meta["machine"]
    parts = [
        "# Helical reconstruction: back-projection restricted to the rows each view reaches",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpus_usable']} usable cores · torch {m['torch']} "
        f"({m['torch_num_threads']} threads) · load average at start {m['loadavg_at_start']}, at end "
        f"{meta['loadavg_at_end']}",
        "",
        f"Geometry of the issue's speed case scaled by 1/{meta['scale']} per axis: {cfg['n']}² x "
        f"{cfg['nz_per_turn']} voxels over the scanned length, {cfg['rows']} x {cfg['cols']} detector, "
        f"{cfg['vpr']} views per turn, pitch 1, float32. `B`: `VoxelBackprojection` (distance-weighted, "
        "HelicalFBP's back-projector); \"all\": every view into every voxel (as before, flag bit 2), "
        f"\"skip\": rows and 32-voxel segments a view cannot reach skipped. Interleaved, median of "
        f"{meta['repeats']} runs after a warm-up.",
        "",
        "| turns | detector | views | B all (s) | B skip (s) | speed-up | B.T all (s) | B.T skip (s) | speed-up "
        "| bitwise equal | HelicalFBP (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["timing_ms"]
        det = r["detector"] + (f" {r['ffs']}" if r["ffs"] != "FFSNONE" else "")
        parts.append(
            f"| {r['turns']:g} | {det} | {r['views']} | {t['B all'] / 1e3:.2f} | {t['B skip'] / 1e3:.2f} | "
            f"{r['speedup_backprojection']:.2f}x | {t['B.T all'] / 1e3:.2f} | {t['B.T skip'] / 1e3:.2f} | "
            f"{r['speedup_transpose']:.2f}x | {'yes' if r['bitwise_equal'] else 'NO'} | {r['helical_fbp_s']:.1f} |"
        )
    parts += [
        "",
        "## Notes",
        "",
        "- The test is conservative (it skips a row segment only when no voxel of it can project between the "
        "detector's first and last row, with a margin of 1e-6 pixels), so the skipped voxels would have "
        "received no tap: the results are the same bit for bit (checked above and in "
        "`tests/test_backprojection.py`), and `.T`, learned weights and `ChunkedOperator` are untouched.",
        "- One turn gains least: every view then reaches a large part of the volume (the end views about half "
        "of it). The gain grows with the scan length, towards the ratio of the scanned length to the length "
        "a cone covers.",
        "- CPU only: the CUDA gather kernel already tests each voxel (one thread per voxel) and is unchanged.",
        "- HelicalFBP (s): one call per case, not warmed up nor interleaved (the filter and weights add well under "
        "a second here; differences from `B skip` are the load of the shared machine).",
    ]
    warn = busy_warning(m["loadavg_at_start"], m["cpus_usable"])
    if warn:
        parts.append(f"- **{warn}**")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, default=3, help="divide the issue's case by this per axis (default 3)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke run (scale 8, one repeat)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    args = p.parse_args(argv)
    scale, repeats = (8, 1) if args.quick else (args.scale, args.repeats)
    if scale < 1 or repeats < 1:
        p.error("--scale and --repeats must be positive")
    out = args.out or Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    cfg = scaled(scale)
    meta: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                            "machine": machine_info(), "scale": scale, "repeats": repeats, "config": cfg}
    print(f"helical back-projection speed, scale 1/{scale}", flush=True)
    rows = [run_case(cfg, t, det, ffs, repeats) for t, det, ffs in CASES]
    meta["loadavg_at_end"] = load_average()
    write_atomic(out / "helical_slab.json", json.dumps({"meta": meta, "cases": rows}, indent=1) + "\n")
    write_atomic(out / "helical_slab.md", markdown(meta, cfg, rows))
    print(f"wrote {out / 'helical_slab.md'}")
    return 0 if all(r["bitwise_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
