"""3-D cone beam on the CPU (issue 17, item 3): our Joseph projector against diffct and torchtomo.

Cases (float32, one volume, circular trajectory over 2 pi, flat detector of 1.2 mm pixels,
source-to-isocentre 2N mm, source-to-detector 3.5N mm, 1 mm voxels; the cases of
``benchmarks/gpu.py``):

- 128³ from 180 views of 192 x 192 pixels;
- 256³ from 360 views of 384 x 384 pixels.

Timed: our forward projection ``A(x)`` and back-projection ``A.T(y)``, and the same calls of
the peers' CPU paths: diffct 2.5 (``diffct.Projector(..., backend="torch")``, Siddon) and
torchtomo 0.5 (``torchtomo.ConeBeam(..., backend="torch")``, pure PyTorch). The peers take
seconds to minutes per view, so they run on ``--peer-views`` views (spread over the circle) and
their times are scaled linearly to all views (both are ray-parallel: time is linear in the
number of rays). Optionally (``--baseline-lib``) a second build of our CPU library (e.g. the
merge base's) is timed in the same run, so that speed-ups are same-run ratios.

Clock: the machine this was written on is shared (training jobs keep both cores busy), so every
call is timed by the process CPU clock (``time.process_time``, which does not count the time
the process waits for a core) and by the wall clock; all calls run on ``--threads`` threads
(default 1) and are interleaved run by run; the tables show medians of the process clock.

Throughput: samples are ``views x rows x cols x N`` (one Joseph sample per ray and slice, an
upper bound on the samples taken; the same count as ``gpu.py``), in G samples/s. The CPU limit
is an estimate (:func:`cpu_limit_gsps`): the double-precision weight arithmetic of one sample
is about 16 lane operations (two coordinates, two floors, four bilinear weights, conversions),
and a core retires at most 4 vector FP operations of 4 doubles per cycle (AVX2, Zen 3: two
multiply and two add pipes), so about 1 sample per cycle and core.

Writes ``<out>/cone3d.json`` and ``<out>/cone3d.md``.

Usage::

    python benchmarks/cone3d.py                          # 128³ and 256³
    python benchmarks/cone3d.py --sizes 128 --repeats 5 --baseline-lib /tmp/base.so
    python benchmarks/cone3d.py --quick --out /tmp/x     # 32³ smoke run
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# this checkout's package and kernels, not an installed copy (e.g. another worktree's)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import precisionrecon as pr
from precisionrecon._io import atomic_write_text
from precisionrecon._kernels import loader, ops
from precisionrecon.bench import format_ms, load_average, machine_info

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
CASES = {32: (24, 48), 128: (180, 192), 256: (360, 384)}  # N: (views, detector rows = cols)
FP_OPS_PER_SAMPLE = 16  # double-precision lane operations of one sample's weights (estimate)
FP_LANES_PER_CYCLE = 16  # 4 FP pipes x 4 doubles (AVX2)


def geometry(n: int, views: int, det: int) -> pr.ConeBeam3D:
    return pr.ConeBeam3D(angles=pr.angles(views, arc=2 * math.pi), det_shape=(det, det), det_spacing=(1.2, 1.2),
                         src_iso=2.0 * n, src_det=3.5 * n)


def cpu_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_limit_gsps(mhz: float | None, threads: int) -> float | None:
    """Estimated peak G samples/s of ``threads`` cores (see the module docstring)."""
    if mhz is None:
        return None
    return mhz * 1e-3 * FP_LANES_PER_CYCLE / FP_OPS_PER_SAMPLE * threads


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(process CPU ms, wall ms) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return (time.process_time() - c0) * 1e3, (time.perf_counter() - w0) * 1e3


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """One warm-up call each, then ``repeats`` rounds calling every function once per round."""
    for fn in fns.values():
        fn()
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c, w = timed(fn)
            cpu[k].append(c)
            wall[k].append(w)
    return {
        k: {"cpu_ms": statistics.median(cpu[k]), "wall_ms": statistics.median(wall[k]), "cpu_samples_ms": cpu[k],
            "wall_samples_ms": wall[k]}
        for k in fns
    }


def load_library(path: Path) -> ctypes.CDLL:
    """A second build of our CPU library (a private copy, so that it does not alias ours)."""
    tmp = Path(tempfile.mkdtemp()) / path.name
    shutil.copy(path, tmp)
    lib = ctypes.CDLL(str(tmp))
    for name in loader.FUNCTIONS:
        getattr(lib, name).argtypes = loader._SIGNATURE
        getattr(lib, name).restype = ctypes.c_int
    for name in loader.VBP_FUNCTIONS:
        getattr(lib, name).argtypes = loader._VBP_SIGNATURE
        getattr(lib, name).restype = ctypes.c_int
    lib.pr_set_cancel.argtypes = [ctypes.c_int]
    lib.pr_set_cancel.restype = None
    return lib


def with_library(lib: ctypes.CDLL | None, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with the kernels of ``lib`` (None: ours)."""
    if lib is None:
        return fn

    def call() -> Any:
        saved = ops.cpu_library
        ops.cpu_library = lambda: (lib, "baseline")
        try:
            return fn()
        finally:
            ops.cpu_library = saved

    return call


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    a64, r64 = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(a64 - r64) / max(np.linalg.norm(r64), 1e-300))


