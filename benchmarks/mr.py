"""MR benchmarks on the CPU: the precisionrecon NUFFT against raw finufft, mrpro and torchkbnufft,
and ESPIRiT coil maps against sigpy's ``EspiritCalib``.

What is measured
----------------
Wall-clock time of one forward NUFFT (image -> k-space samples, finufft type 2) and one
adjoint NUFFT (samples -> image, type 1) of complex64 data: a ``N x N`` image (default 256²)
with ``C`` coils (default 8), on a 2-D radial trajectory of ``S`` full spokes (default 402)
of ``R`` samples (default 512, twice oversampled readout), all coils in one call:

* ours: ``pr.mr.NUFFT(traj, (C, N, N), eps=1e-6, ortho=False)`` (finufft plans cached in the
  operator, the coils stacked into finufft's ``n_trans``, ``nthreads = torch.get_num_threads()``);
* raw finufft: the same ``finufft.Plan`` calls on NumPy arrays (plan and points set up once,
  ``execute`` / ``execute_adjoint`` timed): the floor our wrapper adds to (goal: at most 20 %);
* mrpro: ``NonUniformFastFourierOp`` (pytorch-finufft, a new ``finufft.nufft2d*`` call per
  application, same eps 1e-6 and upsampling 2) on a ``(1, C, 1, N, N)`` image and the same
  trajectory as a ``KTrajectory``; its normal operator is ``op.gram`` (Toeplitz);
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
and adjoint against finufft in float64 at ``eps = 1e-12`` on the same data (mrpro scales by
``1 / N`` like our ``ortho=True``, and is compared with that reference).

ESPIRiT (``--no-espirit`` skips it): ``N x N`` Shepp-Logan with a smooth phase, ``C`` birdcage
coils, 4x equispaced lines with 24 ACS lines, complex noise at 30 dB SNR; ``pr.mr.espirit``
(defaults) against ``sigpy.mri.app.EspiritCalib`` (defaults: calibration width 24, kernel 6,
threshold 0.02, crop 0.95) on the same k-space: time (interleaved medians), agreement of the
maps up to one phase per pixel (``|<ours, sigpy>|`` over the coils where both are non-zero),
pixels kept by each crop, and the PSNR of 30 CG-SENSE iterations with each set of maps and
with the true maps. mrpro needs torchvision at import, whose PyPI wheels do not load beside
the CPU torch: when ``import torchvision`` fails an empty stand-in module is registered (mrpro
uses torchvision only in its BrainWeb phantom).

Coil maps estimated from the data (``--no-maps`` skips it, ``--maps-only`` runs only it and
writes ``mr_maps.json`` / ``mr_maps.md``): ``MR_small.dcm`` at 64² (it fills the field of view),
12 birdcage coils at radius 1.2, 4x equispaced lines with 8 centre lines, 30 dB SNR, lines along
x and along y; the bench's ESPIRiT (two sets), sigpy's ``EspiritCalib`` on the 8 x 8 centre,
``pr.mr.nlinv`` (defaults) and the true maps: time to estimate the maps (interleaved medians) and
the PSNR of CG-SENSE after 30 and 100 iterations.

Outputs (written atomically): a table on stdout, ``<out>/mr.json`` (raw timings, errors and
machine metadata, including the load average before and after the run) and ``<out>/mr.md``.

Usage::

    python benchmarks/mr.py                    # 256², 402 x 512 radial, 8 coils, 7 repeats; ESPIRiT 256²
    python benchmarks/mr.py --repeats 11
    python benchmarks/mr.py --quick --out /tmp/x   # 32² smoke run
    python benchmarks/mr.py --maps-only --repeats 3  # coil maps on the real slice only

``--quick`` without ``--out`` writes to ``benchmarks/results/quick/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from precisionrecon import mr
from precisionrecon._io import atomic_write_text
from precisionrecon.bench import format_ms, load_average, machine_info

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
TARGET = 3.0  # torchkbnufft time / our time, forward and adjoint
OVERHEAD_TARGET = 1.2  # our time / raw finufft time
ESPIRIT_TARGET = 3.0  # sigpy time / our time


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


# --------------------------------------------------------------------------- peers


def import_mrpro() -> Any:
    """``mrpro``, or None. Its package imports torchvision, which does not load beside the CPU
    torch 2.13.0: then an empty stand-in is registered (only mrpro's BrainWeb phantom uses it)."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
            sys.modules[name] = types.ModuleType(name)
    try:
        import mrpro
    except ImportError:
        return None
    return mrpro


def mrpro_nufft(mrpro: Any, traj: torch.Tensor, n: int) -> Any:
    """mrpro's NUFFT on our trajectory: mrpro's k is in cycles per field of view (ours in radians per pixel)."""
    ky, kx = (traj[..., a] * n / (2 * math.pi) for a in (0, 1))
    shape = (1, 1, 1, *traj.shape[:-1])  # (other, coils, k2, k1, k0)
    kt = mrpro.data.KTrajectory(torch.zeros(shape), ky.float().reshape(shape), kx.float().reshape(shape))
    return mrpro.operators.NonUniformFastFourierOp(("y", "x"), (n, n), (n, n), kt, oversampling=2.0)


def raw_finufft(traj: torch.Tensor, n: int, coils: int, eps: float, upsampfac: float) -> tuple[Callable[..., Any], ...]:
    """Forward and adjoint of one ``finufft.Plan`` on NumPy arrays, as our operator calls it."""
    import finufft

    cols = [traj.reshape(-1, 2)[:, a].to(torch.float32).contiguous().numpy() for a in (0, 1)]
    plan = finufft.Plan(2, (n, n), coils, eps, -1, dtype="complex64", upsampfac=upsampfac,
                        nthreads=torch.get_num_threads())
    plan.setpts(*cols)
    return (lambda f, out: plan.execute(f, out=out)), (lambda c, out: plan.execute_adjoint(c, out=out))


# --------------------------------------------------------------------------- the run


def run(n: int, spokes: int, readout: int, coils: int, eps: float, repeats: int, normal: bool,
        use_mrpro: bool = True) -> dict[str, Any]:
    import torchkbnufft as tkbn

    mrpro = import_mrpro() if use_mrpro else None

    traj = mr.radial(spokes, readout)
    ktraj = traj.reshape(-1, 2).T.contiguous().to(torch.float32)  # torchkbnufft: (2, M), same units and order
    image = (mr.birdcage_maps((coils, n, n)) * mr.shepp_logan((n, n))).contiguous()  # coil images, complex64
    A = mr.NUFFT(traj, (coils, n, n), eps=eps, ortho=False)
    forward_tk = tkbn.KbNufft(im_size=(n, n))
    adjoint_tk = tkbn.KbNufftAdjoint(im_size=(n, n))
    image_tk = image[None]

    raw_fwd, raw_adj = raw_finufft(traj, n, coils, eps, A.upsampfac)
    image_np = image.numpy()
    raw_out_k = torch.empty((coils, spokes * readout), dtype=torch.complex64).numpy()
    raw_out_x = torch.empty((coils, n, n), dtype=torch.complex64).numpy()
    op_mp = mrpro_nufft(mrpro, traj, n) if mrpro is not None else None
    image_mp = image[None, :, None]  # (other, coils, z, y, x)

    with torch.inference_mode():
        y = A(image)
        y_tk = y.reshape(1, coils, -1).contiguous()
        y_np = y.reshape(coils, -1).numpy()
        y_mp = y.reshape(1, coils, 1, spokes, readout) / n  # mrpro's data scale (1 / N)
        forward = {"ours": lambda: A(image), "finufft": lambda: raw_fwd(image_np, raw_out_k),
                   "torchkbnufft": lambda: forward_tk(image_tk, ktraj)}
        adjoint = {"ours": lambda: A.T(y), "finufft": lambda: raw_adj(y_np, raw_out_x),
                   "torchkbnufft": lambda: adjoint_tk(y_tk, ktraj)}
        if op_mp is not None:
            forward["mrpro"] = lambda: op_mp(image_mp)
            adjoint["mrpro"] = lambda: op_mp.adjoint(y_mp)
        timings = {"forward": time_interleaved(forward, repeats), "adjoint": time_interleaved(adjoint, repeats)}
        if normal:
            toeplitz = A.toeplitz()
            t0 = time.perf_counter()
            toeplitz.kernel(torch.complex64)
            ours_kernel_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            kernel_tk = tkbn.calc_toeplitz_kernel(ktraj, (n, n))
            tk_kernel_ms = (time.perf_counter() - t0) * 1e3
            toep_tk = tkbn.ToepNufft()
            normals = {
                "ours": lambda: A.T(A(image)),
                "ours_toeplitz": lambda: toeplitz(image),
                "torchkbnufft_toeplitz": lambda: toep_tk(image_tk, kernel_tk),
            }
            if op_mp is not None:
                t0 = time.perf_counter()
                gram_mp = op_mp.gram
                mp_kernel_ms = (time.perf_counter() - t0) * 1e3
                normals["mrpro_gram"] = lambda: gram_mp(image_mp)
            timings["normal"] = time_interleaved(normals, repeats)
            timings["normal"]["ours_toeplitz"]["kernel_setup_ms"] = ours_kernel_ms
            timings["normal"]["torchkbnufft_toeplitz"]["kernel_setup_ms"] = tk_kernel_ms
            if op_mp is not None:
                timings["normal"]["mrpro_gram"]["kernel_setup_ms"] = mp_kernel_ms

        # accuracy against finufft in float64 at eps 1e-12 on the same data
        exact = mr.NUFFT(traj, (coils, n, n), eps=1e-12, ortho=False)
        ref_fwd = exact(image.to(torch.complex128))
        ref_adj = exact.T(y.to(torch.complex128))
        raw_fwd(image_np, raw_out_k)
        raw_adj(y_np, raw_out_x)
        accuracy = {
            "forward": {
                "ours": rel_l2(A(image), ref_fwd),
                "finufft": rel_l2(torch.from_numpy(raw_out_k).reshape(ref_fwd.shape), ref_fwd),
                "torchkbnufft": rel_l2(forward_tk(image_tk, ktraj).reshape(ref_fwd.shape), ref_fwd),
            },
            "adjoint": {
                "ours": rel_l2(A.T(y), ref_adj),
                "finufft": rel_l2(torch.from_numpy(raw_out_x), ref_adj),
                "torchkbnufft": rel_l2(adjoint_tk(y_tk, ktraj).reshape(ref_adj.shape), ref_adj),
            },
        }
        if op_mp is not None:  # mrpro scales by 1 / N (our ortho=True) both ways
            accuracy["forward"]["mrpro"] = rel_l2(op_mp(image_mp)[0].reshape(ref_fwd.shape), ref_fwd / n)
            accuracy["adjoint"]["mrpro"] = rel_l2(op_mp.adjoint(y_mp)[0].reshape(ref_adj.shape), ref_adj / n**2)
        if normal:
            ref_normal = exact.T(exact(image.to(torch.complex128)))
            accuracy["normal"] = {
                "ours": rel_l2(A.T(A(image)), ref_normal),
                "ours_toeplitz": rel_l2(toeplitz(image), ref_normal),
                "torchkbnufft_toeplitz": rel_l2(toep_tk(image_tk, kernel_tk).reshape(ref_normal.shape), ref_normal),
            }
            if op_mp is not None:
                accuracy["normal"]["mrpro_gram"] = rel_l2(gram_mp(image_mp)[0].reshape(ref_normal.shape),
                                                          ref_normal / n**2)
    def ratio(d: str, a: str, b: str) -> float:
        return timings[d][a]["median_ms"] / timings[d][b]["median_ms"]

    ratios = {d: ratio(d, "torchkbnufft", "ours") for d in ("forward", "adjoint")}
    overhead = {d: ratio(d, "ours", "finufft") for d in ("forward", "adjoint")}
    mrpro_ratios = {d: ratio(d, "mrpro", "ours") for d in ("forward", "adjoint")} if op_mp is not None else {}
    if op_mp is not None and normal:
        mrpro_ratios["normal_toeplitz"] = ratio("normal", "mrpro_gram", "ours_toeplitz")
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
            "finufft": {"eps": eps, "upsampfac": A.upsampfac, "plan": "one Plan, execute / execute_adjoint"},
            "mrpro": None if op_mp is None else {"operator": "NonUniformFastFourierOp", "oversampling": 2.0,
                                                 "eps": "1e-6 (pytorch-finufft default)"},
        },
        "timings": timings,
        "ratios_torchkbnufft_over_ours": ratios,
        "ratios_ours_over_finufft": overhead,
        "ratios_mrpro_over_ours": mrpro_ratios,
        "accuracy_rel_l2_vs_finufft_fp64_eps1e-12": accuracy,
    }


