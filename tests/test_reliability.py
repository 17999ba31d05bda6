"""Issue 16: no crash, no silent wrong answer, no lost file. One test (or a few) per item of
the issue; each fails on the code before the fix (commit 99fecc4) and passes after."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon import cli, models, mr, training
from precisionrecon import uncertainty as unc
from precisionrecon._io import atomic_path, atomic_write_bytes
from precisionrecon._kernels import ops
from precisionrecon.algorithms import pdhg_tv
from precisionrecon.training.checkpoint import CONFIG_FILE, LATEST_FILE, LOCK_FILE, MODEL_FILE

ROOT = Path(__file__).resolve().parents[1]
N = 16


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _ct(n_views: int = 10) -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((N, N)), pr.ParallelBeam2D(angles=pr.angles(n_views), det_count=24))


def _train_config(out: Path, **changes: Any) -> dict[str, Any]:
    model = models.LearnedFBP(_ct(), filter="hann")
    cfg: dict[str, Any] = {
        "model": model.config(), "output_dir": str(out), "steps": 4, "batch_size": 2, "lr": 1e-3,
        "warmup_steps": 1, "val_every": 2, "dtype": "float32", "device": "cpu", "progress": False,
        "num_threads": 1, "data": {"val_size": 2, "train_size": 3},
    }
    cfg.update(changes)
    return cfg


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli.main(argv)
    err = capsys.readouterr().err
    return rc, err


def _geometry_file(tmp_path: Path, volume: dict[str, Any], geometry: dict[str, Any]) -> Path:
    path = tmp_path / "geom.json"
    path.write_text(json.dumps({"volume": volume, "geometry": geometry}))
    return path


# ---------------------------------------------------------------- 1: thread counts


def test_huge_thread_count_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run_cli(["info", "--threads", "100000"], capsys)
    assert rc == 2 and err.startswith("error: --threads must be <=")
    with pytest.raises(ValueError, match="num_threads must be <="):
        training.TrainingConfig.from_dict(_train_config(Path("unused"), num_threads=100000))


# ---------------------------------------------------------------- 2: hostile pretrained weights


def test_hostile_pretrained_weights_run_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``PRECISIONRECON_WEIGHTS=evil`` with a config naming the command line: a ValueError,
    the command line is neither imported nor run."""
    calls: list[tuple] = []
    monkeypatch.setattr("precisionrecon.cli.main", lambda *args: calls.append(args) or 0)
    monkeypatch.delitem(sys.modules, "precisionrecon.__main__", raising=False)
    folder = tmp_path / "evil" / "low-dose" / "LearnedFBP"
    folder.mkdir(parents=True)
    model = models.LearnedFBP(_ct())
    training.write_checkpoint(folder.parent, 1, model, None, {})
    (folder.parent / "step-00000001").rename(folder)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["model"] = {**meta["model"], "class": "main", "module": "precisionrecon.__main__"}
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    monkeypatch.setenv("PRECISIONRECON_WEIGHTS", str(tmp_path / "evil"))
    with pytest.raises(ValueError, match="registered model"):
        pr.pretrained.load("low-dose", "LearnedFBP")
    assert calls == [] and "precisionrecon.__main__" not in sys.modules


# ---------------------------------------------------------------- 3: two trainers, one folder


