"""3-D at scale (issue 19): time and peak memory of cone-beam projection against the volume
size, chunked against unchunked, 1/2/4 processes, and the memory of unrolled 3-D models with
and without gradient checkpointing, on the CPU.

Every measurement runs in a fresh process (``--worker``), so that its peak resident memory
(``ru_maxrss``) is its own: we report the peak minus the resident memory just before the
measured call (the inputs and the loaded libraries excluded), i.e. what the call itself
needed; glibc's mmap threshold is fixed at 1 MiB (``MALLOC_MMAP_THRESHOLD_``), so freed
large blocks leave the process at once instead of staying in the heap. Peers are
interleaved (unchunked, chunked, unchunked, ...) and timed as medians; the load average
is recorded before and after each measurement: this 2-core machine is shared, so absolute
times are inflated by the other jobs and only same-run ratios mean much. The cone
geometry: ``n^3`` voxels of 1 mm, 32 views over 2 pi, a detector of ``n x 1.5 n`` pixels
of 1.5 mm, source at ``3 n`` mm, detector at ``5 n`` mm (so the work grows as ``n^3``).

The GPU cases (resident, chunked and streamed from pinned host memory) are in
``benchmarks/gpu.py``; this file writes a model of N GPUs for the view split.

Usage::

    python benchmarks/scale.py [--quick] [--out benchmarks/results/scale]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

N_VIEWS = 32  # few views keep the 512^3 runs within minutes; time grows linearly with them


def _geometry(n: int) -> tuple[Any, Any]:
    import precisionrecon as pr

    vol = pr.Volume((n, n, n))
    geom = pr.ConeBeam3D(angles=pr.angles(N_VIEWS, arc=2 * math.pi), det_shape=(n, n + n // 2), det_spacing=1.5,
                         src_iso=3 * n, src_det=5 * n)
    return vol, geom


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _warm_up() -> None:
    """Load the kernels (and touch OpenMP) on a tiny problem, not on the measured one."""
    import precisionrecon as pr

    A = pr.XRayTransform(*_geometry(16))
    A.T(A(torch.rand(A.domain_shape)))


def _measured(fn: Any) -> dict[str, float]:
    """Seconds and extra peak bytes of one call of ``fn``."""
    before = _rss()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra_peak_bytes": max(0, _peak() - before)}


def work_project(spec: dict[str, Any]) -> dict[str, Any]:
    """One forward or back-projection, plain or chunked."""
    import precisionrecon as pr
    from precisionrecon.operators.chunked import block_bytes

    torch.set_num_threads(spec["threads"])
    _warm_up()
    vol, geom = _geometry(spec["n"])
    A = pr.XRayTransform(vol, geom)
    op: pr.LinearOperator = A
    out: dict[str, Any] = {}
    if spec["mode"] == "chunked":
        whole = block_bytes(math.prod(vol.shape), math.prod(geom.proj_shape))
        op = pr.ChunkedOperator(A, max_bytes=whole // spec["budget_fraction"])
        plan = op.plan(1, torch.float32)
        out["plan"] = f"{len(plan.slabs)} slabs x {len(plan.views)} view ranges"
        out["max_bytes"] = whole // spec["budget_fraction"]
    gen = torch.Generator().manual_seed(0)
    if spec["direction"] == "forward":
        x = torch.rand(vol.shape, generator=gen)
        out.update(_measured(lambda: op(x)))
    else:
        y = torch.rand(geom.proj_shape, generator=gen)
        out.update(_measured(lambda: op.T(y)))
    return out


def work_check(spec: dict[str, Any]) -> dict[str, Any]:
    """Chunked against unchunked results: bitwise or the largest relative difference."""
    import precisionrecon as pr
    from precisionrecon.operators.chunked import block_bytes

    torch.set_num_threads(spec["threads"])
    vol, geom = _geometry(spec["n"])
    A = pr.XRayTransform(vol, geom)
    whole = block_bytes(math.prod(vol.shape), math.prod(geom.proj_shape))
    out = {}
    for name, fraction in (("views", None), ("slabs", spec["budget_fraction"])):
        # views only: the whole volume and a third of the views per block
        budget = (block_bytes(math.prod(vol.shape), math.prod(geom.proj_shape) // 3) if fraction is None
                  else whole // fraction)
        C = pr.ChunkedOperator(A, max_bytes=budget)
        plan = C.plan(1, torch.float32)
        x = torch.rand(vol.shape, generator=torch.Generator().manual_seed(1))
        y = torch.rand(geom.proj_shape, generator=torch.Generator().manual_seed(2))
        fa, fc, ba, bc = A(x), C(x), A.T(y), C.T(y)
        out[name] = {
            "plan": f"{len(plan.slabs)} slabs x {len(plan.views)} view ranges",
            "forward_bitwise": bool(torch.equal(fa, fc)),
            "forward_max_rel": float((fa - fc).abs().max() / fa.abs().max()),
            "back_bitwise": bool(torch.equal(ba, bc)),
            "back_max_rel": float((ba - bc).abs().max() / ba.abs().max()),
        }
    return out


def _dist_rank(rank: int, world: int, store: str, spec: dict[str, Any], result: str) -> None:
    import torch.distributed as dist

    import precisionrecon as pr

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        _warm_up()
        vol, geom = _geometry(spec["n"])
        D = pr.DistributedXRayTransform(vol, geom)
        x = torch.rand(vol.shape, generator=torch.Generator().manual_seed(0))
        y = torch.rand(geom.proj_shape, generator=torch.Generator().manual_seed(1))
        times: dict[str, list[float]] = {"forward": [], "back": []}
        for _ in range(spec["repeats"]):
            for name, fn in (("forward", lambda: D(x)), ("back", lambda: D.T(y))):
                dist.barrier()
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        slowest = [None] * world
        dist.all_gather_object(slowest, {k: statistics.median(v) for k, v in times.items()})
        if rank == 0:
            Path(result).write_text(json.dumps({k: max(s[k] for s in slowest) for k in times}))  # type: ignore[index]
    finally:
        dist.destroy_process_group()


def work_processes(spec: dict[str, Any]) -> dict[str, Any]:
    """Median seconds per forward / back-projection with ``world`` gloo processes of one
    thread each (the slowest rank), or one process with ``threads`` threads."""
    import torch.multiprocessing as mp

    import precisionrecon as pr

    if spec["world"] == 0:  # the single-process reference with several threads
        torch.set_num_threads(spec["threads"])
        _warm_up()
        A = pr.XRayTransform(*_geometry(spec["n"]))
        x, y = torch.rand(A.domain_shape), torch.rand(A.range_shape)
        times = {"forward": [], "back": []}
        for _ in range(spec["repeats"]):
            for name, fn in (("forward", lambda: A(x)), ("back", lambda: A.T(y))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        return {k: statistics.median(v) for k, v in times.items()}
    with tempfile.TemporaryDirectory() as tmp:
        result = str(Path(tmp) / "result.json")
        mp.spawn(_dist_rank, args=(spec["world"], str(Path(tmp) / "store"), spec, result), nprocs=spec["world"],
                 join=True)
        return json.loads(Path(result).read_text())


def work_lpd(spec: dict[str, Any]) -> dict[str, Any]:
    """Forward and backward of a 3-D learned primal-dual: seconds and extra peak memory."""
    import precisionrecon as pr
    from precisionrecon import models

    torch.set_num_threads(spec["threads"])
    _warm_up()
    n = spec["n"]
    vol = pr.Volume((n, n, n))
    geom = pr.ConeBeam3D(angles=pr.angles(n, arc=2 * math.pi), det_shape=(n, n + n // 2), det_spacing=1.5,
                         src_iso=3 * n, src_det=5 * n)
    A = pr.XRayTransform(vol, geom)
    torch.manual_seed(0)
    model = models.LearnedPrimalDual(A, n_iter=spec["n_iter"], width=spec["width"], op_norm=1.0,
                                     checkpoint=spec["checkpoint"], mixed_precision=spec["mixed_precision"])
    y = A(torch.rand((1, *vol.shape)))

    def step() -> None:
        model(y).square().mean().backward()

    return _measured(step)


WORKERS = {"project": work_project, "check": work_check, "processes": work_processes, "lpd": work_lpd}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh process; adds the load average before and after."""
    load0 = os.getloadavg()[0]
    # glibc's dynamic mmap threshold would keep freed blocks of up to 32 MB in the heap (resident), so that the
    # peak would depend on the order of earlier allocations: a fixed threshold returns every large block at once
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.get("threads", 1)), "PYTHONPATH": str(Path(__file__).parents[1]),
           "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["load"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    print(spec, out, flush=True)
    return out


