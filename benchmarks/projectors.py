"""Benchmark of the precisionrecon X-ray projector against ASTRA (CPU) and scikit-image.

What is measured
----------------
Wall-clock time of one forward projection ``A(x)`` and one back-projection ``A.T(y)`` of
float32 data on the CPU, for

* parallel beam, ``N x N`` image (1 mm pixels), ``V`` views equispaced over ``pi``,
  ``ceil(sqrt(2) N)`` detector pixels of 1 mm (256²: 180 views, 363 pixels;
  512²: 720 views, 725 pixels);
* fan beam with a flat detector, same image sizes and view counts, views equispaced over
  ``2 pi``, source-to-isocentre ``2 N`` mm, source-to-detector ``4 N`` mm (magnification 2),
  detector pitch 2 mm (1 mm at the isocentre) and just enough pixels for the fan to cover
  the whole square image, corners included (see :func:`fan_det_count`);

each with batch 1 and batch 8 (one call on a ``(8, N, N)`` tensor for precisionrecon).

Peers, timed in the same run on the same data:

* ASTRA CPU projectors: ``'linear'`` (parallel) and ``'line_fanflat'`` (fan), driven by
  the ``FP`` / ``BP`` algorithms on data objects that are *linked* to NumPy arrays, so
  the timed call is ``astra.algorithm.run`` alone (no copies, no object creation: the
  setting most favourable to ASTRA). ASTRA has no batch dimension, so batch 8 times a
  Python loop over 8 pre-built algorithms. All ASTRA objects are freed afterwards.
* scikit-image (parallel beam only): ``radon(..., circle=False)`` as the forward
  projection and ``iradon(..., filter_name=None)`` (unfiltered back-projection) as the
  back-projection, looped over the batch. scikit-image is slow at 512² / 720 views, so
  its repeats are capped by a time budget (``--slow-budget``); the number of timed runs
  is stored with every measurement.

Each measurement is one untimed warm-up call followed by ``--repeats`` timed calls
(``time.perf_counter``); the median is reported (min and all samples are in the JSON).
Ours and ASTRA are timed alternately, run by run, so that the slow and fast phases of a
shared machine affect both alike.
ASTRA and scikit-image are optional: a peer that cannot be imported is skipped with a
note. As a sanity check of the geometry conventions the script prints, once per
geometry and size, the relative L2 difference between our and ASTRA's sinogram of the
same phantom, and between the two back-projections of the same sinogram (both
projectors interpolate differently, so a few percent is expected; a geometry mismatch
shows up as a difference of order one).

Outputs: a progress line per case, a markdown table on stdout, and (written atomically)
``<out>/projectors.json`` (raw medians in ms plus machine metadata) and
``<out>/projectors.md`` (the table with the ratios ASTRA time / ours, and the ratios
against the performance targets).

Usage::

    python benchmarks/projectors.py                       # 256² and 512², 7 repeats
    python benchmarks/projectors.py --sizes 256 --repeats 5
    python benchmarks/projectors.py --quick --out /tmp/x  # 64² / 30 views smoke run
    # issue 17's batch-1 table: parallel beam only, one thread, process CPU clock
    python benchmarks/projectors.py --geometries parallel --batches 1 --threads 1 --clock process \
        --no-skimage --out benchmarks/results/projectors_batch1

``--clock process`` times every call by the process CPU clock (``time.process_time``) instead
of the wall clock: on a machine whose cores are kept busy by other jobs it does not count the
time the process waits for a core (use it with one thread; with more it adds the threads' times).

``--quick`` without ``--out`` writes to ``benchmarks/results/quick/`` so that a smoke run
never overwrites the full results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# this checkout's package and kernels, not an installed copy (e.g. another worktree's)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import precisionrecon as pr
from precisionrecon._io import atomic_write_text
from precisionrecon.bench import format_ms, load_average, machine_info

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
VIEWS = {256: 180, 512: 720}  # parallel beam view counts of the standard sizes
QUICK_SIZE, QUICK_VIEWS = 64, 30
BATCHES = (1, 8)
CLOCK: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}
_clock = time.perf_counter  # set by --clock

# (geometry, image size, batch, direction, minimum ASTRA time / our time); the last four are
# issue 17's goals for single images
TARGETS: tuple[tuple[str, int, int, str, float], ...] = (
    ("parallel", 256, 1, "forward", 15.0),
    ("parallel", 256, 1, "back", 8.0),
    ("parallel", 512, 1, "forward", 15.0),
    ("parallel", 512, 1, "back", 8.0),
    ("parallel", 256, 1, "forward", 10.0),
    ("parallel", 256, 1, "back", 4.0),
    ("parallel", 256, 8, "forward", 40.0),
    ("parallel", 256, 8, "back", 20.0),
    ("fan", 256, 1, "forward", 5.0),
    ("fan", 256, 1, "back", 5.0),
)


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One benchmark configuration (geometry, image size, views, detector, batch)."""

    geometry: str  # "parallel" or "fan"
    n: int
    views: int
    arc: float
    det_count: int
    det_spacing: float
    batch: int
    src_iso: float | None = None
    src_det: float | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.geometry:8s} {self.n}² {self.views} views {self.det_count} det batch {self.batch}"

    def angles(self) -> np.ndarray:
        return pr.angles(self.views, arc=self.arc).numpy()

    def pr_geometry(self) -> pr.Geometry:
        if self.geometry == "parallel":
            return pr.ParallelBeam2D(angles=self.angles(), det_count=self.det_count, det_spacing=self.det_spacing)
        return pr.FanBeam2D(
            angles=self.angles(),
            det_count=self.det_count,
            det_spacing=self.det_spacing,
            src_iso=self.src_iso,
            src_det=self.src_det,
            detector="flat",
        )

    def describe(self) -> dict[str, Any]:
        out = {
            "geometry": self.geometry,
            "n": self.n,
            "views": self.views,
            "arc_rad": self.arc,
            "det_count": self.det_count,
            "det_spacing_mm": self.det_spacing,
            "batch": self.batch,
        }
        if self.geometry == "fan":
            out |= {"src_iso_mm": self.src_iso, "src_det_mm": self.src_det, "detector": "flat"}
        return out