def test_two_live_trainers_in_one_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second run on the folder of a live run is refused (error line, exit 2); the first
    run, stopped by SIGTERM, keeps its checkpoint."""
    out = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    training.TrainingConfig.from_dict(_train_config(out, steps=100000, val_every=10**6, checkpoint_every=0)).save(cfg)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "precisionrecon.training", "--config", str(cfg)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "history.json").exists():  # written once fit() runs (and catches SIGTERM)
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.2)
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == first.pid
        with pytest.raises(ValueError, match=f"held by a live training run \\(pid {first.pid}\\)"):
            training.Trainer(_train_config(out, resume=True))
        rc, err = _run_cli(["train", "--config", str(cfg), "--resume"], capsys)
        assert rc == 2 and err.startswith("error: output_dir") and "live training run" in err
    finally:
        first.send_signal(signal.SIGTERM)
        stdout, _ = first.communicate(timeout=120)
    assert first.returncode == 0
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["stopped"] == "signal" and Path(result["checkpoint"]).is_dir()
    assert not (out / LOCK_FILE).exists()


# ---------------------------------------------------------------- 4: files


def test_new_files_honour_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        a = atomic_write_bytes(tmp_path / "a.bin", b"x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
        ckpt = training.write_checkpoint(tmp_path / "run", 1, models.LearnedFBP(_ct()), None, {})
    finally:
        os.umask(old)
    assert (a.stat().st_mode & 0o777) == 0o640
    assert ((tmp_path / "b.bin").stat().st_mode & 0o777) == 0o640
    assert (ckpt.stat().st_mode & 0o777) == 0o750
    assert ((ckpt / MODEL_FILE).stat().st_mode & 0o777) == 0o640
    assert ((ckpt / CONFIG_FILE).stat().st_mode & 0o777) == 0o640


def _sinogram_and_geometry(tmp_path: Path) -> tuple[Path, Path]:
    A = _ct()
    sino = tmp_path / "sino.npy"
    np.save(sino, A(torch.ones(N, N, dtype=torch.float64)).numpy())
    geom = _geometry_file(tmp_path, {"shape": [N, N]},
                          {"type": "ParallelBeam2D", "angles": {"n": 10}, "det_count": 24})
    return sino, geom


def test_preview_never_replaces_an_unrelated_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    sino, geom = _sinogram_and_geometry(tmp_path)
    unrelated = tmp_path / "X.png"
    unrelated.write_bytes(b"my holiday photo")
    rc = cli.main(["reconstruct", str(sino), "--geometry", str(geom), "--out", str(tmp_path / "X.npy")])
    captured = capsys.readouterr()
    assert rc == 0 and "no PNG preview" in captured.err
    assert unrelated.read_bytes() == b"my holiday photo"
    assert np.load(tmp_path / "X.npy").shape == (N, N)


# ---------------------------------------------------------------- 5: silent NaN


def test_nan_sinogram_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sino, geom = _sinogram_and_geometry(tmp_path)
    data = np.load(sino)
    data[3, 4] = np.nan
    np.save(sino, data)
    rc, err = _run_cli(["reconstruct", str(sino), "--geometry", str(geom), "--out", str(tmp_path / "r.npy")], capsys)
    assert rc == 2 and err.startswith("error: ") and "NaN" in err and "Traceback" not in err
    assert not (tmp_path / "r.npy").exists()


def test_diverging_training_stops_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """lr = 1e30: the run stops with NonFiniteLossError (exit 3 and an error line on the
    command line) and no checkpoint of NaN weights is written."""
    out = tmp_path / "run"
    with pytest.raises(training.NonFiniteLossError, match="diverged"):
        training.train(_train_config(out, lr=1e30, warmup_steps=0, steps=20, checkpoint_every=1))
    assert not (out / LOCK_FILE).exists()
    for folder in training.list_checkpoints(out):
        for value in training.checkpoint.load_state(folder).values():
            assert torch.isfinite(value).all(), folder
    cfg = tmp_path / "cfg.json"
    training.TrainingConfig.from_dict(_train_config(tmp_path / "run2", lr=1e30, warmup_steps=0, steps=20)).save(cfg)
    rc, err = _run_cli(["train", "--config", str(cfg)], capsys)
    assert (rc == 3 and err.startswith("error: training loss is nan")) or err.startswith("error: training loss is inf")
    assert training.list_checkpoints(tmp_path / "run2") == []


def test_second_ctrl_c_in_train_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The first SIGINT stops after the step with a checkpoint (tests/test_resume.py); a second
    one raises KeyboardInterrupt out of the step: exit 130 and one error line, no traceback."""
    cfg = tmp_path / "cfg.json"
    training.TrainingConfig.from_dict(_train_config(tmp_path / "run", steps=50)).save(cfg)
    sent: list[int] = []

    def step(self: training.Trainer) -> float:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, then Ctrl-C again before the step ends
        sent.append(1)
        signal.raise_signal(signal.SIGINT)
        return 0.0

    monkeypatch.setattr(training.Trainer, "train_step", step)
    before = signal.getsignal(signal.SIGINT)
    rc, err = _run_cli(["train", "--config", str(cfg)], capsys)
    assert rc == 130 and err.startswith("error: interrupted") and "Traceback" not in err
    assert len(sent) == 1 and signal.getsignal(signal.SIGINT) is before
    assert not (tmp_path / "run" / LOCK_FILE).exists()