def peer_diffct(geom: pr.ConeBeam3D, vol: pr.Volume) -> tuple[Callable, Callable, Callable] | str:
    """(forward, back, to_ours) of diffct's CPU path on ``geom``, or why not."""
    try:
        import diffct
    except ImportError as exc:
        return f"not importable ({exc})"
    v = geom.to_vectors().float()
    traj = (v[:, 0:3].contiguous(), v[:, 3:6].contiguous(), v[:, 6:9] / v[:, 6:9].norm(dim=1, keepdim=True),
            v[:, 9:12] / v[:, 9:12].norm(dim=1, keepdim=True))
    rows, cols = geom.det_shape
    P = diffct.Projector(traj, vol.shape, (cols, rows), beam="cone", detector_spacing=geom.det_spacing[::-1],
                         voxel_spacing=tuple(vol.spacing), backend="torch")
    return P, P.backproject, lambda y: y.transpose(-1, -2)


def peer_torchtomo(geom: pr.ConeBeam3D, vol: pr.Volume) -> tuple[Callable, Callable, Callable] | str:
    try:
        import torchtomo
    except ImportError as exc:
        return f"not importable ({exc})"
    v = geom.to_vectors().double()
    rows, cols = geom.det_shape
    cu = torch.arange(cols, dtype=torch.float64) - (cols - 1) / 2
    cv = torch.arange(rows, dtype=torch.float64) - (rows - 1) / 2
    det = (v[:, None, None, 3:6] + cu[None, None, :, None] * v[:, None, None, 6:9]
           + cv[None, :, None, None] * v[:, None, None, 9:12])
    op = torchtomo.ConeBeam(tuple(vol.shape), v[:, 0:3].float().contiguous(), det.float().contiguous(),
                            voxel_spacing=tuple(vol.spacing), backend="torch")
    return (lambda x: op(x[:, None]), op.adjoint, lambda y: y[:, 0])  # [B, 1, views, rows, cols]


