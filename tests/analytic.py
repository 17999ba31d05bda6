"""Exact line integrals of ellipse/ellipsoid phantoms: the names the tests use.

The code lives in :mod:`precisionrecon.data.analytic` (plain numpy, written from the
documented conventions only, never from the projector kernels); this module re-exports
it under the names the test suite has always imported.
"""

from precisionrecon.data.analytic import (
    Ellipsoid,
    analytic_projection,
    blobs_2d,
    blobs_3d,
    chord_integrals,
    detector_rays,
    ellipse,
    ellipsoid,
    local_coordinates,
    phantom_2d,
    phantom_3d,
    profile_integral,
    project,
    rasterize,
    voxel_centres,
    voxelise,
    with_power,
)

__all__ = [
    "Ellipsoid",
    "analytic_projection",
    "blobs_2d",
    "blobs_3d",
    "chord_integrals",
    "detector_rays",
    "ellipse",
    "ellipsoid",
    "local_coordinates",
    "phantom_2d",
    "phantom_3d",
    "profile_integral",
    "project",
    "rasterize",
    "voxel_centres",
    "voxelise",
    "with_power",
]
