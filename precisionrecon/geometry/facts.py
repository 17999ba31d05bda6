r"""Facts about circular scans that weights and reconstructions ask of a geometry: which
geometries are circular, the angular interval the views cover, whether they make a full,
short or limited-angle scan, and the fan angle and coordinates of the detector pixels.

Conventions (see :class:`FanBeam2D` / :class:`ConeBeam3D`): the source angle ``beta``
increases in the direction in which the source moves, which is the detector's +u
direction; the fan angle ``gamma`` of detector column ``k`` is the angle between its ray
and the central ray (source -> isocentre), positive towards +u:

* flat detector: ``u_k = (k - (n - 1) / 2) du + offset_u``, ``gamma_k = atan(u_k / D_sd)``;
* arc / cylindrical detector: ``gamma_k = ((k - (n - 1) / 2) du + offset_u) / D_sd``;

with ``D_sd`` the source-to-detector distance.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._validate import angles_tuple
from .base import Geometry
from .cone import ConeBeam3D
from .fan import FanBeam2D
from .parallel import ParallelBeam2D, ParallelBeam3D

CIRCULAR = (ParallelBeam2D, ParallelBeam3D, FanBeam2D, ConeBeam3D)
# a set of views counts as a full circle when it misses less than this (radians)
FULL_SCAN_TOL = 1e-6
# views closer than this (radians) are the same view
_SAME_VIEW = 1e-9


def as_angles(angles: Any) -> Tensor:
    """Angles as a 1-D float64 CPU tensor of finite values (detached).

    Shape: ``(n_views,)``.
    """
    return torch.tensor(angles_tuple(angles), dtype=torch.float64)


def check_circular(geometry: Any, name: str = "geometry") -> Geometry:
    """``geometry`` if it is a circular scan (:data:`CIRCULAR`), else a ``TypeError`` naming ``name``."""
    if not isinstance(geometry, CIRCULAR):
        raise TypeError(
            f"{name} must be a ParallelBeam2D, ParallelBeam3D, FanBeam2D or ConeBeam3D (a circular scan), "
            f"got {type(geometry).__name__}"
        )
    return geometry


def scan_arc(angles: Any) -> tuple[float, float]:
    r"""The angular interval ``[start, start + arc]`` covered by a set of views.

    Each view stands for the arc up to half-way to its neighbours (its Voronoi cell on
    the circle); the views are taken modulo ``2 pi`` and the largest gap between
    neighbours is the part of the circle not covered, except for a half gap at each
    end. For ``n`` equispaced views ``start + k * arc / n`` this returns ``(start -
    arc / (2 n), arc)``; for a full circle ``arc = 2 pi``.

    Returns
    -------
    start, arc : float
        Radians; ``start`` in ``[-pi, 2 pi)``, ``arc`` in ``(0, 2 pi]``.
    """
    a = as_angles(angles)
    if a.numel() < 2:
        raise ValueError("angles must hold at least two views to define a scan arc")
    two_pi = 2.0 * math.pi
    phi, _ = torch.sort(torch.remainder(a, two_pi))
    # repeated views (also theta and theta + 2 pi) would hide the gaps at the ends
    keep = torch.ones_like(phi, dtype=torch.bool)
    keep[1:] = torch.diff(phi) > _SAME_VIEW
    keep[-1] &= bool(phi[0] + two_pi - phi[-1] > _SAME_VIEW) or len(phi) == 1
    phi = phi[keep]
    if phi.numel() < 2:
        raise ValueError("angles must hold at least two distinct views to define a scan arc")
    gaps = torch.diff(phi, append=phi[:1] + two_pi)  # gaps[i]: from phi[i] to the next view
    i = int(torch.argmax(gaps))
    largest = float(gaps[i])
    first = (i + 1) % len(phi)  # the view after the largest gap opens the scan
    g_first = float(gaps[first])
    g_last = float(gaps[i - 1])  # gap before the view that closes the scan
    arc = min(two_pi, two_pi - largest + 0.5 * (g_first + g_last))
    start = float(phi[first]) - 0.5 * g_first
    if arc >= two_pi - FULL_SCAN_TOL:
        return start, two_pi
    return start, arc


def detector_uv(geometry: FanBeam2D | ConeBeam3D) -> tuple[Tensor, Tensor]:
    """Column coordinates u (mm along the detector, arc length if curved) and row
    coordinates v (mm along z; ``zeros(1)`` in 2-D) of the pixel centres, offsets included.

    Shape: ``(n_cols,)`` and ``(n_rows,)``, float64.
    """
    if isinstance(geometry, FanBeam2D):
        n, du, ou = geometry.det_count, geometry.det_spacing, geometry.det_offset
        rows, dv, ov = 1, 0.0, 0.0
    elif isinstance(geometry, ConeBeam3D):
        (rows, n), (dv, du), (ov, ou) = geometry.det_shape, geometry.det_spacing, geometry.det_offset
    else:
        raise TypeError(f"geometry must be a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}")
    u = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * du + ou
    v = (torch.arange(rows, dtype=torch.float64) - (rows - 1) / 2) * dv + ov
    return u, v


def fan_angles(geometry: FanBeam2D | ConeBeam3D) -> Tensor:
    r"""Fan angle ``gamma_k`` (radians) of every detector column's ray against the central ray.

    ``atan(u_k / D_sd)`` for a flat detector, ``u_k / D_sd`` for an arc or cylindrical one,
    with ``u_k = (k - (n - 1) / 2) du + offset_u`` and ``D_sd = src_det``; positive
    towards the detector's +u axis (the direction in which the source moves).

    Shape: ``(n_cols,)``, float64.
    """
    if not isinstance(geometry, (FanBeam2D, ConeBeam3D)):
        raise TypeError(f"geometry must be a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}")
    u, _ = detector_uv(geometry)
    if geometry.curved:
        return u / geometry.src_det
    return torch.atan(u / geometry.src_det)


def scan_type(geometry: Geometry) -> str:
    """``"full"`` when the views of a fan/cone beam cover the whole circle (parallel beam:
    half of it), else ``"short"`` (or ``"limited"`` when a parallel beam covers less than
    ``pi`` / a fan beam less than ``pi`` plus the fan angle)."""
    geometry = check_circular(geometry)
    if geometry.n_views < 2:
        return "limited"
    a = as_angles(geometry.angles)
    if geometry.beam == "parallel":
        _, arc = scan_arc(2.0 * a)  # lines repeat after pi: double the angles to go round once
        return "full" if arc >= 2.0 * math.pi - FULL_SCAN_TOL else "limited"
    _, arc = scan_arc(a)
    if arc >= 2.0 * math.pi:
        return "full"
    delta = float(fan_angles(geometry).abs().max())  # type: ignore[arg-type]
    return "short" if arc >= math.pi + 2.0 * delta - 1e-12 else "limited"
