"""Cost of the geometry gradient relative to the plain backward pass.

For each case: median time of forward + backward with respect to the image only (the
adjoint), and of forward + backward with respect to the image and the per-view vectors
(adds the kernel-side sensitivities and the autograd chain rule through the ray set-up),
in the same run, interleaved. Writes ``geometry_grad.json`` / ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

import precisionrecon as pr
from precisionrecon._io import atomic_write_text
from precisionrecon.bench import machine_info


def cases(quick: bool) -> dict:
    n, v = (64, 60) if quick else (256, 180)
    m = 24 if quick else 64
    return {
        f"parallel 2-D {n}², {v} views": (pr.Volume((n, n)), pr.ParallelBeam2D(angles=pr.angles(v),
                                                                            det_count=int(1.5 * n))),
        f"fan 2-D {n}², {v} views": (pr.Volume((n, n)), pr.FanBeam2D(angles=pr.angles(v, arc=2 * math.pi),
                                                                     det_count=int(1.5 * n), det_spacing=1.0,
                                                                     src_iso=2.0 * n, src_det=3.5 * n)),
        f"cone 3-D {m}³, {m} views": (pr.Volume((m, m, m)), pr.ConeBeam3D(angles=pr.angles(m, arc=2 * math.pi),
                                                                          det_shape=(m, int(1.5 * m)),
                                                                          det_spacing=1.0, src_iso=2.0 * m,
                                                                          src_det=3.5 * m)),
    }


def time_case(P: pr.ParametricXRayTransform, x: torch.Tensor, vec0: torch.Tensor, g: torch.Tensor,
              repeats: int) -> dict[str, list[float]]:
    """Interleaved wall times of backward wrt the image only and wrt image and vectors."""

    def image_only() -> None:
        (P(x, vec0) * g).sum().backward()

    def with_geometry() -> None:
        vec = vec0.clone().requires_grad_(True)
        (P(x, vec) * g).sum().backward()

    times: dict[str, list[float]] = {"image": [], "geometry": []}
    for fn in (image_only, with_geometry):
        fn()  # warm-up
    for _ in range(repeats):
        for key, fn in (("image", image_only), ("geometry", with_geometry)):
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    rows = []
    for name, (vol, geom) in cases(args.quick).items():
        P = pr.ParametricXRayTransform(vol, det_shape=geom.det_shape, beam=geom.beam,
                                       detector="curved" if geom.curved else "flat")
        times = time_case(P, torch.rand(vol.shape, requires_grad=True), geom.to_vectors(),
                          torch.rand(geom.proj_shape), args.repeats)
        img, geo = statistics.median(times["image"]), statistics.median(times["geometry"])
        rows.append({"case": name, "image_ms": 1e3 * img, "image_and_geometry_ms": 1e3 * geo, "ratio": geo / img})
        print(rows[-1], flush=True)
    machine = machine_info()
    meta = {"machine": machine, "threads": machine["torch_num_threads"], "torch": machine["torch"],
            "repeats": args.repeats}
    lines = ["# Cost of the geometry gradient", "",
             f"float32 image, float64 vectors; forward + backward; median of {args.repeats} interleaved runs; "
             f"{meta['threads']} threads, torch {meta['torch']}. `benchmarks/geometry_grad.py` wrote this file.", "",
             "| case | grad wrt image (ms) | grad wrt image and vectors (ms) | ratio |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['image_ms']:.1f} | {r['image_and_geometry_ms']:.1f} | {r['ratio']:.2f}x |"
              for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    for fname, text in (("geometry_grad.md", "\n".join(lines) + "\n"),
                        ("geometry_grad.json", json.dumps({"meta": meta, "rows": rows}, indent=2))):
        atomic_write_text(args.out / fname, text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
