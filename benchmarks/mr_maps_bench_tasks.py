"""CG-SENSE on the bench's MR tasks with ESPIRiT maps against NLINV maps (the bench's default).

Builds each MR task as ``precisionrecon bench`` does (``build_task``), then scores CG-SENSE with
the iteration count chosen on the validation images exactly as the harness does
(``_tuned_estimated``), once with ESPIRiT maps (``tasks.espirit_operator``, two sets), once
with NLINV maps (``tasks.nlinv_operator``: ``pr.mr.nlinv`` defaults, one set given a set axis
so the harness's set combination applies; the bench's own choice) and once with the true maps.
Mean PSNR over the test images (magnitude, data range as the harness scores it) and the time to estimate the maps.

Usage::

    python benchmarks/mr_maps_bench_tasks.py --suite default --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from precisionrecon._io import atomic_write_text
from precisionrecon.bench import load_average, machine_info
from precisionrecon.bench.harness import _mean_psnr, _tuned_analytic, _tuned_estimated
from precisionrecon.bench.tasks import SUITES, build_task, espirit_operator, nlinv_operator


def run(task_name: str, suite_name: str) -> dict[str, Any]:
    suite = SUITES[suite_name]
    task = build_task(task_name, suite)
    t0 = time.perf_counter()
    espirit_test = [espirit_operator(task.operator, task.y[i]) for i in range(task.y.shape[0])]
    t_espirit = (time.perf_counter() - t0) / task.y.shape[0]
    espirit_val = [espirit_operator(task.operator, task.y_val[i]) for i in range(task.y_val.shape[0])]
    t0 = time.perf_counter()
    nlinv_test = [nlinv_operator(task.operator, task.y[i]) for i in range(task.y.shape[0])]
    t_nlinv = (time.perf_counter() - t0) / task.y.shape[0]
    nlinv_val = [nlinv_operator(task.operator, task.y_val[i]) for i in range(task.y_val.shape[0])]
    out: dict[str, Any] = {"task": task_name, "suite": suite_name, "n": suite.n,
                              "test_images": list(task.test_images),
                              "maps_seconds_per_image": {"espirit": t_espirit, "nlinv": t_nlinv}}
    task.estimated, task.estimated_val = espirit_test, espirit_val
    fn, info = _tuned_estimated(task, "CG-SENSE", suite)
    out["espirit"] = {"psnr": _mean_psnr(fn(task.y), task.truth), **info}
    task.estimated, task.estimated_val = nlinv_test, nlinv_val
    fn, info = _tuned_estimated(task, "CG-SENSE", suite)
    out["nlinv"] = {"psnr": _mean_psnr(fn(task.y), task.truth), **info}
    task.estimated = []
    fn, info = _tuned_analytic(task, "CG-SENSE", suite)
    out["true maps"] = {"psnr": _mean_psnr(fn(task.y), task.truth), **info}
    return out


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table of :func:`run`'s rows."""
    lines = ["# CG-SENSE on the bench's MR tasks: ESPIRiT maps against NLINV maps (the bench's default)", "",
             "Each task built by `build_task`; CG-SENSE iterations chosen on the validation images by the "
             "harness (`_tuned_estimated`, at most the suite's `cg_iter`); mean PSNR over the test images. "
             "Time: seconds to estimate one image's maps (one CPU thread).", "",
             "| suite | task | ESPIRiT (dB) | NLINV (dB) | true maps (dB) | NLINV - ESPIRiT "
             "| ESPIRiT (s) | NLINV (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["maps_seconds_per_image"]
        e, n, tm = r["espirit"]["psnr"], r["nlinv"]["psnr"], r["true maps"]["psnr"]
        lines.append(f"| {r['suite']} | {r['task']} | {e:.2f} | {n:.2f} | {tm:.2f} | {n - e:+.2f} | "
                     f"{t['espirit']:.2f} | {t['nlinv']:.1f} |")
    lines += ["", f"Load average before / after: {meta['load_average_before']} / {meta['load_average_after']} "
              "(shared 2-core VM: absolute times are inflated, the PSNR is not)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", default=None, help="suite(s): default, real")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    suites = args.suite or ["default", "real"]
    load_before = load_average()
    rows = [run(t, s) for s in suites for t in ("mr-4x", "mr-8x")]
    for r in rows:
        print(json.dumps(r))
    meta = {"load_average_before": load_before, "load_average_after": load_average(),
            "threads": torch.get_num_threads(), "machine": machine_info(packages=("numpy",))}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "mr_maps_bench_tasks.json", json.dumps({"rows": rows, "meta": meta}, indent=1))
    atomic_write_text(args.out / "mr_maps_bench_tasks.md", markdown(rows, meta))


if __name__ == "__main__":
    main()