def run_espirit(n: int, coils: int, acs_lines: int, snr_db: float, repeats: int, n_iter: int = 30) -> dict[str, Any]:
    """ESPIRiT maps, ours against sigpy's ``EspiritCalib``, on the same 4x k-space."""
    import sigpy.mri

    from precisionrecon.metrics import psnr

    x = mr.shepp_logan((n, n))
    maps = mr.birdcage_maps((coils, n, n))
    mask = mr.equispaced_lines((n, n), 4, center_lines=acs_lines, seed=0)
    y = mr.Sampling(mask, (coils, n, n))(mr.add_noise(mr.simulate_kspace(x, maps), snr_db, seed=1))
    y_np = y.numpy()
    calib = min(24, acs_lines)

    def sigpy_maps() -> torch.Tensor:
        return torch.from_numpy(sigpy.mri.app.EspiritCalib(y_np, calib_width=calib, show_pbar=False).run())

    timings = time_interleaved({"ours": lambda: mr.espirit(y, mask), "sigpy": sigpy_maps}, repeats)
    ours, theirs = mr.espirit(y, mask), sigpy_maps().to(torch.complex64)
    both = (ours.abs().sum(0) > 0) & (theirs.abs().sum(0) > 0)
    agreement = (ours.conj() * theirs).sum(0).abs()[both]  # 1: equal up to one phase per pixel
    inside = x.abs() > 0

    def cg_psnr(m: torch.Tensor) -> float:
        image = mr.cg_sense(mr.SENSE(mask, m), y, n_iter).x
        return float(psnr(image.abs(), x.abs(), data_range=1.0))

    return {
        "problem": {"image": [n, n], "coils": coils, "mask": f"equispaced 4x, {acs_lines} ACS lines",
                    "snr_db": snr_db, "cg_sense_iterations": n_iter, "psnr_data_range": 1.0,
                    "ours": "pr.mr.espirit(kspace, mask) defaults (calib 24, kernel 6 or less, crop 0.95)",
                    "sigpy": f"EspiritCalib(calib_width={calib}) defaults (kernel 6, thresh 0.02, crop 0.95)"},
        "timings": timings,
        "ratio_sigpy_over_ours": timings["sigpy"]["median_ms"] / timings["ours"]["median_ms"],
        "agreement": {"mean": float(agreement.mean()), "min": float(agreement.min()),
                      "p01": float(agreement.quantile(0.01))} if agreement.numel() else
                     {"mean": math.nan, "min": math.nan, "p01": math.nan},  # a crop kept no pixel
        "pixels_kept": {"ours": int((ours.abs().sum(0) > 0).sum()), "sigpy": int((theirs.abs().sum(0) > 0).sum()),
                        "object": int(inside.sum()), "total": n * n},
        "cg_sense_psnr_db": {"true maps": cg_psnr(maps), "ours": cg_psnr(ours), "sigpy": cg_psnr(theirs)},
    }


