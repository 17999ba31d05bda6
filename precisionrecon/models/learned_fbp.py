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
continued to the short arc
(:func:`~precisionrecon.operators.weights.extended_parker_weights`, FBP's
``parker="extended"``), which normalise the redundancy of the measured rays exactly: the
two measurements of a doubly measured line sum to one, singly measured lines get one.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..geometry import Geometry, HelicalConeBeam, Volume
from ..operators.base import LinearOperator
from ..operators.fbp import FBP
from ..operators.helical import HelicalFBP
from ..operators.xray import XRayTransform
from .base import ReconModel, resolve_dtype


class FBPLayer(nn.Module):
    r"""FBP / FDK as a layer with a learnable filter response and learnable pre-weights.

    ``x = B H_response P_weights y``: :class:`~precisionrecon.operators.fbp.FBP` with
    ``response`` and ``weights`` given as parameters, initialised to the designed values of
    the same FBP. The weights hold one value per view and detector pixel (shape
    ``geometry.proj_shape``).

    Parameters
    ----------
    A : XRayTransform
        The projector; its volume and circular geometry define the reconstruction. With a
        :class:`~precisionrecon.geometry.HelicalConeBeam` the layer is
        :class:`~precisionrecon.operators.HelicalFBP` (``short_scan``, ``parker`` and
        ``backprojector`` do not apply).
    filter, cutoff, short_scan, backprojector
        As for :class:`~precisionrecon.operators.fbp.FBP`.
    parker : bool or "extended"
        As for :class:`~precisionrecon.operators.fbp.FBP`, except that ``True`` is FBP's
        ``"extended"``: limited-angle fan/cone beams start from the extended Parker weights
        (Würfl et al. 2018); other scans are not affected.
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
        parker: bool | str = True,
        backprojector: str = "auto",
        dtype: Any = None,
    ) -> None:
        super().__init__()
        dt = resolve_dtype(dtype)
        self._settings: dict[str, Any]
        designed: FBP | HelicalFBP
        if isinstance(A.geometry, HelicalConeBeam):  # helical FDK: the same parts, other redundancy weights
            designed = HelicalFBP(A, filter, cutoff=cutoff)
            self._settings = {"filter": filter, "cutoff": cutoff}
        else:
            designed = FBP(
                A,
                filter,
                cutoff=cutoff,
                short_scan=short_scan,
                parker="extended" if parker is True else parker,
                backprojector=backprojector,
            )
            # "auto" recorded as FBP resolved it, so that a saved config rebuilds the same back-projector even if
            # the rule of "auto" changes
            self._settings = {
                "filter": filter,
                "cutoff": cutoff,
                "short_scan": short_scan,
                "parker": designed.parker,
                "backprojector": designed.backprojector_used,
            }
        response, weights = designed.designed_response, designed.designed_weights.expand(A.geometry.proj_shape)
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
        """The current FBP ``B @ H @ P`` as a linear operator (differentiable in the parameters);
        built again only when a parameter or the projector is replaced."""
        key = (self.response, self.weights, self.A)
        cache = self._cache
        if cache is None or any(a is not b for a, b in zip(cache[:3], key, strict=True)):
            cls = HelicalFBP if isinstance(self.A.geometry, HelicalConeBeam) else FBP
            cache = (*key, cls(self.A, response=self.response, weights=self.weights, **self._settings))
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
    :class:`~precisionrecon.operators.fbp.FBP` with the same settings (``parker="extended"``
    on limited-angle fan/cone beams).

    Parameters
    ----------
    operator : XRayTransform or Geometry
        The projector, or a circular or helical geometry (then ``volume`` is required); a
        helical one learns the filter and weights of :class:`~precisionrecon.operators.HelicalFBP`.
    volume : Volume, optional
        Only with a geometry.
    filter : str
        Initial ramp window (``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``, ``"hamming"``, ``"hann"``).
    cutoff, short_scan, parker, backprojector
        As for :class:`FBPLayer` (``parker=True`` takes the extended Parker weights on
        limited-angle fan/cone beams).
    dtype : torch.dtype or str, optional
        Parameter dtype; ``torch.float64`` for float64 data (the initial values are then
        the float64 analytic ones).
    normalize : bool
        Normalise each sample by its data scale (:meth:`ReconModel.data_scale`) and
        restore it on the output. The model is linear, so this changes nothing but
        rounding; it is there so that every model follows the same convention.

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
        parker: bool | str = True,
        backprojector: str = "auto",
        dtype: Any = None,
        normalize: bool = True,
    ) -> None:
        if isinstance(operator, Geometry):
            if not isinstance(volume, Volume):
                raise TypeError(f"volume must be a Volume when operator is a geometry, got {type(volume).__name__}")
            operator = XRayTransform(volume, operator)
        elif volume is not None:
            raise ValueError("volume is only used with a geometry; the XRayTransform has its own volume")
        super().__init__(operator, normalize=normalize)
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
            backprojector=self.fbp._settings.get("backprojector", backprojector),  # "auto" resolved
            dtype=resolve_dtype(dtype),
        )

    def bind_operator(self, operator: LinearOperator) -> None:
        super().bind_operator(operator)
        self.fbp.rebind(operator)  # type: ignore[arg-type]

    def reconstruct(self, y: Tensor) -> Tensor:
        """The learned FBP (no normalisation: it is linear). Shape: ``(N, *proj_shape) -> (N, *volume.shape)``."""
        return self.fbp(y)