# ---------------------------------------------------------------- 6: sources inside the volume


@pytest.mark.parametrize("geometry", [
    pr.FanBeam2D(angles=[0.0], det_count=33, det_spacing=1.0, src_iso=10.0, src_det=100.0),
    pr.FanBeam2D(angles=pr.angles(4, arc=2 * math.pi), det_count=33, det_spacing=1.0, src_iso=32.0, src_det=100.0),
    pr.ConeBeam3D(angles=[0.0, 1.0], det_shape=(8, 8), det_spacing=1.0, src_iso=20.0, src_det=100.0),
    pr.VectorGeometry(vectors=[[0, 60, 0, -40, 1, 0], [0, 5, 0, -40, 1, 0]], det_shape=12, beam="cone"),
], ids=["fan-inside", "fan-on-the-box", "cone-inside", "vector-cone-view-1"])
def test_source_inside_the_volume_is_refused(geometry: pr.Geometry) -> None:
    volume = pr.Volume((64,) * geometry.ndim)
    view = 1 if isinstance(geometry, pr.VectorGeometry) else 0
    with pytest.raises(ValueError, match=f"source of view {view} .* inside or on the volume box"):
        pr.XRayTransform(volume, geometry)
    with pytest.raises(ValueError, match="inside or on the volume box"):
        pr.VoxelBackprojection(volume, geometry)


def test_parametric_transform_refuses_a_source_inside_the_volume() -> None:
    """The per-call vectors of ParametricXRayTransform (e.g. calibrated geometry) are checked too."""
    P = pr.ParametricXRayTransform(pr.Volume((64, 64)), det_shape=(33,), beam="cone")
    inside = torch.tensor([[0.0, 60.0, 0.0, -40.0, 1.0, 0.0], [0.0, 5.0, 0.0, -40.0, 1.0, 0.0]],
                          dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"source of view 1 .* inside or on the volume box"):
        P(torch.ones(64, 64, dtype=torch.float64), inside)
    outside = inside.detach()[:1].clone().requires_grad_()
    y = P(torch.ones(64, 64, dtype=torch.float64), outside)
    y.sum().backward()
    assert torch.isfinite(outside.grad).all()


def test_source_just_outside_the_volume_is_accepted() -> None:
    g = pr.FanBeam2D(angles=pr.angles(4, arc=2 * math.pi), det_count=33, det_spacing=1.0, src_iso=45.3,
                     src_det=100.0)  # the corners of the 64 x 64 box lie at 45.25 mm
    y = pr.XRayTransform(pr.Volume((64, 64)), g)(torch.ones(64, 64, dtype=torch.float64))
    assert torch.isfinite(y).all() and float(y.max()) <= 64 * math.sqrt(2) + 1e-9


# ---------------------------------------------------------------- 7: other silent acceptance


def test_angles_that_require_grad_are_refused() -> None:
    a = pr.angles(5).requires_grad_()
    for make in (lambda: pr.ParallelBeam2D(angles=a, det_count=8),
                 lambda: pr.FanBeam2D(angles=a, det_count=8, det_spacing=1.0, src_iso=50.0, src_det=100.0),
                 lambda: pr.ConeBeam3D(angles=a, det_shape=(4, 4), det_spacing=1.0, src_iso=50.0,
                                         src_det=100.0),
                 lambda: pr.ParallelBeam3D(angles=a, det_shape=(4, 4))):
        with pytest.raises(ValueError, match=r"angles requires grad.*ParametricXRayTransform"):
            make()
    assert pr.ParallelBeam2D(angles=a.detach(), det_count=8).n_views == 5


