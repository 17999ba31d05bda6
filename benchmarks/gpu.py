"""GPU benchmark of the CUDA projectors (run by ``scripts/gpu-check``).

Cases (float32):

- 2-D parallel and fan, 256x256, 256 views, 256 detectors, batch 128 -- torch-radon's
  published setting (19,546 forward / 19,867 back-projections per second on a V100);
- 2-D parallel, 512x512, 720 views, batch 256 (physical limit about 46 ms on an H100);
- 3-D cone, 512^3 from 496 views of 1248x960, forward and back-projection (limit about
  64 ms for the back-projection on an H100);
- the CPU tables' cases: 2-D parallel batch 1 at 256² (180 views, 363 bins) and 512²
  (720 views, 725 bins) as in ``projectors.py``; the default FBP (``FBP(A)``, "auto") at
  256² and 512², 360 views, half-pixel detector, as in ``fbp.py``; 3-D cone 128³ and 256³
  (180 views of 192² / 360 views of 384²) as in the CPU cone table.

Next to every time: the fraction of the texture-rate limit, i.e. the time the device's
texture units (4 per SM at the maximum SM clock, one bilinear fetch per Joseph sample)
would need for the case's samples (about ``rays x n`` for an ``n``-wide volume) divided
by the measured time (:func:`texture_limit_ms`; our kernels do not use the texture units,
so this is the yardstick of a texture-based projector, not a hard bound).

Each is timed against a pure-PyTorch GPU implementation in the same run (our readable
reference, ``precisionrecon/_kernels/reference.py``, the same Joseph weights built as
gather/index_add on the GPU). The reference cannot hold the 3-D case in memory; it runs
on one view with a tenth of the detector rows and is scaled linearly to all rays.
Times are CUDA-event medians after a warm-up. Writes ``gpu.json`` and ``gpu.md`` to
``$OUT`` when set, else ``benchmarks/results/``.

Large volumes (issue 19, :func:`case_scale`): the 512^3 cone problem resident on the GPU,
chunked on the GPU within half its bytes, and streamed from pinned host memory through the
GPU (``ChunkedOperator(..., device="cpu")``), against the bare host<->device copies, which
tells how much of the copying the streams hide.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

import precisionrecon as pr
from precisionrecon._io import atomic_write_text
from precisionrecon._kernels import reference
from precisionrecon.bench import machine_info

# Physical limits on one H100 quoted by the issue (texture/interpolation throughput).
H100_LIMIT_MS = {"parallel-512-b256": 46.0, "cone-512-bp": 64.0}


def time_cuda(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def reference_ops(op: pr.XRayTransform, n_views: int | None = None):
    """Pure-PyTorch forward / adjoint on the GPU (optionally on the first n_views views)."""
    n, sp, off, det, beam, curved = op._args
    kn, ksp, koff = list(reversed(n)), list(reversed(sp)), list(reversed(off))
    nu, nv = det[-1], (det[0] if len(det) == 2 else 1)
    vec = op._vectors if n_views is None else op._vectors[:n_views]

    def fwd(x: torch.Tensor) -> torch.Tensor:
        return reference.forward(x, vec, kn, ksp, koff, nu, nv, beam, curved)

    def adj(y: torch.Tensor) -> torch.Tensor:
        return reference.adjoint(y.reshape(y.shape[0], -1), vec, kn, ksp, koff, nu, nv, beam, curved)

    return fwd, adj, vec.shape[0]


def case_2d(name: str, op: pr.XRayTransform, batch: int, repeats: int, ref_batch: int) -> dict:
    x = torch.rand(batch, *op.domain_shape, device="cuda")
    y = torch.rand(batch, *op.range_shape, device="cuda")
    fwd_ms = time_cuda(lambda: op(x), repeats)
    bp_ms = time_cuda(lambda: op.T(y), repeats)
    torch.use_deterministic_algorithms(True)
    try:
        bp_det_ms = time_cuda(lambda: op.T(y), max(1, repeats // 2))
    finally:
        torch.use_deterministic_algorithms(False)
    rf, ra, _ = reference_ops(op)
    xr, yr = x[:ref_batch], y[:ref_batch].reshape(ref_batch, -1)
    ref_fwd = time_cuda(lambda: rf(xr), 3, warmup=1) * batch / ref_batch
    ref_bp = time_cuda(lambda: ra(yr), 3, warmup=1) * batch / ref_batch
    row = {
        "case": name,
        "batch": batch,
        "forward_ms": fwd_ms,
        "back_ms": bp_ms,
        "back_deterministic_ms": bp_det_ms,
        "forward_images_per_s": batch / fwd_ms * 1e3,
        "back_images_per_s": batch / bp_ms * 1e3,
        "pytorch_forward_ms": ref_fwd,
        "pytorch_back_ms": ref_bp,
        "speedup_forward": ref_fwd / fwd_ms,
        "speedup_back": ref_bp / bp_ms,
        "pytorch_note": f"reference timed on batch {ref_batch}, scaled to {batch}",
    }
    return row


def case_cone(repeats: int, size: int, n_views: int, det: tuple[int, int]) -> dict:
    vol = pr.Volume((size,) * 3)
    geom = pr.ConeBeam3D(angles=pr.angles(n_views, arc=2 * math.pi), det_shape=det, det_spacing=(1.2, 1.2),
                         src_iso=2.0 * size, src_det=3.5 * size)
    op = pr.XRayTransform(vol, geom, device="cuda")
    x = torch.rand(1, *op.domain_shape, device="cuda")
    y = torch.empty(1, *op.range_shape, device="cuda")
    y.copy_(op(x))
    torch.cuda.synchronize()
    fwd_ms = time_cuda(lambda: op(x), repeats, warmup=1)
    bp_ms = time_cuda(lambda: op.T(y), repeats, warmup=1)
    # The reference builds (ray, slice, tap) tables: time it on one view with a tenth of
    # the detector rows and scale by the number of rays.
    rows = max(1, det[0] // 10)
    small_geom = pr.ConeBeam3D(angles=geom.angles[:1], det_shape=(rows, det[1]), det_spacing=(1.2, 1.2),
                               src_iso=2.0 * size, src_det=3.5 * size)
    small = pr.XRayTransform(vol, small_geom, device="cuda")
    rf, ra, _ = reference_ops(small)
    ys = torch.rand(1, rows * det[1], device="cuda")
    scale = n_views * det[0] / rows
    try:
        ref_fwd = time_cuda(lambda: rf(x), 1, warmup=1) * scale
        ref_bp = time_cuda(lambda: ra(ys), 1, warmup=1) * scale
    except torch.OutOfMemoryError:
        ref_fwd = ref_bp = float("nan")
    ref_views = f"1 view x {rows} rows"
    return {
        "case": f"cone-{size}^3-{n_views}x{det[0]}x{det[1]}",
        "batch": 1,
        "forward_ms": fwd_ms,
        "back_ms": bp_ms,
        "pytorch_forward_ms": ref_fwd,
        "pytorch_back_ms": ref_bp,
        "speedup_forward": ref_fwd / fwd_ms,
        "speedup_back": ref_bp / bp_ms,
        "pytorch_note": f"reference timed on {ref_views}, scaled to all rays",
    }


def texture_rate() -> float:
    """Bilinear texture fetches per second of GPU 0: 4 texture units per SM at the maximum SM clock."""
    props = torch.cuda.get_device_properties(0)
    try:
        mhz = float(subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                                   capture_output=True, text=True).stdout.split()[0])
    except (OSError, ValueError, IndexError):
        mhz = float("nan")
    return 4.0 * props.multi_processor_count * mhz * 1e6


def texture_limit_ms(samples: float, rate: float) -> float:
    """Milliseconds the texture units need for ``samples`` bilinear fetches at ``rate`` per second."""
    return samples / rate * 1e3


def joseph_samples(op: pr.XRayTransform, batch: int) -> float:
    """About ``rays x n`` Joseph samples of one application (``n`` the widest volume axis)."""
    rays = math.prod(op.range_shape)
    return float(batch * rays * max(op.domain_shape))


def add_limits(row: dict, samples: float, rate: float) -> dict:
    """``row`` with the texture-rate limit and its fraction next to every time."""
    limit = texture_limit_ms(samples, rate)
    row["texture_limit_ms"] = limit
    for key in ("forward_ms", "back_ms"):
        if key in row:
            row[key.replace("_ms", "_texture_fraction")] = limit / row[key]
    return row


def case_fbp(name: str, size: int, views: int, batch: int, repeats: int) -> dict:
    """The default FBP (``backprojector="auto"``) of ``batch`` sinograms, half-pixel detector."""
    det = 2 * math.ceil(math.sqrt(2.0) * size)
    A = pr.XRayTransform(pr.Volume((size, size)), pr.ParallelBeam2D(angles=pr.angles(views), det_count=det,
                                                                     det_spacing=0.5), device="cuda")
    fbp = pr.FBP(A)
    y = torch.rand(batch, *A.range_shape, device="cuda")
    with torch.inference_mode():
        ms = time_cuda(lambda: fbp(y), repeats)
    return {"case": name, "batch": batch, "back_ms": ms, "forward_ms": float("nan"), "speedup_forward": float("nan"),
            "speedup_back": float("nan"), "backprojector_used": fbp.backprojector_used,
            "pytorch_note": f"FBP(A), auto = {fbp.backprojector_used}: the whole reconstruction in the back column"}


def cpu_table_cases(quick: bool, repeats: int, rate: float) -> list[dict]:
    """The cases of the CPU tables (projectors.py batch 1, fbp.py default FBP, the 3-D cone table)."""
    rows = []
    for size, views in ((64, 30),) if quick else ((256, 180), (512, 720)):
        det = math.ceil(math.sqrt(2.0) * size)
        op = pr.XRayTransform(pr.Volume((size, size)), pr.ParallelBeam2D(angles=pr.angles(views), det_count=det),
                              device="cuda")
        rows.append(add_limits(case_2d(f"parallel-{size}-{views}v-b1", op, 1, repeats, ref_batch=1),
                               joseph_samples(op, 1), rate))
        print(rows[-1], flush=True)
    for size in (64,) if quick else (256, 512):
        row = case_fbp(f"fbp-default-{size}-360v", size, 360, 1, repeats)
        rows.append(add_limits(row, float(360 * size * size * 4), rate))  # about 4 bins per pixel and view
        print(rows[-1], flush=True)
    for size, views, det in ((32, 24, (48, 48)),) if quick else ((128, 180, (192, 192)), (256, 360, (384, 384))):
        row = case_cone(max(2, repeats // 2), size, views, det)
        rows.append(add_limits(row, float(views * det[0] * det[1] * size), rate))
        print(rows[-1], flush=True)
    return rows


def machine() -> dict:
    props = torch.cuda.get_device_properties(0)
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        driver = "unknown"
    return {
        **machine_info(),
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "driver": driver,
        "cuda": torch.version.cuda,
    }


def time_wall(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median milliseconds of ``fn`` by the host clock, synchronising the device (for calls
    that use several streams)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def case_scale(repeats: int, size: int, n_views: int, det: tuple[int, int]) -> dict:
    """Resident, chunked-on-device and host-streamed cone projection of one problem."""
    vol = pr.Volume((size,) * 3)
    geom = pr.ConeBeam3D(angles=pr.angles(n_views, arc=2 * math.pi), det_shape=det, det_spacing=(1.2, 1.2),
                         src_iso=2.0 * size, src_det=3.5 * size)
    op = pr.XRayTransform(vol, geom, device="cuda")
    problem = 4 * (math.prod(vol.shape) + math.prod(geom.proj_shape))
    budget = problem // 2  # half the problem (block_bytes counts twice): about four blocks
    on_device = pr.ChunkedOperator(op, max_bytes=budget)
    streamed = pr.ChunkedOperator(op, max_bytes=budget, device="cpu")
    x_host = torch.rand(1, *op.domain_shape).pin_memory()
    y_host = torch.empty(1, *op.range_shape).pin_memory()
    x, y = x_host.cuda(), op(x_host.cuda())
    y_host.copy_(y)
    plan = on_device.plan(1, torch.float32)
    row = {
        "case": f"scale-cone-{size}^3-{n_views}x{det[0]}x{det[1]}",
        "plan": f"{len(plan.slabs)} slabs x {len(plan.views)} view ranges",
        "resident_forward_ms": time_cuda(lambda: op(x), repeats),
        "resident_back_ms": time_cuda(lambda: op.T(y), repeats),
        "chunked_forward_ms": time_wall(lambda: on_device(x), repeats),
        "chunked_back_ms": time_wall(lambda: on_device.T(y), repeats),
        "streamed_forward_ms": time_wall(lambda: streamed(x_host), repeats),
        "streamed_back_ms": time_wall(lambda: streamed.T(y_host), repeats),
        "copy_volume_ms": time_wall(lambda: x_host.cuda(non_blocking=True), repeats),
        "copy_projections_ms": time_wall(lambda: y.to("cpu", non_blocking=True), repeats),
    }
    ref_x, ref_y = op(x).cpu(), op.T(y).cpu()
    row["streamed_forward_rel"] = float((streamed(x_host) - ref_x).norm() / ref_x.norm())
    row["streamed_back_rel"] = float((streamed.T(y_host) - ref_y).norm() / ref_y.norm())
    return row


def write(out_dir: Path, result: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# GPU projector benchmark",
        "",
        f"{result['machine']['gpu']}, driver {result['machine']['driver']}, torch {result['machine']['torch']} "
        f"(CUDA {result['machine']['cuda']}). float32, CUDA-event medians. `scripts/gpu-check` wrote this file.",
        "",
        "| Case | Batch | Forward ms (texture limit / time) | Back ms (texture limit / time) | Forward img/s "
        "| Back img/s | vs PyTorch fwd | vs PyTorch back |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        fwd_f, back_f = r.get("forward_texture_fraction", float("nan")), r.get("back_texture_fraction", float("nan"))
        lines.append(
            f"| {r['case']} | {r['batch']} | {r['forward_ms']:.2f} ({fwd_f:.2f}) | {r['back_ms']:.2f} ({back_f:.2f}) | "
            f"{r.get('forward_images_per_s', float('nan')):.0f} | {r.get('back_images_per_s', float('nan')):.0f} | "
            f"{r['speedup_forward']:.1f}x | {r['speedup_back']:.1f}x |"
        )
    lines += ["", "Notes:"]
    lines += [f"- {r['case']}: {r['pytorch_note']}" for r in result["rows"]]
    for key, limit in H100_LIMIT_MS.items():
        lines.append(f"- physical limit on one H100 for {key}: about {limit} ms")
    lines += [f"- {k}: {v}" for k, v in result.get("fractions", {}).items()]
    for r in result.get("scale_rows", []):
        lines += ["", f"## Large volumes: {r['case']} ({r['plan']} at half the problem's bytes)", "",
                  "| Path | Forward ms | Back ms |", "|---|---|---|"]
        for path in ("resident", "chunked", "streamed"):
            lines.append(f"| {path} | {r[f'{path}_forward_ms']:.1f} | {r[f'{path}_back_ms']:.1f} |")
        lines += ["", f"Bare copies: volume to the device {r['copy_volume_ms']:.1f} ms, projections to the host "
                  f"{r['copy_projections_ms']:.1f} ms. Streamed against resident: relative L2 "
                  f"{r['streamed_forward_rel']:.1e} (forward), {r['streamed_back_rel']:.1e} (back)."]
    for name, text in (("gpu.json", json.dumps(result, indent=2)), ("gpu.md", "\n".join(lines) + "\n")):
        atomic_write_text(out_dir / name, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to benchmark")
        return 0
    out_dir = args.out or Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    rows = []
    size, views, det, batch = (64, 64, 64, 16) if args.quick else (256, 256, 256, 128)
    par = pr.XRayTransform(pr.Volume((size, size)), pr.ParallelBeam2D(angles=pr.angles(views), det_count=det),
                           device="cuda")
    fan = pr.XRayTransform(
        pr.Volume((size, size)),
        pr.FanBeam2D(angles=pr.angles(views, arc=2 * math.pi), det_count=det, det_spacing=2.0, src_iso=2.0 * size,
                     src_det=4.0 * size), device="cuda"
    )
    rows.append(case_2d(f"parallel-{size}-{views}v-b{batch}", par, batch, args.repeats, ref_batch=4))
    print(rows[-1], flush=True)
    rows.append(case_2d(f"fan-{size}-{views}v-b{batch}", fan, batch, args.repeats, ref_batch=4))
    print(rows[-1], flush=True)
    big = (128, 180, 32) if args.quick else (512, 720, 256)
    par512 = pr.XRayTransform(pr.Volume((big[0], big[0])),
                              pr.ParallelBeam2D(angles=pr.angles(big[1]), det_count=big[0]), device="cuda")
    rows.append(case_2d(f"parallel-{big[0]}-{big[1]}v-b{big[2]}", par512, big[2], max(3, args.repeats // 2),
                        ref_batch=2))
    print(rows[-1], flush=True)
    cone = (64, 48, (96, 80)) if args.quick else (512, 496, (960, 1248))
    rows.append(case_cone(max(2, args.repeats // 4), *cone))
    print(rows[-1], flush=True)
    rate = texture_rate()
    for r, op, b in ((rows[0], par, batch), (rows[1], fan, batch), (rows[2], par512, big[2])):
        add_limits(r, joseph_samples(op, b), rate)
    add_limits(rows[3], float(cone[1] * cone[2][0] * cone[2][1] * cone[0]), rate)
    rows += cpu_table_cases(args.quick, args.repeats, rate)
    result = {"machine": machine(), "texture_fetches_per_s": rate, "rows": rows}
    if not args.quick:
        result["fractions"] = {
            "parallel-512-b256 forward, limit / time": H100_LIMIT_MS["parallel-512-b256"] / rows[2]["forward_ms"],
            "parallel-512-b256 back, limit / time": H100_LIMIT_MS["parallel-512-b256"] / rows[2]["back_ms"],
            "cone-512 back-projection, limit / time": H100_LIMIT_MS["cone-512-bp"] / rows[3]["back_ms"],
        }
    scale = (64, 48, (96, 80)) if args.quick else (512, 496, (960, 1248))
    result["scale_rows"] = [case_scale(max(2, args.repeats // 4), *scale)]
    print(result["scale_rows"][-1], flush=True)
    write(out_dir, result)
    print(f"wrote {out_dir / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
