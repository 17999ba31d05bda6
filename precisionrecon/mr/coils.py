"""Coil sensitivities: the coil operator, SENSE, birdcage maps, map estimation, RSS."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional

from .._validate import REAL_OR_COMPLEX, as_shape, batch_shape, check_tensor
from ..operators.base import LinearOperator, cached
from ._common import as_complex
from .fft import FFT, fftc, ifftc
from .sampling import Sampling


def _check_maps(maps: Tensor, name: str = "maps", sets: bool = False) -> None:
    check_tensor(maps, name, dtype=REAL_OR_COMPLEX, finite=True)
    if not isinstance(sets, bool):
        raise TypeError(f"sets must be a bool, got {type(sets).__name__}")
    if maps.dim() - sets not in (3, 4):
        lead = "n_sets, " if sets else ""
        raise ValueError(f"{name} must have shape ({lead}n_coils, ny, nx) or ({lead}n_coils, nz, ny, nx), "
                         f"got {tuple(maps.shape)}")


@dataclass(frozen=True, eq=False)
class Coils(LinearOperator):
    r"""Multiplication by coil sensitivity maps: ``x -> (S_c x)_c``.

    .. math:: (C x)_c = S_c \odot x, \qquad C^H y = \sum_c \overline{S_c} \odot y_c

    With ``sets=True`` the maps hold several sets (ESPIRiT's soft-SENSE, Uecker et al. 2014)
    and the image one component per set, summed in every coil:

    .. math:: (C x)_c = \sum_s S_{s,c} \odot x_s, \qquad (C^H y)_s = \sum_c \overline{S_{s,c}} \odot y_c

    Combine the components with :func:`combine_sets` (root-sum-of-squares).

    Parameters
    ----------
    maps : Tensor
        Sensitivities, shape ``(n_coils, ny, nx)`` or ``(n_coils, nz, ny, nx)``, complex, or
        ``(n_sets, n_coils, *image)`` with ``sets=True``. A maps tensor that requires grad is
        differentiated through.
    sets : bool
        Whether the first axis of ``maps`` is a set axis.

    Notes
    -----
    Shape: ``(*batch, *image) -> (*batch, n_coils, *image)`` with ``image = maps.shape[1:]``;
    with sets ``(*batch, n_sets, *image) -> (*batch, n_coils, *image)``.
    """

    maps: Tensor
    sets: bool = False

    def __post_init__(self) -> None:
        _check_maps(self.maps, sets=self.sets)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        if self.sets:
            return (self.maps.shape[0], *self.maps.shape[2:])
        return tuple(self.maps.shape[1:])

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.maps.shape[1:] if self.sets else self.maps.shape)

    @property
    def device(self) -> torch.device:
        return self.maps.device

    def _maps(self, x: Tensor) -> Tensor:
        return self.maps.to(device=x.device, dtype=x.dtype)

    def apply(self, x: Tensor) -> Tensor:
        """Coil images. Shape: ``(*batch, [n_sets,] *image) -> (*batch, n_coils, *image)``."""
        x = as_complex(x)
        batch_shape(x, self.domain_shape, "x")
        dims = self.maps.dim() - 1 - self.sets  # spatial axes
        out = x.unsqueeze(-dims - 1) * self._maps(x)
        return out.sum(dim=-dims - 2) if self.sets else out

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Conjugate-weighted coil sum. Shape: ``(*batch, n_coils, *image) -> (*batch, [n_sets,] *image)``."""
        y = as_complex(y, "y")
        batch_shape(y, self.range_shape, "y")
        n = len(self.range_shape)
        if self.sets:
            y = y.unsqueeze(-n - 1)  # (*batch, 1, n_coils, *image) against (n_sets, n_coils, *image)
        return (self._maps(y).conj() * y).sum(dim=-n)

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    def __repr__(self) -> str:
        sets = ", sets=True" if self.sets else ""
        return f"Coils(maps=<{tuple(self.maps.shape)} {self.maps.dtype}>{sets})"


@dataclass(frozen=True, eq=False)
class SENSE(LinearOperator):
    r"""Cartesian multi-coil MR forward model ``A = M F C`` (``Sampling @ FFT @ Coils``).

    .. math:: (A x)_c = m \odot \mathcal F(S_c \odot x), \qquad
       A^H y = \sum_c \overline{S_c} \odot \mathcal F^{H}(m \odot y_c)

    with the centred orthonormal FFT :math:`\mathcal F` over the spatial axes. The operator is
    literally the composition ``op = Sampling(mask, maps.shape) @ FFT(maps.shape, dims) @
    Coils(maps)``; ``A.replace(mask=new_mask)`` gives the same model with another mask.

    Parameters
    ----------
    mask : Tensor
        Boolean or real sampling mask broadcastable to ``maps.shape`` (e.g. ``(ny, nx)``).
    maps : Tensor
        Coil sensitivities, ``(n_coils, ny, nx)`` or ``(n_coils, nz, ny, nx)``; with
        ``sets=True`` several sets ``(n_sets, n_coils, *image)`` (soft-SENSE, see
        :class:`Coils`: e.g. ``espirit(..., n_maps=2)``).
    sets : bool
        Whether the first axis of ``maps`` is a set axis.

    Notes
    -----
    Shape: ``(*batch, *image) -> (*batch, n_coils, *image)`` (masked k-space on the full grid);
    with sets ``(*batch, n_sets, *image) -> (*batch, n_coils, *image)``.
    """

    mask: Tensor
    maps: Tensor
    sets: bool = False

    def __post_init__(self) -> None:
        _check_maps(self.maps, sets=self.sets)
        _ = self.op  # validates the mask against the maps

    @cached
    def op(self) -> LinearOperator:
        """The composition ``Sampling @ FFT @ Coils``."""
        shape = self.range_shape
        return Sampling(self.mask, shape) @ FFT(shape, dims=len(shape) - 1) @ Coils(self.maps, self.sets)

    @property
    def domain_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        if self.sets:
            return (self.maps.shape[0], *self.maps.shape[2:])
        return tuple(self.maps.shape[1:])

    @property
    def range_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.maps.shape[1:] if self.sets else self.maps.shape)

    @property
    def device(self) -> torch.device:
        return self.maps.device

    def apply(self, x: Tensor) -> Tensor:
        """Masked multi-coil k-space. Shape: ``(*batch, *image) -> (*batch, n_coils, *image)``."""
        return self.op.apply(x)

    def adjoint_apply(self, y: Tensor) -> Tensor:
        """Coil-combined image. Shape: ``(*batch, n_coils, *image) -> (*batch, *image)``."""
        return self.op.adjoint_apply(y)

    def _example_dtype(self) -> torch.dtype:
        return torch.complex128

    def __repr__(self) -> str:
        return (
            f"SENSE(mask=<{tuple(self.mask.shape)} {self.mask.dtype}>, "
            f"maps=<{tuple(self.maps.shape)} {self.maps.dtype}>{', sets=True' if self.sets else ''})"
        )