@pytest.mark.parametrize(("vectors", "message"), [
    ([[0, 1, 0, 0, 0, 1]], "u is parallel to the ray"),  # parallel: ray (0, 1), u (0, 1)
    ([[0, 50, 0, -50, 0, 2]], "u is parallel to the ray"),  # cone: ray along y, u along y
    ([[0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0]], "u and v are parallel"),  # u == v
    ([[0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0]], "plane .* contains the ray"),  # v along the ray
])
def test_degenerate_vector_geometry(vectors: list, message: str) -> None:
    beam = "parallel" if vectors[0][1] == 1 else "cone"
    det_shape = 8 if len(vectors[0]) == 6 else (4, 4)
    with pytest.raises(ValueError, match=f"view 0: .*{message}"):
        pr.VectorGeometry(vectors=vectors, det_shape=det_shape, beam=beam)


def test_nan_sense_maps_and_bad_toeplitz_weights() -> None:
    maps = torch.ones(2, 8, 8, dtype=torch.complex64)
    maps[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="maps must be finite"):
        mr.SENSE(torch.ones(8, 8), maps)
    traj = mr.radial_trajectory(8, 16) if hasattr(mr, "radial_trajectory") else torch.rand(8, 16, 2) - 0.5
    nufft = mr.NUFFT(traj, (8, 8))
    w = torch.ones(nufft.traj_shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        nufft.toeplitz(-w)
    w[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weights must be finite"):
        nufft.toeplitz(w)
    with pytest.raises(ValueError, match="at least one sample point"):
        mr.NUFFT(torch.zeros(0, 2), (8, 8))


def test_checkpoint_dtype_keys_and_latest(tmp_path: Path) -> None:
    out = tmp_path / "run"
    folder = training.write_checkpoint(out, 1, models.LearnedFBP(_ct()), None, {})
    meta = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**meta, "dtype": "complex64"}))
    with pytest.raises(ValueError, match="dtype must be real floating point, got 'complex64'"):
        training.load_checkpoint(folder)
    for key in ("model", "dtype"):
        (folder / CONFIG_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != key}))
        with pytest.raises(ValueError, match=f"lacks \\['{key}'\\]"):
            training.load_checkpoint(folder)
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    elsewhere = training.write_checkpoint(tmp_path / "other", 7, models.LearnedFBP(_ct()), None, {})
    for name in ("../other/step-00000007", str(elsewhere)):
        (out / LATEST_FILE).write_text(json.dumps({"checkpoint": name, "step": 7}))
        with pytest.raises(ValueError, match="refusing to follow it"):
            training.find_checkpoint(out)
    (out / LATEST_FILE).write_text(json.dumps({"checkpoint": folder.name, "step": 1}))
    assert training.find_checkpoint(out) == folder


def test_init_log_var_and_unrolled_iterations_are_bounded() -> None:
    lfbp = models.LearnedFBP(_ct())
    for bad in (float("nan"), float("inf"), 1e4):
        with pytest.raises(ValueError, match="init_log_var"):
            unc.HeteroscedasticHead(lfbp, init_log_var=bad)
    with pytest.raises(TypeError, match="init_log_var must be a real number"):
        unc.HeteroscedasticHead(lfbp, init_log_var="0")
    vn = models.VariationalNetwork(_ct(), n_steps=1, n_filters=2, kernel_size=3, n_rbf=3).config()
    lpd = models.LearnedPrimalDual(_ct(), n_iter=1, n_primal=2, n_dual=2, width=2, n_layers=1).config()
    start = time.monotonic()
    with pytest.raises(ValueError, match="n_steps must be <= 1000"):
        models.build({**vn, "kwargs": {**vn["kwargs"], "n_steps": 10**9}})
    with pytest.raises(ValueError, match="n_iter must be <= 1000"):
        models.build({**lpd, "kwargs": {**lpd["kwargs"], "n_iter": 10**9}})
    assert time.monotonic() - start < 10


def test_pdhg_refuses_a_too_small_op_norm() -> None:
    A = _ct()
    y = A(torch.rand(N, N, dtype=torch.float64))
    with pytest.raises(ValueError, match="op_norm must be at least"):
        pdhg_tv(A, y, 0.1, 20, op_norm=0.01)
    good = pdhg_tv(A, y, 0.1, 5)
    again = pdhg_tv(A, y, 0.1, 5, op_norm=good.info["op_norm"])
    assert torch.equal(good.x, again.x)


