r"""Redundancy weights and pre-weights of filtered back-projection.

Every weight here multiplies projection data entry by entry, so each is a diagonal,
self-adjoint :class:`ProjectionWeighting` (or the plain tensor, from the functions).

Conventions (circular geometries, see :class:`FanBeam2D` / :class:`ConeBeam3D`): the
source angle ``beta`` increases in the direction in which the source moves, which is the
detector's +u direction; the fan angle ``gamma`` of detector column ``k`` is the angle
between its ray and the central ray (source -> isocentre), positive towards +u:

* flat detector: ``u_k = (k - (n - 1) / 2) du + offset_u``, ``gamma_k = atan(u_k / D_sd)``;
* arc / cylindrical detector: ``gamma_k = ((k - (n - 1) / 2) du + offset_u) / D_sd``;

with ``D_sd`` the source-to-detector distance. In this convention ray ``(beta, gamma)``
is measured again as ray ``(beta + pi - 2 gamma, -gamma)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import REAL, angles_tuple, as_shape, check_tensor
from ..geometry import ConeBeam3D, FanBeam2D, Geometry, ParallelBeam2D, ParallelBeam3D
from .base import LinearOperator

CIRCULAR = (ParallelBeam2D, ParallelBeam3D, FanBeam2D, ConeBeam3D)
# a set of views counts as a full circle when it misses less than this (radians)
FULL_SCAN_TOL = 1e-6
# views closer than this (radians) are the same view
_SAME_VIEW = 1e-9


def _angles(angles: Any) -> Tensor:
    """Angles as a 1-D float64 tensor of finite values."""
    return torch.tensor(angles_tuple(angles), dtype=torch.float64)


def _circular_geometry(geometry: Any, name: str = "geometry") -> Geometry:
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
    a = _angles(angles)
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


def angular_weights(angles: Any, *, period: float | None = None) -> Tensor:
    r"""Quadrature weights ``dbeta_i`` of the angular integral of filtered back-projection.

    Each view gets the length of its Voronoi cell: half the gap to the previous view
    plus half the gap to the next, ``w_i = (beta_{i+1} - beta_{i-1}) / 2`` on the sorted
    angles, so that ``sum_i w_i g(beta_i)`` is the midpoint rule for ``int g(beta)
    dbeta`` at any, also non-uniform, sampling.

    * ``period=None``: an open arc (short scan, limited angle): the end views extend by
      half their inner gap, as in :func:`scan_arc`; the weights sum to the covered arc.
    * ``period=P``: the angles are taken modulo ``P`` and the gaps wrap around (full
      circle ``P = 2 pi`` of a fan/cone beam, or ``P = pi`` for parallel beams, whose
      views ``theta`` and ``theta + pi`` measure the same lines): the weights sum to
      ``P``. Repeated views (e.g. ``theta`` and ``theta + pi`` for ``P = pi``) share their
      cell, which is the full-scan redundancy weighting.

    Shape: ``(n_views,)``, float64, radians, in the order of ``angles``.
    """
    a = _angles(angles)
    n = a.numel()
    if period is not None:
        if not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
            raise ValueError(f"period must be a positive finite number (radians), got {period!r}")
        if n == 1:
            return torch.full((1,), float(period), dtype=torch.float64)
        phi = torch.remainder(a, float(period))
        order = torch.argsort(phi)
        s = phi[order]
        gaps = torch.diff(s, append=s[:1] + period)  # gaps[i]: from s[i] to the next (circular)
        cell = 0.5 * (gaps + torch.roll(gaps, 1))
    else:
        start, arc = scan_arc(a)
        if arc >= 2.0 * math.pi:
            raise ValueError("the views cover the full circle: pass period=2 * pi for a full scan")
        beta = torch.remainder(a - start, 2.0 * math.pi)
        order = torch.argsort(beta)
        s = beta[order]
        edges = torch.cat([s.new_zeros(1), 0.5 * (s[1:] + s[:-1]), s.new_full((1,), arc)])
        cell = torch.diff(edges)
    out = torch.empty_like(a)
    out[order] = cell
    return out


def fan_angles(geometry: FanBeam2D | ConeBeam3D) -> Tensor:
    r"""Fan angle ``gamma_k`` (radians) of every detector column's ray against the central ray.

    ``atan(u_k / D_sd)`` for a flat detector, ``u_k / D_sd`` for an arc or cylindrical one,
    with ``u_k = (k - (n - 1) / 2) du + offset_u`` and ``D_sd = src_det``; positive
    towards the detector's +u axis (the direction in which the source moves).

    Shape: ``(n_cols,)``, float64.
    """
    if not isinstance(geometry, (FanBeam2D, ConeBeam3D)):
        raise TypeError(f"geometry must be a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}")
    u, _ = _detector_uv(geometry)
    if geometry.curved:
        return u / geometry.src_det
    return torch.atan(u / geometry.src_det)


def _detector_uv(geometry: FanBeam2D | ConeBeam3D) -> tuple[Tensor, Tensor]:
    """Column coordinates u (mm along the detector, arc length if curved) and row
    coordinates v (mm along z; zeros(1) in 2-D) of the pixel centres."""
    if isinstance(geometry, FanBeam2D):
        n, du, ou = geometry.det_count, geometry.det_spacing, geometry.det_offset
        rows, dv, ov = 1, 0.0, 0.0
    else:
        (rows, n), (dv, du), (ov, ou) = geometry.det_shape, geometry.det_spacing, geometry.det_offset
    u = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * du + ou
    v = (torch.arange(rows, dtype=torch.float64) - (rows - 1) / 2) * dv + ov
    return u, v


def cosine_weights(geometry: Geometry) -> Tensor:
    r"""Cosine pre-weights of fan-beam FBP and FDK: the cosine of the angle between each
    pixel's ray and the central ray.

    * fan beam, flat detector: ``D / sqrt(D^2 + s^2)`` with ``s`` the detector coordinate
      scaled to the isocentre, which equals ``D_sd / sqrt(D_sd^2 + u^2) = cos gamma``
      (Kak & Slaney eq. 3.77);
    * fan beam, arc detector: ``cos gamma`` (Kak & Slaney eq. 3.68, without the factor
      ``D``, which :class:`FBP` keeps in its scale);
    * cone beam, flat detector (FDK): ``D_sd / sqrt(D_sd^2 + u^2 + v^2)`` (Feldkamp 1984);
    * cone beam, cylindrical detector: ``cos gamma * D_sd / sqrt(D_sd^2 + v^2)``;
    * parallel beam: 1.

    Shape: ``(1, n_det)`` (fan), ``(1, rows, cols)`` (cone), ``(1, 1)`` / ``(1, 1, 1)``
    (parallel), float64; broadcasts against ``geometry.proj_shape``.
    """
    geometry = _circular_geometry(geometry)
    if geometry.beam == "parallel":
        return torch.ones((1,) * len(geometry.proj_shape), dtype=torch.float64)
    u, v = _detector_uv(geometry)
    d = geometry.src_det
    if geometry.curved:
        w = torch.cos(u / d)[None, :] * (d / torch.sqrt(d * d + v * v))[:, None]
    else:
        w = d / torch.sqrt(d * d + u[None, :] ** 2 + v[:, None] ** 2)
    return w[None] if isinstance(geometry, ConeBeam3D) else w  # (1, rows, cols) / (1, n_det)


def parker_weight(beta: Tensor, gamma: Tensor, overscan: float) -> Tensor:
    r"""Parker's short-scan weight (Parker 1982), generalised to any scan ``pi + 2 Delta``
    with ``delta <= Delta <= pi / 2`` (Wesarg et al. 2002), ``delta`` the half fan angle.

    With ``beta`` in ``[0, pi + 2 Delta]`` and ``gamma`` in ``[-Delta, Delta]`` (signs as in
    this module's header, where ray ``(beta, gamma)`` equals ray ``(beta + pi - 2 gamma,
    -gamma)``):

    .. math::

        w(\beta, \gamma) = \begin{cases}
            \sin^2\!\left(\frac{\pi}{4} \frac{\beta}{\Delta + \gamma}\right)
                & 0 \le \beta < 2\Delta + 2\gamma \\
            1 & 2\Delta + 2\gamma \le \beta \le \pi + 2\gamma \\
            \sin^2\!\left(\frac{\pi}{4} \frac{\pi + 2\Delta - \beta}{\Delta - \gamma}\right)
                & \pi + 2\gamma < \beta \le \pi + 2\Delta
        \end{cases}

    so that ``w(beta, gamma) + w(beta + pi - 2 gamma, -gamma) = 1`` for every measured
    pair (``sin^2 + cos^2``), and ``w`` is continuous. Outside ``[0, pi + 2 Delta]`` it is 0.

    Shape: ``broadcast(beta, gamma)``, the dtype of ``beta``.
    """
    if not (isinstance(overscan, (int, float)) and 0.0 <= overscan <= math.pi / 2 + FULL_SCAN_TOL):
        raise ValueError(f"overscan (Delta) must be in [0, pi / 2], got {overscan!r}")
    beta, gamma = torch.broadcast_tensors(beta, gamma)
    if bool((gamma.abs() > overscan + 1e-12).any()):
        raise ValueError(f"|gamma| must not exceed the overscan Delta = {overscan}: the scan is too short")
    big = 2.0 * overscan
    lo = overscan + gamma  # width of the ramp-up, over two
    hi = overscan - gamma  # width of the ramp-down, over two
    ramp_up = torch.sin(0.25 * math.pi * beta / torch.where(lo > 0, lo, 1.0)) ** 2
    ramp_down = torch.sin(0.25 * math.pi * (math.pi + big - beta) / torch.where(hi > 0, hi, 1.0)) ** 2
    w = torch.where(beta < 2.0 * lo, ramp_up, torch.ones_like(beta))
    w = torch.where(beta >= math.pi + 2.0 * gamma, ramp_down, w)  # >=: a zero-width ramp at gamma = Delta is 0
    return torch.where((beta < 0) | (beta > math.pi + big), torch.zeros_like(w), w)


def parker_weights(geometry: FanBeam2D | ConeBeam3D, *, start: float | None = None, arc: float | None = None) -> Tensor:
    r"""Parker short-scan weights of a fan- or cone-beam geometry (:func:`parker_weight`).

    ``beta = (angle - start) mod 2 pi`` and ``Delta = (arc - pi) / 2``; by default
    ``(start, arc)`` is the covered interval from :func:`scan_arc`. The scan must cover
    at least ``pi`` plus the fan angle (``Delta >= max |gamma|``) and at most ``2 pi``.
    FDK uses the weights of the detector columns for every row.

    Shape: ``(n_views, n_det)`` (fan) or ``(n_views, 1, cols)`` (cone), float64.
    """
    if not isinstance(geometry, (FanBeam2D, ConeBeam3D)):
        raise TypeError(f"geometry must be a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}")
    a = _angles(geometry.angles)
    if (start is None) != (arc is None):
        raise ValueError("pass both start and arc, or neither")
    if start is None or arc is None:
        start, arc = scan_arc(a)
    if not (math.isfinite(start) and math.isfinite(arc)):
        raise ValueError(f"start and arc must be finite, got start={start}, arc={arc}")
    gamma = fan_angles(geometry)
    delta = float(gamma.abs().max())
    if not (math.pi + 2.0 * delta - 1e-12 <= arc <= 2.0 * math.pi + FULL_SCAN_TOL):
        raise ValueError(
            f"a short scan with Parker weights needs an arc between pi + fan angle = {math.pi + 2 * delta:.6g} "
            f"and 2 pi rad, got arc = {arc:.6g} rad"
        )
    overscan = min(0.5 * (arc - math.pi), 0.5 * math.pi)
    beta = torch.remainder(a - start, 2.0 * math.pi)
    w = parker_weight(beta[:, None], gamma[None, :], overscan)
    return w[:, None, :] if isinstance(geometry, ConeBeam3D) else w


def full_scan_weights(geometry: Geometry) -> Tensor:
    r"""The redundancy weight ``1/2`` of a full ``2 pi`` scan of a fan or cone beam (every
    line is measured twice, Kak & Slaney eq. 3.72).

    Shape: ``(n_views, 1)`` or ``(n_views, 1, 1)``, float64.
    """
    geometry = _circular_geometry(geometry)
    return torch.full((geometry.n_views,) + (1,) * (len(geometry.proj_shape) - 1), 0.5, dtype=torch.float64)


def scan_type(geometry: Geometry) -> str:
    """``"full"`` when the views of a fan/cone beam cover the whole circle (parallel beam:
    half of it), else ``"short"`` (or ``"limited"`` when a parallel beam covers less than
    ``pi`` / a fan beam less than ``pi`` plus the fan angle)."""
    geometry = _circular_geometry(geometry)
    if geometry.n_views < 2:
        return "limited"
    a = _angles(geometry.angles)
    if geometry.beam == "parallel":
        _, arc = scan_arc(2.0 * a)  # lines repeat after pi: double the angles to go round once
        return "full" if arc >= 2.0 * math.pi - FULL_SCAN_TOL else "limited"
    _, arc = scan_arc(a)
    if arc >= 2.0 * math.pi:
        return "full"
    delta = float(fan_angles(geometry).abs().max())  # type: ignore[arg-type]
    return "short" if arc >= math.pi + 2.0 * delta - 1e-12 else "limited"


def redundancy_weights(geometry: Geometry, *, short_scan: bool | str = "auto", parker: bool = True) -> Tensor:
    r"""Angular quadrature times redundancy weight of every ray: the weights ``w(beta, gamma)
    dbeta`` of the angular integral of FBP / FDK.

    * parallel beam covering ``pi`` (or more): :func:`angular_weights` modulo ``pi``, which
      sums to ``pi`` and halves repeated lines (e.g. a ``2 pi`` scan);
    * parallel beam covering less (limited angle): open-arc :func:`angular_weights`;
    * fan/cone beam, full scan: ``1/2`` times :func:`angular_weights` modulo ``2 pi``;
    * fan/cone beam, short scan: open-arc :func:`angular_weights` times
      :func:`parker_weights` (``parker=True``), or times the mean redundancy ``pi / arc``
      (``parker=False``: right on average, wrong where lines are measured once or twice,
      kept to show what Parker weights correct).

    ``short_scan="auto"`` decides from the angles (:func:`scan_type`); ``True`` forces
    Parker weights (also on a full circle), ``False`` requires a full scan. Both are for
    fan and cone beams only.

    Shape: ``(n_views, 1)``, ``(n_views, n_det)``, ``(n_views, 1, 1)`` or
    ``(n_views, 1, cols)``, float64; broadcasts against ``geometry.proj_shape``.
    """
    geometry = _circular_geometry(geometry)
    if short_scan not in ("auto", True, False):
        raise ValueError(f"short_scan must be 'auto', True or False, got {short_scan!r}")
    if not isinstance(parker, bool):
        raise TypeError(f"parker must be a bool, got {type(parker).__name__}")
    trailing = (1,) * (len(geometry.proj_shape) - 1)
    a = _angles(geometry.angles)
    kind = scan_type(geometry)
    if geometry.beam == "parallel":
        if short_scan is not True and short_scan is not False:
            w = angular_weights(a, period=math.pi) if kind == "full" else angular_weights(a)
            return w.reshape(-1, *trailing)
        raise ValueError("short_scan applies to fan and cone beams; a parallel beam needs 'auto'")
    use_short = kind != "full" if short_scan == "auto" else bool(short_scan)
    if not use_short:
        if kind != "full":
            _, arc = scan_arc(a)
            raise ValueError(
                f"short_scan=False needs views around the full circle, but they cover {arc:.6g} rad; "
                "use short_scan='auto' or True"
            )
        return (0.5 * angular_weights(a, period=2.0 * math.pi)).reshape(-1, *trailing)
    start, arc = scan_arc(a)
    dbeta = angular_weights(a) if arc < 2.0 * math.pi else angular_weights(a, period=2.0 * math.pi)
    if parker:
        return dbeta.reshape(-1, *trailing) * parker_weights(geometry, start=start, arc=arc)  # type: ignore[arg-type]
    if kind == "limited":
        delta = float(fan_angles(geometry).abs().max())  # type: ignore[arg-type]
        raise ValueError(
            f"the views cover {arc:.6g} rad, less than pi + fan angle = {math.pi + 2 * delta:.6g}: "
            "the data are incomplete"
        )
    return (dbeta * (math.pi / arc)).reshape(-1, *trailing)


@dataclass(frozen=True, eq=False)
class ProjectionWeighting(LinearOperator):
    r"""Diagonal weighting of projection data, ``y -> w * y`` (self-adjoint).

    ``weights`` broadcasts against ``shape``, so a weight per view has shape
    ``(n_views, 1)``, one per detector pixel ``(1, n_det)``. It is a plain tensor (a
    buffer); to learn it, pass an ``nn.Parameter`` (e.g. ``op.replace(weights=
    nn.Parameter(op.weights.clone()))``): the operator is differentiable in its input and
    in ``weights``. The weights are cast to the input's dtype and device.

    Parameters
    ----------
    shape : tuple of int
        Projection shape, e.g. ``geometry.proj_shape``.
    weights : Tensor
        Real weights, broadcastable to ``shape``.

    Notes
    -----
    Shape: ``(*batch, *shape) -> (*batch, *shape)``.
    """

    shape: tuple[int, ...]
    weights: Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape))
        check_tensor(self.weights, "weights", dtype=REAL)
        w = tuple(self.weights.shape)
        ok = len(w) <= len(self.shape) and all(
            a in (1, b) for a, b in zip(reversed(w), reversed(self.shape), strict=False)
        )
        if not ok:
            raise ValueError(f"weights of shape {w} do not broadcast against the projection shape {self.shape}")

    # constructors of the known weights ----------------------------------------------
    @classmethod
    def cosine(cls, geometry: Geometry) -> ProjectionWeighting:
        """Cosine pre-weights (:func:`cosine_weights`)."""
        return cls(geometry.proj_shape, cosine_weights(geometry))

    @classmethod
    def parker(
        cls, geometry: FanBeam2D | ConeBeam3D, *, start: float | None = None, arc: float | None = None
    ) -> ProjectionWeighting:
        """Parker short-scan weights (:func:`parker_weights`)."""
        return cls(geometry.proj_shape, parker_weights(geometry, start=start, arc=arc))

    @classmethod
    def angular(cls, geometry: Geometry, *, period: float | None = None) -> ProjectionWeighting:
        """Angular quadrature weights per view (:func:`angular_weights`)."""
        geometry = _circular_geometry(geometry)
        w = angular_weights(geometry.angles, period=period)
        return cls(geometry.proj_shape, w.reshape(-1, *(1,) * (len(geometry.proj_shape) - 1)))

    @classmethod
    def full_scan(cls, geometry: Geometry) -> ProjectionWeighting:
        """The ``1/2`` redundancy of a full fan/cone-beam scan (:func:`full_scan_weights`)."""
        return cls(geometry.proj_shape, full_scan_weights(geometry))

    @classmethod
    def redundancy(
        cls, geometry: Geometry, *, short_scan: bool | str = "auto", parker: bool = True
    ) -> ProjectionWeighting:
        """Quadrature times redundancy weights (:func:`redundancy_weights`)."""
        return cls(geometry.proj_shape, redundancy_weights(geometry, short_scan=short_scan, parker=parker))

    # operator ------------------------------------------------------------------------
    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    def apply(self, x: Tensor) -> Tensor:
        """``w * x``. Shape: ``(*batch, *shape) -> (*batch, *shape)``."""
        check_tensor(x, "x", dtype=REAL, shape_suffix=self.shape)
        return x * self.weights.to(device=x.device, dtype=x.dtype)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return self.apply(y)

    def norm(self, **kwargs: Any) -> float:
        return float(self.weights.detach().abs().max())
