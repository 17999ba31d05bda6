"""The projector benchmark (the README's main job) runs end to end on a tiny problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "projectors.py"


def test_quick_benchmark_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("astra")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "parallel" in out.stdout
    data = json.loads((tmp_path / "projectors.json").read_text())
    assert len(data["cases"]) == 4
    assert all(case["results"] for case in data["cases"])
    table = (tmp_path / "projectors.md").read_text()
    assert "ASTRA/ours" in table
