"""Volumes and projection geometries; every geometry reduces to per-view vectors."""

from ._circular import circular_vectors, parallel_vectors
from .base import Geometry, angles
from .cone import ConeBeam3D
from .fan import FanBeam2D
from .parallel import ParallelBeam2D, ParallelBeam3D
from .serialize import from_dict, to_dict
from .vectors import VectorGeometry
from .volume import Volume

__all__ = [
    "ConeBeam3D",
    "FanBeam2D",
    "Geometry",
    "ParallelBeam2D",
    "ParallelBeam3D",
    "VectorGeometry",
    "Volume",
    "angles",
    "circular_vectors",
    "from_dict",
    "parallel_vectors",
    "to_dict",
]