def run_maps(repeats: int, snr_db: float | None = 30.0) -> dict[str, Any]:
    """Coil maps estimated from 4x data of an object that fills the field of view (issue 15):
    ``MR_small.dcm`` at 64², 12 birdcage coils at radius 1.2, equispaced lines with 8 centre
    lines. Maps: the bench's ESPIRiT (two sets), sigpy's ``EspiritCalib`` on the 8 x 8 centre,
    ``pr.mr.nlinv`` (defaults) and the true maps; time to estimate them (interleaved medians)
    and the PSNR of CG-SENSE after 30 and 100 iterations, lines along x and along y."""
    from precisionrecon.bench.real import real_images
    from precisionrecon.bench.tasks import MR_ESPIRIT
    from precisionrecon.metrics import psnr

    names, images, _ = real_images("MR", 64)
    if images is None or "MR_small.dcm" not in names:
        return {"skipped": "MR_small.dcm is not in the installed pydicom"}
    x = images[names.index("MR_small.dcm")].to(torch.complex64)
    maps = mr.birdcage_maps((12, 64, 64), radius=1.2)
    kspace = mr.simulate_kspace(x, maps)
    if snr_db is not None:
        kspace = mr.add_noise(kspace, snr_db, seed=1)
    have_sigpy = importlib.util.find_spec("sigpy") is not None
    rows: dict[str, Any] = {}
    for lines_along in ("x", "y"):
        mask = mr.equispaced_lines((64, 64), 4, center_lines=8, seed=0)
        espirit_args = dict(MR_ESPIRIT)
        if lines_along == "y":
            mask = mask.T.contiguous()
            espirit_args["kernel_size"] = espirit_args["kernel_size"][::-1]
        y = mr.Sampling(mask, maps.shape)(kspace)
        estimators: dict[str, Callable[[], torch.Tensor]] = {
            "ESPIRiT (bench: 2 sets)": lambda y=y, mask=mask, e=espirit_args: mr.espirit(y, mask, **e),
            "NLINV": lambda y=y, mask=mask: mr.nlinv(y, mask).maps,
        }
        if have_sigpy:
            import sigpy.mri

            y_np = y.numpy()
            estimators["sigpy EspiritCalib"] = lambda y_np=y_np: torch.from_numpy(
                sigpy.mri.app.EspiritCalib(y_np, calib_width=8, kernel_width=6, show_pbar=False).run()
            ).to(torch.complex64)
        timings = time_interleaved(estimators, repeats)
        scores: dict[str, list[float]] = {}
        kept: dict[str, int] = {}
        for name, est in [("true maps", lambda: maps), *estimators.items()]:
            m = est()
            A = mr.SENSE(mask, m, sets=m.dim() == 4)
            kept[name] = int((m.abs().flatten(0, -3).sum(0) > 0).sum())  # pixels some coil of some set sees
            scores[name] = []
            for n_iter in (30, 100):
                image = mr.cg_sense(A, y, n_iter).x
                image = mr.rss(image, dim=-3) if m.dim() == 4 else image
                scores[name].append(float(psnr(image.abs(), x.abs(), data_range=1.0)))
        rows[lines_along] = {"timings": timings, "cg_sense_psnr_db_30_100": scores, "pixels_kept": kept}
    return {"problem": {"image": "MR_small.dcm (pydicom), 64 x 64, fills the field of view", "coils": 12,
                        "radius": 1.2, "mask": "equispaced 4x, 8 centre lines", "snr_db": snr_db,
                        "psnr_data_range": 1.0, "espirit": dict(MR_ESPIRIT),
                        "sigpy": "EspiritCalib(calib_width=8, kernel_width=6), other defaults",
                        "nlinv": "pr.mr.nlinv(kspace, mask) defaults"},
            "rows": rows}


