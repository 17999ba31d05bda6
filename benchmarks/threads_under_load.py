"""Thread oversubscription under load (issue 16, item 9): time a mixed workload (X-ray
projector forward and adjoint, FBP, a small conv net) in fresh processes with different
thread settings, on the machine as it is and with a deliberate busy loop beside it.

Each setting runs in its own process because libgomp reads ``OMP_WAIT_POLICY`` /
``GOMP_SPINCOUNT`` once, when torch loads it. The busy loop is a ``python -c "while True:
pass"`` started here under ``timeout`` and killed by its PID when the runs end.

Usage::

    python benchmarks/threads_under_load.py [--workload mixed|short|bench] [--repeats 5] [--out PATH]

Workloads: ``mixed`` (large kernels, FBP and convolutions: long parallel regions) and
``short`` (many small projections with 2 ms of serial Python between them, as in training
loops and iterative methods: what spinning OpenMP threads hurt most) and ``bench`` (the whole
``precisionrecon bench`` default suite, the command of the issue's 7 min 54 s, one run per
setting and repeat, settings interleaved; only the thread counts are compared, with
precisionrecon's default wait policy). Writes ``PATH.json``
and ``PATH.md`` (default ``benchmarks/results/threads_under_load_<workload>``): median
seconds per round, and for ``short`` the CPU seconds the process used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHORT = r"""
import json, os, resource, sys, time
if os.environ["PR_IMPORT_FIRST"] == "1":
    import precisionrecon as pr
import torch
import precisionrecon as pr
threads = int(sys.argv[1]); repeats = int(sys.argv[2])
torch.set_num_threads(threads)
A = pr.XRayTransform(pr.Volume((64, 64)), pr.ParallelBeam2D(angles=pr.angles(32), det_count=91))
x = torch.rand(64, 64)
def round_():
    for _ in range(100):
        A(x)
        time.sleep(0.002)  # serial work between two parallel regions
round_()
times, cpu = [], []
for _ in range(repeats):
    r = resource.getrusage(resource.RUSAGE_SELF); c0 = r.ru_utime + r.ru_stime
    t = time.perf_counter(); round_(); times.append(time.perf_counter() - t)
    r = resource.getrusage(resource.RUSAGE_SELF); cpu.append(r.ru_utime + r.ru_stime - c0)
print(json.dumps({"threads": torch.get_num_threads(), "times": times, "cpu": cpu}))
"""

MIXED = r"""
import json, os, sys, time
if os.environ["PR_IMPORT_FIRST"] == "1":
    import precisionrecon as pr  # sets OMP_WAIT_POLICY=PASSIVE unless given, before torch loads libgomp
import torch
import precisionrecon as pr
threads = int(sys.argv[1]); repeats = int(sys.argv[2])
if threads > 0:
    torch.set_num_threads(threads)
A = pr.XRayTransform(pr.Volume((256, 256)), pr.ParallelBeam2D(angles=pr.angles(180), det_count=363))
fbp = pr.FBP(A)
net = torch.nn.Sequential(*[m for _ in range(4) for m in (torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())])
x = torch.rand(4, 256, 256); y = A(x); z = torch.rand(4, 8, 128, 128)
def round_():
    for _ in range(5):
        A(x); A.T(y); fbp(y)
    with torch.no_grad():
        for _ in range(5):
            net(z)
round_()  # warm-up
times = []
for _ in range(repeats):
    t = time.perf_counter(); round_(); times.append(time.perf_counter() - t)
