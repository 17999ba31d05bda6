"""Ramp filters of filtered back-projection, applied along the detector rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validate import REAL, as_shape, check_tensor, choice, positive_float
from .base import LinearOperator

WINDOWS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def fft_length(n_det: int) -> int:
    """Zero-padded FFT length: a power of two >= 2 * n_det (>= 64), so the linear
    convolution with the ramp kernel never wraps around."""
    return max(64, 1 << math.ceil(math.log2(2 * n_det)))


def ramp_response(n_det: int, det_spacing: float, window: str = "ram-lak", cutoff: float = 1.0) -> Tensor:
    r"""Frequency response of the windowed ramp filter, for ``torch.fft.rfft`` of length
    :func:`fft_length`.

    The ramp is the DFT of the band-limited spatial kernel of Ramachandran and
    Lakshminarayanan (Kak & Slaney, eq. 3.61), sampled at the detector pitch ``tau``:
    ``h[0] = 1 / (4 tau^2)``, ``h[k] = -1 / (pi k tau)^2`` for odd ``k``, 0 for even ``k``.
    Multiplied by ``tau`` (the quadrature weight of the convolution), its response
    approximates ``|nu|`` in cycles per mm without the DC error of a sampled ``|nu|``.
    The window ``W(u)``, ``u = |nu| / (cutoff * nu_Nyquist)``, is 1 (Ram-Lak),
    ``sinc(u / 2)`` (Shepp-Logan), ``cos(pi u / 2)`` (cosine), ``0.54 + 0.46 cos(pi u)``
    (Hamming) or ``0.5 + 0.5 cos(pi u)`` (Hann), and 0 for ``u > 1``.

    Shape: ``(fft_length(n_det) // 2 + 1,)``, float64, in 1/mm.
    """
    choice(window, "window", WINDOWS)
    if not (0.0 < cutoff <= 1.0):
        raise ValueError(f"cutoff must be in (0, 1] (a fraction of the Nyquist frequency), got {cutoff}")
    det_spacing = positive_float(det_spacing, "det_spacing")
    n = fft_length(n_det)
    k = torch.arange(n, dtype=torch.float64)
    dist = torch.minimum(k, n - k)  # circular distance, so the kernel is even
    kernel = torch.where(dist % 2 == 1, -1.0 / (math.pi * dist).clamp(min=1.0) ** 2, torch.zeros_like(dist))
    kernel[0] = 0.25
    response = torch.fft.rfft(kernel).real / det_spacing  # tau * h[k] with h in 1/mm^2
    u = torch.fft.rfftfreq(n, dtype=torch.float64) / (0.5 * cutoff)
    windows = {
        "ram-lak": torch.ones_like(u),
        "shepp-logan": torch.sinc(u / 2),
        "cosine": torch.cos(math.pi * u / 2),
        "hamming": 0.54 + 0.46 * torch.cos(math.pi * u),
        "hann": 0.5 + 0.5 * torch.cos(math.pi * u),
    }
    return torch.where(u <= 1.0, response * windows[window], torch.zeros_like(response))


def interpolation_compensation(n_det: int) -> Tensor:
    r"""Inverse frequency response of linear interpolation between detector bins,
    ``1 / sinc^2(f)`` at ``f`` cycles per bin (``|f| <= 1/2``, at most ``4 / pi^2 = 2.47``),
    for ``torch.fft.rfft`` of length :func:`fft_length`.

    Linear interpolation of samples ``q_k`` is the convolution of the sample train with the
    hat kernel, whose response is ``sinc^2``: it damps the band it should keep (by 0.41 at
    the Nyquist frequency). Filtering the samples with this response first makes the
    interpolant carry the samples' spectrum in the base band, as band-limited (sinc)
    interpolation would.

    Shape: ``(fft_length(n_det) // 2 + 1,)``, float64, dimensionless.
    """
    f = torch.fft.rfftfreq(fft_length(n_det), dtype=torch.float64)
    return 1.0 / torch.sinc(f) ** 2


@dataclass(frozen=True, eq=False)
class RampFilter(LinearOperator):
    r"""Convolution of every detector row with the (windowed) ramp kernel, or with any
    real, even kernel given by its ``response``.

    ``y -> crop(irfft(H * rfft(pad(y))))`` along the last axis, zero-padded to
    :func:`fft_length` so nothing wraps around. The kernel is real and even, so the
    operator is self-adjoint. ``response`` overrides the designed filter: pass an
    ``nn.Parameter`` (initialised from :func:`ramp_response`) to learn the filter; the
    operator is differentiable in its input and in ``response``.

    Parameters
    ----------
    shape : tuple of int
        Projection shape, e.g. ``geometry.proj_shape``; the last axis is filtered.
    det_spacing : float
        Detector pitch in mm (the filter is in 1/mm).
    window : str
        One of ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``, ``"hamming"``, ``"hann"``.
    cutoff : float
        Frequency cutoff as a fraction of the Nyquist frequency, in (0, 1].
    response : Tensor, optional
        Frequency response, shape ``(fft_length(shape[-1]) // 2 + 1,)``.

    Notes
    -----
    Shape: ``(*batch, *shape) -> (*batch, *shape)``.
    """

    shape: tuple[int, ...]
    det_spacing: float = 1.0
    window: str = "ram-lak"
    cutoff: float = 1.0
    response: Tensor | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape))
        # validates window, cutoff and spacing; kept as the `designed_response` value
        designed = ramp_response(self.shape[-1], float(self.det_spacing), self.window, float(self.cutoff))
        self.__dict__["designed_response"] = designed
        if self.response is not None:
            if not isinstance(self.response, Tensor) or self.response.shape != designed.shape:
                raise ValueError(
                    f"response must be a tensor of shape {tuple(designed.shape)}, "
                    f"got {getattr(self.response, 'shape', type(self.response).__name__)}"
                )
            if self.response.is_complex():
                raise TypeError("response must be real (the ramp kernel is real and even)")

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    @property
    def designed_response(self) -> Tensor:
        """The windowed ramp of :func:`ramp_response` for this filter's parameters."""
        return self.__dict__["designed_response"]

    def apply(self, x: Tensor) -> Tensor:
        """Filter along the last axis. Shape: ``(*batch, *shape) -> (*batch, *shape)``."""
        check_tensor(x, "x", dtype=REAL, shape_suffix=self.shape)
        if x.numel() == 0:  # an empty batch: MKL refuses zero-sized transforms
            return x.clone()
        n_det = self.shape[-1]
        n = fft_length(n_det)
        response = self.designed_response if self.response is None else self.response
        spectrum = torch.fft.rfft(x, n=n, dim=-1) * response.to(device=x.device, dtype=x.dtype)
        return torch.fft.irfft(spectrum, n=n, dim=-1)[..., :n_det]

    def adjoint_apply(self, y: Tensor) -> Tensor:
        return self.apply(y)
