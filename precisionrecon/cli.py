"""The ``precisionrecon`` command line (also ``python -m precisionrecon``).

Subcommands
-----------
``bench``
    The reconstruction benchmark (:mod:`precisionrecon.bench`): built-in CT and MR tasks on
    held-out phantoms, analytic methods and (when pretrained weights exist) learned ones;
    prints a methods x tasks table (PSNR, SSIM, time per image) and writes ``bench.json``,
    ``bench.md`` and ``bench.png``.
``reconstruct``
    Reconstruct a sinogram (with a geometry file) or multi-coil k-space from npy / HDF5, or a
    folder of DICOM-CT-PD projections into a DICOM image series in HU.
``train``
    Train a model from a config (:mod:`precisionrecon.training`).
``info``
    Versions, compiled kernels, CPU/GPU, threads, optional dependencies, pretrained weights.

This module only parses arguments, reads and writes the files of ``reconstruct`` and calls
the packages. Errors in the input (bad paths, configs, unknown tasks or methods, missing
optional dependencies) print ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from ._io import atomic_path, atomic_write_bytes
from ._validate import check_threads
from .algorithms import cgls, pdhg_tv, sirt
from .bench import (
    DATA_RANGE,
    METHODS,
    SUITES,
    TASKS,
    info,
    png_bytes,
    results_table,
    run_bench,
    select_jobs,
    tuning_set,
    write_report,
)
from .data.dicom_ct_pd import read_dicom_ct_pd
from .data.loaders import write_dicom
from .geometry import HelicalConeBeam, Volume, from_file_dict
from .mr import SENSE, cg_sense, estimate_maps, read_ismrmrd, tv_recon, zero_filled
from .operators import FBP, HelicalFBP, XRayTransform
from .operators.filters import WINDOWS
from .training.command import add_arguments as add_train_arguments
from .training.command import run as run_training

DEFAULT_BENCH_OUT = Path("benchmarks") / "results" / "bench"
DEFAULT_REAL_BENCH_OUT = Path("benchmarks") / "results" / "bench-real"  # --suite real


class CLIError(Exception):
    """A user error: printed as ``error: <message>``, exit status 2."""


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (YAML and numpy messages span several)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.YAMLError) and problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------- small helpers


def _require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise CLIError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CLIError(f"this needs the optional dependency {module!r}: pip install {extra}") from exc


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CLIError(f"--device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device: only cpu and cuda are supported, got {name!r}")
    return device


def _threads(n: int | None) -> None:
    if n is not None:
        try:
            torch.set_num_threads(check_threads(n, "--threads"))
        except ValueError as exc:
            raise CLIError(str(exc)) from None


# --------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark and write bench.json / bench.md / bench.png to ``args.out``."""
    device = _device(args.device)
    _threads(args.threads)
    try:
        select_jobs(args.tasks, args.methods)  # unknown tasks / methods, before any work
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if not args.no_figure:
        _require("matplotlib", "matplotlib (or run bench with --no-figure)")
    out = Path(args.out) if args.out is not None else (
        DEFAULT_REAL_BENCH_OUT if args.suite == "real" else DEFAULT_BENCH_OUT)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a folder")

    result = run_bench(args.suite, args.tasks, args.methods, device=device, seed=args.seed,
                       progress=not args.no_progress)
    suite = result.suite
    print(f"PSNR (dB) / SSIM / max |error| / time per image; data range {DATA_RANGE} (MR: magnitudes); "
          f"suite {args.suite} ({suite.n}x{suite.n})")
    print(f"tuned on: {tuning_set(suite)}")
    print(results_table(result.cells, result.methods, result.tasks))
    for message in sorted({s for task in result.task_data.values() for s in task.skipped}):
        print(f"real image not used: {message}")
    if result.unavailable:
        print(f"learned methods without usable pretrained weights: {', '.join(result.unavailable)} "
              "(see `precisionrecon info`)")
    written = write_report(result, out, figure_png=not args.no_figure)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


# --------------------------------------------------------------------------- reconstruct

