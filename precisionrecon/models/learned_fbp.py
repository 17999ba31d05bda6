r"""Learned FBP / FDK (Würfl et al. 2018): filtered back-projection with the projector fixed
and the filter and the redundancy weights learned.

FBP is the composition of known operators of :mod:`precisionrecon.operators.fbp`,

.. math:: x = B \, H_{\hat h} \, P_w \, y,

with ``P_w`` the pre-weighting (quadrature, redundancy / Parker and cosine weights, one
value per detector pixel and view), ``H`` the ramp filter with frequency response
``\hat h`` and ``B`` the (distance-weighted) voxel-driven back-projector. The learnable
pieces are ``\hat h`` (part ``"filter"``) and ``w`` (part ``"weights"``), initialised to
the analytic values, so the untrained model is exactly FBP; ``B`` stays fixed.

Limited-angle fan and cone beams (views covering less than ``pi`` plus the fan angle)
have no analytic FBP redundancy weights; there the weights start from Parker's weights
continued to the short arc (:func:`extended_parker_weights`), which normalise the
redundancy of the measured rays exactly: the two measurements of a doubly measured line
sum to one, singly measured lines get one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..geometry import ConeBeam3D, FanBeam2D, Geometry, Volume
from ..operators.backprojection import VoxelBackprojection
from ..operators.base import ComposedOperator, LinearOperator
from ..operators.fbp import FBP
from ..operators.filters import RampFilter
from ..operators.weights import (
    CIRCULAR,
    ProjectionWeighting,
    angular_weights,
    cosine_weights,
    fan_angles,
    scan_arc,
    scan_type,
)
from ..operators.xray import XRayTransform
from .base import ReconModel, resolve_dtype


def extended_parker_weights(
    geometry: FanBeam2D | ConeBeam3D, *, start: float | None = None, arc: float | None = None
) -> Tensor:
    r"""Parker's short-scan weights continued to any scan arc, also one shorter than
    ``pi`` plus the fan angle (limited angle).

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
    half fan angle this is :func:`~precisionrecon.operators.weights.parker_weights`.

    Shape: ``(n_views, n_det)`` (fan) or ``(n_views, 1, cols)`` (cone), float64.
    """
    if not isinstance(geometry, (FanBeam2D, ConeBeam3D)):
        raise TypeError(f"geometry must be a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}")
    a = torch.as_tensor(geometry.angles, dtype=torch.float64)
    if (start is None) != (arc is None):
        raise ValueError("pass both start and arc, or neither")
    if start is None or arc is None:
        start, arc = scan_arc(a)
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


def is_limited_divergent(geometry: Geometry) -> bool:
    """A fan or cone beam whose views cover less than ``pi`` plus the fan angle."""
    return isinstance(geometry, (FanBeam2D, ConeBeam3D)) and scan_type(geometry) == "limited"


def _on_geometry(op: LinearOperator, geometry: Geometry) -> LinearOperator:
    """``op`` with every voxel-driven back-projector in it moved to ``geometry``."""
    if isinstance(op, VoxelBackprojection):
        return VoxelBackprojection(
            op.volume, geometry, distance_weight=op.distance_weight, footprint=op.footprint, device=op.device
        )
    if isinstance(op, ComposedOperator):
        return ComposedOperator(_on_geometry(op.left, geometry), _on_geometry(op.right, geometry))
    return op


def _full_circle(A: XRayTransform) -> XRayTransform:
    """``A`` with its views spread evenly over a full circle: FBP's filter and back-projector
    do not depend on the angles, and a full circle is a scan FBP takes."""
    geom = A.geometry
    full = geom.replace(angles=(2.0 * math.pi * torch.arange(geom.n_views, dtype=torch.float64) / geom.n_views))
    return XRayTransform(A.volume, full, device=A.device)


def limited_angle_fbp_parts(
    A: XRayTransform, filter: str = "ram-lak", cutoff: float = 1.0, backprojector: str = "auto"
) -> tuple[Tensor, Tensor, RampFilter, LinearOperator]:
    r"""FBP / FDK of a fan or cone beam with the weights of :func:`extended_parker_weights`
    (which :class:`~precisionrecon.operators.fbp.FBP` does not take for limited angles).

    The filter and the back-projector do not depend on the angles: they are those of the
    FBP of the same volume and detector on a full circle (the back-projector moved to
    ``A``'s views). The pre-weights are the open-arc quadrature weights times the extended
    Parker weights times the cosine weights (and, for curved detectors, FBP's
    ``1 / cos^2 b`` for the angular detector offset ``b``).

    Returns
    -------
    response : Tensor
        Designed filter response, float64.
    weights : Tensor
        Designed pre-weights, shape ``A.geometry.proj_shape``, float64.
    ramp : RampFilter
        The ramp filter with the designed response (``ramp.replace(response=...)`` learns it).
    backprojection : LinearOperator
        FBP's back-projector (``backprojector``: ``"auto"``, ``"voxel"``, ``"voxel-mean"``, ``"footprint"``)
        for ``A``'s geometry.
    """
    geom = A.geometry
    if not isinstance(geom, (FanBeam2D, ConeBeam3D)):
        raise TypeError(f"A.geometry must be a FanBeam2D or ConeBeam3D, got {type(geom).__name__}")
    ref = FBP(_full_circle(A), filter, cutoff=cutoff, backprojector=backprojector)
    scale = 1.0
    if geom.curved:  # as FBP: the back-projector's D_w = D cos b for an angular detector offset b
        offset_u = geom.det_offset if isinstance(geom, FanBeam2D) else geom.det_offset[1]
        scale = 1.0 / math.cos(offset_u / geom.src_det) ** 2
    trailing = (1,) * (len(geom.proj_shape) - 1)
    view = angular_weights(geom.angles).reshape(-1, *trailing) * extended_parker_weights(geom)
    weights = (view * (cosine_weights(geom) * scale)).expand(geom.proj_shape)
    return ref.designed_response, weights, ref.ramp, _on_geometry(ref.backprojection, geom)


class FBPLayer(nn.Module):
    r"""FBP / FDK as a layer with a learnable filter response and learnable pre-weights.

    ``x = B H_response P_weights y`` (:class:`~precisionrecon.operators.fbp.FBP` with
    ``response`` and ``weights`` given as parameters; limited-angle fan/cone beams use
    :func:`limited_angle_fbp_parts`). The weights hold one value per view and detector
    pixel (shape ``geometry.proj_shape``).

    Parameters
    ----------
    A : XRayTransform
        The projector; its volume and circular geometry define the reconstruction.
    filter, cutoff, short_scan, parker, backprojector
        As for :class:`~precisionrecon.operators.fbp.FBP`.
    dtype : torch.dtype, optional
        Parameter dtype (default ``torch.get_default_dtype()``).

    Attributes
    ----------
    response : nn.Parameter
        Filter response, shape ``(fft_length(n_det) // 2 + 1,)``.
    weights : nn.Parameter
        Pre-weights, shape ``geometry.proj_shape``.
    designed_response, designed_weights : Tensor
        The analytic initial values (float64 buffers, not saved in the state dict).

    Notes
    -----
    Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``.
    """

    def __init__(
        self,
        A: XRayTransform,
        filter: str = "ram-lak",
        *,
        cutoff: float = 1.0,
        short_scan: bool | str = "auto",
        parker: bool = True,
        backprojector: str = "auto",
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(A, XRayTransform):
            raise TypeError(f"A must be an XRayTransform, got {type(A).__name__}")
        if not isinstance(A.geometry, CIRCULAR):
            raise TypeError(
                "A.geometry must be a ParallelBeam2D, ParallelBeam3D, FanBeam2D or ConeBeam3D (FBP needs a circular "
                f"scan), got {type(A.geometry).__name__}"
            )
        dt = resolve_dtype(dtype)
        # "auto" is resolved here (FBP's choice, which does not depend on the angles), so that a
        # saved config rebuilds the same back-projector even if the rule of "auto" changes
        self.limited = is_limited_divergent(A.geometry)
        if self.limited:
            if parker is not True or short_scan is False:
                raise ValueError(
                    "the views of this fan/cone beam cover less than pi plus the fan angle (limited angle): only the "
                    "extended Parker weights apply (parker=True, short_scan='auto' or True)"
                )
            if backprojector == "adjoint":
                raise ValueError("backprojector='adjoint' is for parallel beams only")
            if backprojector == "auto":
                backprojector = FBP(_full_circle(A), filter, cutoff=cutoff).backprojector_used
            response, weights, _, _ = limited_angle_fbp_parts(A, filter, cutoff, backprojector)
        else:
            fbp = FBP(A, filter, cutoff=cutoff, short_scan=short_scan, parker=parker, backprojector=backprojector)
            backprojector = fbp.backprojector_used
            response = fbp.designed_response
            weights = fbp.designed_weights.expand(A.geometry.proj_shape)
        self._settings = {
            "filter": filter,
            "cutoff": cutoff,
            "short_scan": short_scan,
            "parker": parker,
            "backprojector": backprojector,
        }
        self.register_buffer("designed_response", response.clone(), persistent=False)
        self.register_buffer("designed_weights", weights.contiguous().clone(), persistent=False)
        self.response = nn.Parameter(response.to(dt).clone())
        self.weights = nn.Parameter(weights.to(dt).contiguous().clone())
        self.A = A
        self._cache: tuple[Any, ...] | None = None
        self.operator()  # built here, not on the first (possibly compiled) call

    def _apply(self, fn: Any, recurse: bool = True) -> FBPLayer:
        out = super()._apply(fn, recurse)
        if self.response.device != self.A.device:  # moved: the projector follows
            self.rebind(self.A.to(self.response.device))
        return out

    def rebind(self, A: XRayTransform) -> None:
        """Use ``A`` (the same geometry, e.g. on another device) from now on."""
        if A.volume != self.A.volume or A.geometry != self.A.geometry:
            raise ValueError("rebind needs an XRayTransform with the same volume and geometry")
        self.A = A
        self._cache = None
        self.operator()

    def operator(self) -> LinearOperator:
        """The current FBP ``B @ H @ P`` as a linear operator (differentiable in the parameters)."""
        key = (self.response, self.weights, self.A)
        cache = self._cache
        if cache is None or any(a is not b for a, b in zip(cache[:3], key, strict=True)):
            s = self._settings
            if self.limited:
                _, _, ramp, back = limited_angle_fbp_parts(self.A, s["filter"], s["cutoff"], s["backprojector"])
                shape = self.A.geometry.proj_shape
                op: LinearOperator = back @ ramp.replace(response=self.response) @ ProjectionWeighting(
                    shape, self.weights
                )
            else:
                op = FBP(self.A, response=self.response, weights=self.weights, **s)
            cache = (*key, op)
            self._cache = cache
        return cache[3]

    def forward(self, y: Tensor) -> Tensor:
        return self.operator()(y)

    def known_parts(self, prefix: str) -> list[tuple[str, str, list[str]]]:
        """``(name, description, parameter names)`` of the known operators of FBP."""
        return [
            ("weights", "pre-weights P (quadrature, redundancy/Parker and cosine weights)", [f"{prefix}weights"]),
            ("filter", "ramp filter H (frequency response)", [f"{prefix}response"]),
            ("backprojection", "back-projector B (voxel-driven, distance-weighted for fan/cone beams)", []),
        ]


class LearnedFBP(ReconModel):
    r"""Learned FBP / FDK (Würfl et al. 2018): ``x = B H_h P_w y`` with the back-projector
    ``B`` fixed and the filter response ``h`` and pre-weights ``w`` learned (see the module
    docstring). Untrained, the model is exactly
    :class:`~precisionrecon.operators.fbp.FBP` with the same settings.

    Parameters
    ----------
    operator : XRayTransform or Geometry
        The projector, or a circular geometry (then ``volume`` is required).
    volume : Volume, optional
        Only with a geometry.
    filter : str
        Initial ramp window (``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``, ``"hamming"``, ``"hann"``).
    cutoff, short_scan, parker, backprojector
        As for :class:`~precisionrecon.operators.fbp.FBP`.
    dtype : torch.dtype or str, optional
        Parameter dtype; ``torch.float64`` for float64 data (the initial values are then
        the float64 analytic ones).

    Notes
    -----
    Shape: ``(*batch, n_views, *det_shape) -> (*batch, *volume.shape)``. Known operators:
    ``"weights"`` and ``"filter"`` (free), ``"backprojection"`` (fixed).
    """

    def __init__(
        self,
        operator: XRayTransform | Geometry,
        volume: Volume | None = None,
        filter: str = "ram-lak",
        *,
        cutoff: float = 1.0,
        short_scan: bool | str = "auto",
        parker: bool = True,
        backprojector: str = "auto",
        dtype: Any = None,
    ) -> None:
        if isinstance(operator, Geometry):
            if not isinstance(volume, Volume):
                raise TypeError(f"volume must be a Volume when operator is a geometry, got {type(volume).__name__}")
            operator = XRayTransform(volume, operator)
        elif volume is not None:
            raise ValueError("volume is only used with a geometry; the XRayTransform has its own volume")
        super().__init__(operator)
        self.fbp = FBPLayer(
            operator,  # type: ignore[arg-type]
            filter,
            cutoff=cutoff,
            short_scan=short_scan,
            parker=parker,
            backprojector=backprojector,
            dtype=dtype,
        )
        for name, description, params in self.fbp.known_parts("fbp."):
            self.register_known_operator(name, description, params)
        self.remember_config(
            filter=filter,
            cutoff=cutoff,
            short_scan=short_scan,
            parker=parker,
            backprojector=self.fbp._settings["backprojector"],  # "auto" resolved
            dtype=resolve_dtype(dtype),
        )

    def bind_operator(self, operator: LinearOperator) -> None:
        super().bind_operator(operator)
        self.fbp.rebind(operator)  # type: ignore[arg-type]

    def forward(self, y: Tensor) -> Tensor:
        """Reconstruct. Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``."""
        yf, batch = self.check_data(y)
        return self.unfold(self.fbp(yf), batch)