def maps_markdown(m: dict[str, Any], repeats: int) -> list[str]:
    """The coil-map section of the report."""
    if "skipped" in m:
        return ["", f"## Coil maps on a real slice: skipped ({m['skipped']})"]
    p = m["problem"]
    lines = ["", f"## Coil maps estimated from the data: {p['image']}, {p['coils']} coils (radius {p['radius']}), "
             f"{p['mask']}, {p['snr_db']} dB SNR", "",
             f"CG-SENSE with each set of maps on the same k-space (PSNR of the magnitude, data range 1). Time to "
             f"estimate the maps: median of {repeats} runs after one warm-up, alternating. ESPIRiT: {p['espirit']}; "
             f"sigpy: {p['sigpy']}; NLINV: {p['nlinv']}.", "",
             "| lines along | maps | time (ms) | CG-SENSE 30 it. (dB) | CG-SENSE 100 it. (dB) | pixels kept |",
             "|---|---|---|---|---|---|"]
    for axis, row in m["rows"].items():
        for name, (p30, p100) in row["cg_sense_psnr_db_30_100"].items():
            t = row["timings"].get(name)
            lines.append(f"| {axis} | {name} | {format_ms(t['median_ms']) if t else '-'} | {p30:.2f} | {p100:.2f} | "
                         f"{row['pixels_kept'][name]} |")
    lines += ["", "Pixels kept: where the maps are not cropped to zero (of 4096; the object fills the field of view). "
              "A CG-SENSE PSNR of 10.23 dB is the zero image: sigpy's default crop (0.95) removes every pixel when "
              "it calibrates on the 8 x 8 centre (its calibration region is square)."]
    return lines