def test_pdhg_divergence_is_an_error() -> None:
    A = _ct()
    y = A(torch.rand(N, N, dtype=torch.float64))
    with pytest.raises(ValueError, match="pdhg diverged"):
        pr.algorithms.pdhg(A, lambda z, s: z - s * y, lambda x, t: x, torch.zeros(N, N, dtype=torch.float64), 2000,
                           tau=1.0, sigma=1.0)


# ---------------------------------------------------------------- 8: interruptible projections


@pytest.mark.parametrize("name", ["fan", "cone", "vbp"])
def test_chunked_kernel_calls_are_bitwise_identical(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "fan":
        A = pr.XRayTransform(pr.Volume((12, 14)), pr.FanBeam2D(angles=pr.angles(9, arc=2 * math.pi), det_count=20,
                                                               det_spacing=1.3, src_iso=40.0, src_det=70.0))
    elif name == "cone":
        cone = pr.ConeBeam3D(angles=pr.angles(7, arc=2 * math.pi), det_shape=(6, 10), det_spacing=1.5, src_iso=40.0,
                             src_det=70.0)
        A = pr.XRayTransform(pr.Volume((6, 8, 9)), cone)
    else:
        A = pr.VoxelBackprojection(pr.Volume((12, 14)), pr.FanBeam2D(angles=pr.angles(9, arc=2 * math.pi),
                                                                     det_count=20, det_spacing=1.3, src_iso=40.0,
                                                                     src_det=70.0))
    x = torch.randn(3, *A.domain_shape, dtype=torch.float64)
    y = torch.randn(3, *A.range_shape, dtype=torch.float64)
    whole = (A(x), A.T(y), A(x[1]), A.T(y[1]))
    monkeypatch.setattr(ops, "CHUNK_SAMPLES", 50)  # a few views per call
    chunked = (A(x), A.T(y), A(x[1]), A.T(y[1]))
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a, b)


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt), whatever the test runner inherited: a
    process started in the background by a non-interactive shell (``cmd &``, ``nohup``) has
    SIGINT ignored, and Python then installs no handler."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_interrupts_a_long_projection(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT during a chunked projection raises KeyboardInterrupt after the running chunk."""
    if ops.cpu_library() is None:
        pytest.skip("needs the compiled CPU kernels")
    monkeypatch.setattr(ops, "CHUNK_SAMPLES", 2000)
    A = pr.XRayTransform(pr.Volume((32, 32)), pr.ParallelBeam2D(angles=pr.angles(400), det_count=48))
    calls: list[int] = []
    real = ops._call_cpu

    def counting(*args: Any) -> bool:
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # as a Ctrl-C in the terminal
        return real(*args)

    monkeypatch.setattr(ops, "_call_cpu", counting)
    with pytest.raises(KeyboardInterrupt):
        A(torch.ones(32, 32))
    assert 2 <= len(calls) < len(ops._chunks(400, 32 * 48)) // 2


@pytest.mark.usefixtures("python_sigint")
@pytest.mark.parametrize("kind", ["xray", "vbp", "vbp-footprint"])
def test_ctrl_c_interrupts_a_long_single_image_backprojection(kind: str) -> None:
    """A back-projection of one image cannot be chunked (its sum would change): Ctrl-C stops
    it in the library, within a block of views (xray) or an image row (vbp), not at its end
    (about 4 G samples here: seconds on one thread)."""
    if ops.cpu_library() is None:
        pytest.skip("needs the compiled CPU kernels")
    geometry = pr.ParallelBeam2D(angles=pr.angles(40000), det_count=363)
    if kind == "xray":
        backproject = pr.XRayTransform(pr.Volume((256, 256)), geometry).T
    else:
        backproject = pr.VoxelBackprojection(pr.Volume((256, 256)), geometry, footprint=kind == "vbp-footprint")
    y = torch.ones(geometry.proj_shape)
    small = pr.XRayTransform(pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(8), det_count=23))
    yy = torch.randn(small.range_shape, dtype=torch.float64)
    before = small.T(yy)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            backproject(y)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 1.5
    assert torch.equal(small.T(yy), before)  # the cancel request was cleared


# ---------------------------------------------------------------- 10: empty batches, messages


