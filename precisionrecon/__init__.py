"""precisionrecon: differentiable CT and MR reconstruction built on known operators."""

from __future__ import annotations

import os

# OpenMP threads that finish a parallel region wait passively (sleep) instead of spinning:
# on a busy machine, spinning threads take the cores that the threads doing the work need
# (benchmarks/threads_under_load.py: 2 threads 1.3-1.6x faster under load). libgomp reads
# this once, when torch loads it, so it works when precisionrecon is imported before torch
# (the command line) and changes nothing otherwise; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from .geometry import (
    ConeBeam3D,
    FanBeam2D,
    Geometry,
    HelicalConeBeam,
    ParallelBeam2D,
    ParallelBeam3D,
    VectorGeometry,
    Volume,
    angles,
)
from .operators import (
    FBP,
    ChunkedOperator,
    ChunkedXRayTransform,
    DistributedXRayTransform,
    FiniteDifferences,
    HelicalFBP,
    IdentityOperator,
    LinearOperator,
    ParametricXRayTransform,
    ProjectionWeighting,
    RampFilter,
    VoxelBackprojection,
    XRayTransform,
)

if TYPE_CHECKING:  # static tools see the lazily imported subpackages as plain imports
    from . import (
        algorithms,
        bench,
        calibration,
        data,
        interop,
        metrics,
        models,
        mr,
        pretrained,
        testing,
        training,
        uncertainty,
    )

__version__ = "0.1.0"

# Subpackages imported on first attribute access (PEP 562): `import precisionrecon` loads the
# geometry and operators only, not MR (scipy), models, training or the interop layers.
_LAZY_SUBMODULES = frozenset(("algorithms", "bench", "calibration", "data", "interop", "metrics", "models", "mr",
                              "pretrained", "testing", "training", "uncertainty"))


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY_SUBMODULES:
        # import_module also binds the subpackage in this namespace: later lookups skip this hook
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBMODULES)


__all__ = [
    "FBP",
    "ChunkedOperator",
    "ChunkedXRayTransform",
    "ConeBeam3D",
    "DistributedXRayTransform",
    "FanBeam2D",
    "FiniteDifferences",
    "Geometry",
    "HelicalConeBeam",
    "HelicalFBP",
    "IdentityOperator",
    "LinearOperator",
    "ParallelBeam2D",
    "ParallelBeam3D",
    "ParametricXRayTransform",
    "ProjectionWeighting",
    "RampFilter",
    "VectorGeometry",
    "Volume",
    "VoxelBackprojection",
    "XRayTransform",
    "__version__",
    "algorithms",
    "angles",
    "bench",
    "calibration",
    "data",
    "interop",
    "metrics",
    "models",
    "mr",
    "pretrained",
    "testing",
    "training",
    "uncertainty",
]