# --------------------------------------------------------------------------- reporting


def markdown(result: dict[str, Any], meta: dict[str, Any]) -> str:
    m, p, t = meta["machine"], result["problem"], result["timings"]
    acc = result["accuracy_rel_l2_vs_finufft_fp64_eps1e-12"]
    ratios = result["ratios_torchkbnufft_over_ours"]
    n = p["image"][0]
    lines = [
        "# MR benchmark: NUFFT (ours, raw finufft, mrpro, torchkbnufft) and ESPIRiT (ours, sigpy), CPU",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpu_count']} cores ({m['cpus_usable']} usable) · "
        f"torch {m['torch']} ({m['torch_num_threads']} threads) · finufft {m['finufft']} · "
        f"torchkbnufft {m['torchkbnufft']} · mrpro {m.get('mrpro')} · sigpy {m.get('sigpy')} · "
        f"load average before/after "
        f"{meta['loadavg_before']} / {meta['loadavg_after']}"
        + (" · **quick run: not representative**" if meta["quick"] else ""),
        "",
        f"{n}² image, {p['coils']} coils (one call), radial trajectory of {p['spokes']} spokes x {p['readout']} "
        f"samples ({p['samples']} points), complex64. Ours: finufft eps {p['ours']['eps']:g}, upsampfac "
        f"{p['ours']['upsampfac']:g}; raw finufft: the same Plan on NumPy arrays; mrpro: NonUniformFastFourierOp "
        f"(eps 1e-6, oversampling 2); torchkbnufft: defaults (6-point Kaiser-Bessel table, 2x grid). Median wall "
        f"time in ms of {meta['repeats']} runs after one warm-up, all peers alternating run by run.",
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
    overhead, mp = result["ratios_ours_over_finufft"], result["ratios_mrpro_over_ours"]
    lines += [
        "",
        "Our wrapper against raw finufft (same plan settings) and mrpro:",
        "",
        "| operation | raw finufft (ms) | **ours / finufft** | overhead target | status | mrpro (ms) "
        "| **mrpro / ours** | finufft rel. error | mrpro rel. error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in ("forward", "adjoint"):
        o = overhead[d]
        mp_ms = format_ms(t[d]["mrpro"]["median_ms"]) if "mrpro" in t[d] else "-"
        mp_r = f"**{mp[d]:.2f}x**" if d in mp else "-"
        mp_err = f"{acc[d]['mrpro']:.1e}" if "mrpro" in acc[d] else "-"
        lines.append(
            f"| {d} | {format_ms(t[d]['finufft']['median_ms'])} | **{o:.2f}x** | <= {OVERHEAD_TARGET:g}x "
            f"| {'met' if o <= OVERHEAD_TARGET else 'NOT met'} | {mp_ms} | {mp_r} | {acc[d]['finufft']:.1e} "
            f"| {mp_err} |"
        )
    if "normal" in t:
        tn, an = t["normal"], acc["normal"]
        lines += [
            "",
            "Normal operator `A^H A` (kernel set-up excluded: ours "
            f"{format_ms(tn['ours_toeplitz']['kernel_setup_ms'])} ms, torchkbnufft "
            f"{format_ms(tn['torchkbnufft_toeplitz']['kernel_setup_ms'])} ms"
            + (f", mrpro {format_ms(tn['mrpro_gram']['kernel_setup_ms'])} ms" if "mrpro_gram" in tn else "")
            + "):",
            "",
            "| method | ms | rel. error |",
            "|---|---|---|",
            f"| ours `A.T(A(x))` | {format_ms(tn['ours']['median_ms'])} | {an['ours']:.1e} |",
            f"| ours Toeplitz (`A.toeplitz()`) | {format_ms(tn['ours_toeplitz']['median_ms'])} "
            f"| {an['ours_toeplitz']:.1e} |",
            f"| torchkbnufft `ToepNufft` | {format_ms(tn['torchkbnufft_toeplitz']['median_ms'])} "
            f"| {an['torchkbnufft_toeplitz']:.1e} |",
        ]
        if "mrpro_gram" in tn:
            lines.append(f"| mrpro `op.gram` (Toeplitz) | {format_ms(tn['mrpro_gram']['median_ms'])} "
                         f"| {an['mrpro_gram']:.1e} |")
    lines += [
        "",
        "Relative errors are L2 errors against finufft in float64 at eps 1e-12 on the same data.",
    ]
    if "espirit" in result:
        e = result["espirit"]
        pe, te, q, kept = e["problem"], e["timings"], e["cg_sense_psnr_db"], e["pixels_kept"]
        r = e["ratio_sigpy_over_ours"]
        lines += [
            "",
            f"## ESPIRiT: ours vs sigpy `EspiritCalib` ({pe['image'][0]}², {pe['coils']} coils, {pe['mask']}, "
            f"{pe['snr_db']:g} dB SNR)",
            "",
            f"Same k-space for both. Ours: {pe['ours']}; sigpy: {pe['sigpy']}. Median of {meta['repeats']} runs after "
            f"one warm-up, alternating. PSNR of {pe['cg_sense_iterations']} CG-SENSE iterations (magnitude, data "
            f"range 1).",
            "",
            "| maps | time (ms) | CG-SENSE PSNR (dB) | pixels kept by the crop |",
            "|---|---|---|---|",
            f"| true | - | {q['true maps']:.2f} | {kept['total']} (object: {kept['object']}) |",
            f"| ours | {format_ms(te['ours']['median_ms'])} | {q['ours']:.2f} | {kept['ours']} |",
            f"| sigpy | {format_ms(te['sigpy']['median_ms'])} | {q['sigpy']:.2f} | {kept['sigpy']} |",
            "",
            f"**sigpy / ours: {r:.1f}x** (goal >= {ESPIRIT_TARGET:g}x: {'met' if r >= ESPIRIT_TARGET else 'NOT met'}); "
            f"PSNR ours - sigpy: {q['ours'] - q['sigpy']:+.2f} dB (goal >= 0: "
            f"{'met' if q['ours'] >= q['sigpy'] - 0.005 else 'NOT met'}). Map agreement up to one phase per pixel, "
            f"|<ours, sigpy>| over the coils where both keep the pixel: mean {e['agreement']['mean']:.5f}, "
            f"1st percentile {e['agreement']['p01']:.5f}, min {e['agreement']['min']:.5f}.",
        ]
    if "maps" in result:
        lines += maps_markdown(result["maps"], meta["repeats"])
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
    parser.add_argument("--no-mrpro", action="store_true", help="skip mrpro")
    parser.add_argument("--no-espirit", action="store_true", help="skip ESPIRiT against sigpy")
    parser.add_argument("--espirit-image", type=int, default=256, help="ESPIRiT image size")
    parser.add_argument("--no-maps", action="store_true", help="skip the coil maps on the real slice")
    parser.add_argument("--maps-only", action="store_true",
                        help="only the coil maps on the real slice, written to mr_maps.json / mr_maps.md")
    parser.add_argument("--quick", action="store_true", help="32² image, 24 x 64 radial, 2 coils (smoke run)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.image, args.spokes, args.readout, args.coils, args.espirit_image = 32, 24, 64, 2, 32
    out = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)

    before = load_average()
    if args.maps_only:
        maps = run_maps(args.repeats)
        meta = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "repeats": args.repeats,
                "machine": machine_info(packages=("numpy", "sigpy")), "loadavg_before": before,
                "loadavg_after": load_average(), "note": args.note}
        report = "\n".join(["# MR benchmark: coil maps estimated from the data (ESPIRiT, sigpy, NLINV), CPU",
                            *maps_markdown(maps, args.repeats), "", f"Note: {args.note}"]) + "\n"
        write_atomic(out / "mr_maps.json", json.dumps({"meta": meta, "maps": maps}, indent=2) + "\n")
        write_atomic(out / "mr_maps.md", report)
        print(report)
        return 0
    result = run(args.image, args.spokes, args.readout, args.coils, args.eps, args.repeats, not args.no_normal,
                 not args.no_mrpro)
    if not args.no_espirit and importlib.util.find_spec("sigpy") is not None:
        acs = max(8, round(24 * args.espirit_image / 256))
        result["espirit"] = run_espirit(args.espirit_image, 8, acs, 30.0, args.repeats)
    if not args.no_maps and not args.quick:
        result["maps"] = run_maps(args.repeats)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeats": args.repeats,
        "machine": machine_info(packages=("finufft", "torchkbnufft", "numpy", "mrpro", "sigpy", "pytorch_finufft")),
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