CT_RECON_METHODS = ("fbp", "sirt", "tv", "cgls")
MR_RECON_METHODS = ("zero-filled", "cg-sense", "tv")


def _read_array(path: Path, dataset: str | None) -> np.ndarray:
    if not path.is_file():
        raise CLIError(f"input {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".mrd" or (suffix in (".h5", ".hdf5") and _is_ismrmrd(path, dataset or "dataset")):
        try:  # ISMRMRD raw data: Cartesian k-space (slices, coils, readout, lines), zero-filled
            return read_ismrmrd(path, dataset=dataset or "dataset").kspace.numpy()
        except (ValueError, ImportError, OSError) as exc:
            raise CLIError(f"input {str(path)!r}: {exc}") from exc
    if suffix == ".npy":
        try:
            return _check_array(np.load(path, allow_pickle=False), path)
        except (ValueError, OSError, EOFError) as exc:  # corrupt, truncated, empty or pickled
            raise CLIError(f"input {str(path)!r} is not a readable .npy array: {exc}") from exc
    if suffix in (".h5", ".hdf5"):
        h5py = _require("h5py", "h5py")
        try:
            with h5py.File(path, "r") as f:
                names = [dataset] if dataset else [k for k in ("sinogram", "kspace", "data") if k in f]
                if not names or names[0] not in f:
                    raise CLIError(f"{str(path)!r} has no dataset {dataset or 'sinogram/kspace/data'!r} "
                                   f"(has {sorted(f.keys())}); pick one with --dataset")
                node = f[names[0]]
                if not isinstance(node, h5py.Dataset):
                    raise CLIError(f"{str(path)!r}: {names[0]!r} is a {type(node).__name__}, not a dataset; "
                                   "pick one with --dataset")
                return _check_array(np.asarray(node), path)
        except (OSError, TypeError, ValueError) as exc:
            raise CLIError(f"input {str(path)!r} is not a readable HDF5 file: {exc}") from exc
    raise CLIError(f"input {str(path)!r}: expected a .npy, .h5, .hdf5 or .mrd file")


def _is_ismrmrd(path: Path, group: str) -> bool:
    """An HDF5 file holding an ISMRMRD dataset (``group/xml`` and ``group/data``)."""
    h5py = _require("h5py", "h5py")
    try:
        with h5py.File(path, "r") as f:
            return f"{group}/xml" in f and f"{group}/data" in f
    except OSError:
        return False


def _check_array(data: np.ndarray, path: Path) -> np.ndarray:
    """``data`` as a native-endian real or complex float array; a CLIError for what no method can use."""
    if data.dtype.kind not in "biufc" or data.dtype.fields is not None:
        raise CLIError(f"input {str(path)!r} holds dtype {data.dtype}; expected real (sinogram) or complex (k-space) "
                       "numbers")
    if data.size == 0:
        raise CLIError(f"input {str(path)!r} is empty (shape {data.shape})")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))  # big-endian files: torch needs native order
    if not np.all(np.isfinite(data)):
        raise CLIError(f"input {str(path)!r} holds {int(np.sum(~np.isfinite(data)))} NaN or infinite values; "
                       "reconstructing them would give a NaN image")
    return data


def _read_geometry(path: Path) -> tuple[Any, Any]:
    if not path.is_file():
        raise CLIError(f"geometry file {str(path)!r} does not exist")
    try:
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
    except Exception as exc:
        raise CLIError(f"geometry file {str(path)!r} is not valid JSON/YAML: {_one_line(exc)}") from exc
    if not isinstance(d, dict) or set(d) != {"volume", "geometry"}:
        raise CLIError(f"geometry file {str(path)!r} must hold {{'volume': ..., 'geometry': ...}} and nothing else "
                       "(see README, 'Geometry file')")
    try:
        volume, geometry = from_file_dict(d["volume"], "volume"), from_file_dict(d["geometry"], "geometry")
        XRayTransform(volume, geometry)  # the pair: dimensions, sources outside the volume
    except (ValueError, TypeError) as exc:
        raise CLIError(f"geometry file {str(path)!r}: {exc}") from exc
    return volume, geometry


