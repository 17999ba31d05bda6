"""Orthonormal 2-D wavelet transform (``ptwt``'s boundary-orthogonalised matrix FWT) as a
``LinearOperator``, and L1-wavelet compressed sensing with FISTA."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._validate import as_shape, batch_shape, check_int, check_operator
from ..algorithms import Result, TransformL1, fista
from ..operators.base import LinearOperator
from ._common import as_complex, prod


def _ptwt() -> Any:
    try:
        import ptwt
    except ImportError as err:  # optional dependency (the ``mr`` extra)
        raise ImportError("the wavelet transform needs ptwt: pip install 'precisionrecon[mr]'") from err
    return ptwt


@dataclass(frozen=True, eq=False)
class Wavelet(LinearOperator):
    r"""Orthonormal 2-D discrete wavelet transform of complex images, from ``ptwt``.

    ``ptwt.MatrixWavedec2`` with QR-orthogonalised boundary filters (Daubechies-style boundary
    wavelets, no padding and no periodisation): for image sizes divisible by
    :math:`2^\text{level}` the transform is an orthogonal matrix, so ``W.T`` (``ptwt``'s
    matching ``MatrixWaverec2``) is its inverse and :class:`~precisionrecon.algorithms.TransformL1`
    gives the exact prox of :math:`\|W x\|_1`. Real and imaginary parts are transformed alike.

    The coefficients are flattened, coarsest first: the approximation, then per level from
    coarse to fine the (horizontal, vertical, diagonal) details, as ``pywt.wavedec2`` lists them.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``; both divisible by ``2 ** level``.
    wavelet : str
        An orthogonal ``pywt`` wavelet name (``"haar"``, ``"db4"``, ``"sym8"``, ...).
    level : int
        Number of decomposition levels.

    Notes
    -----
    Shape: ``(*batch, ny, nx) -> (*batch, ny * nx)``, complex.
    """

    shape: tuple[int, ...]
    wavelet: str = "db4"
    level: int = 3
    _transforms: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape))
        if len(self.shape) != 2:
            raise ValueError(f"shape must be (ny, nx), got {self.shape}")
        level = check_int(self.level, "level", minimum=1)
        if any(n % 2**level for n in self.shape):
            raise ValueError(f"shape {self.shape} must be divisible by 2 ** level = {2**level}")
        import pywt

        if not isinstance(self.wavelet, str) or self.wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wavelet must be a discrete pywt wavelet name, got {self.wavelet!r}")
        w = pywt.Wavelet(self.wavelet)
        if not w.orthogonal:
            raise ValueError(f"wavelet must be orthogonal, got {self.wavelet!r}")
        if min(self.shape) // 2 ** (level - 1) < w.dec_len:
            raise ValueError(f"level {level} is too deep for shape {self.shape} and the {w.dec_len}-tap {self.wavelet}")

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (prod(self.shape),)

    def _pair(self, device: torch.device, dtype: torch.dtype) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``ptwt``'s analysis and synthesis objects for one device and dtype (they cache their
        matrices on the first call and would reuse them for another dtype)."""
        key = (device, dtype)
        if key not in self._transforms:
            ptwt = _ptwt()
            self._transforms[key] = (
                ptwt.MatrixWavedec2(self.wavelet, self.level, orthogonalization="qr"),
                ptwt.MatrixWaverec2(self.wavelet, orthogonalization="qr"),
            )
        return self._transforms[key]

    @staticmethod
    def _split(x: Tensor, ndim: int) -> tuple[Tensor, tuple[int, ...]]:
        """Complex ``(*batch, *core)`` (``ndim`` core axes) as real float64 ``(2 * B, *core)`` and the
        batch shape. float64 always: ptwt's QR-orthogonalised float32 matrices are orthogonal to
        only 1e-5."""
        batch = tuple(x.shape[: x.dim() - ndim])
        parts = torch.view_as_real(x.reshape(-1, *x.shape[len(batch):]).to(torch.complex128))  # (B, ..., 2)
        return parts.movedim(-1, 0).reshape(-1, *parts.shape[1:-1]), batch

    @staticmethod
    def _merge(parts: Tensor, batch: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        parts = parts.reshape(2, -1, *parts.shape[1:]).movedim(0, -1).contiguous()
        return torch.view_as_complex(parts).reshape(*batch, *parts.shape[1:-1]).to(dtype)

    def _sizes(self) -> list[tuple[int, int]]:
        """Shape of the approximation and of each detail band, coarse to fine."""
        ny, nx = self.shape
        coarse = [(ny >> self.level, nx >> self.level)]
        return coarse + [(ny >> j, nx >> j) for j in range(self.level, 0, -1) for _ in range(3)]

    def apply(self, x: Tensor) -> Tensor:
        """Wavelet coefficients. Shape: ``(*batch, ny, nx) -> (*batch, ny * nx)``."""
        x = as_complex(x)
        batch_shape(x, self.shape, "x")
        parts, batch = self._split(x, 2)
        analysis, _ = self._pair(parts.device, parts.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch: "sparse CSR support is in beta"
            coeffs = analysis(parts)
        bands = [coeffs[0], *(band for details in coeffs[1:] for band in details)]
        flat = torch.cat([b.reshape(b.shape[0], -1) for b in bands], dim=-1)
        return self._merge(flat, batch, x.dtype)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Synthesis (the inverse). Shape: ``(*batch, ny * nx) -> (*batch, ny, nx)``."""
        y = as_complex(y, "y")
        batch_shape(y, self.range_shape, "y")
        parts, batch = self._split(y, 1)
        _, synthesis = self._pair(parts.device, parts.dtype)
        sizes = self._sizes()
        chunks = torch.split(parts, [a * b for a, b in sizes], dim=-1)
        bands = [c.reshape(c.shape[0], *s) for c, s in zip(chunks, sizes, strict=True)]
        ptwt = _ptwt()
        coeffs = [bands[0]] + [
            ptwt.constants.WaveletDetailTuple2d(*bands[1 + 3 * j: 4 + 3 * j]) for j in range(self.level)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            image = synthesis(coeffs)
        return self._merge(image, batch, y.dtype)

    def norm(self, **kwargs: object) -> float:
        return 1.0  # orthonormal

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    def __repr__(self) -> str:
        return f"Wavelet(shape={self.shape}, wavelet={self.wavelet!r}, level={self.level})"


def wavelet_recon(
    A: LinearOperator,
    y: Tensor,
    lam: float,
    n_iter: int = 100,
    *,
    wavelet: str = "db4",
    level: int = 3,
    x0: Tensor | None = None,
    step: float | None = None,
    tol: float = 0.0,
    callback: Any = None,
    progress: bool = False,
) -> Result:
    r"""L1-wavelet compressed sensing (Lustig, Donoho and Pauly, MRM 2007):

    .. math:: \min_x \tfrac12 \|A x - y\|_2^2 + \lambda \|W x\|_1

    with the orthonormal :class:`Wavelet` :math:`W` of the image, solved by
    :func:`~precisionrecon.algorithms.fista` with the exact prox
    :class:`~precisionrecon.algorithms.TransformL1` (soft thresholding of the complex
    coefficients' moduli, all bands including the approximation, as sigpy's
    ``L1WaveletRecon``). ``lam`` is in the units of the data: scale it with the data, e.g. a
    small fraction of ``zero_filled(A, y).abs().max()``.

    Parameters
    ----------
    A : LinearOperator
        The forward model with a 2-D image domain ``(ny, nx)`` (Cartesian SENSE, NUFFT, ...).
    y : Tensor
        Data, ``(*batch, *A.range_shape)``.
    lam : float
        Wavelet L1 weight (>= 0).
    n_iter : int
        Number of FISTA iterations.
    wavelet, level
        As in :class:`Wavelet`.
    x0, step, tol, callback, progress
        As in :func:`~precisionrecon.algorithms.fista`.

    Returns
    -------
    Result
        ``result.x`` of shape ``(*batch, ny, nx)`` and the FISTA history.
    """
    A = check_operator(A, "A")
    W = Wavelet(tuple(A.domain_shape), wavelet, level)
    return fista(A, y, n_iter, prox=TransformL1(W), lam=lam, step=step, x0=x0, tol=tol, callback=callback,
                 progress=progress)


__all__ = ["Wavelet", "wavelet_recon"]

