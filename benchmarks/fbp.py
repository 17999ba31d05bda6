"""Benchmark of filtered back-projection: precisionrecon vs ASTRA (CPU), ODL and scikit-image.

What is measured
----------------
Image quality (PSNR, SSIM) and wall-clock time of one FBP reconstruction of the exact
parallel-beam sinogram of the 256 x 256 modified Shepp-Logan phantom (1 mm pixels, values
0 to 1), 360 views equispaced over pi, by

* ours: :class:`precisionrecon.FBP` with ``backprojector="auto"`` (the row that counts;
  the table names what "auto" chose) and, for transparency, the other back-projectors;
* ASTRA's CPU ``FBP`` algorithm with each of its parallel-beam projectors ``linear``,
  ``line`` and ``strip`` (ASTRA's CPU FBP takes only the ``parallel`` geometry type: its
  vectors are checked against :func:`precisionrecon.interop.to_astra`'s ``parallel_vec``,
  the volume geometry is ``to_astra``'s);
* ODL's ``fbp_op`` on ``RayTransform(impl="astra_cpu")`` (ODL's default projector for
  this geometry, ASTRA ``linear``) over the space and geometry of
  :func:`precisionrecon.interop.to_odl`;
* scikit-image's ``iradon`` (see "detectors" below);

all with the Ram-Lak filter and again with the Hann window (full cutoff, zero padding
as each library does it; ODL with ``padding=True``).

Data (no inverse crime): the sinogram is computed in closed form from the ellipses
(:func:`precisionrecon.data.analytic_projection`), each detector cell the mean of
sub-rays through the centres of equal parts of the cell (``oversample``), i.e. box-shaped
detector cells of finite width, not point samples of the image grid. The reference is
the phantom rasterised as pixel means (8 x 8 sub-samples per pixel).

Detectors. *Fine* (the main table): pitch 0.5 mm (half the pixel), 728 bins, 4 sub-rays
per cell. *Pixel pitch*: 1 mm, 364 bins, 8 sub-rays per cell (the same 0.125 mm sub-ray
spacing). The 1 mm cells have their edges on the pixel edges at angle 0 (even count, as
scikit-image's grid), the 0.5 mm cells are their halves. scikit-image only runs on the
1 mm detector, because ``iradon`` ties the detector pitch to the pixel size. It also puts
the rotation axis on pixel ``(n // 2, n // 2)`` and detector bin ``n_det // 2`` on it,
where ours lie between the two central pixels and bins, so it gets the exact sinogram of
the phantom moved by (-0.5, -0.5) mm on the detector moved by -0.5 mm: the same object
and cells at the same places relative to its grid. Angles in degrees, ``circle=False``,
``output_size=256``, ``filter_name="ramp"`` / ``"hann"``, linear interpolation.

Metrics: :func:`precisionrecon.metrics.psnr` and ``ssim`` over the whole image (no mask),
``data_range = 1`` (the phantom's range), 7 x 7 uniform SSIM window; "level" is the mean
reconstruction over the pixels of the brain (value 0.2, 3 pixels away from any edge)
divided by 0.2, a check of the scale.

Timing: all methods of one detector and filter alternate run by run (interleaved, after
one untimed warm-up each), median of ``--repeats`` runs. Only the reconstruction call is
timed (operators, ASTRA algorithms and ODL operators are built beforehand). Ours runs
float32 with ``torch.get_num_threads()`` threads and again with 1 thread; ASTRA's CPU FBP
is single-threaded, ODL (ASTRA back-projection, NumPy FFT) and scikit-image (NumPy) too.

Outputs (written atomically): ``<out>/fbp.json`` (all numbers and machine metadata),
``<out>/fbp.md`` (tables) and ``<out>/fbp.png`` (phantom, reconstructions and error maps).

Usage::

    python benchmarks/fbp.py                       # 256², 360 views, 5 repeats
    python benchmarks/fbp.py --repeats 9
    python benchmarks/fbp.py --quick --out /tmp/x  # 32², 24 views smoke run

``--quick`` without ``--out`` writes to ``benchmarks/results/quick/`` so that a smoke run
never overwrites the full results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from projectors import busy_warning, time_call, time_interleaved, write_atomic
from scipy.ndimage import binary_erosion

import precisionrecon as pr
from precisionrecon._io import atomic_write_bytes
from precisionrecon.bench import format_ms, load_average, machine_info
from precisionrecon.interop import to_astra, to_odl

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
SIZE, VIEWS = 256, 360
QUICK_SIZE, QUICK_VIEWS = 32, 24
REF_OVERSAMPLE = 8  # sub-samples per pixel and axis of the reference
SUB_RAY = 0.125  # mm between the sub-rays of a detector cell
BRAIN = 0.2  # value of the modified Shepp-Logan's second ellipse (the "level" region)
DATA_RANGE = 1.0
# (our window, ASTRA FilterType, ODL filter_type, scikit-image filter_name)
FILTERS = (("ram-lak", "ram-lak", "Ram-Lak", "ramp"), ("hann", "hann", "Hann", "hann"))
ASTRA_PROJECTORS = ("linear", "line", "strip")
OUR_KINDS = ("voxel", "voxel-mean", "footprint", "adjoint")
SLOW_BUDGET_S = 60.0  # time budget of a slow peer's timed runs (diffct's CPU fallback)


@dataclass(frozen=True)
class Detector:
    """One detector configuration."""

    name: str
    pitch: float  # mm
    count: int
    oversample: int  # sub-rays per cell

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "det_spacing_mm": self.pitch,
            "det_count": self.count,
            "oversample": self.oversample,
            "sub_ray_spacing_mm": self.pitch / self.oversample,
        }


def detectors(n: int) -> list[Detector]:
    """Fine (half-pixel pitch) and pixel-pitch detectors covering the image diagonal.

    The pixel-pitch cells have their edges where the pixels have theirs at angle 0 (for an
    even ``n``: an even count), as in scikit-image; the fine cells are their halves.
    """
    coarse = math.ceil(math.sqrt(2.0) * n)
    coarse += (coarse - n) % 2
    return [
        Detector("fine", 0.5, 2 * coarse, round(0.5 / SUB_RAY)),
        Detector("pixel", 1.0, coarse, round(1.0 / SUB_RAY)),
    ]


# --------------------------------------------------------------------------- peers


def import_peers() -> dict[str, Any]:
    """The optional peers: module or a note why it is missing."""
    peers: dict[str, Any] = {}
    try:  # ODL first: `import odl` sets SCIPY_ARRAY_API for the process
        import odl
        from odl.applications import tomo

        peers["odl"] = (odl, tomo)
    except Exception as exc:
        peers["odl"] = f"ODL not importable ({type(exc).__name__}: {exc})"
    try:
        import astra

        peers["astra"] = astra
    except Exception as exc:
        peers["astra"] = f"ASTRA not importable ({type(exc).__name__}: {exc})"
    for name in ("torchtomo", "diffct", "deepinv"):
        try:
            peers[name] = __import__(name)
        except Exception as exc:
            peers[name] = f"{name} not importable ({type(exc).__name__}: {exc})"
    try:
        import skimage
        from skimage.transform import iradon

        peers["skimage"] = (skimage, iradon)
    except Exception as exc:
        peers["skimage"] = f"scikit-image not importable ({type(exc).__name__}: {exc})"
    return peers


class AstraFBP:
    """ASTRA's CPU FBP algorithm for one projector and filter on one sinogram."""

    def __init__(
        self, astra: Any, vol: pr.Volume, geom: pr.ParallelBeam2D, sino: np.ndarray, projector: str, filt: str
    ) -> None:
        self.astra = astra
        vol_geom, vec_geom = to_astra(vol, geom)
        # ASTRA's CPU FBP accepts only the 'parallel' type: the same rays as to_astra's
        # parallel_vec (up to the direction of the ray vector, which a line integral ignores)
        proj_geom = astra.create_proj_geom("parallel", geom.det_spacing, geom.det_count, np.asarray(geom.angles))
        ours, theirs = vec_geom["Vectors"], astra.geom_2vec(proj_geom)["Vectors"]
        ray_diff = np.minimum(np.abs(ours[:, :2] - theirs[:, :2]), np.abs(ours[:, :2] + theirs[:, :2])).max()
        if ray_diff > 1e-9 or np.abs(ours[:, 2:] - theirs[:, 2:]).max() > 1e-9:
            raise RuntimeError("ASTRA's 'parallel' geometry does not match to_astra's parallel_vec")
        self.proj_id = astra.create_projector(projector, proj_geom, vol_geom)
        self.sino_id = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(sino, dtype=np.float32))
        self.rec_id = astra.data2d.create("-vol", vol_geom, 0.0)
        cfg = astra.astra_dict("FBP")
        cfg.update(ProjectorId=self.proj_id, ProjectionDataId=self.sino_id, ReconstructionDataId=self.rec_id)
        cfg["FilterType"] = filt
        self.alg_id = astra.algorithm.create(cfg)

    def run(self) -> np.ndarray:
        self.astra.algorithm.run(self.alg_id)
        return self.astra.data2d.get_shared(self.rec_id)

    def free(self) -> None:
        self.astra.algorithm.delete(self.alg_id)
        self.astra.data2d.delete([self.sino_id, self.rec_id])
        self.astra.projector.delete(self.proj_id)


