"""Simulated data: analytic phantoms and their exact projections, noise models."""

from .analytic import Ellipsoid, analytic_projection, ellipse, ellipsoid, rasterize, with_power
from .noise import gaussian_noise, poisson_noise
from .phantoms import random_ellipse_images, random_ellipses, shepp_logan_2d, shepp_logan_3d, shepp_logan_image

__all__ = [
    "Ellipsoid",
    "analytic_projection",
    "ellipse",
    "ellipsoid",
    "gaussian_noise",
    "poisson_noise",
    "random_ellipse_images",
    "random_ellipses",
    "rasterize",
    "shepp_logan_2d",
    "shepp_logan_3d",
    "shepp_logan_image",
    "with_power",
]
