"""Fuzz-style bad input (issue 16): every public constructor with hostile values in every
argument, the operators with hostile tensors, and the command line with hostile options and
files. The only acceptable outcomes are a result, or a ``ValueError``/``TypeError`` with a
message (the library) or an ``error: ...`` line and exit status 2 (the command line); never
another exception, a traceback, a hang or a crash."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon import cli, models, mr, training

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")

# values a careless or hostile caller passes where anything else was expected
HOSTILE: dict[str, Any] = {
    "none": None,
    "str": "x",
    "nan": NAN,
    "inf": INF,
    "neg": -3,
    "zero": 0,
    "huge": 10**12,
    "bool": True,
    "empty-list": [],
    "nested": [[1.0, 2.0], [3.0]],
    "nan-tensor": torch.tensor([NAN, 1.0]),
    "complex": 1 + 2j,
    "dict": {"a": 1},
}


def _outcome(fn: Callable[[], Any]) -> str:
    """"ok", or the kind of the clean error; fails the test on any other exception."""
    try:
        fn()
    except (ValueError, TypeError) as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        return type(exc).__name__
    return "ok"


def _fan(**kw: Any) -> pr.FanBeam2D:
    return pr.FanBeam2D(**{"angles": pr.angles(6, 2 * math.pi), "det_count": 12, "det_spacing": 1.5,
                           "src_iso": 40.0, "src_det": 70.0, **kw})


def _ct() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(angles=pr.angles(6), det_count=12))


def _sense() -> mr.SENSE:
    return mr.SENSE(torch.ones(8, 8), torch.ones(2, 8, 8, dtype=torch.complex64) / math.sqrt(2))


# constructor -> valid keyword arguments; each argument in turn gets each hostile value
CONSTRUCTORS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "Volume": (pr.Volume, {"shape": (8, 8), "spacing": 1.0, "center": 0.0}),
    "angles": (pr.angles, {"n": 6, "arc": math.pi, "start": 0.0}),
    "ParallelBeam2D": (pr.ParallelBeam2D, {"angles": [0.0, 1.0], "det_count": 8, "det_spacing": 1.0,
                                           "det_offset": 0.0}),
    "ParallelBeam3D": (pr.ParallelBeam3D, {"angles": [0.0, 1.0], "det_shape": (4, 4), "det_spacing": 1.0}),
    "FanBeam2D": (pr.FanBeam2D, {"angles": [0.0, 1.0], "det_count": 8, "det_spacing": 1.0, "src_iso": 40.0,
                                 "src_det": 70.0, "detector": "flat"}),
    "ConeBeam3D": (pr.ConeBeam3D, {"angles": [0.0, 1.0], "det_shape": (4, 4), "det_spacing": 1.0, "src_iso": 40.0,
                                   "src_det": 70.0}),
    "VectorGeometry": (pr.VectorGeometry, {"vectors": [[0.0, 60.0, 0.0, -40.0, 1.0, 0.0]], "det_shape": 8,
                                           "beam": "cone"}),
    "XRayTransform": (pr.XRayTransform, {"volume": pr.Volume((8, 8)), "geometry": _fan()}),
    "VoxelBackprojection": (pr.VoxelBackprojection, {"volume": pr.Volume((8, 8)), "geometry": _fan()}),
    "FBP": (pr.FBP, {"A": _ct(), "filter": "hann"}),
    "RampFilter": (pr.RampFilter, {"shape": (6, 12), "det_spacing": 1.0}),
    "FiniteDifferences": (pr.FiniteDifferences, {"shape": (8, 8)}),
    "mr.FFT": (mr.FFT, {"shape": (8, 8), "dims": 2}),
    "mr.SENSE": (mr.SENSE, {"mask": torch.ones(8, 8), "maps": torch.ones(2, 8, 8, dtype=torch.complex64)}),
    "mr.NUFFT": (mr.NUFFT, {"traj": torch.rand(8, 2) - 0.5, "image_shape": (8, 8)}),
    "LearnedFBP": (models.LearnedFBP, {"operator": _ct(), "filter": "hann"}),
    "VariationalNetwork": (models.VariationalNetwork, {"operator": _ct(), "n_steps": 1, "n_filters": 2,
                                                       "kernel_size": 3, "n_rbf": 3}),
    "LearnedPrimalDual": (models.LearnedPrimalDual, {"operator": _ct(), "n_iter": 1, "n_primal": 2, "n_dual": 2,
                                                     "width": 2, "n_layers": 1}),
}

# arguments where a huge int is a real request for a huge object: construction allocates it
_ALLOCATES = {("angles", "n"), ("FiniteDifferences", "shape"), ("LearnedPrimalDual", "width"),
              ("VariationalNetwork", "n_filters"), ("VariationalNetwork", "n_rbf"), ("LearnedPrimalDual", "n_primal"),
              ("LearnedPrimalDual", "n_dual"), ("LearnedPrimalDual", "n_layers"), ("VariationalNetwork", "kernel_size"),
              ("mr.FFT", "shape"), ("RampFilter", "shape"), ("Volume", "shape")}


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_constructors_with_hostile_arguments(name: str) -> None:
    make, valid = CONSTRUCTORS[name]
    assert _outcome(lambda: make(**valid)) == "ok"
    refused = 0
    for arg in valid:
        for label, value in HOSTILE.items():
            if label == "huge" and (name, arg) in _ALLOCATES:
                continue
            refused += _outcome(lambda arg=arg, value=value: make(**{**valid, arg: value})) != "ok"
    assert refused >= len(valid) * 4  # most hostile values are refused, not silently taken


@pytest.mark.parametrize("name", ["ct", "fan", "vbp", "fbp", "sense", "fft", "lfbp"])
def test_operators_with_hostile_tensors(name: str) -> None:
    op: Any = {
        "ct": _ct, "fan": lambda: pr.XRayTransform(pr.Volume((8, 8)), _fan()),
        "vbp": lambda: pr.VoxelBackprojection(pr.Volume((8, 8)), _fan()), "fbp": lambda: pr.FBP(_ct()),
        "sense": _sense, "fft": lambda: mr.FFT((8, 8)), "lfbp": lambda: models.LearnedFBP(_ct()),
    }[name]()
    operator = op.operator if isinstance(op, torch.nn.Module) else op
    shape = tuple(operator.range_shape if isinstance(op, torch.nn.Module) else operator.domain_shape)
    dtype = torch.complex64 if name == "sense" and False else torch.float32
    good = torch.rand(2, *shape, dtype=dtype)
    assert _outcome(lambda: op(good)) == "ok"
    assert tuple(op(torch.zeros(0, *shape)).shape[:1]) == (0,)  # an empty batch: an empty result
    hostile = [
        torch.rand(*shape[:-1], shape[-1] + 1),  # wrong trailing shape
        torch.rand(shape[-1]),  # too few dimensions
        torch.ones(*shape, dtype=torch.int64),
        torch.ones(*shape, dtype=torch.bool),
        good.numpy(),
        None,
        "x",
        [[1.0]],
    ]
    for t in hostile:
        assert _outcome(lambda t=t: op(t)) in ("ValueError", "TypeError"), type(t)
    if hasattr(op, "T"):
        for t in hostile[:4]:
            assert _outcome(lambda t=t: op.T(t)) in ("ValueError", "TypeError")


def test_algorithms_with_hostile_arguments() -> None:
    A = _ct()
    y = A(torch.rand(8, 8))
    calls = [
        lambda: pr.algorithms.sirt(A, y, -1),
        lambda: pr.algorithms.sirt(A, y, 1e9),
        lambda: pr.algorithms.cgls(A, y.double()[..., :5], 3),
        lambda: pr.algorithms.pdhg_tv(A, y, NAN, 3),
        lambda: pr.algorithms.pdhg_tv(A, y, 0.1, 3, op_norm=-1.0),
        lambda: pr.algorithms.pdhg_tv(A, y, 0.1, 3, op_norm=1e-6),
        lambda: pr.algorithms.pdhg_tv("A", y, 0.1, 3),
        lambda: mr.cg_sense(_sense(), torch.zeros(2, 8, 9, dtype=torch.complex64), 3),
    ]
    for call in calls:
        assert _outcome(call) in ("ValueError", "TypeError")


def test_training_config_with_hostile_values(tmp_path: Path) -> None:
    base = {"model": models.LearnedFBP(_ct()).config(), "output_dir": str(tmp_path / "o"), "steps": 2,
            "batch_size": 1, "device": "cpu", "progress": False}
    assert _outcome(lambda: training.TrainingConfig.from_dict(base)) == "ok"
    for key in ("steps", "batch_size", "lr", "num_threads", "device", "dtype", "seed", "max_seconds", "data",
                "unknown_key"):
        for value in (None, "x", NAN, -1, 10**12, [], {"a": 1}):
            if value is None and key in ("num_threads", "max_seconds"):
                continue  # None: the default
            out = _outcome(lambda key=key, value=value: training.Trainer(training.TrainingConfig.from_dict(
                {**base, key: value})))
            assert out in ("ValueError", "TypeError", "ok"), (key, value)
    with pytest.raises(ValueError, match="device must be"):
        training.Trainer({**base, "device": "cudaXYZ"})


# ----------------------------------------------------------------------- the command line


def _files(tmp_path: Path) -> dict[str, Path]:
    A = _ct()
    sino = tmp_path / "sino.npy"
    np.save(sino, A(torch.rand(8, 8, dtype=torch.float64)).numpy())
    geom = tmp_path / "geom.json"
    geom.write_text(json.dumps({"volume": {"shape": [8, 8]},
                                "geometry": {"type": "ParallelBeam2D", "angles": {"n": 6}, "det_count": 12}}))
    return {"sino": sino, "geom": geom}


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _hostile_cli_cases(tmp_path: Path) -> dict[str, list[str]]:
    f = _files(tmp_path)
    sino, geom = str(f["sino"]), str(f["geom"])
    t = tmp_path
    nan = np.load(sino)
    nan[0, 0] = np.nan
    np.save(t / "nan.npy", nan)
    np.save(t / "obj.npy", np.zeros((6, 12), dtype=[("a", "f4"), ("b", "i4")]))
    np.save(t / "empty.npy", np.zeros((0, 12)))
    np.save(t / "scalar.npy", np.float64(1.0))
    np.save(t / "3x.npy", np.zeros((2, 3, 4)))
    cases = {
        "missing input": ["reconstruct", str(t / "nope.npy"), "--geometry", geom],
        "zero-byte npy": ["reconstruct", str(_write(t / "zero.npy", b"")), "--geometry", geom],
        "corrupt npy": ["reconstruct", str(_write(t / "bad.npy", b"\x93NUMPY\x01\x00{'descr'")), "--geometry", geom],
        "text as npy": ["reconstruct", str(_write(t / "text.npy", "hello")), "--geometry", geom],
        "pickled npy": ["reconstruct", str(t / "pickle.npy"), "--geometry", geom],
        "compound npy": ["reconstruct", str(t / "obj.npy"), "--geometry", geom],
        "empty array": ["reconstruct", str(t / "empty.npy"), "--geometry", geom],
        "scalar array": ["reconstruct", str(t / "scalar.npy"), "--geometry", geom],
        "wrong shape": ["reconstruct", str(t / "3x.npy"), "--geometry", geom],
        "NaN sinogram": ["reconstruct", str(t / "nan.npy"), "--geometry", geom],
        "no geometry": ["reconstruct", sino],
        "geometry not json": ["reconstruct", sino, "--geometry", str(_write(t / "g.json", "{"))],
        "geometry list": ["reconstruct", sino, "--geometry", str(_write(t / "g2.json", "[1, 2]"))],
        "geometry yaml tag": ["reconstruct", sino, "--geometry",
                              str(_write(t / "g.yaml", "volume: !!python/object/apply:os.system ['true']\n"))],
        "geometry unknown type": ["reconstruct", sino, "--geometry", str(_write(t / "g3.json", json.dumps(
            {"volume": {"shape": [8, 8]}, "geometry": {"type": "os.system", "angles": [0.0]}})))],
        "geometry NaN angles": ["reconstruct", sino, "--geometry", str(_write(t / "g4.json", json.dumps(
            {"volume": {"shape": [8, 8]}, "geometry": {"type": "ParallelBeam2D", "angles": [NAN], "det_count": 12}})))],
        "geometry source inside": ["reconstruct", sino, "--geometry", str(_write(t / "g5.json", json.dumps(
            {"volume": {"shape": [8, 8]}, "geometry": {"type": "FanBeam2D", "angles": {"n": 6}, "det_count": 12,
                                                       "det_spacing": 1.0, "src_iso": 2.0, "src_det": 9.0}})))],
        "geometry binary": ["reconstruct", sino, "--geometry", str(_write(t / "g6.json", b"\xff\xfe\x00"))],
        "geometry folder": ["reconstruct", sino, "--geometry", str(t)],
        "bad method": ["reconstruct", sino, "--geometry", geom, "--method", "magic"],
        "bad filter": ["reconstruct", sino, "--geometry", geom, "--filter", "nope"],
        "zero iters": ["reconstruct", sino, "--geometry", geom, "--method", "sirt", "--iters", "0"],
        "huge threads": ["reconstruct", sino, "--geometry", geom, "--threads", "100000"],
        "negative threads": ["reconstruct", sino, "--geometry", geom, "--threads", "-1"],
        "bad device": ["reconstruct", sino, "--geometry", geom, "--device", "cudaXYZ"],
        "out under a file": ["reconstruct", sino, "--geometry", geom, "--out", "/dev/null/x.npy"],
        "out suffix": ["reconstruct", sino, "--geometry", geom, "--out", str(t / "x.txt")],
        "missing train config": ["train", "--config", str(t / "nope.json")],
        "train yaml tag": ["train", "--config", str(_write(t / "c.yaml", "steps: !!python/name:os.system\n"))],
        "train not json": ["train", "--config", str(_write(t / "c.json", "{"))],
        "train binary": ["train", "--config", str(_write(t / "c2.json", b"\xff\xfe\x00"))],
        "train list": ["train", "--config", str(_write(t / "c3.json", "[]"))],
        "train unknown model": ["train", "--config", str(_write(t / "c4.json", json.dumps(
            {"model": {"class": "main", "module": "precisionrecon.__main__"}, "steps": 1})))],
        "train bad device": ["train", "--config", str(_write(t / "c5.json", json.dumps(
            {"model": models.LearnedFBP(_ct()).config(), "steps": 1, "device": "cudaXYZ"})))],
        "train output under a file": ["train", "--config", str(_write(t / "c6.json", json.dumps(
            {"model": models.LearnedFBP(_ct()).config(), "steps": 1, "output_dir": "/dev/null/x",
             "progress": False})))],
        "train huge threads": ["train", "--config", str(_write(t / "c7.json", json.dumps(
            {"model": models.LearnedFBP(_ct()).config(), "steps": 1, "num_threads": 100000})))],
        "bench unknown task": ["bench", "--tasks", "nope", "--no-figure"],
        "bench huge threads": ["bench", "--threads", "100000"],
        "info huge threads": ["info", "--threads", "100000"],
    }
    np.save(t / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return cases


def test_cli_with_hostile_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, argv in _hostile_cli_cases(tmp_path).items():
        try:
            rc = cli.main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            rc = exc.code
        err = capsys.readouterr().err
        assert rc == 2, (name, rc, err)
        lines = err.strip().splitlines()
        assert "Traceback" not in err, (name, err)
        if lines[0].startswith("usage: "):  # argparse's own check: the usage, then one error line
            assert ": error: " in lines[-1], (name, err)
        else:
            assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)


@pytest.mark.parametrize("h5_case", ["object", "compound", "group", "missing", "not-hdf5"])
def test_cli_with_hostile_hdf5(h5_case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "d.h5"
    if h5_case == "not-hdf5":
        path.write_text("not hdf5")
    else:
        with h5py.File(path, "w") as f:
            if h5_case == "object":
                f.create_dataset("sinogram", data=np.array(["a", "b"], dtype=h5py.string_dtype()))
            elif h5_case == "compound":
                f.create_dataset("sinogram", data=np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))
            elif h5_case == "group":
                f.create_group("sinogram")
            else:
                f.create_dataset("other", data=np.zeros(3))
    rc = cli.main(["reconstruct", str(path), "--geometry", str(_files(tmp_path)["geom"])])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err, err


@pytest.mark.parametrize(("argv", "expected"), [
    (["info", "--threads", "100000"], "error: --threads must be <="),
    (["reconstruct", "{nan}", "--geometry", "{geom}"], "NaN or infinite values"),
    (["train", "--config", "{yaml}"], "is not valid YAML"),
])
def test_cli_exit_status_in_a_subprocess(argv: list[str], expected: str, tmp_path: Path) -> None:
    """The exit status and the single error line as a shell sees them (no segfault: rc 139)."""
    f = _files(tmp_path)
    data = np.load(f["sino"])
    data[1, 1] = np.inf
    np.save(tmp_path / "nan.npy", data)
    _write(tmp_path / "c.yaml", "steps: !!python/object/apply:os.system ['echo pwned']\n")
    names = {"nan": str(tmp_path / "nan.npy"), "geom": str(f["geom"]), "yaml": str(tmp_path / "c.yaml")}
    argv = [a.format(**names) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "precisionrecon", *argv], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 2, out
    assert out.stderr.startswith("error: ") and expected in out.stderr and "Traceback" not in out.stderr
    assert "pwned" not in out.stdout