# --------------------------------------------------------------------------- one configuration


@dataclass
class Method:
    key: str
    label: str
    run: Callable[[], Any]  # the timed call
    output: Callable[[Any], np.ndarray]  # its result as a (n, n) float64 array
    info: dict[str, Any]


def level_mask(ref: np.ndarray) -> np.ndarray:
    """Brain pixels (value 0.2) at least 3 pixels away from any edge."""
    return binary_erosion(np.abs(ref - BRAIN) < 1e-9, iterations=3)


def quality(rec: np.ndarray, ref_t: torch.Tensor, mask: np.ndarray) -> dict[str, float]:
    x = torch.from_numpy(np.asarray(rec, dtype=np.float64))
    return {
        "psnr_db": float(pr.metrics.psnr(x, ref_t, data_range=DATA_RANGE)),
        "ssim": float(pr.metrics.ssim(x, ref_t, data_range=DATA_RANGE)),
        "level": float(rec[mask].mean() / BRAIN) if mask.any() else float("nan"),
    }


def threaded(fn: Callable[[], Any], n_threads: int) -> Callable[[], Any]:
    """``fn`` run with ``n_threads`` torch threads under ``torch.inference_mode``."""

    def call() -> Any:
        old = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        try:
            with torch.inference_mode():
                return fn()
        finally:
            torch.set_num_threads(old)

    return call


