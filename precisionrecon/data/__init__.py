"""Simulated data: analytic and anatomy-like phantoms, their projections, noise models."""

from .analytic import Ellipsoid, analytic_projection, ellipse, ellipsoid, rasterize, with_power
from .anatomy import anatomy_images, anatomy_phantom
from .dicom_ct_pd import DicomCTPD, read_dicom_ct_pd, write_dicom_ct_pd
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
from .simulate import bin_detector, fine_projection, refine_geometry, refine_volume

__all__ = [
    "LODOPAB_I0",
    "LODOPAB_MU_MAX",
    "DicomCTPD",
    "DicomImage",
    "Ellipsoid",
    "LoDoPaB",
    "analytic_projection",
    "anatomy_images",
    "anatomy_phantom",
    "bin_detector",
    "ellipse",
    "ellipsoid",
    "fine_projection",
    "gaussian_noise",
    "lodopab_geometry",
    "poisson_noise",
    "random_ellipse_images",
    "random_ellipses",
    "rasterize",
    "read_dicom_ct",
    "read_dicom_ct_pd",
    "read_dicom_mr",
    "refine_geometry",
    "refine_volume",
    "shepp_logan_2d",
    "shepp_logan_3d",
    "shepp_logan_image",
    "with_power",
    "write_dicom",
    "write_dicom_ct_pd",
]
