"""precisionrecon: differentiable CT and MR reconstruction built on known operators."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from .geometry import (
    ConeBeam3D,
    FanBeam2D,
    Geometry,
    ParallelBeam2D,
    ParallelBeam3D,
    VectorGeometry,
    Volume,
    angles,
)
from .operators import (
    FBP,
    FiniteDifferences,
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
    "ConeBeam3D",
    "FanBeam2D",
    "FiniteDifferences",
    "Geometry",
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
