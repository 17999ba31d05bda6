r"""Filtered back-projection (parallel and fan beam) and FDK (circular cone beam).

FBP is linear, so it is a :class:`LinearOperator` made of known operators::

    FBP = B @ H @ P        (projections -> volume)

with ``P`` a :class:`ProjectionWeighting` (quadrature, redundancy and cosine weights and
the scale), ``H`` a :class:`RampFilter` along the detector rows and ``B`` a
back-projector. Its adjoint ``FBP.T = P @ H @ B.T`` comes for free, and it is
differentiable in its input, in the filter ``response`` and in the ``weights``.

Units: FBP of line integrals (density * mm) returns the density (1/mm). The scale comes
from the continuous inversion formulas and the discrete back-projectors:

* parallel beam (Kak & Slaney eq. 3.44), ``f(x) = int_0^pi q_theta(x . u_theta) dtheta``,
  ``q = p * h`` with ``h`` the ramp ``|nu|``. The voxel-driven back-projector is
  ``sum_views q(u(x))``, so ``P`` holds the quadrature weights ``dtheta_i``. The adjoint
  of the ray-driven projector is ``A.T q (x) ~ sum_views (area / tau) q(u(x))`` (the
  interpolation weights of one voxel integrate to its area over the detector
  coordinate, sampled at the pitch ``tau``), so with it ``P`` also holds
  ``tau / area`` (3-D: ``tau_u tau_v / volume``).
* fan beam, flat detector (Kak & Slaney eq. 3.90 with 3.77):
  ``f(x) = 1/2 int_0^{2 pi} U^-2 [(R cos gamma) * h](s(x)) dbeta`` with the detector
  coordinate ``s`` and the ramp scaled to the isocentre (pitch ``tau du D / D_sd``) and
  ``U = l / D`` (``l`` the depth of ``x`` along the central ray, ``D`` the source to
  isocentre distance). :class:`VoxelBackprojection` with ``distance_weight=True``
  applies ``(D / l)^2 = U^-2``; ``P`` holds ``w(beta, gamma) dbeta cos gamma`` with the
  redundancy ``w = 1/2`` (full scan) or Parker's weight (short scan).
* fan beam, arc detector (Kak & Slaney eq. 3.69-3.71):
  ``f(x) = int L^-2 [(R D cos gamma) * g](gamma(x)) dbeta``,
  ``g(gamma) = 1/2 (gamma / sin gamma)^2 h(gamma)`` with ``L`` the distance from the
  source. Writing the ramp in the arc length at the isocentre, ``s = D gamma``, this is
  ``sum_views w dbeta (D^2 / L^2) [(R cos gamma) * (m h_s)]`` with
  ``m(s) = (gamma / sin gamma)^2``, the modified ramp of :func:`arc_ramp_response`. The
  back-projector's curved-detector weight is ``D_w^2 / L^2`` with ``D_w = D cos b``
  (``b`` the angular detector offset), so ``P`` also holds ``1 / cos^2 b``.
* FDK (Feldkamp, Davis & Kress 1984): the flat fan-beam formula per detector row, with
  the cone-beam cosine ``D_sd / sqrt(D_sd^2 + u^2 + v^2)``; cylindrical detectors use
  the arc formula per row with ``cos gamma D_sd / sqrt(D_sd^2 + v^2)``.
* limited angle: parallel beams covering less than ``pi`` keep the quadrature weights of
  the open arc; fan and cone beams covering less than ``pi`` plus the fan angle take, with
  ``parker="extended"``, Parker's weights continued to the short arc, so that every
  measured line counts once (see :func:`~.weights.redundancy_weights`). The filter and
  the back-projector do not depend on the angles.

:class:`FBP` builds its parts in named steps: :func:`resolve_backprojector` (what
``"auto"`` stands for, decided once and kept as :attr:`FBP.backprojector_used`),
:func:`design_filter`, the weights (:func:`~.weights.redundancy_weights`,
:func:`~.weights.cosine_weights`, :func:`fbp_scale`) and :func:`build_backprojector`.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..geometry import FanBeam2D, Volume
from ..geometry.facts import CIRCULAR
from .backprojection import VoxelBackprojection
from .base import LinearOperator
from .filters import WINDOWS, RampFilter, fft_length, interpolation_compensation, ramp_response
from .weights import ProjectionWeighting, cosine_weights, redundancy_weights
from .xray import XRayTransform, check_tensor

BACKPROJECTORS = ("auto", "voxel", "voxel-mean", "footprint", "adjoint")
# "auto" takes pixel means (footprints) when the window still passes this fraction of the ramp
# just above the image's Nyquist frequency (see FBP: Ram-Lak 1, Shepp-Logan 0.90, cosine 0.71,
# Hamming 0.54, Hann 0.50 at a detector pitch of half the pixel)
AUTO_MEAN_MIN_GAIN = 0.8


def arc_ramp_response(
    n_det: int, angle_step: float, det_spacing: float, window: str = "ram-lak", cutoff: float = 1.0
) -> Tensor:
    r"""Ramp filter of an equiangular (arc) detector: the windowed ramp of
    :func:`ramp_response` at pitch ``det_spacing`` (mm at the isocentre), its spatial kernel
    multiplied by ``(gamma / sin gamma)^2`` at lag ``gamma = k * angle_step`` (Kak & Slaney
    eq. 3.71, ``h(D sin gamma) = (gamma / sin gamma)^2 h(D gamma)`` for the ramp).

    Only lags ``|k| < n_det`` reach the cropped output of the zero-padded convolution;
    ``(n_det - 1) * angle_step`` must stay below ``pi``.

    Shape: ``(fft_length(n_det) // 2 + 1,)``, float64, in 1/mm.
    """
    if not (0.0 < angle_step and (n_det - 1) * angle_step < math.pi):
        raise ValueError(f"angle_step must be positive with (n_det - 1) * angle_step < pi, got {angle_step}")
    base = ramp_response(n_det, det_spacing, window, cutoff)
    n = fft_length(n_det)
    kernel = torch.fft.irfft(base, n=n)
    k = torch.arange(n, dtype=torch.float64)
    lag = torch.minimum(k, n - k)
    gamma = lag * angle_step
    useful = (lag > 0) & (lag < n_det)
    ratio = gamma / torch.where(useful, torch.sin(gamma), torch.ones_like(gamma))
    m = torch.where(useful, ratio**2, torch.ones_like(gamma))
    return torch.fft.rfft(kernel * m).real


@dataclass(frozen=True, eq=False)
class _VoxelMean(LinearOperator):
    r"""Mean over blocks of ``factors`` sub-voxels: a fine grid ``(n_i f_i)`` to the coarse
    grid ``(n_i)``; the adjoint copies each voxel to its sub-voxels divided by ``prod(f_i)``.

    Shape: ``(*batch, *(n_i f_i)) -> (*batch, *shape)``.
    """

    shape: tuple[int, ...]
    factors: tuple[int, ...]
    device: torch.device = field(default=torch.device("cpu"))

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(n * f for n, f in zip(self.shape, self.factors, strict=True))

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    def apply(self, x: Tensor) -> Tensor:
        check_tensor(x, "x", self.domain_shape, self.device)
        batch = x.shape[: x.dim() - len(self.shape)]
        split = [d for n, f in zip(self.shape, self.factors, strict=True) for d in (n, f)]
        axes = tuple(range(len(batch) + 1, len(batch) + 2 * len(self.shape), 2))
        return x.reshape(*batch, *split).mean(dim=axes)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        check_tensor(y, "y", self.range_shape, self.device)
        out = y / math.prod(self.factors)
        for k, f in enumerate(self.factors):
            out = out.repeat_interleave(f, dim=y.dim() - len(self.shape) + k)
        return out


def _sub_voxels(vol: Volume, geom: Any) -> tuple[int, ...]:
    """Sub-voxels per axis for ``"voxel-mean"``: ``max(1, round(h / tau))`` with ``h`` the voxel
    size and ``tau`` the detector pitch at the isocentre along that axis (u in-plane, v for z)."""
    mag = 1.0 if geom.beam == "parallel" else geom.src_iso / geom.src_det
    if vol.ndim == 2:
        pitch = [float(geom.det_spacing) * mag] * 2
    else:
        rows, cols = (geom.det_spacing, geom.det_spacing) if isinstance(geom.det_spacing, float) else geom.det_spacing
        pitch = [float(rows) * mag, float(cols) * mag, float(cols) * mag]
    return tuple(max(1, round(h / t)) for h, t in zip(vol.spacing, pitch, strict=True))


def _window_gain(n_det: int, tau: float, window: str, cutoff: float, h: float) -> float:
    """The designed filter over the plain ramp at the first frequency of the filter's grid
    above the image's Nyquist frequency ``1 / (2 h)``: what the window passes of the band
    the pixel grid cannot hold (0 when the cutoff ends the band there)."""
    nu = torch.fft.rfftfreq(fft_length(n_det), d=tau, dtype=torch.float64)
    above = torch.nonzero(nu > 0.5 / h * (1.0 + 1e-9))
    if above.numel() == 0:
        return 0.0
    k = int(above[0])
    ramp = ramp_response(n_det, tau, "ram-lak", 1.0)
    return float(ramp_response(n_det, tau, window, cutoff)[k] / ramp[k])


def filter_pitch(geom: Any) -> float:
    """The detector pitch (mm) at which FBP filters: the column pitch of a parallel beam, the
    column pitch scaled to the isocentre (``du D / D_sd``) for a fan or cone beam."""
    if geom.beam == "parallel":
        du = geom.det_spacing if isinstance(geom.det_spacing, float) else geom.det_spacing[-1]
        return float(du)
    du = geom.det_spacing if isinstance(geom, FanBeam2D) else geom.det_spacing[1]
    return float(du) * geom.src_iso / geom.src_det


def resolve_backprojector(backprojector: str, vol: Volume, geom: Any, filter: str, cutoff: float) -> str:
    """The back-projector ``"auto"`` stands for (see :class:`FBP`); any other name is returned as it is.

    Decided on the designed filter, so a learned response never switches the back-projector,
    and independent of the angles. 3-D: ``"voxel"``; 2-D: ``"footprint"``, except with a
    detector finer than the pixels and a window that passes less than
    :data:`AUTO_MEAN_MIN_GAIN` of the ramp just above the image's Nyquist frequency.
    """
    if backprojector != "auto":
        return backprojector
    if vol.ndim != 2:
        return "voxel"
    if max(_sub_voxels(vol, geom)) >= 2:  # a detector finer than the pixels
        gain = _window_gain(geom.det_shape[-1], filter_pitch(geom), filter, cutoff, max(vol.spacing))
        return "footprint" if gain >= AUTO_MEAN_MIN_GAIN else "voxel"
    return "footprint"


def design_filter(geom: Any, filter: str, cutoff: float) -> tuple[float, Tensor]:
    """The filter pitch (:func:`filter_pitch`) and the designed ramp response of ``geom``:
    :func:`ramp_response` at that pitch, or :func:`arc_ramp_response` for an arc or
    cylindrical detector.

    Shape: response ``(fft_length(n_det) // 2 + 1,)``, float64, 1/mm.
    """
    tau = filter_pitch(geom)
    n_det = geom.det_shape[-1]
    if geom.beam != "parallel" and geom.curved:
        du = geom.det_spacing if isinstance(geom, FanBeam2D) else geom.det_spacing[1]
        return tau, arc_ramp_response(n_det, du / geom.src_det, tau, filter, cutoff)
    return tau, ramp_response(n_det, tau, filter, cutoff)


def fbp_scale(vol: Volume, geom: Any, backprojector: str) -> float:
    """The constant factor of FBP's pre-weights for a resolved ``backprojector`` (see the module
    docstring): ``tau / area`` (3-D ``tau_u tau_v / volume``) for ``"adjoint"``, ``1 / cos^2 b``
    for a curved detector with angular offset ``b`` (the back-projector's ``D_w = D cos b``), else 1."""
    if backprojector == "adjoint":
        pitch = filter_pitch(geom) if isinstance(geom.det_spacing, float) else math.prod(geom.det_spacing)
        return pitch / math.prod(vol.spacing)
    if geom.beam != "parallel" and geom.curved:
        offset_u = geom.det_offset if isinstance(geom, FanBeam2D) else geom.det_offset[1]
        return 1.0 / math.cos(offset_u / geom.src_det) ** 2
    return 1.0


def design_weights(
    vol: Volume, geom: Any, backprojector: str, *, short_scan: bool | str = "auto", parker: bool | str = True
) -> tuple[Tensor, Tensor]:
    """FBP's designed pre-weights as a view factor (quadrature and redundancy,
    :func:`~.weights.redundancy_weights`) and a detector factor (:func:`~.weights.cosine_weights`
    times :func:`fbp_scale` for the resolved ``backprojector``); their product is
    :attr:`FBP.designed_weights`.

    Shape: each broadcasts against ``geom.proj_shape``, float64.
    """
    view_weights = redundancy_weights(geom, short_scan=short_scan, parker=parker)
    return view_weights, cosine_weights(geom) * fbp_scale(vol, geom, backprojector)


def build_backprojector(backprojector: str, A: XRayTransform, tau: float) -> LinearOperator:
    """FBP's back-projector ``B`` on ``A``'s volume and geometry for a resolved ``backprojector``
    (``tau``: the filter pitch, for the footprint's interpolation compensation).

    Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``.
    """
    vol, geom, device = A.volume, A.geometry, A.device
    divergent = geom.beam != "parallel"
    if backprojector == "adjoint":
        return A.T
    if backprojector == "footprint":
        n_det = geom.det_shape[-1]
        prefilter = RampFilter(geom.proj_shape, det_spacing=tau, response=interpolation_compensation(n_det))
        return VoxelBackprojection(vol, geom, distance_weight=divergent, footprint=True, device=device) @ prefilter
    sub = _sub_voxels(vol, geom)
    if backprojector == "voxel-mean" and max(sub) > 1:
        fine_vol = Volume(
            tuple(n * s for n, s in zip(vol.shape, sub, strict=True)),
            tuple(h / s for h, s in zip(vol.spacing, sub, strict=True)),
            vol.center,
        )
        fine = VoxelBackprojection(fine_vol, geom, distance_weight=divergent, device=device)
        return _VoxelMean(vol.shape, sub, device) @ fine
    return VoxelBackprojection(vol, geom, distance_weight=divergent, device=device)


class _RampReconstruction(LinearOperator):
    """What a filtered back-projection ``B @ H @ P`` (:class:`FBP`, :class:`HelicalFBP`)
    exposes besides its options: its parts, shapes and device. The subclass (a frozen
    dataclass with the forward operator ``A``) stores ``ramp``, ``pre``, ``backprojection``
    and the composed ``_op`` in its ``__dict__`` when it is built."""

    @property
    def ramp(self) -> RampFilter:
        """The ramp filter ``H``."""
        return self.__dict__["ramp"]

    @property
    def pre(self) -> LinearOperator:
        """The pre-weighting ``P``: a :class:`ProjectionWeighting` of ``weights`` if given,
        else the composition of the view (quadrature, redundancy) and detector (cosine,
        scale, row) factors of :attr:`designed_weights`."""
        return self.__dict__["pre"]

    @property
    def backprojection(self) -> LinearOperator:
        """The back-projector ``B``."""
        return self.__dict__["backprojection"]

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.A.geometry.proj_shape)  # type: ignore[attr-defined]

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.A.volume.shape)  # type: ignore[attr-defined]

    @property
    def device(self) -> torch.device:
        return self.A.device  # type: ignore[attr-defined]

    def apply(self, x: Tensor) -> Tensor:
        """Reconstruct. Shape: ``(*batch, *proj_shape) -> (*batch, *volume.shape)``."""
        return self.__dict__["_op"].apply(x)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """``P H B^T``. Shape: ``(*batch, *volume.shape) -> (*batch, *proj_shape)``."""
        return self.__dict__["_op"].adjoint_apply(y)

    def _example_dtype(self) -> torch.dtype:
        return torch.float64

    def to(self, device: Any) -> _RampReconstruction:
        """The same reconstruction for tensors on ``device``."""
        return self.replace(A=self.A.to(device))  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class FBP(_RampReconstruction):
    r"""Filtered back-projection / FDK of a circular scan, as a linear operator
    ``projections -> volume`` (see the module docstring for the formulas and the scale).

    ``FBP = B @ H @ P``: ``P`` (:attr:`pre`) weights the projections by quadrature,
    redundancy (full scan ``1/2``, Parker short-scan weights, extended Parker weights of
    limited-angle scans, parallel-beam ``pi`` periodicity) and cosine weights times the
    scale; ``H`` (:attr:`ramp`) is the ramp filter along the detector rows; ``B``
    (:attr:`backprojection`) back-projects, with the ``U^-2`` distance weight for
    divergent beams.

    Parameters
    ----------
    A : XRayTransform
        The forward operator; its volume and geometry define the reconstruction.
        Geometry: ``ParallelBeam2D``, ``ParallelBeam3D``, ``FanBeam2D`` (flat or arc) or
        ``ConeBeam3D`` (flat or cylindrical), with any detector offsets.
    filter : str
        Ramp window: ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``, ``"hamming"``, ``"hann"``.
    cutoff : float
        Filter cutoff as a fraction of the Nyquist frequency, in (0, 1].
    short_scan : {"auto", True, False}
        Fan/cone beam only: ``"auto"`` treats views that do not go round the full circle
        as a short scan; ``True`` forces short-scan weighting. See
        :func:`~precisionrecon.operators.weights.redundancy_weights`.
    parker : {True, False, "extended"}
        Short scans: Parker weights (``True``) or only the mean redundancy ``pi / arc``
        (``False``, which leaves the well-known short-scan artefacts). ``"extended"``: as
        ``True``, and fan/cone beams covering less than ``pi`` plus the fan angle (limited
        angle, which ``True`` refuses) take Parker's weights continued to the short arc
        (:func:`~precisionrecon.operators.weights.extended_parker_weights`, Würfl et al.
        2018): each measured line counts once, the missing ones stay missing.
    backprojector : {"auto", "voxel", "voxel-mean", "footprint", "adjoint"}
        ``"voxel"``: :class:`VoxelBackprojection` (with the distance weight for divergent
        beams) at the voxel centres, point samples of the FBP image. ``"voxel-mean"``: the
        same at ``s_i = max(1, round(h_i / tau_i))`` sub-voxels per axis (``h`` the voxel
        size, ``tau`` the detector pitch at the isocentre, u in-plane and v along z),
        averaged over each voxel, at ``prod(s_i)`` times the cost of ``"voxel"``.
        ``"footprint"`` (2-D): the exact pixel mean of the back-projected, linearly
        interpolated projections (``VoxelBackprojection(..., footprint=True)``), after a
        prefilter that undoes the damping of linear interpolation
        (:func:`~precisionrecon.operators.filters.interpolation_compensation`, at most 2.47
        at the detector's Nyquist frequency), so that each pixel holds the mean of the FBP
        image of the band-limited projections; the filter itself is unchanged.
        ``"adjoint"``: ``A.T`` (parallel beams only, it lacks the distance weight).
        ``"auto"`` takes ``"footprint"`` for 2-D geometries, except with a detector finer
        than the pixels (some ``s_i >= 2``, i.e. a pitch of at most 2/3 of the pixel) and a
        window that passes less than 0.8 of the ramp just above the image's Nyquist
        frequency ``1 / (2 h)`` (at half-pixel pitch cosine, Hamming and Hann, and any
        cutoff that ends the band there), where it takes ``"voxel"``; 3-D geometries take
        ``"voxel"`` (``"voxel-mean"`` would cost ``s^3``; ask for it explicitly).
        Why: a filter that keeps frequencies the pixel grid cannot hold makes point
        samples alias them into streaks along sharp edges; pixel means do not. Where the
        window already cuts that band, averaging only blurs. Measured on the 256² modified
        Shepp-Logan (360 views, exact sinogram with detector-cell integration; PSNR
        against the pixel means), ``"voxel"`` / ``"voxel-mean"`` / ``"footprint"``:
        parallel beam, half-pixel pitch, Ram-Lak 39.4 / 44.2 / 46.8 dB (ASTRA ``strip``
        44.3, ``"adjoint"`` 40.4), Shepp-Logan 41.7 / 42.1 / 44.4, cosine 43.3 / 38.8 /
        40.1, Hann 38.6 / 36.0 / 36.7; quarter-pixel pitch Ram-Lak 31.4 / 48.8 / 48.7, Hann
        38.6 / 44.8 / 45.5; pixel pitch Ram-Lak 34.9 / - / 36.4, Hann 28.8 / - / 29.2 (at
        about 8 times the cost of ``"voxel"``); fan beam (flat or arc) at half-pixel pitch,
        Ram-Lak 32.6-32.9 / 37.5 / 37.6, at pixel pitch 33.9-34.2 / - / 34.9-35.2.
        :attr:`backprojector_used` tells which one is in use.
    response : Tensor, optional
        Filter response overriding the design (e.g. an ``nn.Parameter`` initialised
        from :attr:`designed_response`), shape ``(fft_length(n_det) // 2 + 1,)``.
    weights : Tensor, optional
        Pre-weights overriding :attr:`designed_weights` (same role, broadcastable to the
        projection shape), e.g. an ``nn.Parameter``. (The designed weights are applied as
        a view factor times a detector factor, so they equal ``weights=designed_weights``
        up to rounding.)

    Notes
    -----
    Shape: ``(*batch, n_views, *det_shape) -> (*batch, *volume.shape)``; float32 or
    float64. Input in line integrals (mm times density), output in density (1/mm).
    """

    A: XRayTransform
    filter: str = "ram-lak"
    _: KW_ONLY
    cutoff: float = 1.0
    short_scan: bool | str = "auto"
    parker: bool | str = True
    backprojector: str = "auto"
    response: Tensor | None = None
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        self._validate()
        geom = self.A.geometry
        kind = resolve_backprojector(self.backprojector, self.A.volume, geom, self.filter, float(self.cutoff))
        tau, designed_response = design_filter(geom, self.filter, float(self.cutoff))
        response = designed_response if self.response is None else self.response
        ramp = RampFilter(geom.proj_shape, det_spacing=tau, window=self.filter, cutoff=self.cutoff, response=response)
        factors = design_weights(self.A.volume, geom, kind, short_scan=self.short_scan, parker=self.parker)
        pre = self._pre_weighting(*factors)
        back = build_backprojector(kind, self.A, tau)
        d = self.__dict__
        d["backprojector_used"] = kind
        d["designed_response"], d["_weight_factors"] = designed_response, factors
        d["ramp"], d["pre"], d["backprojection"] = ramp, pre, back
        d["_op"] = back @ ramp @ pre

    def _pre_weighting(self, view_weights: Tensor, det_weights: Tensor) -> LinearOperator:
        """``P``: ``weights`` if given, else the designed view and detector factors applied one after
        the other (two small factors instead of their product, which can be as large as the projections)."""
        shape = self.A.geometry.proj_shape
        if self.weights is not None:
            return ProjectionWeighting(shape, self.weights)
        return ProjectionWeighting(shape, view_weights) @ ProjectionWeighting(shape, det_weights)

    def _validate(self) -> None:
        """Check the fields that the design steps below do not check themselves (``response`` and
        ``weights`` are checked by :class:`RampFilter` and :class:`ProjectionWeighting`, ``short_scan``
        and ``parker`` by :func:`redundancy_weights`)."""
        if not isinstance(self.A, XRayTransform):
            raise TypeError(f"A must be an XRayTransform, got {type(self.A).__name__}")
        geom, vol = self.A.geometry, self.A.volume
        if not isinstance(geom, CIRCULAR):
            raise TypeError(
                "A.geometry must be a ParallelBeam2D, ParallelBeam3D, FanBeam2D or ConeBeam3D (FBP needs a "
                f"circular scan), got {type(geom).__name__}"
            )
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, (int, float)):
            raise TypeError(f"cutoff must be a real number, got {type(self.cutoff).__name__}")
        if self.filter not in WINDOWS:
            raise ValueError(f"filter must be one of {WINDOWS}, got {self.filter!r}")
        if self.backprojector not in BACKPROJECTORS:
            raise ValueError(f"backprojector must be one of {BACKPROJECTORS}, got {self.backprojector!r}")
        if self.backprojector == "adjoint" and geom.beam != "parallel":
            raise ValueError(
                "backprojector='adjoint' is for parallel beams only: A.T lacks the distance weight of fan-beam "
                "FBP and FDK; use 'voxel' or 'auto'"
            )
        if self.backprojector == "footprint" and vol.ndim != 2:
            raise ValueError("backprojector='footprint' is for 2-D geometries; use 'voxel' or 'voxel-mean' in 3-D")

    @property
    def backprojector_used(self) -> str:
        """The back-projector in use: ``"voxel"``, ``"voxel-mean"``, ``"footprint"`` or ``"adjoint"`` (what
        ``"auto"`` chose)."""
        return self.__dict__["backprojector_used"]

    @property
    def designed_response(self) -> Tensor:
        """The filter response of this geometry and window (float64), the initial value of a learned one."""
        return self.__dict__["designed_response"]

    @property
    def designed_weights(self) -> Tensor:
        """The pre-weights ``P`` of this geometry (float64), the initial value of learned ones:
        quadrature and redundancy weights times cosine weights and the scale, shape
        ``(n_views, n_det)`` (2-D), ``(n_views, 1)`` (parallel 2-D), ``(n_views, rows, cols)``
        (cone beam) or ``(n_views, 1, 1)`` (parallel 3-D)."""
        view_weights, det_weights = self.__dict__["_weight_factors"]
        return view_weights * det_weights

    def __repr__(self) -> str:
        extra = "".join(f", {k}=<tensor>" for k in ("response", "weights") if getattr(self, k) is not None)
        return (
            f"FBP({self.A!r}, filter={self.filter!r}, cutoff={self.cutoff!r}, short_scan={self.short_scan!r}, "
            f"parker={self.parker!r}, backprojector={self.backprojector!r}{extra})"
        )

