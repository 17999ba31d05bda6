"""`import precisionrecon` stays light: optional subpackages load on first attribute access."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import precisionrecon as pr

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("algorithms", "calibration", "data", "interop", "metrics", "models", "mr", "pretrained", "testing",
        "training", "uncertainty")


def test_import_loads_no_optional_subpackage() -> None:
    """A fresh interpreter: after `import precisionrecon` none of the optional subpackages (nor
    scipy, which only MR masks use) is in sys.modules; touching `pr.mr` loads it."""
    code = (
        "import json, sys; import precisionrecon as pr; "
        f"lazy = {LAZY!r}; "
        "before = [m for m in sys.modules if m == 'scipy' or m.split('.')[:2] in "
        "[['precisionrecon', n] for n in lazy]]; "
        "pr.mr; "
        "print(json.dumps({'before': before, 'mr': 'precisionrecon.mr' in sys.modules, "
        "'training': 'precisionrecon.training' in sys.modules}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"before": [], "mr": True, "training": False}


@pytest.mark.parametrize("name", LAZY)
def test_lazy_subpackage_is_an_attribute(name: str) -> None:
    module = getattr(pr, name)
    assert module.__name__ == f"precisionrecon.{name}"
    assert getattr(pr, name) is module
    assert name in dir(pr)
    assert name in pr.__all__


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        pr.no_such_thing  # noqa: B018


def test_public_names_resolve() -> None:
    for name in pr.__all__:
        assert getattr(pr, name) is not None