def gpu_model() -> list[dict[str, Any]]:
    """Predicted seconds of one 512^3 cone problem (496 views of 960 x 1248, float32) on N
    GPUs with the view split of :class:`DistributedXRayTransform`: the kernels divide by N,
    the forward adds an all_gather of the projections ((N-1)/N of their bytes through each
    GPU's link) and the adjoint an all_reduce of the volume (2 (N-1)/N of its bytes, ring).

    Kernel times per GPU: the H100 limits the issue quotes (64 ms back-projection; the
    forward taken equal); link bandwidths: NVLink 4 (450 GB/s per direction) and PCIe 5
    (50 GB/s per direction). A model, not a measurement: no GPU here.
    """
    volume = 4 * 512**3
    projections = 4 * 496 * 960 * 1248
    kernel = {"forward": 0.064, "back": 0.064}
    rows = []
    for link, bandwidth in (("NVLink 4", 450e9), ("PCIe 5", 50e9)):
        for n in (1, 2, 4, 8):
            comm_f = (n - 1) / n * projections / bandwidth
            comm_b = 2 * (n - 1) / n * volume / bandwidth
            fwd, back = kernel["forward"] / n + comm_f, kernel["back"] / n + comm_b
            rows.append({"link": link, "gpus": n, "forward_s": fwd, "back_s": back,
                         "speedup_forward": kernel["forward"] / fwd, "speedup_back": kernel["back"] / back})
    return rows