def build_methods(
    det: Detector,
    filt: tuple[str, str, str, str],
    vol: pr.Volume,
    geom: pr.ParallelBeam2D,
    sino: torch.Tensor,
    sk_sino: np.ndarray | None,
    peers: dict[str, Any],
    threads: int,
    cleanup: list[Callable[[], None]],
) -> tuple[list[Method], list[str]]:
    ours_f, astra_f, odl_f, sk_f = filt
    A = pr.XRayTransform(vol, geom)
    methods: list[Method] = []
    notes: list[str] = []
    auto = pr.FBP(A, ours_f)

    def ours(fbp: pr.FBP, n_threads: int) -> Callable[[], Any]:
        return threaded(lambda: fbp(sino), n_threads)

    def from_torch(t: Any) -> np.ndarray:
        return t.double().numpy()

    used = auto.backprojector_used
    methods.append(
        Method(
            "ours",
            f"**ours** (auto = {used})",
            ours(auto, threads),
            from_torch,
            {"backprojector": "auto", "backprojector_used": used, "threads": threads},
        )
    )
    methods.append(
        Method(
            "ours_1thread",
            f"ours (auto = {used}), 1 thread",
            ours(auto, 1),
            from_torch,
            {"backprojector": "auto", "backprojector_used": used, "threads": 1},
        )
    )
    for kind in OUR_KINDS:
        fbp = pr.FBP(A, ours_f, backprojector=kind)
        if kind == used or (kind == "voxel-mean" and isinstance(fbp.backprojection, pr.VoxelBackprojection)):
            continue  # the same as a row above (one sub-pixel: "voxel-mean" is "voxel")
        methods.append(
            Method(
                f"ours_{kind}",
                f"ours ({kind})",
                ours(fbp, threads),
                from_torch,
                {"backprojector": kind, "threads": threads},
            )
        )

    methods += torch_peer_methods(filt, vol, geom, sino, peers, threads, notes)

    astra = peers["astra"]
    sino_np = sino.numpy()
    if isinstance(astra, str):
        notes.append(f"ASTRA skipped: {astra}")
    else:
        for proj in ASTRA_PROJECTORS:
            runner = AstraFBP(astra, vol, geom, sino_np, proj, astra_f)
            cleanup.append(runner.free)
            methods.append(
                Method(
                    f"astra_{proj}",
                    f"ASTRA FBP '{proj}'",
                    runner.run,
                    lambda a: np.array(a, dtype=np.float64),
                    {"projector": proj, "FilterType": astra_f, "threads": 1},
                )
            )

    odl_peer = peers["odl"]
    if isinstance(odl_peer, str):
        notes.append(f"ODL skipped: {odl_peer}")
    else:
        _, tomo = odl_peer
        space, odl_geom = to_odl(vol, geom, dtype="float32")
        ray = tomo.RayTransform(space, odl_geom, impl="astra_cpu")
        fbp_odl = tomo.fbp_op(ray, padding=True, filter_type=odl_f, frequency_scaling=1.0)
        methods.append(
            Method(
                "odl",
                "ODL fbp_op (astra_cpu)",
                lambda: fbp_odl(sino_np),
                lambda e: np.asarray(e.asarray(), dtype=np.float64),
                {"filter_type": odl_f, "impl": "astra_cpu", "padding": True, "threads": 1},
            )
        )

    sk = peers["skimage"]
    if sk_sino is not None:
        if isinstance(sk, str):
            notes.append(f"scikit-image skipped: {sk}")
        else:
            _, iradon = sk
            theta = np.degrees(np.asarray(geom.angles))
            sk_in = np.ascontiguousarray(sk_sino.T)  # (n_det, n_views)
            n = vol.shape[0]
            methods.append(
                Method(
                    "skimage",
                    "scikit-image iradon",
                    lambda: iradon(sk_in, theta=theta, output_size=n, filter_name=sk_f, circle=False),
                    lambda a: np.asarray(a, dtype=np.float64),
                    {
                        "filter_name": sk_f,
                        "interpolation": "linear",
                        "circle": False,
                        "threads": 1,
                        "input": "sinogram of the phantom moved by (-0.5, -0.5) mm (rotation axis on pixel n // 2)",
                    },
                )
            )
    return methods, notes


