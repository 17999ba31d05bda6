"""Standard phantoms: modified Shepp-Logan (2-D, 3-D) and random ellipses.

Every phantom is a list of :class:`~precisionrecon.data.Ellipsoid` in world mm, so the
same object gives an image (:func:`~precisionrecon.data.rasterize`) and its exact
projections (:func:`~precisionrecon.data.analytic_projection`). Tables are given in
normalised coordinates ``[-1, 1]^D`` and mapped to a box: by default the box of the
``volume`` (half-extent ``extent / 2`` per axis about the volume centre), else the
``half_extent`` and ``center`` given (world order x, y(, z)), else ``[-1, 1]^D`` itself.
The map is affine per axis; for a non-cubic box it is applied exactly (a rotated ellipse
stretched along x is a new ellipse with other axes and angle), as ODL and MATLAB do by
evaluating the table in normalised coordinates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import per_axis, positive_int
from ..geometry import Volume
from ._random import make_generator
from .analytic import Ellipsoid, rasterize

# Modified Shepp-Logan (Toft 1996; MATLAB phantom('Modified Shepp-Logan'), ODL
# shepp_logan(modified=True)). Normalised coordinates with y pointing *up*:
#   value, semi-axis x, semi-axis y, centre x, centre y, angle (degrees, counter-clockwise)
SHEPP_LOGAN_2D = (
    (1.0, 0.6900, 0.9200, 0.0000, 0.0000, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0000, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.2200, 0.0000, -18.0),
    (-0.2, 0.1600, 0.4100, -0.2200, 0.0000, 18.0),
    (0.1, 0.2100, 0.2500, 0.0000, 0.3500, 0.0),
    (0.1, 0.0460, 0.0460, 0.0000, 0.1000, 0.0),
    (0.1, 0.0460, 0.0460, 0.0000, -0.1000, 0.0),
    (0.1, 0.0460, 0.0230, -0.0800, -0.6050, 0.0),
    (0.1, 0.0230, 0.0230, 0.0000, -0.6060, 0.0),
    (0.1, 0.0230, 0.0460, 0.0600, -0.6050, 0.0),
)
# 3-D extension as in ODL (shepp_logan_ellipsoids(3, modified=True)): the 2-D table with
# z semi-axes (all centred at z = 0, rotations about z only). Both tables are also the source
# of the complex MR phantom (precisionrecon.mr.phantoms).
SHEPP_LOGAN_SEMI_AXES_Z = (0.810, 0.780, 0.220, 0.280, 0.410, 0.050, 0.050, 0.050, 0.020, 0.020)


def _box(
    volume: Volume | None, half_extent: Any, center: Any, ndim: int | None, what: str
) -> tuple[int, np.ndarray, np.ndarray]:
    """``(ndim, half, centre)`` of the box that ``[-1, 1]^D`` maps to, world order."""
    if volume is not None and not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    if ndim is None:
        ndim = volume.ndim if volume is not None else 2
    if volume is not None and volume.ndim != ndim:
        raise ValueError(f"{what} is {ndim}-D but volume is {volume.ndim}-D")
    if half_extent is None:
        half = [e / 2 for e in reversed(volume.extent)] if volume is not None else [1.0] * ndim
    else:
        half = list(per_axis(half_extent, ndim, "half_extent", positive=True))
    if center is None:
        centre = list(reversed(volume.center)) if volume is not None else [0.0] * ndim
    else:
        centre = list(per_axis(center, ndim, "center", positive=False))
    return ndim, np.asarray(half, dtype=np.float64), np.asarray(centre, dtype=np.float64)


def _map(e: Ellipsoid, scale: np.ndarray, shift: np.ndarray) -> Ellipsoid:
    """The image of ``e`` under ``p -> diag(scale) p + shift`` (an exact ellipsoid again)."""
    rot = np.asarray(e.rotation)
    axes = np.asarray(e.semi_axes)
    if np.all(np.abs(scale) == abs(scale[0])):
        # uniform magnitude (possibly mirrored axes): the semi-axes keep their directions
        new_rot, new_axes = np.sign(scale)[:, None] * rot, abs(scale[0]) * axes
    else:
        # {diag(scale) R diag(a) q : |q| <= 1} = {U S q} for the SVD U S V^T of that matrix
        new_rot, new_axes, _ = np.linalg.svd(scale[:, None] * rot * axes[None, :])
    if np.linalg.det(new_rot) < 0:
        new_rot = new_rot.copy()
        new_rot[:, -1] *= -1  # an ellipsoid is symmetric: keep a proper rotation
    centre = scale * np.asarray(e.center) + shift
    return Ellipsoid(tuple(centre), tuple(new_axes), new_rot, e.density, e.power)


def _shepp_logan(ndim: int, half: np.ndarray, centre: np.ndarray, scale: float) -> list[Ellipsoid]:
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    values = [v * scale for v, *_ in SHEPP_LOGAN_2D]
    # The dark ellipses take exactly the level the first two leave, so the sum there is
    # exactly 0 (not -6e-17 as 1.0 - 0.8 - 0.2 in floating point).
    values[2] = values[3] = -(values[0] + values[1])
    flip = np.ones(ndim)
    flip[1] = -1.0  # the table's y points up in the displayed image; our y grows with the row
    out = []
    for i, (_, ax, ay, x, y, deg) in enumerate(SHEPP_LOGAN_2D):
        th = math.radians(deg)
        c, s = math.cos(th), math.sin(th)
        if ndim == 2:
            rot = np.array([[c, -s], [s, c]])
            e = Ellipsoid((x, y), (ax, ay), rot, values[i])
        else:
            rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            e = Ellipsoid((x, y, 0.0), (ax, ay, SHEPP_LOGAN_SEMI_AXES_Z[i]), rot, values[i])
        out.append(_map(e, flip * half, centre))
    return out


def shepp_logan_2d(
    volume: Volume | None = None, *, half_extent: Any = None, center: Any = None, scale: float = 1.0
) -> list[Ellipsoid]:
    """The modified Shepp-Logan phantom (Toft's higher-contrast values), 10 ellipses.

    The table of MATLAB's ``phantom('Modified Shepp-Logan')`` and ODL's
    ``shepp_logan(space, modified=True)``: values 1 (skull), 0.2 (brain), 0 (the two dark
    ellipses), 0.3 (the small features) in units of ``scale``. The table's unit square
    ``[-1, 1]^2`` maps to the box of ``volume`` (or ``half_extent``/``center``, world
    order x, y; default ``[-1, 1]^2``). Its y axis points up in the usual picture, and our
    world y grows with the image row, so the table's y is negated: ``imshow`` of the
    image shows the familiar orientation, as MATLAB and scikit-image do.

    Note that MATLAB, ODL and scikit-image put the *centres* of the outermost pixels at
    +-1; ``half_extent = (n - 1) / 2 * spacing`` reproduces their images exactly.

    Parameters
    ----------
    volume : Volume, optional
        2-D volume whose box the phantom fills.
    half_extent : float or (float, float), optional
        Half-size of the box in mm (world order x, y); overrides the volume's.
    center : float or (float, float), optional
        Centre of the box in mm (world order x, y); overrides the volume's.
    scale : float
        Multiplies every value, e.g. ``0.02`` (1/mm) for water-like attenuation.

    Returns
    -------
    list of Ellipsoid
        Shape: 10 ellipses in world mm.
    """
    ndim, half, centre = _box(volume, half_extent, center, 2, "shepp_logan_2d")
    return _shepp_logan(ndim, half, centre, scale)


def shepp_logan_3d(
    volume: Volume | None = None, *, half_extent: Any = None, center: Any = None, scale: float = 1.0
) -> list[Ellipsoid]:
    """The 3-D modified Shepp-Logan phantom, 10 ellipsoids.

    ODL's ``shepp_logan_ellipsoids(3, modified=True)`` (the 3-D extension of Kak & Slaney
    with Toft's modified values): the 2-D table with z semi-axes, all ellipsoids centred
    at z = 0 and rotated about z only, so the slice z = 0 is :func:`shepp_logan_2d`.
    Mapping to the box and the y flip as in :func:`shepp_logan_2d`; ``half_extent`` and
    ``center`` are in world order x, y, z.

    Returns
    -------
    list of Ellipsoid
        Shape: 10 ellipsoids in world mm.
    """
    ndim, half, centre = _box(volume, half_extent, center, 3, "shepp_logan_3d")
    return _shepp_logan(ndim, half, centre, scale)


def shepp_logan_image(
    volume: Volume, *, scale: float = 1.0, oversample: int = 1, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The modified Shepp-Logan phantom filling ``volume``, rasterised.

    2-D or 3-D after ``volume``; ``oversample`` sub-samples per voxel and axis are
    averaged (1: the value at the voxel centre, as MATLAB and ODL).

    Returns
    -------
    Tensor
        Shape: ``volume.shape``.
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    phantom = shepp_logan_2d(volume, scale=scale) if volume.ndim == 2 else shepp_logan_3d(volume, scale=scale)
    return rasterize(phantom, volume, oversample=oversample, dtype=dtype)


def _random_rotations_3d(q: Tensor) -> np.ndarray:
    """Rotation matrices from normally distributed quaternions ``q`` (n, 4): uniform on SO(3)."""
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    rot = torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], 1),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], 1),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1),
        ],
        1,
    )
    return rot.numpy()


def random_ellipses(
    n_ellipses: float = 50,
    *,
    volume: Volume | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    ndim: int | None = None,
    interior: bool = False,
    contained: bool = False,
) -> list[Ellipsoid]:
    """Random ellipses of Adler & Öktem (2018), their ``random_phantom``.

    The number of ellipses is ``Poisson(n_ellipses)``; each has value
    ``(U - 0.5) * Exp(0.4)`` (``U`` uniform on [0, 1), ``Exp(b)`` exponential with mean
    ``b``), semi-axes ``0.2 * Exp(1)`` each, centre uniform in ``[-1, 1]^D`` (``[-0.5,
    0.5]^D`` when ``interior``) and angle ``2 pi U``, in normalised coordinates mapped to
    the box of ``volume`` as :func:`shepp_logan_2d` does. In 3-D (an extension) the
    ellipsoids get a third semi-axis and a uniformly random rotation (from a normalised
    Gaussian quaternion) instead of the angle.

    Parameters
    ----------
    n_ellipses : float
        Mean number of ellipses (>= 0).
    volume : Volume, optional
        The box to fill; default ``[-1, 1]^D``.
    seed, generator : optional
        An int seed or a CPU ``torch.Generator`` (not both); neither draws from torch's
        global generator. The same seed gives the same phantom.
    ndim : {2, 3}, optional
        Dimension; default ``volume.ndim`` or 2.
    interior : bool
        Centres in the inner half of the box (so ellipses rarely leave it).
    contained : bool
        Keep only the ellipses that lie entirely inside the box (their bounding boxes do),
        so that exact projections of the phantom hold nothing outside the reconstructed
        volume. The draws are those of ``contained=False`` (the same seed gives the same
        ellipses, minus the dropped ones).

    Returns
    -------
    list of Ellipsoid
        Shape: ``Poisson(n_ellipses)`` ellipses/ellipsoids in world mm.
    """
    if isinstance(n_ellipses, bool) or not isinstance(n_ellipses, (int, float, np.integer, np.floating)):
        raise TypeError(f"n_ellipses must be a number, got {type(n_ellipses).__name__}")
    if not (math.isfinite(n_ellipses) and n_ellipses >= 0):
        raise ValueError(f"n_ellipses must be finite and >= 0, got {n_ellipses}")
    if ndim is not None and ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    ndim, half, centre = _box(volume, None, None, ndim, "random_ellipses")
    g = make_generator(seed, generator, "cpu")
    f64 = torch.float64
    n = int(torch.poisson(torch.tensor([float(n_ellipses)], dtype=f64), generator=g).item())
    if n == 0:
        return []
    uniform = torch.rand(n, generator=g, dtype=f64)
    expo = torch.empty(n, dtype=f64).exponential_(generator=g)
    values = ((uniform - 0.5) * 0.4 * expo).tolist()
    # Exp(1) is 0 with probability ~1e-16: keep the semi-axes valid (positive)
    axes = (0.2 * torch.empty(n, ndim, dtype=f64).exponential_(generator=g)).clamp_min(1e-12).numpy()
    centres = (2.0 * torch.rand(n, ndim, generator=g, dtype=f64) - 1.0) * (0.5 if interior else 1.0)
    centres = centres.numpy()
    if ndim == 2:
        th = 2 * math.pi * torch.rand(n, generator=g, dtype=f64).numpy()
        rots = np.stack([np.stack([np.cos(th), -np.sin(th)], 1), np.stack([np.sin(th), np.cos(th)], 1)], 1)
    else:
        rots = _random_rotations_3d(torch.randn(n, 4, generator=g, dtype=f64))
    keep = range(n)
    if contained:
        # half-extent of an ellipsoid R diag(a) along axis i: sqrt(sum_j (R_ij a_j)^2)
        extent = np.sqrt(np.einsum("nij,nj->ni", np.asarray(rots) ** 2, axes**2))
        keep = [i for i in range(n) if bool(np.all(np.abs(centres[i]) + extent[i] <= 1.0))]
    return [_map(Ellipsoid(tuple(centres[i]), tuple(axes[i]), rots[i], values[i]), half, centre) for i in keep]


def random_ellipse_images(
    volume: Volume,
    batch: int,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
    n_ellipses: float = 50,
    interior: bool = False,
    oversample: int = 1,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A batch of rasterised :func:`random_ellipses` phantoms filling ``volume``.

    The phantoms are drawn one after another from one generator, so item ``i`` does not
    depend on ``batch``: the first two images of a batch of 8 equal a batch of 2 with the
    same seed.

    Returns
    -------
    Tensor
        Shape: ``(batch, *volume.shape)``.
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    batch = positive_int(batch, "batch")
    g = make_generator(seed, generator, "cpu")
    images = [
        rasterize(
            random_ellipses(n_ellipses, volume=volume, generator=g, interior=interior),
            volume,
            oversample=oversample,
            dtype=dtype,
        )
        for _ in range(batch)
    ]
    return torch.stack(images)


__all__ = [
    "random_ellipse_images",
    "random_ellipses",
    "shepp_logan_2d",
    "shepp_logan_3d",
    "shepp_logan_image",
]