def test_empty_batches() -> None:
    A = _ct(20)
    y = torch.zeros(0, *A.range_shape)
    assert pr.FBP(A)(y).shape == (0, N, N)
    assert models.LearnedFBP(A)(y).shape == (0, N, N)
    assert models.VariationalNetwork(A, n_steps=1, n_filters=2, kernel_size=3, n_rbf=3)(y).shape == (0, N, N)
    S = mr.SENSE(torch.ones(8, 8), torch.ones(2, 8, 8, dtype=torch.complex64) / math.sqrt(2))
    k = torch.zeros(0, 2, 8, 8, dtype=torch.complex64)
    assert mr.FFT((8, 8))(torch.zeros(0, 8, 8)).shape == (0, 8, 8)
    assert S(torch.zeros(0, 8, 8)).shape == (0, 2, 8, 8) and S.T(k).shape == (0, 8, 8)
    assert mr.zero_filled(S, k).shape == (0, 8, 8)
    assert mr.cg_sense(S, k, 3).x.shape == (0, 8, 8)


def test_hdf5_group_is_named_as_a_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_group("sinogram")
    rc, err = _run_cli(["reconstruct", str(path)], capsys)
    assert rc == 2 and "'sinogram' is a Group, not a dataset" in err


# ---------------------------------------------------------------- 11: geometry file short forms


def test_geometry_file_short_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sino, geom = _sinogram_and_geometry(tmp_path)  # {"shape": [16, 16]}, angles {"n": 10}
    rc = cli.main(["reconstruct", str(sino), "--geometry", str(geom), "--out", str(tmp_path / "r.npy")])
    assert rc == 0, capsys.readouterr().err
    volume, geometry = cli._read_geometry(geom)
    assert volume == pr.Volume((N, N)) and geometry == pr.ParallelBeam2D(angles=pr.angles(10), det_count=24)
    fan = pr.geometry.from_file_dict({"type": "FanBeam2D", "angles": {"n": 6, "arc": 2 * math.pi, "start": 0.5},
                                      "det_count": 8, "det_spacing": 1.0, "src_iso": 50, "src_det": 90})
    assert fan == pr.FanBeam2D(angles=pr.angles(6, 2 * math.pi, 0.5), det_count=8, det_spacing=1.0, src_iso=50.0,
                              src_det=90.0)
    for bad, message in [
        ({"type": "FanBeam2D", "angles": [0.0], "det_count": 8},
         r"lacks required fields \['det_spacing', 'src_det', 'src_iso'\]"),
        ({"type": "ParallelBeam2D", "angles": {"n": 4, "arcs": 1.0}, "det_count": 8}, "angles as a dict"),
        ({"type": "ParallelBeam2D", "angles": [0.0], "det_count": 8, "colour": 1}, r"unknown fields \['colour'\]"),
        ({"type": "Volume", "shape": [4, 4]}, "geometry 'type' must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            pr.geometry.from_file_dict(bad)


def test_readme_use_snippet_has_a_gradient() -> None:
    """The README's "Use" snippet differentiates a loss whose gradient is not zero."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Use", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "y.detach()" not in block or "A(x) - y.detach()" not in block
    assert "y_noisy" in block or "x_true" in block


def test_bad_npy_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    geom = _sinogram_and_geometry(tmp_path)[1]
    cases = {
        "empty.npy": b"",
        "corrupt.npy": b"\x93NUMPY\x01\x00garbage",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    buf = io.BytesIO()
    np.save(buf, np.ones((10, 24), dtype=">f8"))
    (tmp_path / "big.npy").write_bytes(buf.getvalue())
    np.save(tmp_path / "zero.npy", np.zeros((0, 24)))
    np.save(tmp_path / "struct.npy", np.zeros((10, 24), dtype=[("a", "f4"), ("b", "f4")]))
    for name in ("empty.npy", "corrupt.npy", "zero.npy", "struct.npy"):
        rc, err = _run_cli(["reconstruct", str(tmp_path / name), "--geometry", str(geom)], capsys)
        assert rc == 2 and err.startswith("error: ") and "Traceback" not in err, (name, err)
    rc = cli.main(["reconstruct", str(tmp_path / "big.npy"), "--geometry", str(geom), "--out", str(tmp_path / "b.npy")])
    assert rc == 0, capsys.readouterr().err
    assert np.load(tmp_path / "b.npy").dtype == np.float64