def fan_det_count(n: int, src_iso: float, src_det: float, det_spacing: float) -> int:
    """Odd number of flat-detector pixels whose fan covers the circle through the image corners.

    The corners of an ``n x n`` image of 1 mm pixels lie on a circle of radius
    ``r = n / sqrt(2)``; from a source at distance ``src_iso`` that circle subtends the
    half angle ``asin(r / src_iso)``, which on a flat detector at ``src_det`` needs the
    half width ``src_det * tan(asin(r / src_iso))``.
    """
    half_angle = math.asin((n / math.sqrt(2.0)) / src_iso)
    half_width = src_det * math.tan(half_angle)
    return 2 * math.ceil(half_width / det_spacing) + 1


def build_cases(sizes: list[int], quick: bool, batches: tuple[int, ...] = BATCHES,
                geometries: tuple[str, ...] = ("parallel", "fan")) -> list[Case]:
    cases: list[Case] = []
    for n in sizes:
        views = QUICK_VIEWS if quick else VIEWS.get(n, n)  # unknown sizes: n views
        det = math.ceil(math.sqrt(2.0) * n)
        if "parallel" in geometries:
            for batch in batches:
                cases.append(Case("parallel", n, views, math.pi, det, 1.0, batch))
        src_iso, src_det, spacing = 2.0 * n, 4.0 * n, 2.0
        fan_det = fan_det_count(n, src_iso, src_det, spacing)
        if "fan" in geometries:
            for batch in batches:
                cases.append(Case("fan", n, views, 2.0 * math.pi, fan_det, spacing, batch, src_iso, src_det))
    return cases


def phantom(n: int) -> np.ndarray:
    """A Shepp-Logan-like ellipse phantom, ``(n, n)`` float32, inside the inscribed circle."""
    c = (np.arange(n) - (n - 1) / 2) / (n / 2)
    y, x = np.meshgrid(c, c, indexing="ij")
    img = np.zeros((n, n))
    # (value, centre x, centre y, semi-axis a, semi-axis b, angle)
    for val, cx, cy, a, b, ang in (
        (1.0, 0.0, 0.0, 0.69, 0.92, 0.0),
        (-0.8, 0.0, -0.018, 0.66, 0.87, 0.0),
        (-0.2, 0.22, 0.0, 0.11, 0.31, -0.31),
        (-0.2, -0.22, 0.0, 0.16, 0.41, 0.31),
        (0.1, 0.0, 0.35, 0.21, 0.25, 0.0),
        (0.1, 0.0, 0.1, 0.046, 0.046, 0.0),
        (0.1, -0.08, -0.605, 0.046, 0.023, 0.0),
    ):
        ca, sa = math.cos(ang), math.sin(ang)
        xr, yr = (x - cx) * ca + (y - cy) * sa, -(x - cx) * sa + (y - cy) * ca
        img += val * ((xr / a) ** 2 + (yr / b) ** 2 <= 1.0)
    return img.astype(np.float32)