# the window names of the PyTorch peers (None: the peer has no such window)
TORCHTOMO_FILTERS = {"ram-lak": "ramp", "hann": "hann"}
DIFFCT_FILTERS = {"ram-lak": "ram-lak", "hann": "hann"}


def torch_peer_methods(
    filt: tuple[str, str, str, str],
    vol: pr.Volume,
    geom: pr.ParallelBeam2D,
    sino: torch.Tensor,
    peers: dict[str, Any],
    threads: int,
    notes: list[str],
) -> list[Method]:
    """torchtomo's and diffct's FBP (PyTorch on the CPU, ``threads`` threads, as ours)."""
    methods: list[Method] = []
    n, views, count = vol.shape[0], len(geom.angles), geom.det_count

    tt = peers["torchtomo"]
    if isinstance(tt, str):
        notes.append(f"torchtomo skipped: {tt}")
    else:
        # torchtomo's own geometry: pixel centres and detector bins on linspace(-1, 1), i.e. the
        # detector spans the image width (n - 1 pixels between the outer centres), same bin count
        # and angles; its sinogram is computed exactly as ours, for that detector
        tt_geom = geom.replace(det_spacing=(n - 1) * vol.spacing[0] / (count - 1))
        tt_sino = pr.data.analytic_projection(
            pr.data.shepp_logan_2d(vol), tt_geom, oversample=max(1, round(tt_geom.det_spacing / SUB_RAY)),
            dtype=torch.float32,
        )[None, None]
        proj = tt.ParallelBeam(img_size=n, n_angles=views, n_det=count, circle=False)
        ref = pr.data.rasterize(pr.data.shepp_logan_2d(vol), vol, oversample=REF_OVERSAMPLE)
        with torch.inference_mode():
            first = proj.fbp(tt_sino, TORCHTOMO_FILTERS[filt[0]])[0, 0].double()
        # its output is not in density units: scaled by the least-squares factor against the reference
        scale = float((first * ref).sum() / (first * first).sum())
        methods.append(
            Method(
                "torchtomo",
                "torchtomo ParallelBeam.fbp (own geometry, LS-scaled)",
                threaded(lambda: proj.fbp(tt_sino, TORCHTOMO_FILTERS[filt[0]]), threads),
                lambda t: t[0, 0].double().numpy() * scale,
                {"filter_name": TORCHTOMO_FILTERS[filt[0]], "threads": threads, "ls_scale": scale,
                 "det_spacing_mm": tt_geom.det_spacing, "backend": "torch"},
            )
        )
    dc = peers["diffct"]
    if isinstance(dc, str):
        notes.append(f"diffct skipped: {dc}")
    else:
        angles = torch.tensor(geom.angles, dtype=torch.float32)
        traj = dc.circular_trajectory_2d_parallel(angles, device="cpu")

        def diffct_fbp() -> Any:
            return dc.fbp(sino, traj, (n, n), angles, beam="parallel", detector_spacing=geom.det_spacing,
                          voxel_spacing=vol.spacing[0], window=DIFFCT_FILTERS[filt[0]])

        methods.append(
            Method(
                "diffct",
                "diffct fbp (CPU fallback)",
                threaded(diffct_fbp, threads),
                lambda t: t.double().numpy().T,  # diffct's volume is (x, y)
                {"window": DIFFCT_FILTERS[filt[0]], "threads": threads, "slow": True},
            )
        )
    if isinstance(peers["deepinv"], str):
        notes.append(f"DeepInverse skipped: {peers['deepinv']}")
    return methods