print(json.dumps({"threads": torch.get_num_threads(), "times": times}))
"""

WHAT = {
    "bench": "one full `precisionrecon bench` (default suite, all tasks and methods, no figure), wall time of the "
             "command",
    "mixed": "per round 5x (forward, adjoint, FBP) of 4 images 256^2, 180 views, 363 bins and 5x a 4-layer "
             "8-channel conv net on 4x8x128^2 (float32, CPU)",
    "short": "per round 100 forward projections of one 64^2 image (32 views), 2 ms of serial work after each",
}

SETTINGS = {
    "1 thread": ({}, 1),
    "2 threads (libgomp default wait policy)": ({}, 2),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "2 threads, GOMP_SPINCOUNT=10000": ({"GOMP_SPINCOUNT": "10000"}, 2),
    "2 threads, precisionrecon default (imported before torch)": ({}, 2),
}


BENCH_SETTINGS = {"precisionrecon bench --threads 1": 1, "precisionrecon bench (default: 2 threads)": 0}


def run_bench(threads: int) -> dict:
    """Wall time of one ``precisionrecon bench`` in a fresh process (output to a temporary folder)."""
    import tempfile

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "precisionrecon", "bench", "--no-figure", "--no-progress", "--out", out]
        if threads > 0:
            cmd += ["--threads", str(threads)]
        t = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return {"times": [time.perf_counter() - t]}


def run_setting(workload: str, setting: str, env_extra: dict[str, str], threads: int, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(env_extra)
    env["PR_IMPORT_FIRST"] = "1" if "precisionrecon default" in setting else "0"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    code = SHORT if workload == "short" else MIXED
    out = subprocess.run([sys.executable, "-c", code, str(threads), str(repeats)], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(v: list[float]) -> float:
    return statistics.median(v)  # the mean of the middle two for an even count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("mixed", "short", "bench"), default="short")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="output path without suffix")
    args = parser.parse_args()
    rows = []
    for loaded in (False, True):
        busy = None
        if loaded:  # one extra busy core, bounded by timeout in case this script dies
            busy = subprocess.Popen(["timeout", "7200" if args.workload == "bench" else "600", sys.executable, "-c",
                                     "while True: pass"])
            time.sleep(1.0)
        try:
            if args.workload == "bench":  # settings interleaved, one command per repeat
                runs = [(name, ({}, threads)) for _ in range(args.repeats) for name, threads in BENCH_SETTINGS.items()]
            else:
                runs = list(SETTINGS.items())
            for name, (env_extra, threads) in runs:
                load = os.getloadavg()[0]
                if args.workload == "bench":
                    res = run_bench(threads)
                else:
                    res = run_setting(args.workload, name, env_extra, threads, args.repeats)
                times = res["times"]
                row = {"setting": name, "busy_loop": loaded, "load_avg_1min": load, "median_s": median(times),
                       "times_s": times}
                if "cpu" in res:
                    row["median_cpu_s"] = median(res["cpu"])
                rows.append(row)
                print(f"{'busy loop' if loaded else 'as is':9s}  load {load:4.2f}  {name:58s} {median(times):7.3f} s"
                      + (f"  cpu {row['median_cpu_s']:.2f} s" if "cpu" in res else ""), flush=True)
        finally:
            if busy is not None:
                busy.terminate()  # timeout passes SIGTERM on to the loop (a SIGKILL would orphan it)
                busy.wait()
    record = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "rows": rows,
              "workload": args.workload, "what": WHAT[args.workload]}
    out = Path(args.out or f"benchmarks/results/threads_under_load_{args.workload}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from precisionrecon._io import atomic_write_json

    atomic_write_json(out.with_suffix(".json"), record)
    write_markdown(record, out.with_suffix(".md"))


def write_markdown(record: dict, path: Path) -> None:
    """The table of ``record`` (one line per setting and machine state, medians over repeats)."""
    from precisionrecon._io import atomic_write_text

    lines = [f"Workload {record['workload']}: {record['what']}; {record['cpu_count']} cores.", "",
             "| machine load | setting | median s per round | CPU s per round |", "|---|---|---|---|"]
    groups: dict[tuple[bool, str], list[dict]] = {}
    for r in record["rows"]:  # the bench workload has one row per repeat: report the median over them
        groups.setdefault((r["busy_loop"], r["setting"]), []).append(r)
    for (busy_loop, setting), rs in groups.items():
        loads = "/".join(f"{r['load_avg_1min']:.2f}" for r in rs)
        cpu = median([r.get("median_cpu_s", float("nan")) for r in rs])
        lines.append(f"| {'busy loop + ' if busy_loop else ''}load avg {loads} | {setting} | "
                     f"{median([r['median_s'] for r in rs]):.3f} | {cpu:.2f} |")
    if record.get("note"):
        lines += ["", record["note"]]
    atomic_write_text(path, "\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
