r"""Helical FDK with WFBP-style row weights, as a linear operator ``projections -> volume``.

The algorithm (a helical Feldkamp reconstruction with a 3-D redundancy weighting in the
spirit of Stierstorfer et al. 2004, "Weighted FBP", and Tang et al. 2006, without the
fan-to-parallel rebinning)::

    HelicalFBP = B @ H @ P

* ``P`` (:attr:`HelicalFBP.pre`): per view the quadrature weight ``dbeta`` (Voronoi cell
  of the unwrapped angles), per detector pixel the cone-beam cosine weight of FDK
  (:func:`~.weights.cosine_weights`), FBP's scale (:func:`~.fbp.fbp_scale`) and the
  helical redundancy weight ``W(v, gamma)`` of :func:`helical_row_weights`;
* ``H``: the ramp filter along the detector rows (:func:`~.fbp.design_filter`: the arc
  ramp for a cylindrical detector);
* ``B``: the distance-weighted voxel-driven back-projector over *all* views
  (:class:`~.backprojection.VoxelBackprojection`), which follows the per-view vectors, so
  the table feed and the flying focal spot need nothing else. On the CPU it visits, per view,
  only the image rows (in segments of 32 voxels) that the view's detector rows can reach
  (``row_segment_reaches`` in ``cuda_ext/xray_math.h``, a conservative bound), so a long helix
  costs about the views times the slices one cone covers; the skipped voxels get no weight
  from the view anyway, so ``B``, its transpose and everything built on them are unchanged
  bit for bit (``benchmarks/helical_slab.py``).

The redundancy weight. A line through a voxel is measured by the source at ``beta``,
again from the opposite side at ``beta + pi - 2 gamma`` (fan angle ``gamma``) and again
every further turn, each time at another detector row because the table has moved. With
the row weight ``w(q)`` (1 in the middle ``|q| <= Q`` of the detector, a ``cos^2`` taper
to 0 at its edges, ``q = v / (rows dv / 2)``),

.. math::

    W(v, \gamma) = \frac{w(v)}{\sum_{k \in \mathbb{Z}} w(v - \delta_k \rho / (R \cos\gamma))},
    \qquad \delta_k \in \{k h\} \cup \{(k + 1/2 - \gamma / \pi) h\},

where ``h`` is the table feed per turn, ``R = src_iso`` and ``rho`` the in-plane distance
from the source to the pixel: the shifts ``delta_k`` are the source z offsets of all the
views that measure the line, the rows are those of the point of the line nearest the
axis (its chord midpoint, at ``R cos gamma`` from the source). So the weights of all
measurements of a line sum to one, as Parker's short-scan weights do, and
``B H P`` is FBP with every line counted once. Why this algorithm: it keeps the native
cone-beam data (no rebinning, so the flying focal spot's interleaved rays and the exact
per-view geometry reach the back-projector untouched), it is one linear operator of
known operators (so its adjoint is exact, it is differentiable and batched, and its
filter and weights are learnable), and it reconstructs any pitch below 2. The weights
are exact for voxels on the rotation axis and approximate away from it (where the
conjugate rays meet the voxel at other rows), which ``benchmarks/helical.py`` measures.

Units as :class:`~.fbp.FBP`: line integrals (mm times density) in, density (1/mm) out.
Only voxels within :meth:`~precisionrecon.geometry.HelicalConeBeam.z_range` see every
measurement of their lines; slices nearer the ends of the helix are not valid.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..geometry import HelicalConeBeam
from ..geometry.facts import detector_uv, fan_angles
from .backprojection import VoxelBackprojection
from .fbp import _RampReconstruction, design_filter, fbp_scale
from .filters import WINDOWS, RampFilter
from .weights import ProjectionWeighting, cosine_weights
from .xray import XRayTransform


def row_weight(q: Tensor, flat: float) -> Tensor:
    r"""Stierstorfer's row weight: 1 for ``|q| <= flat``, ``cos^2(pi / 2 (|q| - flat) / (1 - flat))``
    up to ``|q| = 1``, 0 beyond (``q`` the row coordinate over the half detector height).

    Shape: ``q.shape``.
    """
    a = q.abs()
    taper = torch.cos(0.5 * math.pi * (a - flat) / (1.0 - flat)) ** 2
    return torch.where(a <= flat, torch.ones_like(a), torch.where(a < 1.0, taper, torch.zeros_like(a)))


def helical_row_weights(geometry: HelicalConeBeam, flat: float = 0.5) -> Tensor:
    r"""Redundancy weights ``W(v, gamma)`` of helical FBP (see the module docstring), normalised
    so that all the measurements of a line (on its chord midpoint) sum to one.

    Parameters
    ----------
    geometry : HelicalConeBeam
    flat : float
        Part of the half detector height with full weight, in [0, 1).

    Shape: ``(1, rows, cols)``, float64.
    """
    if not isinstance(geometry, HelicalConeBeam):
        raise TypeError(f"geometry must be a HelicalConeBeam, got {type(geometry).__name__}")
    if not (isinstance(flat, (int, float)) and 0.0 <= flat < 1.0):
        raise ValueError(f"flat must be in [0, 1), got {flat!r}")
    circ = geometry.circular()
    u, v = detector_uv(circ)
    gamma = fan_angles(circ)
    half = 0.5 * geometry.det_shape[0] * geometry.det_spacing[0]
    d = geometry.src_det
    rho = torch.full_like(u, d) if geometry.detector == "cylindrical" else torch.sqrt(d * d + u * u)
    row_shift = rho / (geometry.src_iso * torch.cos(gamma)) / half  # q per mm of source z
    h = geometry.table_feed
    own = row_weight(v / half, flat)[:, None]  # (rows, 1)
    if h == 0.0:
        raise ValueError("geometry.table_feed is 0 (a circular scan): use FBP on a ConeBeam3D")
    q = (v / half)[:, None]
    reach = 2.0 / (abs(h) * float(row_shift.min()))  # turns over which a shift stays on the detector
    ks = torch.arange(-math.ceil(reach) - 1, math.ceil(reach) + 2, dtype=torch.float64)
    delta = torch.cat([ks[:, None] * h + 0 * gamma, (ks[:, None] + 0.5 - gamma[None, :] / math.pi) * h])  # (K, cols)
    total = row_weight(q[None] - delta[:, None, :] * row_shift[None, None, :], flat).sum(0)  # (rows, cols)
    return (own / total.clamp(min=1e-12))[None]


def view_quadrature(angles: Any) -> Tensor:
    """Quadrature weights ``dbeta_i`` of unwrapped, monotonic angles: half the gaps to both
    neighbours (the end views take their one gap). Shape: ``(n_views,)``, float64."""
    a = np.asarray(angles, dtype=np.float64)
    if a.size == 1:
        return torch.full((1,), 2.0 * math.pi, dtype=torch.float64)
    gaps = np.abs(np.diff(a))
    left = np.concatenate([gaps[:1], gaps])
    right = np.concatenate([gaps, gaps[-1:]])
    return torch.from_numpy(0.5 * (left + right))


@dataclass(frozen=True, eq=False)
class HelicalFBP(_RampReconstruction):
    r"""Helical FDK with WFBP-style row weights (see the module docstring), ``B @ H @ P``.

    Parameters
    ----------
    A : XRayTransform
        Its volume and :class:`~precisionrecon.geometry.HelicalConeBeam` geometry define the
        reconstruction.
    filter : str
        Ramp window: ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``, ``"hamming"``, ``"hann"``.
    cutoff : float
        Filter cutoff as a fraction of the Nyquist frequency, in (0, 1].
    flat : float
        Part of the half detector height with full row weight (Stierstorfer's ``Q``), in [0, 1).
    response : Tensor, optional
        Filter response overriding the design (e.g. an ``nn.Parameter``).
    weights : Tensor, optional
        Pre-weights overriding :attr:`designed_weights` (broadcastable to the projection
        shape), e.g. an ``nn.Parameter``.

    Notes
    -----
    Shape: ``(*batch, n_views, rows, cols) -> (*batch, nz, ny, nx)``; float32 or float64.
    The adjoint ``P H B^T`` is exact (each part's adjoint is).
    """

    A: XRayTransform
    filter: str = "ram-lak"
    _: KW_ONLY
    cutoff: float = 1.0
    flat: float = 0.5
    response: Tensor | None = None
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.A, XRayTransform):
            raise TypeError(f"A must be an XRayTransform, got {type(self.A).__name__}")
        geom = self.A.geometry
        if not isinstance(geom, HelicalConeBeam):
            raise TypeError(f"A.geometry must be a HelicalConeBeam, got {type(geom).__name__}")
        if self.filter not in WINDOWS:
            raise ValueError(f"filter must be one of {WINDOWS}, got {self.filter!r}")
        circ = geom.circular()
        tau, designed_response = design_filter(circ, self.filter, float(self.cutoff))
        response = designed_response if self.response is None else self.response
        ramp = RampFilter(geom.proj_shape, det_spacing=tau, window=self.filter, cutoff=self.cutoff, response=response)
        view = view_quadrature(geom.angles)[:, None, None]
        det = cosine_weights(circ) * fbp_scale(self.A.volume, circ, "voxel") * helical_row_weights(geom, self.flat)
        shape = geom.proj_shape
        if self.weights is None:
            pre = ProjectionWeighting(shape, view) @ ProjectionWeighting(shape, det)
        else:
            pre = ProjectionWeighting(shape, self.weights)
        back = VoxelBackprojection(self.A.volume, geom, distance_weight=True, device=self.A.device)
        d = self.__dict__
        d["designed_response"], d["_weight_factors"] = designed_response, (view, det)
        d["ramp"], d["pre"], d["backprojection"] = ramp, pre, back
        d["_op"] = back @ ramp @ pre

    @property
    def designed_response(self) -> Tensor:
        """The filter response of this geometry and window (float64), the initial value of a learned one."""
        return self.__dict__["designed_response"]

    @property
    def designed_weights(self) -> Tensor:
        """The pre-weights ``P`` (quadrature times cosine, scale and row weights), float64,
        shape ``(n_views, rows, cols)``."""
        view, det = self.__dict__["_weight_factors"]
        return view * det

    def __repr__(self) -> str:
        extra = "".join(f", {k}=<tensor>" for k in ("response", "weights") if getattr(self, k) is not None)
        return f"HelicalFBP({self.A!r}, filter={self.filter!r}, cutoff={self.cutoff!r}, flat={self.flat!r}{extra})"

