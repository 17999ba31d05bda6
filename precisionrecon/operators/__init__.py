"""Linear operators: the algebra and the known operators of CT."""

from ..geometry.facts import fan_angles, scan_arc, scan_type  # their old import path (now geometry facts)
from .backprojection import VoxelBackprojection
from .base import (
    AdjointOperator,
    ComposedOperator,
    IdentityOperator,
    LinearFunction,
    LinearOperator,
    ScaledOperator,
    SumOperator,
    power_norm,
)
from .chunked import (
    ChunkedOperator,
    ChunkedXRayTransform,
    ChunkPlan,
    memory_budget,
    plan_chunks,
    slab_operator,
    volume_slab,
)
from .differences import FiniteDifferences
from .distributed import DistributedXRayTransform, view_ranges
from .fbp import FBP, arc_ramp_response
from .filters import RampFilter, fft_length, ramp_response
from .helical import HelicalFBP, helical_row_weights
from .parametric import ParametricXRayTransform
from .weights import (
    ProjectionWeighting,
    angular_weights,
    cosine_weights,
    extended_parker_weights,
    full_scan_weights,
    parker_weight,
    parker_weights,
    redundancy_weights,
)
from .xray import XRayTransform

__all__ = [
    "FBP",
    "AdjointOperator",
    "ChunkPlan",
    "ChunkedOperator",
    "ChunkedXRayTransform",
    "ComposedOperator",
    "DistributedXRayTransform",
    "FiniteDifferences",
    "HelicalFBP",
    "IdentityOperator",
    "LinearFunction",
    "LinearOperator",
    "ParametricXRayTransform",
    "ProjectionWeighting",
    "RampFilter",
    "ScaledOperator",
    "SumOperator",
    "VoxelBackprojection",
    "XRayTransform",
    "angular_weights",
    "arc_ramp_response",
    "cosine_weights",
    "extended_parker_weights",
    "fan_angles",
    "fft_length",
    "full_scan_weights",
    "helical_row_weights",
    "memory_budget",
    "parker_weight",
    "parker_weights",
    "plan_chunks",
    "power_norm",
    "ramp_response",
    "redundancy_weights",
    "scan_arc",
    "scan_type",
    "slab_operator",
    "view_ranges",
    "volume_slab",
]