def run_size(n: int, repeats: int, peer_views: int, baseline: ctypes.CDLL | None, limit: float | None,
             threads: int) -> dict[str, Any]:
    views, det = CASES[n]
    vol = pr.Volume((n, n, n))
    geom = geometry(n, views, det)
    A = pr.XRayTransform(vol, geom)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, *A.domain_shape, generator=g)
    y = A(x)
    samples = float(views * det * det * n)
    fns: dict[str, Callable[[], Any]] = {"ours forward": lambda: A(x), "ours back": lambda: A.T(y)}
    if baseline is not None:
        fns["baseline forward"] = with_library(baseline, lambda: A(x))
        fns["baseline back"] = with_library(baseline, lambda: A.T(y))
    idx = np.linspace(0, views, peer_views, endpoint=False).astype(int)
    sub = geom[torch.as_tensor(idx)] if hasattr(geom, "__getitem__") else None
    As = pr.XRayTransform(vol, sub)
    ys = As(x)
    notes: dict[str, str] = {}
    sanity: dict[str, float] = {}
    for name, make in (("diffct", peer_diffct), ("torchtomo", peer_torchtomo)):
        try:
            peer = make(sub, vol)
        except Exception as exc:  # a peer that fails to set up is reported, not fatal
            peer = f"set-up failed ({type(exc).__name__}: {exc})"
        if isinstance(peer, str):
            notes[name] = peer
            continue
        fwd, back, to_ours = peer
        yp = fwd(x)
        sanity[name] = rel_l2(to_ours(yp).reshape(ys.shape).numpy(), ys.numpy())
        fns[f"{name} forward"] = lambda fwd=fwd: fwd(x)
        fns[f"{name} back"] = lambda back=back, yp=yp: back(yp)
    with torch.inference_mode():
        res = interleaved(fns, repeats)
    scale = views / peer_views
    rows = []
    for who in ("ours", "baseline", "diffct", "torchtomo"):
        if f"{who} forward" not in res:
            continue
        s = 1.0 if who in ("ours", "baseline") else scale
        row = {"method": who, "scaled_from_views": None if s == 1.0 else peer_views}
        for d in ("forward", "back"):
            r = res[f"{who} {d}"]
            row[f"{d}_cpu_ms"] = r["cpu_ms"] * s
            row[f"{d}_wall_ms"] = r["wall_ms"] * s
            row[f"{d}_gsps"] = samples / (r["cpu_ms"] * s * 1e-3) / 1e9
            row[f"{d}_vs_ours"] = r["cpu_ms"] * s / res[f"ours {d}"]["cpu_ms"]
            row[f"{d}_fraction_of_limit"] = None if limit is None else row[f"{d}_gsps"] / limit
        rows.append(row)
    return {"n": n, "views": views, "det": [det, det], "samples": samples, "threads": threads, "rows": rows,
            "raw": res, "peer_views": peer_views, "peer_notes": notes, "sanity_rel_l2_vs_ours": sanity}


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        "# 3-D cone beam on the CPU: precisionrecon vs diffct and torchtomo",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpu_count']} cores · torch {m['torch']} · kernel ISA "
        f"{m['kernel_isa']} · {meta['threads']} thread(s) for every method · diffct {meta['versions']['diffct']} · "
        f"torchtomo {meta['versions']['torchtomo']}",
        "",
        f"Median **process CPU time** (ms) of {meta['repeats']} interleaved runs after a warm-up, float32, one "
        "volume. Peers ran on a subset of views and are scaled linearly to all views (marked). `x ours` = method "
        "time / our time (higher: we are faster). G samples/s counts views x rows x cols x N samples. "
        f"Estimated CPU limit: {meta['limit_gsps']:.2f} G samples/s ({meta['threads']} core(s) at "
        f"{meta['cpu_mhz']:.0f} MHz, see the script's docstring)." if meta["limit_gsps"] else "",
        "",
        "| case | method | forward ms | back ms | fwd G samples/s | back G samples/s | fwd x ours | back x ours "
        "| fwd % of limit | back % of limit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        case = f"{r['n']}³, {r['views']} views of {r['det'][0]}²"
        for row in r["rows"]:
            name = {"ours": "**ours**", "baseline": "ours before (baseline library)"}.get(row["method"],
                                                                                       row["method"])
            if row["scaled_from_views"]:
                name += f" (from {row['scaled_from_views']} view(s))"

            def pct(v: float | None) -> str:
                return "—" if v is None else f"{100 * v:.1f}%"

            lines.append(
                f"| {case} | {name} | {format_ms(row['forward_cpu_ms'])} | {format_ms(row['back_cpu_ms'])} "
                f"| {row['forward_gsps']:.3f} | {row['back_gsps']:.3f} | {row['forward_vs_ours']:.2f}x "
                f"| {row['back_vs_ours']:.2f}x | {pct(row['forward_fraction_of_limit'])} "
                f"| {pct(row['back_fraction_of_limit'])} |"
            )
    lines += ["", "## Notes", ""]
    for r in results:
        for name, note in r["peer_notes"].items():
            lines.append(f"- {r['n']}³: {name} skipped: {note}")
        for name, d in r["sanity_rel_l2_vs_ours"].items():
            lines.append(f"- {r['n']}³: {name}'s projections vs ours on the same views, relative L2 difference "
                         f"{d:.3f} (different discretisations and conventions; timing only).")
        wall = ", ".join(f"{row['method']} {format_ms(row['forward_wall_ms'])} / {format_ms(row['back_wall_ms'])}"
                         for row in r["rows"])
        lines.append(f"- {r['n']}³ wall-clock medians (forward / back ms): {wall}.")
    lines += [
        f"- Load average (1, 5, 15 min) at start {m['loadavg_at_start']}, at end {meta['loadavg_at_end']}.",
        f"- Baseline library: {meta['baseline_lib'] or 'not timed'}.",
        f"- Command: `{meta['command']}`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="128,256", help="comma-separated N of 128, 256 (default both)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (default 3)")
    p.add_argument("--threads", type=int, default=1, help="threads of every method (default 1)")
    p.add_argument("--peer-views", type=int, default=1, help="views the peers run on (default 1)")
    p.add_argument("--baseline-lib", type=Path, default=None, help="a second build of our CPU library to time")
    p.add_argument("--quick", action="store_true", help="32³ smoke run")
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    sizes = [32] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in CASES]
    if bad or args.repeats < 1 or args.threads < 1 or args.peer_views < 1:
        p.error(f"sizes must be among {sorted(CASES)}, repeats, threads and peer views >= 1")
    if args.baseline_lib is not None and not args.baseline_lib.is_file():
        p.error(f"--baseline-lib {args.baseline_lib} is not a file")
    out = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    torch.set_num_threads(args.threads)
    baseline = load_library(args.baseline_lib) if args.baseline_lib is not None else None
    mhz = cpu_mhz()
    limit = cpu_limit_gsps(mhz, args.threads)
    versions = {}
    for name in ("diffct", "torchtomo"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:
            versions[name] = None
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "threads": args.threads,
        "repeats": args.repeats,
        "cpu_mhz": mhz,
        "limit_gsps": limit,
        "versions": versions,
        "baseline_lib": str(args.baseline_lib) if args.baseline_lib else None,
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
    }
    results = []
    for n in sizes:
        print(f"cone {n}³ ...", flush=True)
        results.append(run_size(n, args.repeats, args.peer_views, baseline, limit, args.threads))
        for row in results[-1]["rows"]:
            print(f"  {row['method']:10s} forward {format_ms(row['forward_cpu_ms'])} ms "
                  f"({row['forward_gsps']:.3f} G/s), back {format_ms(row['back_cpu_ms'])} ms "
                  f"({row['back_gsps']:.3f} G/s)", flush=True)
    meta["loadavg_at_end"] = load_average()
    atomic_write_text(out / "cone3d.json", json.dumps({"metadata": meta, "cases": results}, indent=2) + "\n",
                      mode=0o644)
    atomic_write_text(out / "cone3d.md", markdown(results, meta), mode=0o644)
    print(f"wrote {out / 'cone3d.json'} and {out / 'cone3d.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