def gpu_reading(rows: list[dict[str, Any]]) -> str:
    """The model's rows in words (from the numbers, for 8 GPUs)."""
    eight = {r["link"]: r for r in rows if r["gpus"] == 8}
    nv, pcie = eight["NVLink 4"], eight["PCIe 5"]
    return (
        f"Reading: on 8 GPUs the view split gives {nv['speedup_forward']:.1f}x (forward) and "
        f"{nv['speedup_back']:.1f}x (back) with NVLink, but only {pcie['speedup_forward']:.1f}x and "
        f"{pcie['speedup_back']:.1f}x over PCIe, where gathering the 2.4 GB of projections on every rank and "
        "all-reducing the 0.5 GB volume cost more than the kernels save. Over slow links keep the data sharded "
        "(each rank's own views, as in the forward before the gather) or split volume slabs across GPUs. "
        "Streaming a volume larger than one GPU adds its host<->device copies (PCIe 5: 0.5 GB in about 10 ms each "
        "way), hidden behind the kernels when a block's kernels take longer than its copies (benchmarks/gpu.py "
        "measures this on the next GPU machine)."
    )


def _fmt_mib(b: float) -> str:
    return f"{b / 2**20:.0f}"


def write(out: Path, result: dict[str, Any]) -> None:
    from precisionrecon._io import atomic_write_text

    m = result["machine"]
    lines = [
        "# 3-D at scale (CPU)",
        "",
        f"{m['cpu_model']}, {m['cpus_usable']} usable cores, torch {m['torch']}. Load average at start "
        f"{m['loadavg_at_start']}: the machine is shared with other jobs (a background training job among "
        "them), so absolute times are inflated; each row lists the load average before/after it. Peak memory: "
        "`ru_maxrss` of a fresh process minus its resident memory just before the call (what the call itself "
        "needed; glibc's mmap threshold fixed at 1 MiB, so freed large blocks leave the process at once). "
        f"Cone beam, {N_VIEWS} views, detector n x 1.5n, float32, {m['threads']} threads.",
        "",
        "## Projection against the volume size",
        "",
        "| n^3 | Path | Forward s | Forward peak MiB | Back s | Back peak MiB | Runs | Load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        lines.append(
            f"| {r['n']}^3 | {r['mode']}{' (' + r['plan'] + ')' if r.get('plan') else ''} | {r['forward_s']:.2f} | "
            f"{_fmt_mib(r['forward_peak'])} | {r['back_s']:.2f} | {_fmt_mib(r['back_peak'])} | {r['runs']} | "
            f"{r['load']} |"
        )
    lines += ["", "The inputs are not in the peak, the outputs are: projections of "
              f"{N_VIEWS} x n x 1.5n x 4 bytes (forward), the n^3 x 4-byte volume (back; 512 MiB at 512^3). The "
              "chunked budget is a quarter of the unchunked call's estimate (`block_bytes`).", "",
              "## Chunked against unchunked: equality", "",
              "| n^3 | Split | Plan | Forward | Back |", "|---|---|---|---|---|"]
    for n, check in result["equality"].items():
        for split, r in check.items():
            if split == "load":
                continue
            f = "bitwise" if r["forward_bitwise"] else f"max rel {r['forward_max_rel']:.1e}"
            b = "bitwise" if r["back_bitwise"] else f"max rel {r['back_max_rel']:.1e}"
            lines.append(f"| {n}^3 | {split} | {r['plan']} | {f} | {b} |")
    lines += ["", "## Processes (gloo, 1 thread each) against one process", "",
              "| Setting | Forward s | Back s | Forward speedup | Back speedup |", "|---|---|---|---|---|"]
    base = result["processes"][0]
    for r in result["processes"]:
        lines.append(f"| {r['setting']} | {r['forward']:.2f} | {r['back']:.2f} | "
                     f"{base['forward'] / r['forward']:.2f}x | {base['back'] / r['back']:.2f}x |")
    lines += ["", result["processes_note"], "", "## Learned primal-dual memory against unrolled iterations", "",
              f"{result['lpd_note']}", "",
              "| Iterations | Checkpoint | Mixed precision | Forward+backward s | Peak MiB |", "|---|---|---|---|---|"]
    for r in result["lpd"]:
        lines.append(f"| {r['n_iter']} | {r['checkpoint']} | {r['mixed_precision']} | {r['seconds']:.2f} | "
                     f"{_fmt_mib(r['extra_peak_bytes'])} |")
    model_text = (gpu_model.__doc__ or "").split("\n\n")[1].replace("\n    ", " ").strip()
    lines += ["", "## Model: one 512^3 problem on N GPUs (not measured)", "", model_text, "",
              "| Link | GPUs | Forward ms | Back ms | Speedup fwd | Speedup back |", "|---|---|---|---|---|---|"]
    for r in result["gpu_model"]:
        lines.append(f"| {r['link']} | {r['gpus']} | {1e3 * r['forward_s']:.1f} | {1e3 * r['back_s']:.1f} | "
                     f"{r['speedup_forward']:.2f}x | {r['speedup_back']:.2f}x |")
    lines += ["", result["gpu_note"], ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2))
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines))
    _figure(out.with_suffix(".png"), result)


