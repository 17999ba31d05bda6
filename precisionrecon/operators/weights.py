r"""Redundancy weights and pre-weights of filtered back-projection.

Every weight here multiplies projection data entry by entry, so each is a diagonal,
self-adjoint :class:`ProjectionWeighting` (or the plain tensor, from the functions).

The facts these weights ask of a geometry (scan arc, full/short/limited scan, fan angles
and their sign conventions) are in :mod:`precisionrecon.geometry.facts`. In those
conventions ray ``(beta, gamma)`` is measured again as ray ``(beta + pi - 2 gamma, -gamma)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import REAL, as_shape, check_tensor
from ..geometry import ConeBeam3D, FanBeam2D, Geometry
from ..geometry.facts import FULL_SCAN_TOL, as_angles, check_circular, detector_uv, fan_angles, scan_arc, scan_type
from .base import LinearOperator

# values of redundancy_weights' parker: Parker weights, mean redundancy, Parker weights continued to limited angles
PARKER = (True, False, "extended")


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
    a = as_angles(angles)
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
    geometry = check_circular(geometry)
    if geometry.beam == "parallel":
        return torch.ones((1,) * len(geometry.proj_shape), dtype=torch.float64)
    u, v = detector_uv(geometry)
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


def _scan_interval(geometry: Any, start: float | None, arc: float | None) -> tuple[Tensor, float, float]:
    """The angles of a fan/cone beam and the interval ``(start, arc)`` its Parker weights refer
    to: the given one, or by default the covered interval (:func:`scan_arc`)."""
    if not isinstance(geometry, (FanBeam2D, ConeBeam3D)):
        raise TypeError(f"geometry must be a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}")
    a = as_angles(geometry.angles)
    if (start is None) != (arc is None):
        raise ValueError("pass both start and arc, or neither")
    if start is None or arc is None:
        start, arc = scan_arc(a)
    return a, start, arc


def parker_weights(geometry: FanBeam2D | ConeBeam3D, *, start: float | None = None, arc: float | None = None) -> Tensor:
    r"""Parker short-scan weights of a fan- or cone-beam geometry (:func:`parker_weight`).

    ``beta = (angle - start) mod 2 pi`` and ``Delta = (arc - pi) / 2``; by default
    ``(start, arc)`` is the covered interval from :func:`scan_arc`. The scan must cover
    at least ``pi`` plus the fan angle (``Delta >= max |gamma|``) and at most ``2 pi``.
    FDK uses the weights of the detector columns for every row.

    Shape: ``(n_views, n_det)`` (fan) or ``(n_views, 1, cols)`` (cone), float64.
    """
    a, start, arc = _scan_interval(geometry, start, arc)
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


def extended_parker_weights(
    geometry: FanBeam2D | ConeBeam3D, *, start: float | None = None, arc: float | None = None
) -> Tensor:
    r"""Parker's short-scan weights continued to any scan arc, also one shorter than
    ``pi`` plus the fan angle (limited angle; Würfl et al. 2018).

    With ``beta = (angle - start) mod 2 pi``, ``Delta = min((arc - pi) / 2, pi / 2)`` (may
    be smaller than the half fan angle, or negative) and the fan angle ``gamma``:

    .. math::

        w(\beta, \gamma) = \begin{cases}
            \sin^2\!\left(\frac{\pi}{4} \frac{\beta}{\Delta + \gamma}\right)
                & 0 \le \beta < 2\Delta + 2\gamma \\
            \sin^2\!\left(\frac{\pi}{4} \frac{\pi + 2\Delta - \beta}{\Delta - \gamma}\right)
                & \pi + 2\gamma \le \beta \le \pi + 2\Delta \\
            1 & \text{otherwise, for } 0 \le \beta \le \pi + 2\Delta
        \end{cases}

    The first case is exactly the set of rays whose conjugate ray ``(beta + pi - 2 gamma,
    -gamma)`` is measured too (it lies in the second case), and the two weights sum to
    ``sin^2 + cos^2 = 1``; rays measured once keep weight 1. For ``Delta`` at least the
    half fan angle this is :func:`parker_weights` (up to rounding).

    Shape: ``(n_views, n_det)`` (fan) or ``(n_views, 1, cols)`` (cone), float64.
    """
    a, start, arc = _scan_interval(geometry, start, arc)
    if not (math.isfinite(start) and math.isfinite(arc) and 0.0 < arc <= 2.0 * math.pi + 1e-9):
        raise ValueError(f"start must be finite and arc in (0, 2 pi], got start={start}, arc={arc}")
    delta = min(0.5 * (arc - math.pi), 0.5 * math.pi)
    beta = torch.remainder(a - start, 2.0 * math.pi)[:, None]
    gamma = fan_angles(geometry)[None, :]
    lo, hi = delta + gamma, delta - gamma  # half widths of the ramps (<= 0: no ramp)
    up = torch.sin(0.25 * math.pi * beta / torch.where(lo > 0, lo, 1.0)) ** 2
    down = torch.sin(0.25 * math.pi * (math.pi + 2.0 * delta - beta) / torch.where(hi > 0, hi, 1.0)) ** 2
    w = torch.where(beta < 2.0 * lo, up, torch.ones_like(up))
    w = torch.where(beta >= math.pi + 2.0 * gamma, down, w)
    w = torch.where(beta > math.pi + 2.0 * delta, torch.zeros_like(w), w)
    return w[:, None, :] if isinstance(geometry, ConeBeam3D) else w


def full_scan_weights(geometry: Geometry) -> Tensor:
    r"""The redundancy weight ``1/2`` of a full ``2 pi`` scan of a fan or cone beam (every
    line is measured twice, Kak & Slaney eq. 3.72).

    Shape: ``(n_views, 1)`` or ``(n_views, 1, 1)``, float64.
    """
    geometry = check_circular(geometry)
    return torch.full((geometry.n_views,) + (1,) * (len(geometry.proj_shape) - 1), 0.5, dtype=torch.float64)


def redundancy_weights(
    geometry: Geometry, *, short_scan: bool | str = "auto", parker: bool | str = True
) -> Tensor:
    r"""Angular quadrature times redundancy weight of every ray: the weights ``w(beta, gamma)
    dbeta`` of the angular integral of FBP / FDK.

    * parallel beam covering ``pi`` (or more): :func:`angular_weights` modulo ``pi``, which
      sums to ``pi`` and halves repeated lines (e.g. a ``2 pi`` scan);
    * parallel beam covering less (limited angle): open-arc :func:`angular_weights`;
    * fan/cone beam, full scan: ``1/2`` times :func:`angular_weights` modulo ``2 pi``;
    * fan/cone beam, short scan: open-arc :func:`angular_weights` times
      :func:`parker_weights` (``parker=True`` or ``"extended"``), or times the mean
      redundancy ``pi / arc`` (``parker=False``: right on average, wrong where lines are
      measured once or twice, kept to show what Parker weights correct);
    * fan/cone beam, limited angle (less than ``pi`` plus the fan angle): open-arc
      :func:`angular_weights` times :func:`extended_parker_weights`, only with
      ``parker="extended"`` (the data are incomplete: each measured line counts once, the
      missing ones stay missing); otherwise a ``ValueError``.

    ``short_scan="auto"`` decides from the angles (:func:`scan_type`); ``True`` forces
    Parker weights (also on a full circle), ``False`` requires a full scan. Both are for
    fan and cone beams only.

    Shape: ``(n_views, 1)``, ``(n_views, n_det)``, ``(n_views, 1, 1)`` or
    ``(n_views, 1, cols)``, float64; broadcasts against ``geometry.proj_shape``.
    """
    geometry = check_circular(geometry)
    if short_scan not in ("auto", True, False):
        raise ValueError(f"short_scan must be 'auto', True or False, got {short_scan!r}")
    if not isinstance(parker, (bool, str)):
        raise TypeError(f"parker must be True, False or 'extended', got {type(parker).__name__}")
    if parker not in PARKER:
        raise ValueError(f"parker must be True, False or 'extended', got {parker!r}")
    trailing = (1,) * (len(geometry.proj_shape) - 1)
    a = as_angles(geometry.angles)
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
    if kind == "limited" and parker == "extended":
        redundancy = extended_parker_weights(geometry, start=start, arc=arc)  # type: ignore[arg-type]
        return dbeta.reshape(-1, *trailing) * redundancy
    if kind == "limited":
        delta = float(fan_angles(geometry).abs().max())  # type: ignore[arg-type]
        raise ValueError(
            f"the views cover {arc:.6g} rad, less than pi + fan angle = {math.pi + 2 * delta:.6g} (limited angle): "
            f"the data are incomplete and parker={parker!r} does not apply; parker='extended' takes the extended "
            "Parker weights (extended_parker_weights)"
        )
    if parker:
        return dbeta.reshape(-1, *trailing) * parker_weights(geometry, start=start, arc=arc)  # type: ignore[arg-type]
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
    def extended_parker(
        cls, geometry: FanBeam2D | ConeBeam3D, *, start: float | None = None, arc: float | None = None
    ) -> ProjectionWeighting:
        """Parker weights continued to limited-angle scans (:func:`extended_parker_weights`)."""
        return cls(geometry.proj_shape, extended_parker_weights(geometry, start=start, arc=arc))

    @classmethod
    def angular(cls, geometry: Geometry, *, period: float | None = None) -> ProjectionWeighting:
        """Angular quadrature weights per view (:func:`angular_weights`)."""
        geometry = check_circular(geometry)
        w = angular_weights(geometry.angles, period=period)
        return cls(geometry.proj_shape, w.reshape(-1, *(1,) * (len(geometry.proj_shape) - 1)))

    @classmethod
    def full_scan(cls, geometry: Geometry) -> ProjectionWeighting:
        """The ``1/2`` redundancy of a full fan/cone-beam scan (:func:`full_scan_weights`)."""
        return cls(geometry.proj_shape, full_scan_weights(geometry))

    @classmethod
    def redundancy(
        cls, geometry: Geometry, *, short_scan: bool | str = "auto", parker: bool | str = True
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
