"""Linear operators: the algebra and the known operators of CT."""

from .base import (
    AdjointOperator,
    ComposedOperator,
    IdentityOperator,
    LinearOperator,
    ScaledOperator,
    SumOperator,
    power_norm,
)
from .xray import XRayTransform

__all__ = [
    "AdjointOperator",
    "ComposedOperator",
    "IdentityOperator",
    "LinearOperator",
    "ScaledOperator",
    "SumOperator",
    "XRayTransform",
    "power_norm",
]
