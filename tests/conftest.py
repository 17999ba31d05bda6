"""Shared fixtures; the registry of every linear operator lives in ``registry.py``."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: the suite runs many tiny kernels, and on a
# busy 2-core machine spinning threads stall each other (seen: 100x slower gradchecks).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch
from registry import OPERATORS

import precisionrecon as pr

__all__ = ["OPERATORS"]  # the X-ray transforms of the registry, imported by older suites


@pytest.fixture(params=sorted(OPERATORS))
def xray_op(request: pytest.FixtureRequest) -> pr.XRayTransform:
    return OPERATORS[request.param]()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
