"""Simulated data: analytic phantoms and their exact projections, noise models."""

from .analytic import Ellipsoid, analytic_projection, ellipse, ellipsoid, rasterize, with_power
from .loaders import (
    LODOPAB_I0,
    LODOPAB_MU_MAX,
    DicomImage,
    LoDoPaB,
    lodopab_geometry,
    read_dicom_ct,
    read_dicom_mr,
    write_dicom,
)
from .noise import gaussian_noise, poisson_noise
from .phantoms import random_ellipse_images, random_ellipses, shepp_logan_2d, shepp_logan_3d, shepp_logan_image

__all__ = [
    "LODOPAB_I0",
    "LODOPAB_MU_MAX",
    "DicomImage",
    "Ellipsoid",
    "LoDoPaB",
    "analytic_projection",
    "ellipse",
    "ellipsoid",
    "gaussian_noise",
    "lodopab_geometry",
    "poisson_noise",
    "random_ellipse_images",
    "random_ellipses",
    "rasterize",
    "read_dicom_ct",
    "read_dicom_mr",
    "shepp_logan_2d",
    "shepp_logan_3d",
    "shepp_logan_image",
    "with_power",
    "write_dicom",
]
