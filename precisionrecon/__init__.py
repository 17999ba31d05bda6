"""precisionrecon: differentiable CT and MR reconstruction built on known operators."""

from . import algorithms, data, interop, metrics, models, mr, pretrained, testing, training, uncertainty
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

__version__ = "0.1.0"

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
