"""Benchmark of the precisionrecon NUFFT (finufft) against torchkbnufft on the CPU.

What is measured
----------------
Wall-clock time of one forward NUFFT (image -> k-space samples, finufft type 2) and one
adjoint NUFFT (samples -> image, type 1) of complex64 data: a ``N x N`` image (default 256²)
with ``C`` coils (default 8), on a 2-D radial trajectory of ``S`` full spokes (default 402)
of ``R`` samples (default 512, twice oversampled readout), all coils in one call:

* ours: ``pr.mr.NUFFT(traj, (C, N, N), eps=1e-6, ortho=False)`` (finufft plans cached in the
  operator, the coils stacked into finufft's ``n_trans``, ``nthreads = torch.get_num_threads()``);
* torchkbnufft: ``KbNufft`` / ``KbNufftAdjoint`` with their default settings (Kaiser-Bessel
  table interpolation, 6 neighbours, 2x oversampled grid) on a ``(1, C, N, N)`` image and the
  same trajectory as a ``(2, S * R)`` tensor.

Both are timed under ``torch.inference_mode()``, one untimed warm-up call each (plan and
table set-up) and ``--repeats`` timed calls, ours and torchkbnufft alternating run by run so
that the slow and fast phases of a shared machine affect both alike; the median is reported
(min and all samples in the JSON). The normal operator ``A^H A`` is timed too: ours composed
(``A.T(A(x))``), ours Toeplitz-embedded (``A.toeplitz()``), and torchkbnufft's ``ToepNufft``
(kernel from ``calc_toeplitz_kernel``), kernel set-up excluded.

Accuracy (the speed of a NUFFT means little without it): relative L2 error of each forward
and adjoint against finufft in float64 at ``eps = 1e-12`` on the same data.

Outputs (written atomically): a table on stdout, ``<out>/mr.json`` (raw timings, errors and
machine metadata, including the load average before and after the run) and ``<out>/mr.md``.

Usage::

    python benchmarks/mr.py                    # 256², 402 x 512 radial, 8 coils, 7 repeats
    python benchmarks/mr.py --repeats 11
    python benchmarks/mr.py --quick --out /tmp/x   # 32² smoke run

``--quick`` without ``--out`` writes to ``benchmarks/results/quick/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from precisionrecon import mr
from precisionrecon._io import atomic_write_text
from precisionrecon.bench import format_ms, load_average, machine_info

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
TARGET = 3.0  # torchkbnufft time / our time, forward and adjoint


# --------------------------------------------------------------------------- timing


def _timed_ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """One warm-up call each, then ``repeats`` rounds calling every function once per round."""
    warm = {name: _timed_ms(fn) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_timed_ms(fn))
    return {
        name: {
            "median_ms": statistics.median(s),
            "min_ms": min(s),
            "repeats": len(s),
            "warmup_ms": warm[name],
            "samples_ms": s,
            "interleaved_with": [other for other in fns if other != name],
        }
        for name, s in samples.items()
    }


def rel_l2(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.to(torch.complex128).reshape(-1), ref.to(torch.complex128).reshape(-1)
    return float(torch.linalg.vector_norm(a - ref) / torch.linalg.vector_norm(ref))


# --------------------------------------------------------------------------- the run


def run(n: int, spokes: int, readout: int, coils: int, eps: float, repeats: int, normal: bool) -> dict[str, Any]:
    import torchkbnufft as tkbn

    traj = mr.radial(spokes, readout)
    ktraj = traj.reshape(-1, 2).T.contiguous().to(torch.float32)  # torchkbnufft: (2, M), same units and order
    image = (mr.birdcage_maps((coils, n, n)) * mr.shepp_logan((n, n))).contiguous()  # coil images, complex64
    A = mr.NUFFT(traj, (coils, n, n), eps=eps, ortho=False)
    forward_tk = tkbn.KbNufft(im_size=(n, n))
    adjoint_tk = tkbn.KbNufftAdjoint(im_size=(n, n))
    image_tk = image[None]

    with torch.inference_mode():
        y = A(image)
        y_tk = y.reshape(1, coils, -1).contiguous()
        timings = {
            "forward": time_interleaved(
                {"ours": lambda: A(image), "torchkbnufft": lambda: forward_tk(image_tk, ktraj)}, repeats
            ),
            "adjoint": time_interleaved(
                {"ours": lambda: A.T(y), "torchkbnufft": lambda: adjoint_tk(y_tk, ktraj)}, repeats
            ),
        }
        if normal:
            toeplitz = A.toeplitz()
            t0 = time.perf_counter()
            toeplitz.kernel(torch.complex64)
            ours_kernel_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            kernel_tk = tkbn.calc_toeplitz_kernel(ktraj, (n, n))
            tk_kernel_ms = (time.perf_counter() - t0) * 1e3
            toep_tk = tkbn.ToepNufft()
            timings["normal"] = time_interleaved(
                {
                    "ours": lambda: A.T(A(image)),
                    "ours_toeplitz": lambda: toeplitz(image),
                    "torchkbnufft_toeplitz": lambda: toep_tk(image_tk, kernel_tk),
                },
                repeats,
            )
            timings["normal"]["ours_toeplitz"]["kernel_setup_ms"] = ours_kernel_ms
            timings["normal"]["torchkbnufft_toeplitz"]["kernel_setup_ms"] = tk_kernel_ms

        # accuracy against finufft in float64 at eps 1e-12 on the same data
        exact = mr.NUFFT(traj, (coils, n, n), eps=1e-12, ortho=False)
        ref_fwd = exact(image.to(torch.complex128))
        ref_adj = exact.T(y.to(torch.complex128))
        accuracy = {
            "forward": {
                "ours": rel_l2(A(image), ref_fwd),
                "torchkbnufft": rel_l2(forward_tk(image_tk, ktraj).reshape(ref_fwd.shape), ref_fwd),
            },
            "adjoint": {
                "ours": rel_l2(A.T(y), ref_adj),
                "torchkbnufft": rel_l2(adjoint_tk(y_tk, ktraj).reshape(ref_adj.shape), ref_adj),
            },
        }
        if normal:
            ref_normal = exact.T(exact(image.to(torch.complex128)))
            accuracy["normal"] = {
                "ours": rel_l2(A.T(A(image)), ref_normal),
                "ours_toeplitz": rel_l2(toeplitz(image), ref_normal),
                "torchkbnufft_toeplitz": rel_l2(toep_tk(image_tk, kernel_tk).reshape(ref_normal.shape), ref_normal),
            }
    ratios = {
        d: timings[d]["torchkbnufft"]["median_ms"] / timings[d]["ours"]["median_ms"] for d in ("forward", "adjoint")
    }
    return {
        "problem": {
            "image": [n, n],
            "coils": coils,
            "trajectory": "radial, full spokes uniformly over pi",
            "spokes": spokes,
            "readout": readout,
            "samples": spokes * readout,
            "dtype": "complex64",
            "ours": {"eps": eps, "upsampfac": A.upsampfac, "ortho": False},
            "torchkbnufft": {"numpoints": 6, "grid_size": [2 * n, 2 * n], "interpolation": "table (default)"},
        },
        "timings": timings,
        "ratios_torchkbnufft_over_ours": ratios,
        "accuracy_rel_l2_vs_finufft_fp64_eps1e-12": accuracy,
    }


# --------------------------------------------------------------------------- reporting


def markdown(result: dict[str, Any], meta: dict[str, Any]) -> str:
    m, p, t = meta["machine"], result["problem"], result["timings"]
    acc = result["accuracy_rel_l2_vs_finufft_fp64_eps1e-12"]
    ratios = result["ratios_torchkbnufft_over_ours"]
    n = p["image"][0]
    lines = [
        "# NUFFT benchmark: precisionrecon (finufft) vs torchkbnufft (CPU)",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpu_count']} cores ({m['cpus_usable']} usable) · "
        f"torch {m['torch']} ({m['torch_num_threads']} threads) · finufft {m['finufft']} · "
        f"torchkbnufft {m['torchkbnufft']} · load average before/after "
        f"{meta['loadavg_before']} / {meta['loadavg_after']}"
        + (" · **quick run: not representative**" if meta["quick"] else ""),
        "",
        f"{n}² image, {p['coils']} coils (one call), radial trajectory of {p['spokes']} spokes x {p['readout']} "
        f"samples ({p['samples']} points), complex64. Ours: finufft eps {p['ours']['eps']:g}, upsampfac "
        f"{p['ours']['upsampfac']:g}; torchkbnufft: defaults (6-point Kaiser-Bessel table, 2x grid). Median wall "
        f"time in ms of {meta['repeats']} runs after one warm-up, ours and torchkbnufft alternating run by run.",
        "",
        "| operation | ours (ms) | torchkbnufft (ms) | **torchkbnufft / ours** | target | status "
        "| ours rel. error | torchkbnufft rel. error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in ("forward", "adjoint"):
        r = ratios[d]
        lines.append(
            f"| {d} | {format_ms(t[d]['ours']['median_ms'])} | {format_ms(t[d]['torchkbnufft']['median_ms'])} "
            f"| **{r:.1f}x** | >= {TARGET:g}x | {'met' if r >= TARGET else 'NOT met'} "
            f"| {acc[d]['ours']:.1e} | {acc[d]['torchkbnufft']:.1e} |"
        )
    if "normal" in t:
        tn, an = t["normal"], acc["normal"]
        lines += [
            "",
            "Normal operator `A^H A` (kernel set-up excluded: ours "
            f"{format_ms(tn['ours_toeplitz']['kernel_setup_ms'])} ms, torchkbnufft "
            f"{format_ms(tn['torchkbnufft_toeplitz']['kernel_setup_ms'])} ms):",
            "",
            "| method | ms | rel. error |",
            "|---|---|---|",
            f"| ours `A.T(A(x))` | {format_ms(tn['ours']['median_ms'])} | {an['ours']:.1e} |",
            f"| ours Toeplitz (`A.toeplitz()`) | {format_ms(tn['ours_toeplitz']['median_ms'])} "
            f"| {an['ours_toeplitz']:.1e} |",
            f"| torchkbnufft `ToepNufft` | {format_ms(tn['torchkbnufft_toeplitz']['median_ms'])} "
            f"| {an['torchkbnufft_toeplitz']:.1e} |",
        ]
    lines += [
        "",
        "Relative errors are L2 errors against finufft in float64 at eps 1e-12 on the same data.",
    ]
    if meta.get("note"):
        lines += ["", f"Note: {meta['note']}"]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text, mode=0o644)  # results are meant to be shared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--image", type=int, default=256, help="image size N (N x N)")
    parser.add_argument("--spokes", type=int, default=402)
    parser.add_argument("--readout", type=int, default=512, help="samples per spoke")
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--eps", type=float, default=1e-6, help="finufft tolerance of ours")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-normal", action="store_true", help="skip the normal-operator timings")
    parser.add_argument("--quick", action="store_true", help="32² image, 24 x 64 radial, 2 coils (smoke run)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.image, args.spokes, args.readout, args.coils = 32, 24, 64, 2
    out = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)

    before = load_average()
    result = run(args.image, args.spokes, args.readout, args.coils, args.eps, args.repeats, not args.no_normal)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeats": args.repeats,
        "machine": machine_info(packages=("finufft", "torchkbnufft", "numpy")),
        "loadavg_before": before,
        "loadavg_after": load_average(),
        "note": args.note,
    }
    report = markdown(result, meta)
    write_atomic(out / "mr.json", json.dumps({"meta": meta, **result}, indent=2) + "\n")
    write_atomic(out / "mr.md", report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
