"""Centred orthonormal FFT over the trailing 1, 2 or 3 spatial axes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._validate import as_shape, batch_shape
from ..operators.base import LinearOperator
from ._common import as_complex


def fftc(x: Tensor, dims: int = 2) -> Tensor:
    r"""Centred orthonormal DFT over the last ``dims`` axes (fastMRI's ``fft2c``).

    .. math:: \hat x = S\,F\,S^{-1} x

    with :math:`S` = ``fftshift`` and :math:`F` = ``fftn(., norm="ortho")``, so the zero
    frequency and the image centre both sit at index ``n // 2`` of each axis.

    Shape: ``(*batch, *spatial) -> (*batch, *spatial)``, complex.
    """
    x = as_complex(x)
    if x.numel() == 0:  # an empty batch: MKL refuses zero-sized transforms
        return x.clone()
    axes = tuple(range(-dims, 0))
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=axes), dim=axes, norm="ortho"), dim=axes)


def ifftc(y: Tensor, dims: int = 2) -> Tensor:
    r"""Inverse (= adjoint) of :func:`fftc`: :math:`S F^{H} S^{-1} y` over the last ``dims`` axes.

    Shape: ``(*batch, *spatial) -> (*batch, *spatial)``, complex.
    """
    y = as_complex(y, "y")
    if y.numel() == 0:
        return y.clone()
    axes = tuple(range(-dims, 0))
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(y, dim=axes), dim=axes, norm="ortho"), dim=axes)


@dataclass(frozen=True, eq=False)
class FFT(LinearOperator):
    r"""Centred orthonormal Fourier transform over the last ``dims`` axes of ``shape``.

    .. math:: (F x)[k] = \frac{1}{\sqrt{N}} \sum_n x[n]\, e^{-2\pi i \sum_a (k_a - c_a)(n_a - c_a) / N_a},
       \qquad c_a = \lfloor N_a / 2 \rfloor

    (``fftshift(fftn(ifftshift(x), norm="ortho"))``, as fastMRI's ``fft2c``). The operator is
    unitary: ``F.T`` is the inverse. Leading axes of ``shape`` before the spatial ones (coils,
    echoes) are transformed independently, so ``FFT((n_coils, ny, nx), dims=2)`` composes with
    :class:`~precisionrecon.mr.Coils`.

    Parameters
    ----------
    shape : tuple of int
        Trailing shape of the inputs, e.g. ``(ny, nx)``, ``(nz, ny, nx)`` or ``(n_coils, ny, nx)``.
    dims : int, optional
        Number of trailing spatial axes transformed (1, 2 or 3); default ``len(shape)``.

    Notes
    -----
    Shape: ``(*batch, *shape) -> (*batch, *shape)``, complex (real inputs are promoted to the
    complex dtype of their precision).
    """

    shape: tuple[int, ...]
    dims: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape))
        dims = len(self.shape) if self.dims is None else self.dims
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 3 or dims > len(self.shape):
            raise ValueError(f"dims must be 1, 2 or 3 and at most len(shape) = {len(self.shape)}, got {self.dims!r}")
        object.__setattr__(self, "dims", dims)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.shape

    def apply(self, x: Tensor) -> Tensor:
        """Image -> centred k-space. Shape: ``(*batch, *shape) -> (*batch, *shape)``."""
        x = as_complex(x)
        batch_shape(x, self.shape, "x")
        return fftc(x, self.dims)  # type: ignore[arg-type]

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Centred k-space -> image (the inverse). Shape: ``(*batch, *shape) -> (*batch, *shape)``."""
        y = as_complex(y, "y")
        batch_shape(y, self.shape, "y")
        return ifftc(y, self.dims)  # type: ignore[arg-type]

    def norm(self, **kwargs: object) -> float:
        return 1.0  # unitary

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    def __repr__(self) -> str:
        return f"FFT(shape={self.shape}, dims={self.dims})"