def rss(x: Tensor, dim: int = -3) -> Tensor:
    r"""Root sum of squares over the coil axis: :math:`\sqrt{\sum_c |x_c|^2}`.

    Shape: ``(*batch, n_coils, *image) -> (*batch, *image)`` for the default ``dim=-3``
    (2-D images); pass ``dim=-4`` for 3-D volumes. Real output.
    """
    check_tensor(x, "x", dtype=None)
    return torch.sqrt((x.abs() ** 2).sum(dim=dim))


def birdcage_maps(
    shape: Sequence[int],
    *,
    radius: float = 1.5,
    coils_per_ring: int | None = None,
    dtype: torch.dtype = torch.complex64,
) -> Tensor:
    r"""Simulated sensitivities of a birdcage-like array, normalised to unit root-sum-of-squares.

    Coil ``c`` is a small loop at angle :math:`\theta_c = 2\pi c / n_c` on a circle of radius
    ``radius`` (in units of the half field of view) around the image centre. Its sensitivity
    at the normalised position :math:`p` (both axes in [-1, 1)) is the field of a line
    current, magnitude :math:`1 / |p - p_c|`, with the phase of the azimuth of
    :math:`p - p_c` minus :math:`\theta_c` (the quadrature phase of a birdcage mode). The maps
    are then divided by their root-sum-of-squares, so ``rss(maps) == 1`` everywhere.

    For 3-D shapes the coils form ``n_coils / coils_per_ring`` rings spread evenly along z
    (within [-1, 1]), and the distance includes the z offset.

    Parameters
    ----------
    shape : tuple of int
        ``(n_coils, ny, nx)`` or ``(n_coils, nz, ny, nx)``.
    radius : float
        Radius of the coil circle relative to the half field of view (> 1 puts the coils
        outside the image).
    coils_per_ring : int, optional
        3-D only: coils per ring; must divide ``n_coils``. Default: all coils in one ring.
    dtype : torch.dtype
        ``torch.complex64`` or ``torch.complex128``.

    Returns
    -------
    Tensor
        Shape ``shape``, complex.
    """
    shape = as_shape(shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"shape must be (n_coils, ny, nx) or (n_coils, nz, ny, nx), got {shape}")
    if dtype not in (torch.complex64, torch.complex128):
        raise TypeError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be positive and finite, got {radius}")
    nc = shape[0]
    per_ring = nc if coils_per_ring is None else int(coils_per_ring)
    if per_ring <= 0 or nc % per_ring != 0:
        raise ValueError(f"coils_per_ring must be a positive divisor of n_coils = {nc}, got {coils_per_ring}")
    if len(shape) == 3 and per_ring != nc:
        raise ValueError("coils_per_ring applies to 3-D shapes only")
    n_rings = nc // per_ring

    def axis(n: int) -> Tensor:
        return (torch.arange(n, dtype=torch.float64) - n // 2) / (n / 2)

    c = torch.arange(nc, dtype=torch.float64)
    theta = 2 * math.pi * (c % per_ring) / per_ring
    ring = torch.div(c, per_ring, rounding_mode="floor")
    cx, cy = radius * torch.cos(theta), radius * torch.sin(theta)
    spatial = shape[1:]
    grids = torch.meshgrid(*(axis(n) for n in spatial), indexing="ij")
    x, y = grids[-1][None], grids[-2][None]
    view = (nc,) + (1,) * len(spatial)
    dx, dy = x - cx.view(view), y - cy.view(view)
    dist2 = dx**2 + dy**2
    if len(spatial) == 3:
        cz = (2 * ring + 1) / n_rings - 1 if n_rings > 1 else torch.zeros_like(ring)
        dist2 = dist2 + (grids[0][None] - cz.view(view)) ** 2
    phase = torch.atan2(dy, dx) - theta.view(view)
    maps = torch.polar(1.0 / torch.sqrt(dist2), phase)
    maps = maps / rss(maps, dim=0)
    return maps.to(dtype)


def acs_region(mask: Tensor, shape: Sequence[int] | None = None) -> tuple[slice, ...]:
    """A centred, fully sampled box of a sampling mask (the auto-calibration region).

    Boxes follow the centre convention of the mask generators (``k`` entries of an axis of
    length ``n`` start at ``(n - k + 1) // 2``, so index ``n // 2`` is inside); the fully
    sampled one of largest volume is returned (a summed-area table makes each test O(1)).
    For a Cartesian line mask (lines along the last axis) this is all rows by the block of
    central lines; for a mask with a fully sampled centre box, a box of at least its volume.

    Parameters
    ----------
    mask : Tensor
        Boolean or 0/1 mask, broadcastable to ``shape``.
    shape : tuple of int, optional
        The spatial shape; default ``mask.shape``.

    Returns
    -------
    tuple of slice
        One slice per axis of ``shape``.
    """
    check_tensor(mask, "mask", dtype=None)
    shape = tuple(mask.shape) if shape is None else as_shape(shape)
    m = torch.broadcast_to(mask.detach().cpu() != 0, shape)
    centre = tuple(n // 2 for n in shape)
    if not bool(m[centre]):
        raise ValueError("mask does not sample the k-space centre: no auto-calibration region")
    d = len(shape)
    holes = torch.nn.functional.pad((~m).to(torch.int64), (1, 0) * d)  # zero row/column in front
    for a in range(d):
        holes = holes.cumsum(a)  # summed-area table: unsampled count of any box in O(2^d)
    corners = list(itertools.product((0, 1), repeat=d))

    def box(sizes: Sequence[int]) -> tuple[list[int], list[int]]:
        lo = [(n - k + 1) // 2 for n, k in zip(shape, sizes, strict=True)]  # the masks' centre convention
        return lo, [a + k for a, k in zip(lo, sizes, strict=True)]

    def full(sizes: Sequence[int]) -> bool:
        lo, hi = box(sizes)
        total = 0
        for c in corners:
            sign = -1 if (d - sum(c)) % 2 else 1
            total += sign * int(holes[tuple(b if k else a for a, b, k in zip(lo, hi, c, strict=True))])
        return total == 0

    best: tuple[int, list[int]] = (0, [1] * d)

    def search(prefix: list[int]) -> None:
        nonlocal best
        a = len(prefix)
        if a == d - 1:  # the last axis: largest size by bisection (fully sampled boxes are nested)
            lo_k, hi_k = 1, shape[a]
            if not full([*prefix, 1]):
                return
            while lo_k < hi_k:
                mid = (lo_k + hi_k + 1) // 2
                lo_k, hi_k = (mid, hi_k) if full([*prefix, mid]) else (lo_k, mid - 1)
            sizes = [*prefix, lo_k]
            if math.prod(sizes) > best[0]:
                best = (math.prod(sizes), sizes)
            return
        for k in range(1, shape[a] + 1):
            if not full([*prefix, k] + [1] * (d - a - 1)):
                break  # larger boxes on this axis cannot be fully sampled either
            search([*prefix, k])

    search([])
    lo, hi = box(best[1])
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def estimate_maps(
    kspace: Tensor,
    mask: Tensor,
    *,
    method: str = "espirit",
    kernel_size: int | None = None,
    threshold: float | None = None,
    crop: float | None = None,
    calib_size: int | Sequence[int] | None = None,
    n_maps: int = 1,
) -> Tensor:
    r"""Estimate coil sensitivities from the data (NLINV) or their fully sampled centre.

    * ``method="espirit"`` (default): :func:`~precisionrecon.mr.espirit` on the fully
      sampled centre of ``mask``, with ``calib_size``, ``kernel_size`` (default: 6, at most
      the box width minus 3), the singular value ``threshold`` (default 0.02, or 0.005 for a
      calibration matrix with fewer patches than columns) and the
      eigenvalue ``crop``: the maps are zero where the data hold no signal.
    * ``method="nlinv"``: :func:`~precisionrecon.mr.nlinv` with its defaults, the joint
      estimation of image and maps from all the data (not only the ACS), on a coil grid 1.5
      times the field of view; the maps are defined everywhere (no crop). Use it for objects
      that fill the field of view (below); ``precisionrecon reconstruct`` uses it by default.
    * ``method="walsh"`` and ``"lowres"`` work on the low-resolution coil images
      :math:`c_i = \mathcal F^H(w \odot y_i)` of the ACS box (the rest of k-space zeroed, a Hann
      window against ringing). ``"lowres"``: :math:`S_i = c_i / \sqrt{\sum_j |c_j|^2}`
      (Pruessmann's SENSE paper); ``"walsh"``: the dominant eigenvector of the coil covariance
      :math:`R = \sum_{r' \in W(r)} c(r') c(r')^H` over a ``kernel_size`` box (default 5)
      around each pixel (Walsh, Gmitro and Marcellin, MRM 2000). Pixels whose low-resolution
      RSS is below ``threshold`` (default 0) times its maximum get zero sensitivity.

    All maps have unit root-sum-of-squares (where not cropped) and their phase relative to
    coil 0, so a reconstruction with them carries the object's phase relative to coil 0.

    Why not Walsh or lowres: their maps are the ratio of blurred coil images, biased within
    a blur width of every edge of the object, and they have unit RSS in the background, where
    no data define them. The data are then not in the range of ``SENSE(mask, maps)`` (7 %
    relative residual for the best image on the 64² phantom with 8 ACS lines), and the
    background pixels stay unknowns, which leaves the 4x normal operator badly conditioned;
    CG-SENSE fits the inconsistency along its near-null space and gets worse with every
    iteration (16.3 dB after 30, 8.9 dB after 100 iterations against 20.2 and 22.9 dB with the
    true maps). ESPIRiT's maps are consistent with the calibration data and cropped where the
    eigenvalue shows no signal: on objects with background around them CG-SENSE with them is
    within 1 dB of the true maps (the 64² Shepp-Logan phantom, 8 coils, 4x, 8 ACS lines, where
    NLINV's maps lose 0.8-1.5 dB after 30 iterations and up to 3.5 dB after 100).

    When to use NLINV: ESPIRiT's crop fails on an object that fills the field of view. On
    ``MR_small.dcm`` at 64² (the bench's real mr-4x data: 12 coils, 4x, 8 ACS lines, 5 %
    noise) CG-SENSE with ESPIRiT maps gives 9.2 dB after 30 iterations and 3.3 dB after 100,
    with NLINV's maps 33.6 and 34.4 dB; on ``examples_overlay.dcm`` 23.2 / 17.1 against
    31.6 / 34.2 dB. NLINV costs 4-5 s per 64² slice and 26 s per 256² slice on one thread of
    a loaded CPU, against 0.2-1 s for ESPIRiT.

    Parameters
    ----------
    kspace : Tensor
        Centred multi-coil k-space, ``(n_coils, ny, nx)`` or ``(n_coils, nz, ny, nx)``, complex.
    mask : Tensor
        Sampling mask broadcastable to the spatial shape; its fully sampled centre is the ACS.
    method : str
        ``"espirit"``, ``"nlinv"``, ``"walsh"`` or ``"lowres"``. The options below belong to
        the methods they name; one given to another method is an error (NLINV takes none,
        use :func:`~precisionrecon.mr.nlinv` for its own).
    kernel_size : int, optional
        ESPIRiT kernel width, or the odd box size of the Walsh covariance window (pixels).
    threshold : float, optional
        ESPIRiT: relative singular value threshold in (0, 1); Walsh/lowres: relative RSS level
        below which the maps are set to zero, in [0, 1).
    crop : float, optional
        ESPIRiT only: eigenvalue below which the maps are zero, in [0, 1) (default 0.95).
    calib_size : int or tuple of int, optional
        ESPIRiT only: largest calibration box per axis (default 24).
    n_maps : int
        ESPIRiT only: sets of maps; 2 for soft-SENSE (objects that fill the field of view),
        then use ``SENSE(mask, maps, sets=True)``.

    Returns
    -------
    Tensor
        Maps of the shape and complex dtype of ``kspace`` (``n_maps > 1``: ``(n_maps, *kspace.shape)``).
    """
    kspace = as_complex(kspace, "kspace")
    if kspace.dim() not in (3, 4):
        raise ValueError(
            f"kspace must have shape (n_coils, ny, nx) or (n_coils, nz, ny, nx), got {tuple(kspace.shape)}"
        )
    if method not in ("espirit", "walsh", "lowres", "nlinv"):
        raise ValueError(f"method must be 'espirit', 'nlinv', 'walsh' or 'lowres', got {method!r}")
    options = {"kernel_size": kernel_size, "threshold": threshold, "crop": crop, "calib_size": calib_size}
    owners = {"kernel_size": ("espirit", "walsh"), "threshold": ("espirit", "walsh", "lowres"),
              "crop": ("espirit",), "calib_size": ("espirit",)}
    for name, value in options.items():
        if value is not None and method not in owners[name]:
            raise ValueError(f"{name} applies to method {' or '.join(map(repr, owners[name]))}, not {method!r}")
    if method == "espirit":
        from .espirit import espirit  # espirit builds on acs_region of this module

        return espirit(
            kspace,
            mask,
            dims=kspace.dim() - 1,
            calib_size=24 if calib_size is None else calib_size,
            kernel_size=kernel_size,
            threshold=threshold,
            crop=0.95 if crop is None else crop,
            n_maps=n_maps,
        )
    if n_maps != 1:
        raise ValueError(f"n_maps > 1 needs method='espirit', got n_maps={n_maps!r} with method={method!r}")
    if method == "nlinv":
        from .nlinv import nlinv  # nlinv builds on the FFTs this module imports too

        return nlinv(kspace, mask, dims=kspace.dim() - 1).maps
    kernel_size = 5 if kernel_size is None else kernel_size
    threshold = 0.0 if threshold is None else threshold
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    spatial = tuple(kspace.shape[1:])
    dims = len(spatial)
    box = acs_region(mask, spatial)
    window = torch.zeros(spatial, dtype=torch.float64)
    window[box] = 1.0
    for a, sl in enumerate(box):
        n = sl.stop - sl.start
        hann = torch.hann_window(n + 2, periodic=False, dtype=torch.float64)[1:-1]  # no zero end points
        view = [1] * dims
        view[a] = n
        sub = [slice(None)] * dims
        sub[a] = sl
        window[tuple(sub)] *= hann.view(view)
    low = ifftc(kspace * window.to(kspace.device, kspace.real.dtype), dims)
    if method == "lowres":
        norm = rss(low, dim=0)
        maps = low / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    else:
        maps = _walsh(low, kernel_size)
        norm = rss(low, dim=0)
    maps = maps * torch.exp(-1j * torch.angle(maps[:1]))  # phase relative to coil 0
    if threshold > 0:
        maps = maps * (norm >= threshold * norm.max())
    return maps


def _walsh(low: Tensor, kernel_size: int) -> Tensor:
    """Dominant eigenvector of the box-averaged coil covariance at every pixel."""
    nc, spatial = low.shape[0], tuple(low.shape[1:])
    dims = len(spatial)
    cov = low[:, None] * low[None, :].conj()  # (nc, nc, *spatial)
    flat = torch.view_as_real(cov).movedim(-1, 2).reshape(1, nc * nc * 2, *spatial)
    pool = functional.avg_pool2d if dims == 2 else functional.avg_pool3d
    flat = pool(flat, kernel_size, stride=1, padding=kernel_size // 2, count_include_pad=False)
    cov = torch.view_as_complex(flat.reshape(nc, nc, 2, *spatial).movedim(2, -1).contiguous())
    cov = cov.permute(*range(2, 2 + dims), 0, 1)  # (*spatial, nc, nc)
    _, vecs = torch.linalg.eigh(cov)
    return vecs[..., -1].permute(dims, *range(dims)).contiguous()  # (nc, *spatial)


def coil_images(kspace: Tensor, dims: int = 2) -> Tensor:
    """Per-coil images ``F^H y`` of centred k-space (zero-filled if undersampled).

    Shape: ``(*batch, n_coils, *spatial) -> (*batch, n_coils, *spatial)``.
    """
    return ifftc(as_complex(kspace, "kspace"), dims)


def simulate_kspace(image: Tensor, maps: Tensor) -> Tensor:
    """Fully sampled multi-coil k-space ``F(S_c x)`` of an image.

    Shape: ``(*batch, *image) -> (*batch, n_coils, *image)``.
    """
    _check_maps(maps)
    x = as_complex(image, "image")
    batch_shape(x, tuple(maps.shape[1:]), "image")
    return fftc(x.unsqueeze(-maps.dim()) * maps.to(x.device, x.dtype), maps.dim() - 1)


__all__ = [
    "SENSE",
    "Coils",
    "acs_region",
    "birdcage_maps",
    "coil_images",
    "estimate_maps",
    "rss",
    "simulate_kspace",
]
