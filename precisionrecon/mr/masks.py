"""Cartesian sampling masks: random and equispaced lines (fastMRI conventions), variable-density
Gaussian and Poisson-disc point masks, all with a fully sampled centre."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._validate import as_shape

_RADIUS_JITTER = 0.25  # Poisson disc: radii scaled by a random factor in [0.875, 1.125)


def _check_acceleration(acceleration: float) -> float:
    if isinstance(acceleration, bool) or not isinstance(acceleration, (int, float)):
        raise TypeError(f"acceleration must be a number, got {type(acceleration).__name__}")
    if not (acceleration >= 1.0 and math.isfinite(acceleration)):
        raise ValueError(f"acceleration must be finite and >= 1, got {acceleration}")
    return float(acceleration)


def _center_count(n: int, center_fraction: float | None, center_lines: int | None, what: str) -> int:
    if (center_fraction is None) == (center_lines is None):
        raise ValueError(f"give exactly one of center_fraction and center_lines ({what})")
    if center_lines is not None:
        if isinstance(center_lines, bool) or not isinstance(center_lines, int) or not 0 <= center_lines <= n:
            raise ValueError(f"center_lines must be an int in [0, {n}], got {center_lines!r}")
        return center_lines
    assert center_fraction is not None
    if not 0.0 <= center_fraction <= 1.0:
        raise ValueError(f"center_fraction must be in [0, 1], got {center_fraction}")
    return round(n * center_fraction)  # fastMRI: int(round(num_cols * center_fraction))


def _center_slice(n: int, n_low: int) -> slice:
    """fastMRI's centre block: ``pad = (n - n_low + 1) // 2``, so index ``n // 2`` is inside."""
    pad = (n - n_low + 1) // 2
    return slice(pad, pad + n_low)


def _lines_to_mask(lines: np.ndarray, shape: tuple[int, ...]) -> Tensor:
    return torch.broadcast_to(torch.from_numpy(lines.astype(bool)), shape).clone()


def random_lines(
    shape: Sequence[int] | int,
    acceleration: float,
    *,
    center_fraction: float | None = None,
    center_lines: int | None = None,
    seed: int | None = None,
) -> Tensor:
    r"""Random Cartesian lines with a fully sampled centre (fastMRI's ``RandomMaskFunc``).

    Phase-encoding lines are the entries of the *last* axis (each selected index samples a
    full line along the other axes; fastMRI's ``W`` axis). The central
    ``n_low = round(n * center_fraction)`` lines (or ``center_lines``) are always sampled,
    starting at ``(n - n_low + 1) // 2``; every other line is drawn independently with
    probability :math:`p = (n / R - n_\mathrm{low}) / (n - n_\mathrm{low})`, so the *expected*
    acceleration is :math:`R`.

    Parameters
    ----------
    shape : tuple of int
        Mask shape, e.g. ``(ny, nx)``; lines are selected along the last axis.
    acceleration : float
        Target undersampling factor :math:`R \ge 1`.
    center_fraction, center_lines : float or int
        Size of the fully sampled centre (give exactly one).
    seed : int, optional
        Seed of the NumPy generator (same seed, same mask).

    Returns
    -------
    Tensor
        Boolean mask of shape ``shape``.
    """
    shape = as_shape(shape)
    acc = _check_acceleration(acceleration)
    n = shape[-1]
    n_low = _center_count(n, center_fraction, center_lines, "random_lines")
    rng = np.random.default_rng(seed)
    lines = np.zeros(n, dtype=bool)
    if n_low < n:
        prob = (n / acc - n_low) / (n - n_low)
        lines = rng.uniform(size=n) < prob
    lines[_center_slice(n, n_low)] = True
    return _lines_to_mask(lines, shape)


def equispaced_lines(
    shape: Sequence[int] | int,
    acceleration: float,
    *,
    center_fraction: float | None = None,
    center_lines: int | None = None,
    seed: int | None = None,
    count_center: bool = True,
) -> Tensor:
    r"""Equispaced Cartesian lines with a fully sampled centre (fastMRI conventions).

    Lines are entries of the last axis, the centre block is as in :func:`random_lines`.

    * ``count_center=True`` (fastMRI's ``EquispacedMaskFractionFunc``): outside lines are spaced
      by the adjusted factor :math:`R' = R (n_\mathrm{low} - n) / (n_\mathrm{low} R - n)` from a
      random offset in ``[0, round(R'))`` (positions rounded), so that the total fraction of
      sampled lines, centre included, is about :math:`1 / R`.
    * ``count_center=False`` (fastMRI's ``EquiSpacedMaskFunc``, GRAPPA style): every
      :math:`R`-th line from a random offset in ``[0, R)`` plus the centre; the true
      acceleration is then below :math:`R`.

    Parameters
    ----------
    shape : tuple of int
        Mask shape; lines are selected along the last axis.
    acceleration : float
        Target undersampling factor (an integer when ``count_center=False``).
    center_fraction, center_lines : float or int
        Size of the fully sampled centre (give exactly one).
    seed : int, optional
        Seed of the random offset.
    count_center : bool
        Whether the centre lines count towards the acceleration (see above).

    Returns
    -------
    Tensor
        Boolean mask of shape ``shape``.
    """
    shape = as_shape(shape)
    acc = _check_acceleration(acceleration)
    n = shape[-1]
    n_low = _center_count(n, center_fraction, center_lines, "equispaced_lines")
    rng = np.random.default_rng(seed)
    lines = np.zeros(n, dtype=bool)
    lines[_center_slice(n, n_low)] = True
    if count_center:
        if n_low * acc >= n:
            return _lines_to_mask(lines, shape)  # the centre alone reaches the acceleration
        adjusted = acc * (n_low - n) / (n_low * acc - n)
        offset = int(rng.integers(0, max(1, round(adjusted))))
        idx = np.around(np.arange(offset, n - 1, adjusted)).astype(np.int64)
        lines[idx[idx < n]] = True
    else:
        if acc != int(acc):
            raise ValueError(f"acceleration must be an integer when count_center=False, got {acceleration}")
        offset = int(rng.integers(0, int(acc)))
        lines[offset :: int(acc)] = True
    return _lines_to_mask(lines, shape)


