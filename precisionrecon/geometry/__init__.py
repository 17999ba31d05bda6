"""Volumes and projection geometries (circular, helical, per-view vectors); every geometry reduces
to per-view vectors. Facts about circular scans (scan arc, full/short/limited scan, fan angles) are in :mod:`.facts`."""

from ._circular import circular_vectors, parallel_vectors
from .base import Geometry, angles
from .cone import ConeBeam3D
from .facts import CIRCULAR, FULL_SCAN_TOL, as_angles, check_circular, detector_uv, fan_angles, scan_arc, scan_type
from .fan import FanBeam2D
from .helical import HelicalConeBeam
from .parallel import ParallelBeam2D, ParallelBeam3D
from .serialize import from_dict, from_file_dict, to_dict
from .vectors import VectorGeometry
from .volume import Volume

__all__ = [
    "CIRCULAR",
    "FULL_SCAN_TOL",
    "ConeBeam3D",
    "FanBeam2D",
    "Geometry",
    "HelicalConeBeam",
    "ParallelBeam2D",
    "ParallelBeam3D",
    "VectorGeometry",
    "Volume",
    "angles",
    "as_angles",
    "check_circular",
    "circular_vectors",
    "detector_uv",
    "fan_angles",
    "from_dict",
    "from_file_dict",
    "parallel_vectors",
    "scan_arc",
    "scan_type",
    "to_dict",
]