def filter_timing(vol: pr.Volume, geom: pr.ParallelBeam2D, filt: str, sino: torch.Tensor, repeats: int,
                  threads: int) -> dict[str, Any]:
    """Time of ours' steps before the back-projection (weights, ramp filter and, for the footprint,
    its prefilter) against the whole FBP, interleaved, ``threads`` threads."""
    fbp = pr.FBP(pr.XRayTransform(vol, geom), filt)
    back = fbp.backprojection
    # the footprint back-projector is VoxelBackprojection @ prefilter (a RampFilter)
    prefilter = back.right if isinstance(getattr(back, "right", None), pr.operators.RampFilter) else None

    def steps() -> Any:
        y = fbp.ramp(fbp.pre(sino))
        return prefilter(y) if prefilter is not None else y

    t = time_interleaved({"filtering": threaded(steps, threads), "fbp": threaded(lambda: fbp(sino), threads)}, repeats)
    return {"backprojector_used": fbp.backprojector_used, "filtering_ms": t["filtering"]["median_ms"],
            "fbp_ms": t["fbp"]["median_ms"], "fft_length": pr.operators.filters.fft_length(geom.det_count),
            "prefilter": prefilter is not None, "threads": threads}


def run_config(
    det: Detector, n: int, views: int, repeats: int, peers: dict[str, Any], threads: int
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    vol = pr.Volume((n, n))
    geom = pr.ParallelBeam2D(angles=pr.angles(views), det_count=det.count, det_spacing=det.pitch)
    phantom = pr.data.shepp_logan_2d(vol)
    ref = pr.data.rasterize(phantom, vol, oversample=REF_OVERSAMPLE).numpy()
    ref_t = torch.from_numpy(ref)
    mask = level_mask(ref)
    sino = pr.data.analytic_projection(phantom, geom, oversample=det.oversample, dtype=torch.float32)
    sk_sino = None
    if det.pitch == vol.spacing[0]:
        # scikit-image's rotation axis is pixel n // 2 and its bin n_det // 2: the phantom
        # and the detector move by what separates those from our centres (half a pixel, half
        # a bin for even counts), so its image and its cells sit on the grid as ours do
        shift = -(n // 2 - (n - 1) / 2) * vol.spacing[0]
        moved = pr.data.shepp_logan_2d(vol, center=(shift, shift))
        sk_geom = geom.replace(det_offset=-(det.count // 2 - (det.count - 1) / 2) * det.pitch)
        sk_sino = pr.data.analytic_projection(moved, sk_geom, oversample=det.oversample).numpy()
    out: dict[str, Any] = {**det.describe(), "filters": {}, "notes": []}
    images: dict[str, dict[str, np.ndarray]] = {"reference": {"phantom": ref}}
    for filt in FILTERS:
        cleanup: list[Callable[[], None]] = []
        try:
            methods, notes = build_methods(det, filt, vol, geom, sino, sk_sino, peers, threads, cleanup)
            out["notes"] += [m for m in notes if m not in out["notes"]]
            # one untimed run for the images and metrics, then the interleaved timing
            first = {m.key: m.output(m.run()).copy() for m in methods}
            timing = time_interleaved({m.key: m.run for m in methods if not m.info.get("slow")}, repeats)
            # peers that take seconds per call: one warm-up and as many runs as SLOW_BUDGET_S allows
            timing |= {m.key: time_call(m.run, repeats, SLOW_BUDGET_S) for m in methods if m.info.get("slow")}
            out.setdefault("filtering", {})[filt[0]] = filter_timing(vol, geom, filt[0], sino, repeats, threads)
            rows = []
            for m in methods:
                last = m.output(m.run())
                rows.append(
                    {
                        "key": m.key,
                        "label": m.label,
                        **m.info,
                        **quality(first[m.key], ref_t, mask),
                        "repeat_max_abs_diff": float(np.abs(last - first[m.key]).max()),
                        "time": timing[m.key],
                    }
                )
                print(
                    f"  {det.name:5s} {filt[0]:7s} {m.label:38s} PSNR {rows[-1]['psnr_db']:6.2f} dB  "
                    f"SSIM {rows[-1]['ssim']:.4f}  level {rows[-1]['level']:.4f}  "
                    f"{format_ms(timing[m.key]['median_ms'])} ms",
                    flush=True,
                )
        finally:
            for free in cleanup:
                free()
        out["filters"][filt[0]] = rows
        images[filt[0]] = first
    return out, images


# --------------------------------------------------------------------------- done-when and reports


def done_when(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours (auto) against every peer, per detector and filter: PSNR, and time (ours with the run's
    threads; the peers as they run: ASTRA, ODL single-threaded, torchtomo and diffct with the same
    threads as ours)."""
    checks = []
    for cfg in configs:
        for filt, rows in cfg["filters"].items():
            by_key = {r["key"]: r for r in rows}
            ours = by_key["ours"]["psnr_db"]
            others = [k for k in ("odl", "torchtomo", "diffct") if k in by_key]
            for peer in [k for k in by_key if k.startswith("astra_")] + others:
                theirs = by_key[peer]["psnr_db"]
                ours_ms, peer_ms = by_key["ours"]["time"]["median_ms"], by_key[peer]["time"]["median_ms"]
                checks.append(
                    {
                        "detector": cfg["name"],
                        "filter": filt,
                        "peer": peer,
                        "ours_psnr_db": ours,
                        "peer_psnr_db": theirs,
                        "margin_db": ours - theirs,
                        "status": "met" if ours >= theirs else "NOT met",
                        "ours_ms": ours_ms,
                        "peer_ms": peer_ms,
                        "speed_ratio": peer_ms / ours_ms,
                        "speed_status": "faster" if ours_ms < peer_ms else "NOT faster",
                    }
                )
    return checks


def results_table(cfg: dict[str, Any]) -> str:
    lines = [
        "| filter | method | PSNR (dB) | SSIM | level | time (ms) | time / ours 1 thread |",
        "|---|---|---|---|---|---|---|",
    ]
    for filt, rows in cfg["filters"].items():
        # the peers run on one thread: the like-for-like ratio is against ours on one thread
        ours_ms = next(r for r in rows if r["key"] == "ours_1thread")["time"]["median_ms"]
        for r in rows:
            ms = r["time"]["median_ms"]
            lines.append(
                f"| {filt} | {r['label']} | {r['psnr_db']:.2f} | {r['ssim']:.4f} | {r['level']:.4f} "
                f"| {format_ms(ms)} | {ms / ours_ms:.3g}x |"
            )
    return "\n".join(lines)


def filtering_table(cfg: dict[str, Any]) -> str:
    """Ours (auto): the steps before the back-projection against the whole FBP."""
    lines = [
        "| filter | auto | FFT length | filtering (ms) | whole FBP (ms) | share |",
        "|---|---|---|---|---|---|",
    ]
    for filt, f in cfg.get("filtering", {}).items():
        steps = "weights, ramp, prefilter" if f["prefilter"] else "weights, ramp"
        lines.append(
            f"| {filt} | {f['backprojector_used']} | {f['fft_length']} | {format_ms(f['filtering_ms'])} ({steps}) "
            f"| {format_ms(f['fbp_ms'])} | {f['filtering_ms'] / f['fbp_ms']:.0%} |"
        )
    return "\n".join(lines)


def done_table(checks: list[dict[str, Any]]) -> str:
    lines = [
        "| detector | filter | peer | ours (dB) | peer (dB) | margin (dB) | status | ours (ms) | peer (ms) "
        "| peer / ours | speed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        lines.append(
            f"| {c['detector']} | {c['filter']} | {c['peer']} | {c['ours_psnr_db']:.2f} | {c['peer_psnr_db']:.2f} "
            f"| {c['margin_db']:+.3f} | {c['status']} | {format_ms(c['ours_ms'])} | {format_ms(c['peer_ms'])} "
            f"| {c['speed_ratio']:.3g}x | {c['speed_status']} |"
        )
    return "\n".join(lines)


def markdown_report(
    meta: dict[str, Any], configs: list[dict[str, Any]], checks: list[dict[str, Any]], notes: list[str]
) -> str:
    m = meta["machine"]
    parts = [
        "# FBP benchmark: precisionrecon vs ASTRA (CPU), ODL, scikit-image, torchtomo and diffct",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpu_count']} cores ({m['cpus_usable']} usable) · "
        f"torch {m['torch']} ({m['torch_num_threads']} threads) · kernel ISA {m['kernel_isa']} · "
        f"ASTRA {meta['versions']['astra'] or 'n/a'} · ODL {meta['versions']['odl'] or 'n/a'} · "
        f"scikit-image {meta['versions']['skimage'] or 'n/a'} · torchtomo {meta['versions']['torchtomo'] or 'n/a'} · "
        f"diffct {meta['versions']['diffct'] or 'n/a'} · DeepInverse {meta['versions']['deepinv'] or 'n/a'}"
        + (f" · **quick run ({meta['n']}², {meta['views']} views): not representative**" if meta["quick"] else ""),
        "",
        f"Modified Shepp-Logan {meta['n']}² (1 mm pixels, values 0-1), {meta['views']} parallel-beam views over pi, "
        "exact analytic sinogram with detector-cell integration (no inverse crime), float32. PSNR and SSIM over "
        f"the whole image against the pixel means of the phantom, data_range = {DATA_RANGE:g}. "
        f"Time: median of {meta['repeats']} interleaved runs after one warm-up, ms; the ratio is against ours on "
        "one thread, as the peers run (higher = slower than ours).",
        "",
    ]
    for cfg in configs:
        title = {
            "fine": "Detector pitch 0.5 mm (half the pixel)",
            "pixel": "Detector pitch 1 mm (the pixel; scikit-image's convention)",
        }[cfg["name"]]
        parts += [
            f"## {title}: {cfg['det_count']} bins, {cfg['oversample']} sub-rays per cell",
            "",
            results_table(cfg),
            "",
            filtering_table(cfg),
            "",
            *[f"- {n}" for n in cfg["notes"]],
            "",
        ]
    parts += [
        "## Done-when: our PSNR (auto) at least that of every peer with the same filter",
        "",
        done_table(checks) if checks else "(no peer available)",
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    return "\n".join(parts)


def write_atomic_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, mode=0o644)  # results are meant to be shared


def figure_png(images: dict[str, dict[str, dict[str, np.ndarray]]], configs: list[dict[str, Any]], views: int) -> bytes:
    """Phantom, reconstructions (fine detector; scikit-image: pixel-pitch detector) and error maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows_of = {
        (cfg["name"], filt): {r["key"]: r for r in rows} for cfg in configs for filt, rows in cfg["filters"].items()
    }
    filters = [f[0] for f in FILTERS]
    columns = [("fine", k) for k in ("ours", "astra_linear", "astra_strip", "odl") if k in images["fine"][filters[0]]]
    if "pixel" in images and "skimage" in images["pixel"][filters[0]]:
        columns.append(("pixel", "skimage"))
    n_rows, n_cols = 2 * len(filters), len(columns) + 1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 2.45 * n_rows), layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 0.5}
    err = {"cmap": "RdBu_r", "vmin": -0.05, "vmax": 0.05}
    im = axes[0, 0].imshow(images["fine"]["reference"]["phantom"], **gray)
    axes[0, 0].set_title("phantom (pixel means)", fontsize=8)
    e = None
    for i, filt in enumerate(filters):
        for j, (det, key) in enumerate(columns, start=1):
            row = rows_of[(det, filt)][key]
            rec = images[det][filt][key]
            label = row["label"].replace("**", "") + (", 1 mm det." if det == "pixel" else "")
            axes[2 * i, j].imshow(rec, **gray)
            axes[2 * i, j].set_title(f"{label}\n{filt}: {row['psnr_db']:.2f} dB", fontsize=7)
            e = axes[2 * i + 1, j].imshow(rec - images[det]["reference"]["phantom"], **err)
            axes[2 * i + 1, j].set_title(f"error, {filt}", fontsize=7)
    fig.colorbar(im, ax=axes[0, 0], location="bottom", shrink=0.8, label="display [0, 0.5]")
    if e is not None:
        fig.colorbar(
            e, ax=axes[1, 0], location="bottom", shrink=0.8, ticks=[-0.05, 0.0, 0.05], label="reconstruction - phantom"
        )
    fig.suptitle(f"FBP of the exact sinogram, {views} views (0.5 mm detector; scikit-image: 1 mm)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method after one warm-up (default 5)")
    p.add_argument("--quick", action="store_true", help=f"tiny {QUICK_SIZE}² / {QUICK_VIEWS}-view run (smoke test)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default {DEFAULT_OUT}; with --quick {DEFAULT_OUT / 'quick'})",
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for ours (default: torch's)")
    p.add_argument("--no-figure", action="store_true", help="skip fbp.png")
    p.add_argument("--size", type=int, default=SIZE, help=f"image size (default {SIZE}); other sizes write fbp_<n>.*")
    p.add_argument("--detectors", nargs="+", choices=("fine", "pixel"), default=["fine", "pixel"],
                   help="detector configurations to run (default both)")
    p.add_argument("--views", type=int, default=VIEWS, help=f"number of views (default {VIEWS})")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    if args.out is None:
        args.out = DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    n, views = (QUICK_SIZE, QUICK_VIEWS) if args.quick else (args.size, args.views)
    stem = "fbp" if n in (SIZE, QUICK_SIZE) else f"fbp_{n}"
    peers = import_peers()
    versions = {
        "astra": None if isinstance(peers["astra"], str) else peers["astra"].__version__,
        "odl": None if isinstance(peers["odl"], str) else peers["odl"][0].__version__,
        "skimage": None if isinstance(peers["skimage"], str) else peers["skimage"][0].__version__,
        **{k: None if isinstance(peers[k], str) else peers[k].__version__ for k in ("torchtomo", "diffct", "deepinv")},
    }
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "n": n,
        "views": views,
        "repeats": args.repeats,
        "warmup_runs": 1,
        "dtype": "float32",
        "data_range": DATA_RANGE,
        "reference_oversample": REF_OVERSAMPLE,
        "machine": machine_info(),
        "versions": versions,
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
    }
    m = meta["machine"]
    print(
        f"precisionrecon FBP benchmark: {n}², {views} views, {m['cpu_model']}, {m['cpus_usable']} usable cores, "
        f"torch {m['torch']} with {threads} threads",
        flush=True,
    )
    busy = busy_warning(m["loadavg_at_start"], m["cpus_usable"] or m["cpu_count"])
    if busy:
        print(f"  WARNING: {busy}", flush=True)
    configs, images = [], {}
    for det in [d for d in detectors(n) if d.name in args.detectors]:
        cfg, imgs = run_config(det, n, views, args.repeats, peers, threads)
        configs.append(cfg)
        images[det.name] = imgs
    m["loadavg_at_end"] = load_average()
    checks = done_when(configs)
    notes = [
        "Ours: precisionrecon.FBP(A, filter) (backprojector='auto'; what it chose is named), one call under "
        f"torch.inference_mode on a prebuilt operator, {threads} threads (and 1), kernel ISA {m['kernel_isa']}. "
        "'voxel' samples the FBP image at the pixel centres, 'voxel-mean' averages it over round(pixel / pitch)^2 "
        "sub-pixels of each pixel, 'footprint' takes the exact pixel mean of the back-projected, linearly "
        "interpolated projections after a prefilter 1 / sinc^2 that undoes the damping of linear interpolation "
        "(the ramp filter is unchanged), 'adjoint' back-projects with A.T (the transposed Joseph projector).",
        "ASTRA: CPU 'FBP' algorithm (single-threaded) on data objects, only astra.algorithm.run timed; 'linear' is "
        "the transposed Joseph-like interpolation (as our A.T), 'line' the line-length weights, 'strip' the area "
        "of each pixel inside each detector strip (a pixel-mean back-projector). Geometry 'parallel' (CPU FBP "
        "takes no vector geometry), checked against to_astra's parallel_vec.",
        "ODL: odl.applications.tomo.fbp_op(RayTransform(space, geometry, impl='astra_cpu'), padding=True) on "
        "pr.interop.to_odl's space/geometry; ODL filters with the sampled |nu| (no spatial-domain ramp design), "
        "which leaves a DC error: its 'level' is a few per cent high.",
        "scikit-image: iradon(theta in degrees, output_size=n, circle=False, linear interpolation); only the "
        "pixel-pitch detector (its detector pitch is the pixel size), on the exact sinogram of the phantom and "
        "the detector moved by half a pixel, because its rotation axis is pixel n // 2 and bin n_det // 2.",
        "'auto' picks 'footprint' where the filter passes the band above the image's Nyquist frequency (here "
        "Ram-Lak on the 0.5 mm detector), which point samples alias into streaks along the edges, and 'voxel' where "
        "the window already cuts that band (Hann) or the detector is as coarse as the pixels; see the FBP docstring.",
        "Same back-projector, same numbers: our 'adjoint' is ASTRA's 'linear' (and ODL's, which differs by its "
        "filter); our 'voxel-mean' and ASTRA's 'strip' both approximate the pixel mean of the FBP image of the "
        "interpolated projections (sub-pixel samples of linear interpolation; exact areas of piecewise-constant "
        "strips), 'footprint' of the band-limited ones; scikit-image's "
        "iradon is our 'voxel' on the 1 mm detector.",
        "'level': mean over the brain region (value 0.2, 3 pixels from any edge) / 0.2. 'repeat_max_abs_diff' "
        "in the JSON: the last timed output against the first (0 = no state carried between runs).",
        "Timings on a shared machine (other users' jobs run concurrently): ratios of interleaved runs are more "
        "reliable than absolute times, but both are noisy.",
        f"Load average (1, 5, 15 min) at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']}.",
        *([f"**{busy}**"] if busy else []),
    ]
    for c in checks:
        print(f"done-when {c['detector']} {c['filter']} vs {c['peer']}: {c['margin_db']:+.3f} dB {c['status']}, "
              f"{c['speed_ratio']:.3g}x {c['speed_status']}")
    payload = {"metadata": meta, "notes": notes, "configs": configs, "done_when": checks}
    out: Path = args.out
    write_atomic(out / f"{stem}.json", json.dumps(payload, indent=2) + "\n")
    write_atomic(out / f"{stem}.md", markdown_report(meta, configs, checks, notes))
    written = [f"{stem}.json", f"{stem}.md"]
    if not args.no_figure:
        write_atomic_bytes(out / f"{stem}.png", figure_png(images, configs, views))
        written.append(f"{stem}.png")
    print(f"wrote {', '.join(str(out / w) for w in written)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