def _normalised_radius(shape: tuple[int, ...]) -> np.ndarray:
    """Distance from the k-space centre (index n // 2), each axis scaled to [-1, 1)."""
    axes = [(np.arange(n) - n // 2) / (n / 2) for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    return np.sqrt(sum(g**2 for g in grids))


def _center_box(shape: tuple[int, ...], center: float | int | Sequence[int]) -> tuple[slice, ...]:
    """Centred box: ``center`` is a fraction of every axis (float), a size (int) or sizes per axis."""
    if isinstance(center, float):
        if not 0.0 <= center <= 1.0:
            raise ValueError(f"center must be a fraction in [0, 1], an int or a tuple of ints, got {center}")
        sizes = [round(n * center) for n in shape]
    elif isinstance(center, int) and not isinstance(center, bool):
        sizes = [center] * len(shape)
    else:
        sizes = [int(s) for s in center]  # type: ignore[union-attr]
        if len(sizes) != len(shape):
            raise ValueError(f"center must have one size per axis of {shape}, got {center}")
    for s, n in zip(sizes, shape, strict=True):
        if not 0 <= s <= n:
            raise ValueError(f"center sizes must be in [0, n] for shape {shape}, got {sizes}")
    return tuple(_center_slice(n, s) for n, s in zip(shape, sizes, strict=True))


def gaussian_mask(
    shape: Sequence[int],
    acceleration: float,
    *,
    sigma: float = 0.35,
    center: float | int | Sequence[int] = 0.08,
    seed: int | None = None,
) -> Tensor:
    r"""Variable-density random mask with a Gaussian density and a fully sampled centre.

    Points outside the centre box are drawn without replacement with probability proportional
    to :math:`\exp(-\rho^2 / (2\sigma^2))`, :math:`\rho` the distance from the k-space centre
    with every axis scaled to [-1, 1), until exactly ``round(N / R)`` points (centre
    included) are sampled. For 3-D Cartesian imaging pass the phase-encoding plane
    ``(nz, ny)`` and broadcast the mask along the readout.

    Parameters
    ----------
    shape : tuple of int
        Mask shape (1-D, 2-D or 3-D).
    acceleration : float
        Undersampling factor :math:`R \ge 1`.
    sigma : float
        Standard deviation of the density in normalised units (> 0).
    center : float, int or tuple of int
        Fully sampled centre box: a fraction of every axis, a size, or sizes per axis.
    seed : int, optional
        Seed of the NumPy generator.

    Returns
    -------
    Tensor
        Boolean mask of shape ``shape``.
    """
    shape = as_shape(shape)
    acc = _check_acceleration(acceleration)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be positive and finite, got {sigma}")
    mask = np.zeros(shape, dtype=bool)
    mask[_center_box(shape, center)] = True
    n_target = round(mask.size / acc)
    n_draw = n_target - int(mask.sum())
    if n_draw > 0:
        rho = _normalised_radius(shape)
        free = np.flatnonzero(~mask)
        p = np.exp(-(rho.ravel()[free] ** 2) / (2 * sigma**2))
        rng = np.random.default_rng(seed)
        pick = rng.choice(free, size=min(n_draw, free.size), replace=False, p=p / p.sum())
        mask.ravel()[pick] = True
    return torch.from_numpy(mask)


def poisson_disc_mask(
    shape: Sequence[int],
    acceleration: float,
    *,
    variable_density: float = 1.0,
    center: float | int | Sequence[int] = 0.08,
    seed: int | None = None,
    tol: float = 0.02,
    max_iter: int = 30,
) -> Tensor:
    r"""Variable-density Poisson-disc mask with a fully sampled centre (2-D or 3-D).

    Dart throwing on the grid: every grid point outside the centre box is tried once, in a
    random order, and accepted if no accepted point (the centre included) lies closer than
    its radius :math:`r(k) = s\,(1 + v \rho(k))\,j_k` (grid units), :math:`\rho` the normalised
    distance from the centre, :math:`v` = ``variable_density`` (0: uniform Poisson disc) and
    :math:`j_k` a random factor in [0.875, 1.125) (grid distances take discrete values; the
    jitter lets the number of points vary continuously with :math:`s`).
    The scale :math:`s` is searched (same random order each time; secant steps in the model
    density :math:`\propto 1/s^2`, safeguarded by bisection) until the acceleration is within
    ``tol`` (relative) of ``acceleration``; the closest mask is returned after ``max_iter``
    steps. Accepted points are never closer than the local radius,
    which spreads them more evenly than :func:`gaussian_mask` (better incoherence for
    compressed sensing). Cost: a Python loop over the grid points per search step (a
    distance-field look-up per point; about a second for 256 x 256).

    Parameters
    ----------
    shape : tuple of int
        Mask shape, 2-D ``(ny, nx)`` or 3-D (e.g. the phase-encoding plane of 3-D imaging).
    acceleration : float
        Target undersampling factor :math:`R \ge 1`.
    variable_density : float
        Growth of the radius with the distance from the centre (>= 0).
    center : float, int or tuple of int
        Fully sampled centre box: a fraction of every axis, a size, or sizes per axis.
    seed : int, optional
        Seed of the random order.
    tol : float
        Relative tolerance on the acceleration.
    max_iter : int
        Maximum number of search steps.

    Returns
    -------
    Tensor
        Boolean mask of shape ``shape``.
    """
    shape = as_shape(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be 2-D or 3-D, got {shape}")
    acc = _check_acceleration(acceleration)
    if not (variable_density >= 0 and math.isfinite(variable_density)):
        raise ValueError(f"variable_density must be finite and >= 0, got {variable_density}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    base = np.zeros(shape, dtype=bool)
    base[_center_box(shape, center)] = True
    n_total = base.size
    if n_total / max(int(base.sum()), 1) <= acc:
        return torch.from_numpy(base)  # the centre alone reaches the acceleration
    rho = _normalised_radius(shape)
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero(~base.ravel()))
    coords = np.stack(np.unravel_index(order, shape), axis=1)
    # Distances on the grid take discrete values (1, sqrt 2, 2, ...): with one radius for all
    # points the count would jump between a few values. A random factor per point makes the
    # count a continuous function of the scale, so every acceleration can be met.
    jitter = 1.0 + _RADIUS_JITTER * (rng.uniform(size=order.size) - 0.5)
    rel = (1.0 + variable_density * rho.ravel()[order]) * jitter

    n_target = n_total / acc
    lo, hi = 0.0, math.inf  # bracket of the radius scale: lo gives too many points, hi too few
    scale = math.sqrt(acc)
    best, best_err = base, math.inf
    for _ in range(max_iter):
        mask = _dart_throw(base, order, coords, scale * rel)
        count = max(int(mask.sum()), 1)
        err = abs(n_total / count - acc) / acc
        if err < best_err:
            best, best_err = mask, err
        if err <= tol:
            break
        if count > n_target:
            lo = scale
        else:
            hi = scale
        # the point density of a Poisson disc scales like 1 / r^2: secant step in that model,
        # kept inside the bracket (bisection when it would leave it)
        guess = scale * math.sqrt(count / n_target)
        scale = guess if lo < guess < hi else (0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * lo)
    return torch.from_numpy(best)


def _dart_throw(base: np.ndarray, order: np.ndarray, coords: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Accept each candidate (in order) if no accepted point lies within its radius.

    A field of the distance to the nearest accepted point (exact Euclidean, from the centre
    box, then updated within the largest radius around each accepted point) makes the test
    of a candidate a single look-up."""
    mask = base.copy()
    shape = mask.shape
    r_max = math.ceil(float(radii.max())) if radii.size else 0
    if base.any():
        # imported here: scipy.ndimage costs ~0.3 s, on every `import precisionrecon.mr` otherwise
        from scipy import ndimage

        dist = ndimage.distance_transform_edt(~base)
    else:
        dist = np.full(shape, np.inf)
    offsets = np.arange(-r_max, r_max + 1)
    stencil = np.sqrt(sum(g**2 for g in np.meshgrid(*([offsets] * len(shape)), indexing="ij")))
    flat_dist, flat_mask = dist.reshape(-1), mask.reshape(-1)
    for idx, c, r in zip(order.tolist(), coords.tolist(), radii.tolist(), strict=True):
        if flat_dist[idx] < r:
            continue
        flat_mask[idx] = True
        lo = [max(ci - r_max, 0) for ci in c]
        hi = [min(ci + r_max + 1, n) for ci, n in zip(c, shape, strict=True)]
        win = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        sten = tuple(slice(a - ci + r_max, b - ci + r_max) for a, b, ci in zip(lo, hi, c, strict=True))
        np.minimum(dist[win], stencil[sten], out=dist[win])
    return mask