# --------------------------------------------------------------------------- timing


def _timed_ms(fn: Callable[[], Any]) -> float:
    t0 = _clock()
    fn()
    return (_clock() - t0) * 1e3


def _summary(samples: list[float], warm_ms: float) -> dict[str, Any]:
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "repeats": len(samples),
        "warmup_ms": warm_ms,
        "samples_ms": samples,
    }


def time_call(fn: Callable[[], Any], repeats: int, budget_s: float | None = None) -> dict[str, Any]:
    """One warm-up call, then ``repeats`` timed calls (fewer if ``budget_s`` would be exceeded)."""
    warm = _timed_ms(fn)
    n = repeats
    if budget_s is not None and warm > 0:
        n = max(1, min(repeats, int(budget_s * 1e3 / warm)))
    return _summary([_timed_ms(fn) for _ in range(n)], warm)


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Like :func:`time_call` for several functions, alternating them run by run, so that a
    slow or fast phase of a shared machine affects all of them alike (fairer ratios)."""
    warm = {name: _timed_ms(fn) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_timed_ms(fn))
    return {
        name: {**_summary(s, warm[name]), "interleaved_with": [other for other in fns if other != name]}
        for name, s in samples.items()
    }


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    a64, r64 = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(a64 - r64) / max(np.linalg.norm(r64), 1e-300))


# --------------------------------------------------------------------------- peers


def import_astra() -> tuple[Any, str | None]:
    try:
        import astra
    except Exception as exc:  # ImportError, or a broken CUDA/library load
        return None, f"ASTRA not importable ({type(exc).__name__}: {exc})"
    return astra, None


def import_skimage() -> tuple[Any, str | None]:
    try:
        import skimage
        from skimage.transform import iradon, radon
    except Exception as exc:
        return None, f"scikit-image not importable ({type(exc).__name__}: {exc})"
    return (skimage, radon, iradon), None


class AstraRunner:
    """ASTRA CPU FP/BP on linked NumPy arrays, one pre-built algorithm pair per batch item."""

    def __init__(self, astra: Any, case: Case, x: np.ndarray, y: np.ndarray) -> None:
        self.astra = astra
        self.algs_fp: list[int] = []
        self.algs_bp: list[int] = []
        self.data: list[int] = []
        self.proj_id: int | None = None
        vol_geom = astra.create_vol_geom(case.n, case.n)  # 1 mm pixels centred on the origin
        if case.geometry == "parallel":
            proj_geom = astra.create_proj_geom("parallel", case.det_spacing, case.det_count, case.angles())
            kind = "linear"
        else:
            proj_geom = astra.create_proj_geom(
                "fanflat", case.det_spacing, case.det_count, case.angles(), case.src_iso, case.src_det - case.src_iso
            )
            kind = "line_fanflat"
        self.kind = kind
        # Keep every linked array referenced for the lifetime of the data objects.
        self.x_in = np.ascontiguousarray(x, dtype=np.float32)
        self.y_in = np.ascontiguousarray(y, dtype=np.float32)
        self.y_out = np.zeros_like(self.y_in)
        self.x_out = np.zeros_like(self.x_in)
        try:
            self.proj_id = astra.create_projector(kind, proj_geom, vol_geom)
            for b in range(case.batch):
                vin = astra.data2d.link("-vol", vol_geom, self.x_in[b])
                sout = astra.data2d.link("-sino", proj_geom, self.y_out[b])
                sin = astra.data2d.link("-sino", proj_geom, self.y_in[b])
                vout = astra.data2d.link("-vol", vol_geom, self.x_out[b])
                self.data += [vin, sout, sin, vout]
                cfg = astra.astra_dict("FP")
                cfg |= {"ProjectorId": self.proj_id, "VolumeDataId": vin, "ProjectionDataId": sout}
                self.algs_fp.append(astra.algorithm.create(cfg))
                cfg = astra.astra_dict("BP")
                cfg |= {"ProjectorId": self.proj_id, "ReconstructionDataId": vout, "ProjectionDataId": sin}
                self.algs_bp.append(astra.algorithm.create(cfg))
        except Exception:
            self.free()
            raise

    def forward(self) -> None:
        for alg in self.algs_fp:
            self.astra.algorithm.run(alg)

    def back(self) -> None:
        for alg in self.algs_bp:
            self.astra.algorithm.run(alg)

    def free(self) -> None:
        for alg in self.algs_fp + self.algs_bp:
            self.astra.algorithm.delete(alg)
        self.astra.data2d.delete(self.data)
        if self.proj_id is not None:
            self.astra.projector.delete(self.proj_id)
        self.algs_fp, self.algs_bp, self.data, self.proj_id = [], [], [], None


# --------------------------------------------------------------------------- running


def run_case(
    case: Case,
    repeats: int,
    slow_budget: float,
    astra: Any,
    astra_note: str | None,
    sk: Any,
    sk_note: str | None,
    sanity: dict[tuple[str, int], dict[str, Any]],
) -> None:
    img = phantom(case.n)
    x_np = np.stack([img * (1.0 + 0.1 * b) for b in range(case.batch)]).astype(np.float32)
    A = pr.XRayTransform(pr.Volume((case.n, case.n)), case.pr_geometry())
    x = torch.from_numpy(x_np)
    with torch.inference_mode():
        y = A(x)
        xb = A.T(y)
    y_np = y.numpy()

    def ours_forward() -> None:
        with torch.inference_mode():
            A(x)

    def ours_back() -> None:
        with torch.inference_mode():
            A.T(y)

    res: dict[str, Any] = {}
    if astra is None:
        res["ours"] = {"forward": time_call(ours_forward, repeats), "back": time_call(ours_back, repeats)}
        _progress("precisionrecon", res["ours"])
        res["astra"] = {"skipped": astra_note}
    else:
        runner = AstraRunner(astra, case, x_np, y_np)
        try:
            # ours and ASTRA alternate run by run (see time_interleaved)
            fwd = time_interleaved({"ours": ours_forward, "astra": runner.forward}, repeats)
            back = time_interleaved({"ours": ours_back, "astra": runner.back}, repeats)
            res["ours"] = {"forward": fwd["ours"], "back": back["ours"]}
            _progress("precisionrecon", res["ours"])
            res["astra"] = {"projector": runner.kind, "forward": fwd["astra"], "back": back["astra"]}
            key = (case.geometry, case.n)
            if key not in sanity:  # outputs of the last timed run, so accumulation would show too
                sanity[key] = {
                    "geometry": case.geometry,
                    "n": case.n,
                    "astra_projector": runner.kind,
                    "forward_rel_l2": rel_l2(y_np, runner.y_out),
                    "back_rel_l2": rel_l2(xb.numpy(), runner.x_out),
                }
        finally:
            runner.free()
        _progress(f"ASTRA {res['astra']['projector']}", res["astra"], res["ours"])

    if case.geometry != "parallel":
        res["skimage"] = {"skipped": "parallel beam only"}
    elif sk is None:
        res["skimage"] = {"skipped": sk_note}
    else:
        _, radon, iradon = sk
        theta = np.degrees(case.angles())
        sinos = [radon(im, theta=theta, circle=False) for im in x_np]
        res["skimage"] = {
            "sinogram_shape": list(sinos[0].shape),
            "forward": time_call(lambda: [radon(im, theta=theta, circle=False) for im in x_np], repeats, slow_budget),
            "back": time_call(
                lambda: [iradon(s, theta=theta, filter_name=None, circle=False, output_size=case.n) for s in sinos],
                repeats,
                slow_budget,
            ),
        }
        _progress("scikit-image", res["skimage"], res["ours"])
    case.results = res


def _progress(name: str, r: dict[str, Any], ours: dict[str, Any] | None = None) -> None:
    parts = []
    for d in ("forward", "back"):
        m = r[d]
        s = f"{d} {format_ms(m['median_ms'])} ms (n={m['repeats']})"
        if ours is not None:
            s += f" = {m['median_ms'] / ours[d]['median_ms']:.1f}x ours"
        parts.append(s)
    print(f"    {name:22s} {', '.join(parts)}", flush=True)


# --------------------------------------------------------------------------- reporting


def _time_cell(r: dict[str, Any], direction: str, repeats: int) -> str:
    if "skipped" in r:
        return "—"
    m = r[direction]
    cell = format_ms(m["median_ms"])
    return cell if m["repeats"] == repeats else f"{cell} (n={m['repeats']})"


def ratio(case: Case, peer: str, direction: str) -> float | None:
    r = case.results.get(peer, {})
    if "skipped" in r or direction not in r:
        return None
    return r[direction]["median_ms"] / case.results["ours"][direction]["median_ms"]


def _ratio_cell(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}x"


def results_table(cases: list[Case], repeats: int) -> str:
    head = (
        "| geometry | image | views | det | batch | ours fwd | ours back | ASTRA fwd | ASTRA back "
        "| **ASTRA/ours fwd** | **ASTRA/ours back** | skimage fwd | skimage back "
        "| skimage/ours fwd | skimage/ours back |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in cases:
        r = c.results
        lines.append(
            f"| {c.geometry} | {c.n}² | {c.views} | {c.det_count} | {c.batch} "
            f"| {_time_cell(r['ours'], 'forward', repeats)} | {_time_cell(r['ours'], 'back', repeats)} "
            f"| {_time_cell(r['astra'], 'forward', repeats)} | {_time_cell(r['astra'], 'back', repeats)} "
            f"| {_ratio_cell(ratio(c, 'astra', 'forward'))} | {_ratio_cell(ratio(c, 'astra', 'back'))} "
            f"| {_time_cell(r['skimage'], 'forward', repeats)} | {_time_cell(r['skimage'], 'back', repeats)} "
            f"| {_ratio_cell(ratio(c, 'skimage', 'forward'))} | {_ratio_cell(ratio(c, 'skimage', 'back'))} |"
        )
    return "\n".join(lines)


def evaluate_targets(cases: list[Case]) -> list[dict[str, Any]]:
    out = []
    for geometry, n, batch, direction, target in TARGETS:
        match = [c for c in cases if (c.geometry, c.n, c.batch) == (geometry, n, batch)]
        measured = ratio(match[0], "astra", direction) if match else None
        if measured is None:
            status = "not measured"
        else:
            status = "met" if measured >= target else "NOT met"
        out.append(
            {
                "geometry": geometry,
                "n": n,
                "batch": batch,
                "direction": direction,
                "target_ratio": target,
                "measured_ratio": measured,
                "status": status,
            }
        )
    return out


def targets_table(targets: list[dict[str, Any]]) -> str:
    lines = ["| case | direction | target (ASTRA / ours) | measured | status |", "|---|---|---|---|---|"]
    for t in targets:
        astra = "ASTRA 'line_fanflat'" if t["geometry"] == "fan" else "ASTRA 'linear'"
        loop = " (ASTRA: Python loop)" if t["batch"] > 1 else ""
        lines.append(
            f"| {t['geometry']} {t['n']}² batch {t['batch']}{loop} | {t['direction']} "
            f"| >= {t['target_ratio']:g}x {astra} | {_ratio_cell(t['measured_ratio'])} | {t['status']} |"
        )
    return "\n".join(lines)


def sanity_table(sanity: list[dict[str, Any]]) -> str:
    lines = [
        "| geometry | image | ASTRA projector | sinogram rel. L2 diff | back-projection rel. L2 diff |",
        "|---|---|---|---|---|",
    ]
    for s in sanity:
        lines.append(
            f"| {s['geometry']} | {s['n']}² | {s['astra_projector']} "
            f"| {s['forward_rel_l2']:.2e} | {s['back_rel_l2']:.2e} |"
        )
    return "\n".join(lines)


def busy_warning(load: list[float] | None, cores: int | None) -> str | None:
    """A warning when other processes kept the CPUs busy (multi-threaded timings suffer most)."""
    if not load or not cores or load[0] < 0.25 * cores:
        return None
    return (
        f"1-min load average {load[0]:.2f} on {cores} cores before the run: the machine is not quiet, "
        "timings (above all multi-threaded ones) are unreliable"
    )


def write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text, mode=0o644)  # results are meant to be shared


def markdown_report(
    cases: list[Case],
    targets: list[dict[str, Any]],
    sanity: list[dict[str, Any]],
    meta: dict[str, Any],
    notes: list[str],
) -> str:
    m = meta["machine"]
    rep = meta["repeats"]
    parts = [
        "# Projector benchmark: precisionrecon vs ASTRA (CPU) vs scikit-image",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpu_count']} cores ({m['cpus_usable']} usable) · "
        f"torch {m['torch']} ({m['torch_num_threads']} threads) · kernel ISA {m['kernel_isa']} · "
        f"ASTRA {meta['astra_version'] or 'n/a'} · scikit-image {meta['skimage_version'] or 'n/a'}"
        + (" · **quick run (64², 30 views): not representative**" if meta["quick"] else ""),
        "",
        f"Median {'process CPU' if meta.get('clock') == 'process' else 'wall'} time in ms of {rep} runs after "
        "one warm-up run (fewer where marked `n=`), float32. "
        "Ratios are peer time / our time (higher = we are faster).",
        "",
        results_table(cases, rep),
        "",
        "## Targets",
        "",
        targets_table(targets),
        "",
    ]
    if meta["quick"] or not any(t["status"] != "not measured" for t in targets):
        parts += ["The targets refer to the 256² cases, which this run did not measure.", ""]
    parts += [
        "## Sanity: ours vs ASTRA on the same data",
        "",
        "Relative L2 difference `||ours - ASTRA|| / ||ASTRA||` (batch 1, ellipse phantom; the back-projection "
        "takes our sinogram as input for both). Differences of a few percent come from interpolation "
        "(Joseph vs ASTRA's kernels); a geometry mismatch would show as a difference of order one.",
        "",
        sanity_table(sanity) if sanity else "(ASTRA not available: no comparison)",
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    return "\n".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="256,512", help="comma-separated image sizes N (default: 256,512)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement after one warm-up (default 7)")
    p.add_argument("--quick", action="store_true", help="tiny 64x64 / 30-view run of every case (smoke test)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default {DEFAULT_OUT}; with --quick {DEFAULT_OUT / 'quick'})",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads for our projector (default: torch's)"
    )
    p.add_argument(
        "--slow-budget",
        type=float,
        default=60.0,
        help="seconds of timed runs allowed per scikit-image measurement; fewer repeats beyond it (default 60)",
    )
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--geometries", default="parallel,fan", help="parallel and/or fan (default both)")
    p.add_argument("--no-skimage", action="store_true", help="skip scikit-image (slow)")
    p.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                   help="wall clock (default) or the process CPU clock (for a machine busy with other jobs)")
    args = p.parse_args(argv)
    try:
        args.batch_list = tuple(int(b) for b in args.batches.split(",") if b.strip())
    except ValueError:
        p.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if not args.batch_list or min(args.batch_list) < 1:
        p.error(f"--batches must name batch sizes >= 1, got {args.batches!r}")
    args.geometry_list = tuple(g.strip() for g in args.geometries.split(",") if g.strip())
    if not args.geometry_list or set(args.geometry_list) - {"parallel", "fan"}:
        p.error(f"--geometries must name parallel and/or fan, got {args.geometries!r}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not args.size_list or min(args.size_list) < 2:
        p.error(f"--sizes must name at least one size >= 2, got {args.sizes!r}")
    if args.quick:
        args.size_list = [QUICK_SIZE]
    if args.out is None:
        args.out = DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global _clock
    _clock = CLOCK[args.clock]
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    astra, astra_note = import_astra()
    sk, sk_note = (None, "skipped by --no-skimage") if args.no_skimage else import_skimage()
    cases = build_cases(args.size_list, args.quick, args.batch_list, args.geometry_list)
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeats": args.repeats,
        "clock": args.clock,
        "warmup_runs": 1,
        "slow_budget_s": args.slow_budget,
        "dtype": "float32",
        "machine": machine_info(),
        "astra_version": getattr(astra, "__version__", None) if astra is not None else None,
        "skimage_version": sk[0].__version__ if sk is not None else None,
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
    }
    m = meta["machine"]
    print(
        f"precisionrecon projector benchmark: {m['cpu_model']}, {m['cpus_usable']} usable cores, "
        f"torch {m['torch']} with {m['torch_num_threads']} threads, kernel ISA {m['kernel_isa']}",
        flush=True,
    )
    for note in (astra_note, sk_note):
        if note:
            print(f"  note: {note}; skipped", flush=True)
    busy = busy_warning(m["loadavg_at_start"], m["cpus_usable"] or m["cpu_count"])
    if busy:
        print(f"  WARNING: {busy}", flush=True)

    sanity: dict[tuple[str, int], dict[str, Any]] = {}
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.label}", flush=True)
        run_case(case, args.repeats, args.slow_budget, astra, astra_note, sk, sk_note, sanity)
    for s in sanity.values():
        print(
            f"sanity {s['geometry']} {s['n']}²: ours vs ASTRA {s['astra_projector']}: sinogram rel. L2 "
            f"{s['forward_rel_l2']:.2e}, back-projection rel. L2 {s['back_rel_l2']:.2e}",
            flush=True,
        )

    m["loadavg_at_end"] = load_average()

    fan = [c for c in cases if c.geometry == "fan" and c.batch == 1]
    notes = [
        "Parallel beam: 1 mm pixels, views over pi, ceil(sqrt(2) N) detector pixels of 1 mm.",
        *(
            f"Fan beam {c.n}²: flat detector, {c.views} views over 2 pi, src_iso = 2N = {c.src_iso:g} mm, "
            f"src_det = 4N = {c.src_det:g} mm (magnification 2), {c.det_count} pixels of {c.det_spacing:g} mm "
            f"(1 mm at the isocentre; the fan of {math.degrees(c.pr_geometry().fan_angle):.1f} deg covers "
            "the image corners). ASTRA: 'fanflat' with source_origin = src_iso, origin_det = src_det - src_iso."
            for c in fan
        ),
        "Ours: one call on a (batch, N, N) tensor, torch.inference_mode, "
        f"{m['torch_num_threads']} threads, kernel ISA {m['kernel_isa']}.",
        "ASTRA: CPU projectors 'linear' (parallel) / 'line_fanflat' (fan), FP/BP algorithms on data objects linked "
        "to NumPy arrays; only astra.algorithm.run is timed (no copies); batch 8 = Python loop over 8 images. "
        "ASTRA's CPU FP/BP run on a single thread."
        if astra is not None
        else f"ASTRA: skipped, {astra_note}.",
        "scikit-image: radon(circle=False) / iradon(filter_name=None, circle=False, output_size=N), loop over the "
        "batch, parallel beam only; its own angle/detector conventions (timing only, not compared). Repeats capped "
        f"by a {args.slow_budget:g} s budget per measurement, actual counts marked `n=` in the table."
        if sk is not None
        else f"scikit-image: skipped, {sk_note}.",
        "Environment: " + ", ".join(f"{k}={v}" for k, v in m["env"].items() if v is not None)
        if any(v is not None for v in m["env"].values())
        else "Environment: no OMP_*/GOMP_*/PRECISIONRECON_KERNELS variables set.",
        f"Load average (1, 5, 15 min) at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']}.",
        *([f"**{busy}**"] if busy else []),
    ]
    targets = evaluate_targets(cases)
    sanity_list = list(sanity.values())
    table = results_table(cases, args.repeats)
    print()
    print(table)
    print()
    print(targets_table(targets))

    payload = {
        "metadata": meta,
        "notes": notes,
        "cases": [
            {
                **c.describe(),
                "results": c.results,
                "ratio_astra_over_ours": {d: ratio(c, "astra", d) for d in ("forward", "back")},
                "ratio_skimage_over_ours": {d: ratio(c, "skimage", d) for d in ("forward", "back")},
            }
            for c in cases
        ],
        "targets": targets,
        "sanity_vs_astra": sanity_list,
    }
    out: Path = args.out
    write_atomic(out / "projectors.json", json.dumps(payload, indent=2) + "\n")
    write_atomic(out / "projectors.md", markdown_report(cases, targets, sanity_list, meta, notes))
    print(f"\nwrote {out / 'projectors.json'} and {out / 'projectors.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