def _preview(image: np.ndarray) -> bytes:
    import matplotlib  # optional dependency, only for the preview

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.abs(image)
    while img.ndim > 2:
        img = img[img.shape[0] // 2]  # middle slice / first batch item
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(img, cmap="gray")
    ax.axis("off")
    data = png_bytes(fig)
    plt.close(fig)
    return data


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Reconstruct a sinogram (CT, needs --geometry) or multi-coil k-space (MR)."""
    device = _device(args.device)
    _threads(args.threads)
    if Path(args.input).is_dir():
        return _reconstruct_ct_pd(args, device)
    data = _read_array(Path(args.input), args.dataset)
    method = args.method.lower()
    out = Path(args.out) if args.out else Path(args.input).with_name(Path(args.input).stem + "_recon.npy")
    if out.suffix.lower() not in (".npy", ".h5", ".hdf5", ".png"):
        raise CLIError(f"--out {str(out)!r}: expected a .npy, .h5, .hdf5 or .png file")
    if not out.parent.is_dir():
        raise CLIError(f"--out folder {str(out.parent)!r} does not exist")
    if args.iters is not None and args.iters < 1:
        raise CLIError(f"--iters must be >= 1, got {args.iters}")
    progress = not args.no_progress
    if np.iscomplexobj(data):
        if method not in MR_RECON_METHODS:
            raise CLIError(f"unknown method {args.method!r} for k-space data; choose from {list(MR_RECON_METHODS)}")
        image = _reconstruct_mr(data, method, args, device, progress)
    else:
        if method not in CT_RECON_METHODS:
            raise CLIError(f"unknown method {args.method!r} for a sinogram; choose from {list(CT_RECON_METHODS)}")
        if not args.geometry:
            raise CLIError("a sinogram needs --geometry GEOM.json|yaml (volume + geometry)")
        volume, geometry = _read_geometry(Path(args.geometry))
        A = XRayTransform(volume, geometry).to(device)
        y = torch.from_numpy(np.ascontiguousarray(data)).to(device)
        if y.dtype not in (torch.float32, torch.float64):
            y = y.float()
        if tuple(y.shape[-len(A.range_shape):]) != tuple(A.range_shape):
            raise CLIError(f"input shape {tuple(y.shape)} does not end with the geometry's data shape "
                           f"{tuple(A.range_shape)}")
        image = _reconstruct_ct(A, y, method, args, progress)
    image_np = image.detach().cpu().numpy()
    written = []
    if out.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, image_np)
        written.append(atomic_write_bytes(out, buf.getvalue()))
    elif out.suffix.lower() in (".h5", ".hdf5"):
        h5py = _require("h5py", "h5py")
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image_np)
            f.attrs["method"] = method
        written.append(out)
    preview = out.with_suffix(".png")
    try:
        importlib.import_module("matplotlib")
        if preview != out and preview.exists():
            # the preview is a side product: never replace a file the user did not name
            print(f"note: no PNG preview ({str(preview)!r} exists already; remove it to get one)", file=sys.stderr)
        else:
            written.append(atomic_write_bytes(preview, _preview(image_np)))
    except ImportError:
        if out.suffix.lower() == ".png":
            raise CLIError("a PNG output needs the optional dependency 'matplotlib': pip install matplotlib") from None
        print("note: no PNG preview (matplotlib is not installed)", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _ct_pd_volume(geometry: Any, args: argparse.Namespace) -> Volume:
    """The reconstruction volume of a DICOM-CT-PD scan: ``--size`` voxels over ``--fov`` mm in-plane
    (default: the detector's field of view), slices of ``--slice`` mm (default: the row width at the
    isocentre) over ``--z-range`` (default: the helix's valid range for that field of view)."""
    cols = geometry.det_shape[1]
    vectors = geometry.to_vectors().numpy()
    src_iso, src_det, du, dv = (float(np.median(np.linalg.norm(a, axis=1))) for a in (
        vectors[:, :2], vectors[:, 3:5] - vectors[:, :2], vectors[:, 6:9], vectors[:, 9:12]))
    fan = 0.5 * cols * du / src_det if geometry.curved else np.arctan(0.5 * cols * du / src_det)
    fov = args.fov or 2.0 * src_iso * float(np.sin(min(fan, 0.5 * np.pi)))
    thickness = args.slice or dv * src_iso / src_det
    if args.size < 1 or fov <= 0 or thickness <= 0:
        raise CLIError(f"--size, --fov and --slice must be positive, got {args.size}, {fov}, {thickness}")
    if args.z_range:
        lo, hi = args.z_range
    elif isinstance(geometry, HelicalConeBeam):
        lo, hi = geometry.z_range(0.5 * fov)
    else:
        z = vectors[:, 2]
        lo, hi = float(z.min()), float(z.max())
    if not hi >= lo:
        raise CLIError(f"no valid slices: the scan's z range for a field of view of {fov:.1f} mm is empty "
                       f"({lo:.1f} > {hi:.1f} mm); pass --z-range or a smaller --fov")
    nz = max(1, int(np.floor((hi - lo) / thickness)) + 1)
    pixel = fov / args.size
    return Volume((nz, args.size, args.size), (thickness, pixel, pixel), (0.5 * (lo + hi), 0.0, 0.0))


def _reconstruct_ct_pd(args: argparse.Namespace, device: torch.device) -> int:
    """A DICOM-CT-PD folder -> a DICOM image series in HU (``OUT_DIR/slice_0001.dcm``, ...) and a PNG
    preview of the middle slice beside the folder (``OUT_DIR.png``, so the folder holds DICOM only)."""
    method = args.method.lower()
    if method not in CT_RECON_METHODS:
        raise CLIError(f"unknown method {args.method!r} for CT projections; choose from {list(CT_RECON_METHODS)}")
    if not args.out:
        raise CLIError("a DICOM-CT-PD folder needs --out OUT_DIR (the folder of the image series)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a folder")
    scan = read_dicom_ct_pd(args.input)
    if method == "fbp" and not isinstance(scan.geometry, HelicalConeBeam):
        raise CLIError("fbp needs views on one helix or circle; these views are not: use sirt, cgls or tv")
    volume = _ct_pd_volume(scan.geometry, args)
    A = XRayTransform(volume, scan.geometry).to(device)
    mu = _reconstruct_ct(A, scan.projections.to(device), method, args, not args.no_progress).detach().cpu()
    mu_water = args.mu_water or scan.water_attenuation or 0.0192
    hu = (1000.0 * (mu.double() - mu_water) / mu_water).clamp(-1024.0, 30000.0).numpy()
    out.mkdir(parents=True, exist_ok=True)
    dz, dy, dx = volume.spacing
    nz, ny, nx = volume.shape
    zc, yc, xc = volume.center
    x0, y0 = xc - 0.5 * (nx - 1) * dx, yc - 0.5 * (ny - 1) * dy
    written = []
    for k in range(nz):
        z = zc + (k - 0.5 * (nz - 1)) * dz
        written.append(write_dicom(out / f"slice_{k + 1:04d}.dcm", hu[k], modality="CT", spacing=(dy, dx),
                                   intercept=-1024.0, position=(x0, y0, z), instance=k + 1, slice_thickness=dz))
    try:
        importlib.import_module("matplotlib")
        written.append(atomic_write_bytes(out.with_name(out.name + ".png"), _preview(hu)))
    except ImportError:
        print("note: no PNG preview (matplotlib is not installed)", file=sys.stderr)
    print(f"wrote {len(written)} files to {out} ({nz} slices of {ny} x {nx}, {dz:.3g} mm apart, HU)")
    return 0


def _reconstruct_ct(A: Any, y: Tensor, method: str, args: argparse.Namespace, progress: bool) -> Tensor:
    if method == "fbp":
        return (HelicalFBP if isinstance(A.geometry, HelicalConeBeam) else FBP)(A, args.filter)(y)
    n = args.iters or {"sirt": 100, "tv": 200, "cgls": 20}[method]
    if method == "sirt":
        return sirt(A, y, n, progress=progress).x
    if method == "cgls":
        return cgls(A, y, n, progress=progress).x
    lam = args.lam if args.lam is not None else 1.0
    return pdhg_tv(A, y, lam, n, nonneg=args.nonneg, progress=progress).x


def _reconstruct_mr(data: np.ndarray, method: str, args: argparse.Namespace, device: torch.device,
                    progress: bool) -> Tensor:
    y = torch.from_numpy(np.ascontiguousarray(data)).to(device)
    if y.dtype not in (torch.complex64, torch.complex128):
        y = y.to(torch.complex64)
    if y.ndim < 3:
        raise CLIError(f"k-space must be (*batch, coils, ny, nx), got shape {tuple(y.shape)}")
    # the sampling mask: k-space lines (columns) that hold data in any coil / batch item
    sampled = (y.abs() > 0).flatten(0, -3).any(0)
    mask = sampled.any(0, keepdim=True).expand_as(sampled) if sampled.any() else sampled
    if args.maps:
        maps = torch.from_numpy(np.ascontiguousarray(_read_array(Path(args.maps), None))).to(device).to(y.dtype)
    else:
        first = y.reshape(-1, *y.shape[-3:])[0]
        maps = estimate_maps(first, mask.to(y.real.dtype), method=args.maps_method).to(y.dtype)
    if tuple(maps.shape) != tuple(y.shape[-3:]):
        raise CLIError(f"coil maps {tuple(maps.shape)} must match the k-space (coils, ny, nx) {tuple(y.shape[-3:])}")
    A = SENSE(mask.to(y.real.dtype), maps)
    if method == "zero-filled":
        return zero_filled(A, y)
    n = args.iters or {"cg-sense": 30, "tv": 200}[method]
    if method == "cg-sense":
        return cg_sense(A, y, n, progress=progress).x
    lam = args.lam if args.lam is not None else 0.01 * float(zero_filled(A, y).abs().max())
    return tv_recon(A, y, lam, n, progress=progress).x


# --------------------------------------------------------------------------- train and info


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``python -m precisionrecon.training`` with these options."""
    if not Path(args.config).is_file():
        raise CLIError(f"training config {args.config!r} does not exist")
    _threads(args.threads)
    return run_training(args)


def cmd_info(args: argparse.Namespace) -> int:
    _threads(args.threads)
    data = info()
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    k = data["kernels"]
    print(f"precisionrecon {data['precisionrecon']}  python {data['python']}  torch {data['torch']}  "
          f"numpy {data['numpy']}")
    print(f"platform     {data['platform']}")
    print(f"cpu          {data['cpu']}, {data['cpu_count']} cores, torch threads {data['torch_threads']}")
    print(f"gpu          {', '.join(data['gpus']) if data['gpus'] else 'none (CUDA not available)'}")
    print(f"cpu kernels  built {k['cpu']['built'] or 'none'}; usable here {k['cpu']['usable_on_this_cpu']}; "
          f"selected {k['cpu']['selected']}")
    print(f"cuda kernels {'built' if k['cuda_library'] else 'not built'}; emulator "
          f"{'built' if k['cuda_emulator'] else 'not built'}  ({k['lib_dir']})")
    print("optional     " + ", ".join(f"{n} {v}" if v else f"{n} MISSING" for n, v in
                                      data["optional_dependencies"].items()))
    weights = data["pretrained_weights"]
    print(f"pretrained   {', '.join(weights) if weights else 'none'}  ({data['pretrained_weights_dir']})")
    return 0


# --------------------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the command line."""
    parser = argparse.ArgumentParser(prog="precisionrecon", description="CT and MR reconstruction, known operators.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, device: bool = True) -> None:
        if device:
            p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
        p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")

    b = sub.add_parser("bench", help="run the reconstruction benchmark")
    b.add_argument("--suite", choices=sorted(SUITES), default="default",
                   help="default: 64x64 with the pretrained models, a few minutes on a laptop CPU; "
                   "large: 128x128 (analytic methods only, no pretrained weights of that size); "
                   "quick: 32x32 smoke run; real: 64x64 on the real CT/MR slices bundled with pydicom, "
                   "tuned on anatomy phantoms (needs pydicom)")
    b.add_argument("--tasks", nargs="+", metavar="TASK", help=f"tasks (default all): {', '.join(TASKS)}")
    b.add_argument("--methods", nargs="+", metavar="METHOD",
                   help=f"methods (default all): {', '.join(METHODS)}")
    b.add_argument("--out", help=f"output folder (default {DEFAULT_BENCH_OUT}; --suite real: {DEFAULT_REAL_BENCH_OUT})")
    b.add_argument("--seed", type=int, default=0, help="torch seed (test data have their own fixed seeds)")
    b.add_argument("--no-figure", action="store_true", help="skip the PNG (no matplotlib needed)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(b)
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("reconstruct", help="reconstruct a sinogram or k-space file")
    r.add_argument("input", help="sinogram (real) or multi-coil k-space (complex) as .npy or .h5/.hdf5, "
                                    "ISMRMRD raw data (.mrd/.h5), or a folder of DICOM-CT-PD projections")
    r.add_argument("--geometry", help="CT: JSON/YAML file {'volume': ..., 'geometry': ...} (geometry.to_dict)")
    r.add_argument("--method", default="fbp",
                   help=f"CT: {', '.join(CT_RECON_METHODS)}; MR: {', '.join(MR_RECON_METHODS)} (default fbp)")
    r.add_argument("--out", help="output .npy, .h5/.hdf5 (dataset 'image') or .png; a .png preview is written beside; "
                                 "DICOM-CT-PD: the folder of the DICOM image series (HU); OUT_DIR.png beside it")
    r.add_argument("--dataset", help="HDF5 dataset name (default: sinogram, kspace or data)")
    r.add_argument("--maps", help="MR: coil maps (.npy/.h5, (coils, ny, nx)); default: estimated from the data")
    r.add_argument("--maps-method", default="nlinv", choices=("nlinv", "espirit", "walsh", "lowres"),
                   help="MR without --maps: how the maps are estimated (default nlinv: right also on objects that "
                        "fill the field of view; espirit is 20-100x faster where the object leaves background)")
    r.add_argument("--iters", type=int, help="iterations of sirt/cgls/tv/cg-sense")
    r.add_argument("--lam", type=float, help="TV weight (CT default 1.0; MR default 1%% of max |zero-filled|)")
    r.add_argument("--filter", default="ram-lak", choices=WINDOWS, help="FBP window (default ram-lak)")
    r.add_argument("--nonneg", action="store_true", help="CT TV: non-negativity constraint")
    r.add_argument("--size", type=int, default=256, help="DICOM-CT-PD: voxels per in-plane axis (default 256)")
    r.add_argument("--fov", type=float, help="DICOM-CT-PD: in-plane field of view in mm (default: the detector's)")
    r.add_argument("--slice", type=float, help="DICOM-CT-PD: slice spacing in mm (default: row width at isocentre)")
    r.add_argument("--z-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="DICOM-CT-PD: z of the first and last slice centre in mm (default: the valid helix range)")
    r.add_argument("--mu-water", type=float,
                   help="DICOM-CT-PD: water attenuation in 1/mm for HU (default: the header's, else 0.0192)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(r)
    r.set_defaults(func=cmd_reconstruct)

    t = sub.add_parser("train", help="train a model from a config (python -m precisionrecon.training)")
    add_train_arguments(t)
    common(t, device=False)
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("info", help="versions, compiled kernels, devices, optional dependencies")
    i.add_argument("--json", action="store_true", help="print JSON")
    common(i, device=False)
    i.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``precisionrecon`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, OSError, ImportError, ValueError, TypeError) as exc:
        # what the packages raise for bad input (files, configs, geometries): one line, no traceback
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); nothing more was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
