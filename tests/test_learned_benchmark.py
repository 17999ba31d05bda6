"""The learned-reconstruction benchmark (benchmarks/learned.py) runs end to end on a tiny problem."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from precisionrecon.training import TrainingConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learned.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("learned_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_configs_are_valid_training_configs(bench: ModuleType) -> None:
    jobs = bench.configs_for(bench.QUICK, "ABCD")
    names = [name for name, _, _ in jobs]
    assert len(names) == len(set(names))
    assert {part for _, _, part in jobs} == set("ABCD")
    n_d = sum(1 for _, _, part in jobs if part == "D")
    assert n_d == 4 * len(bench.QUICK.sizes_d)
    for name, cfg, part in jobs:
        config = TrainingConfig.from_dict(cfg)
        assert config.model is not None and config.device == "cpu"
        if part == "D":
            assert config.data.train_size == int(name.rsplit("_n", 1)[1])
            assert config.steps == bench.QUICK.steps_d
        else:
            assert config.data.train_size is None
    seeds = [cfg["seed"] for name, cfg, part in jobs if part != "D"]
    assert len(seeds) == len(set(seeds))  # the models of one A variant, B and C have distinct recorded seeds


def test_quick_run_part_b(tmp_path: Path, bench: ModuleType) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--parts", "B", "--out", str(out), "--work", str(work),
           "--jobs", "1"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    assert "[train] B_LearnedFBP done" in first.stdout
    data = json.loads((out / "learned_B.json").read_text())
    rows = {r["method"]: r for r in data["B"]["rows"]}
    fbp, learned = rows["FBP, extended Parker weights"], rows["LearnedFBP"]
    assert learned["steps"] == bench.QUICK.steps_b and fbp["steps"] == 0
    A = bench.limited_fan_operator(bench.QUICK.n_b, bench.QUICK.views_b)
    assert learned["n_free_parameters"] > A.geometry.n_views * A.geometry.det_count  # weights + filter taps
    for row in rows.values():
        for key in ("shepp_logan", "ellipses"):
            assert math.isfinite(row[key]["psnr"]) and row[key]["psnr"] > 10.0
            assert -1.0 <= row[key]["ssim"] <= 1.0
    assert (out / "learned_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Limited-angle fan beam" in (out / "learned_B.md").read_text()
    config = TrainingConfig.from_file(out / "configs" / "B_LearnedFBP.json")
    assert config.steps == bench.QUICK.steps_b



def test_finished_runs_are_reused(tmp_path: Path, bench: ModuleType) -> None:
    record = {"step": 3, "checkpoint": "somewhere", "wall_s": 1.0}
    (tmp_path / "X.result.json").write_text(json.dumps(record))
    # the config does not exist: a training would fail, a reused run never starts one
    assert bench.run_trainings([("X", tmp_path / "missing.json")], tmp_path, 1) == {"X": {**record, "reused": True}}


def test_bad_arguments_are_errors(bench: ModuleType) -> None:
    for argv in (["--parts", "XZ"], ["--jobs", "0"]):
        with pytest.raises(SystemExit) as info:
            bench.main(argv)
        assert info.value.code == 2