def _figure(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4))
    for mode in ("unchunked", "chunked"):
        rows = [r for r in result["sizes"] if r["mode"] == mode]
        ns = [r["n"] for r in rows]
        a.loglog(ns, [r["forward_s"] for r in rows], "o-", label=f"{mode} forward")
        a.loglog(ns, [r["back_s"] for r in rows], "s--", label=f"{mode} back")
        b.loglog(ns, [r["forward_peak"] / 2**20 for r in rows], "o-", label=f"{mode} forward")
        b.loglog(ns, [r["back_peak"] / 2**20 for r in rows], "s--", label=f"{mode} back")
    a.set(xlabel="n (volume n^3)", ylabel="seconds", title="time (shared 2-core CPU)")
    b.set(xlabel="n (volume n^3)", ylabel="MiB", title="peak memory of the call")
    for ck in (False, True):
        rows = [r for r in result["lpd"] if r["checkpoint"] == ck and r["mixed_precision"] is None]
        c.plot([r["n_iter"] for r in rows], [r["extra_peak_bytes"] / 2**20 for r in rows], "o-",
               label=f"checkpoint={ck}")
    c.set(xlabel="unrolled iterations", ylabel="MiB", title="LPD forward+backward peak")
    for ax in (a, b, c):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale")
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["kind"]](spec)))
        return 0
    from precisionrecon.bench import machine_info

    started = time.perf_counter()
    threads = args.threads
    sizes = (32, 48) if args.quick else (64, 128, 256, 512)
    big = sizes[-1]
    fraction = 4  # chunked: a quarter of the unchunked call's estimated bytes
    result: dict[str, Any] = {"machine": {**machine_info(), "threads": threads}, "sizes": [], "equality": {}}
    for n in sizes:
        runs = 1 if n == big else 2 if n >= 256 else 3
        samples: dict[str, dict[str, list[Any]]] = {m: {} for m in ("unchunked", "chunked")}
        loads = []
        for _ in range(runs):  # interleaved: unchunked, chunked, unchunked, ...
            for mode in ("unchunked", "chunked"):
                for direction in ("forward", "back"):
                    r = run_worker({"kind": "project", "n": n, "mode": mode, "direction": direction,
                                    "threads": threads, "budget_fraction": fraction})
                    samples[mode].setdefault(direction, []).append(r)
                    loads.append(r["load"][1])
        for mode, by_dir in samples.items():
            row = {"n": n, "mode": mode, "runs": runs, "load": f"{min(loads):.1f}-{max(loads):.1f}"}
            for direction, rs in by_dir.items():
                row[f"{direction}_s"] = statistics.median(r["seconds"] for r in rs)
                row[f"{direction}_peak"] = statistics.median(r["extra_peak_bytes"] for r in rs)
                row["plan"] = rs[0].get("plan", "")
            result["sizes"].append(row)
    for n in sizes[:2] if args.quick else (128, 256):
        result["equality"][str(n)] = run_worker({"kind": "check", "n": n, "threads": threads,
                                                 "budget_fraction": fraction})
    proc_n = 48 if args.quick else 128
    repeats = 2 if args.quick else 3
    settings = [("1 process, 1 thread", {"world": 0, "threads": 1}),
                (f"1 process, {threads} threads", {"world": 0, "threads": threads}),
                ("2 processes", {"world": 2, "threads": 1}), ("4 processes", {"world": 4, "threads": 1})]
    result["processes"] = []
    for name, s in settings:
        r = run_worker({"kind": "processes", "n": proc_n, "repeats": repeats, **s})
        result["processes"].append({"setting": name, **r})
    result["processes_note"] = (
        f"{proc_n}^3, median of {repeats} calls, time of the slowest rank, the full projections gathered on every "
        f"rank and the partial volumes all-reduced. This machine has {os.cpu_count()} cores shared with other jobs: "
        "4 processes oversubscribe them, and with the load average above 2 even a second thread does not help: "
        "cores, not the split, are the limit here. Each rank projects 1/P of the views; the split adds the "
        "gather of the projections and the reduction of the volume.")
    lpd_n, width = (16, 8) if args.quick else (32, 16)
    result["lpd"] = []
    for n_iter in (1, 2, 4, 8):
        for ck in (False, True):
            r = run_worker({"kind": "lpd", "n": lpd_n, "n_iter": n_iter, "width": width, "checkpoint": ck,
                            "mixed_precision": None, "threads": threads})
            result["lpd"].append({"n_iter": n_iter, "checkpoint": ck, "mixed_precision": None, **r})
    r = run_worker({"kind": "lpd", "n": lpd_n, "n_iter": 4, "width": width, "checkpoint": False,
                    "mixed_precision": "bfloat16", "threads": threads})
    result["lpd"].append({"n_iter": 4, "checkpoint": False, "mixed_precision": "bfloat16", **r})
    result["lpd_note"] = (
        f"LearnedPrimalDual on a {lpd_n}^3 cone problem ({lpd_n} views, detector {lpd_n} x {lpd_n + lpd_n // 2}), "
        f"5 primal and 5 dual channels, width {width}, float32, batch 1; one forward and backward per fresh "
        "process.")
    result["gpu_model"] = gpu_model()
    result["gpu_note"] = gpu_reading(result["gpu_model"])
    result["seconds_total"] = time.perf_counter() - started
    result["loadavg_at_end"] = list(os.getloadavg())
    write(args.out, result)
    print(f"wrote {args.out.with_suffix('.md')} in {result['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
