"""The X-ray transform as a function of the image *and* the geometry."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _validate
from .._kernels.geometry import parametric_projection
from .._validate import choice
from ..geometry import VectorGeometry, Volume
from .xray import XRayTransform, check_tensor


class ParametricXRayTransform:
    r"""Joseph projection ``y = A(g) x``, differentiable in ``x`` and in the geometry ``g``.

    ``g`` is the tensor of per-view vectors (ASTRA ``*_vec`` layout, see
    :class:`~precisionrecon.VectorGeometry`), which may require grad; build it from
    physical parameters with :func:`precisionrecon.geometry.circular_vectors` /
    :func:`~precisionrecon.geometry.parallel_vectors` (angles, distances, detector offsets,
    tilt as tensors) or any differentiable function (per-view motion). The gradient with
    respect to ``x`` is the exact adjoint; the gradient with respect to the vectors is
    analytic: the kernels differentiate the interpolation weights along every ray and
    autograd applies the chain rule through the ray set-up
    (:mod:`precisionrecon._kernels.geometry`).

    The projection is smooth in the geometry except where a sample crosses a voxel
    boundary (linear interpolation has a kink there) or a ray crosses a diagonal (Joseph's
    main axis switches); the gradient there is one of the one-sided derivatives.

    Parameters
    ----------
    volume : Volume
    det_shape : int or (rows, cols)
    beam : {"parallel", "cone"}
    detector : {"flat", "curved"}
    device : str or torch.device

    Notes
    -----
    Shape: ``x (*batch, *volume.shape)``, ``vectors (n_views, 6 | 12)`` ->
    ``(*batch, n_views, *det_shape)``; a 3-D ``detector="curved"`` also takes ``(n_views, 15)``
    vectors (a cylinder about the axis through ``c``, see :class:`~precisionrecon.VectorGeometry`),
    differentiable in ``c`` as well.
    """

    def __init__(self, volume: Volume, *, det_shape: Any, beam: str, detector: str = "flat", device: Any = "cpu"):
        if not isinstance(volume, Volume):
            raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
        self.volume = volume
        shape = (int(det_shape),) if isinstance(det_shape, int) else tuple(int(s) for s in det_shape)
        if len(shape) != volume.ndim - 1 or any(s < 1 for s in shape):
            raise ValueError(f"det_shape must have {volume.ndim - 1} positive entries for a {volume.ndim}-D volume, "
                             f"got {det_shape!r}")
        self.det_shape = shape
        self.beam = choice(beam, "beam", ("parallel", "cone"))
        self.detector = choice(detector, "detector", ("flat", "curved"))
        if self.detector == "curved" and self.beam != "cone":
            raise ValueError("detector='curved' needs beam='cone'")
        self.device = torch.device(device)
        n, sp, off = volume.kernel_params()
        self._geometry = (n, sp, off, list(shape), 0 if self.beam == "parallel" else 1, int(self.detector == "curved"))

    def _check_vectors(self, vectors: Any) -> Tensor:
        _validate.check_tensor(vectors, "vectors", dtype=_validate.REAL)
        widths = (6,) if self.volume.ndim == 2 else (12, 15) if self.detector == "curved" else (12,)
        if vectors.dim() != 2 or vectors.shape[1] not in widths or vectors.shape[0] < 1:
            expected = " or ".join(f"(n_views, {w})" for w in widths)
            raise ValueError(f"vectors must have shape {expected}, got {tuple(vectors.shape)}")
        _validate.check_tensor(vectors, "vectors", finite=True)
        if self.beam != "parallel":  # rays would be integrated behind a source inside the volume
            _validate.check_source_vectors_outside(self.volume, vectors.detach().cpu().double().numpy())
        return vectors.to(device=self.device, dtype=torch.float64)

    def __call__(self, x: Tensor, vectors: Tensor) -> Tensor:
        """Projection. Shape: ``(*batch, *volume.shape) -> (*batch, n_views, *det_shape)``."""
        vec = self._check_vectors(vectors)
        check_tensor(x, "x", tuple(self.volume.shape), self.device)
        geometry = (*self._geometry[:-1], 2 if vec.shape[1] == 15 else self._geometry[-1])
        return parametric_projection(x, vec, geometry)

    def operator(self, vectors: Tensor) -> XRayTransform:
        """The (linear) X-ray transform at fixed ``vectors`` (for adjoints, FBP, solvers)."""
        vec = self._check_vectors(vectors).detach().cpu()
        geom = VectorGeometry(vectors=vec, det_shape=self.det_shape, beam=self.beam, detector=self.detector)
        return XRayTransform(self.volume, geom, device=self.device)

    def __repr__(self) -> str:
        return (f"ParametricXRayTransform(volume={self.volume!r}, det_shape={self.det_shape}, beam={self.beam!r}, "
                f"detector={self.detector!r})")
