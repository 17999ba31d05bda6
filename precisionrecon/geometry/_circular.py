"""Per-view vectors of circular source trajectories (fan beam and cone beam)."""

from __future__ import annotations

import numpy as np


def circular_vectors(
    angles: tuple[float, ...],
    src_iso: float,
    src_det: float,
    du: float,
    offset_u: float,
    curved: bool,
    dv: float | None = None,
    offset_v: float = 0.0,
) -> np.ndarray:
    """Vectors ``[src, det, u(, v)]`` of a source circling the z axis.

    The source sits at ``src_iso * (sin t, cos t)``, the detector centre at distance
    ``src_det`` from the source on the far side, the detector u axis along
    ``(cos t, -sin t)`` (ASTRA's fan/cone convention in row-major image coordinates).
    ``offset_u`` moves the detector along u: along the line (flat) or along the arc of
    radius ``src_det`` about the source (curved). 3-D when ``dv`` is given: v along +z.

    Shape: ``(n_views, 6)`` (2-D) or ``(n_views, 12)`` (3-D).
    """
    th = np.asarray(angles, dtype=np.float64)
    s, c = np.sin(th), np.cos(th)
    src = src_iso * np.stack([s, c], axis=1)
    axis = -np.stack([s, c], axis=1)  # unit vector from the source towards the isocentre
    uhat = np.stack([c, -s], axis=1)
    if curved:
        beta = offset_u / src_det  # arc angle of the offset
        det = src + src_det * (np.cos(beta) * axis + np.sin(beta) * uhat)
        uhat = np.cos(beta) * uhat - np.sin(beta) * axis
    else:
        det = src + src_det * axis + offset_u * uhat
    if dv is None:
        return np.concatenate([src, det, du * uhat], axis=1)
    z = np.zeros((len(th), 1))
    vhat = np.concatenate([z, z, z + 1.0], axis=1)
    return np.concatenate(
        [
            np.concatenate([src, z], 1),
            np.concatenate([det, z + offset_v], 1),
            np.concatenate([du * uhat, z], 1),
            dv * vhat,
        ],
        axis=1,
    )
