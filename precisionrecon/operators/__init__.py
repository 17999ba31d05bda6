"""Linear operators: the algebra and the known operators of CT."""

from .backprojection import VoxelBackprojection
from .base import (
    AdjointOperator,
    ComposedOperator,
    IdentityOperator,
    LinearOperator,
    ScaledOperator,
    SumOperator,
    power_norm,
)
from .differences import FiniteDifferences
from .filters import RampFilter, fft_length, ramp_response
from .xray import XRayTransform

__all__ = [
    "AdjointOperator",
    "ComposedOperator",
    "FiniteDifferences",
    "IdentityOperator",
    "LinearOperator",
    "RampFilter",
    "ScaledOperator",
    "SumOperator",
    "VoxelBackprojection",
    "XRayTransform",
    "fft_length",
    "power_norm",
    "ramp_response",
]
