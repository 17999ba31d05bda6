"""What every projection geometry shares: per-view vectors, views, slicing, repr."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from .._validate import positive_int


def angles(n: int, arc: float = math.pi, start: float = 0.0) -> torch.Tensor:
    """``n`` equispaced angles (radians) ``start + arc * k / n`` for ``k = 0 .. n-1``.

    Shape: ``(n,)``, float64. The end point ``start + arc`` is excluded, so a full
    ``2 pi`` arc never repeats a view.
    """
    n = positive_int(n, "n")
    arc = float(arc)
    start = float(start)
    if not (math.isfinite(arc) and math.isfinite(start)):
        raise ValueError(f"arc and start must be finite, got arc={arc}, start={start}")
    return start + arc * torch.arange(n, dtype=torch.float64) / n


class Geometry:
    """Base of all projection geometries (immutable dataclasses).

    Every geometry reduces to per-view float64 vectors (ASTRA ``*_vec`` layout), which is
    all the kernels see: 2-D rows are ``[s, d, u]`` (6 numbers), 3-D rows are
    ``[s, d, u, v]`` (12 numbers), where ``s`` is the ray direction (parallel beam) or the
    source position (cone/fan beam), ``d`` the detector centre and ``u``, ``v`` the steps
    between neighbouring detector pixels (world axes x, y, z in mm). A cylindrical detector
    whose axis does not pass through the source (a flying focal spot) adds the point ``c``
    of its axis: ``[s, d, u, v, c]`` (15 numbers, :attr:`curved_kind` 2).
    """

    ndim: int  # 2 or 3
    beam: str  # "parallel" or "cone"
    det_shape: tuple[int, ...]  # (n_det,) in 2-D, (rows, cols) in 3-D

    @property
    def curved(self) -> bool:
        return getattr(self, "detector", "flat") != "flat"

    @property
    def vector_width(self) -> int:
        """Numbers per view in :meth:`to_vectors`: 6 (2-D), 12 (3-D) or 15 (3-D, cylinder about ``c``)."""
        return 6 if self.ndim == 2 else 12

    @property
    def curved_kind(self) -> int:
        """The kernels' detector kind: 0 flat, 1 arc / cylinder about the axis through the
        source, 2 cylinder about the axis through the per-view point ``c`` (15-wide vectors)."""
        if not self.curved:
            return 0
        return 2 if self.vector_width == 15 else 1

    @property
    def n_views(self) -> int:
        raise NotImplementedError

    @property
    def proj_shape(self) -> tuple[int, ...]:
        """Shape of one projection stack: ``(n_views, n_det)`` or ``(n_views, rows, cols)``."""
        return (self.n_views, *self.det_shape)

    def __len__(self) -> int:
        return self.n_views

    def to_vectors(self) -> torch.Tensor:
        """Per-view vectors, shape ``(n_views, vector_width)``: 6 (2-D), 12 (3-D) or 15 (3-D
        cylinder about ``c``), float64."""
        return torch.from_numpy(self._vectors())

    def _vectors(self) -> np.ndarray:
        raise NotImplementedError

    def to_vector_geometry(self) -> Geometry:
        """The same geometry as a :class:`VectorGeometry`."""
        from .vectors import VectorGeometry

        return VectorGeometry(
            vectors=self.to_vectors(),
            det_shape=self.det_shape,
            beam=self.beam,
            detector="flat" if not self.curved else "curved",
        )

    def _view_field(self) -> str:
        return "angles"

    def __getitem__(self, key: Any) -> Geometry:
        """Select views: ``geom[::2]``, ``geom[3]``, ``geom[[0, 5, 7]]``."""
        index = np.arange(self.n_views)[_normalise_key(key)]
        index = np.atleast_1d(index)
        if index.size == 0:
            raise ValueError(f"view selection {key!r} selects no view")
        name = self._view_field()
        values = getattr(self, name)
        return dataclasses.replace(self, **{name: [values[i] for i in index]})

    def replace(self, **changes: Any) -> Geometry:
        """A copy with some constructor arguments changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _normalise_key(key: Any) -> Any:
    if isinstance(key, torch.Tensor):
        return key.cpu().numpy()
    if isinstance(key, (list, tuple)):
        return np.asarray(key)
    return key


def repr_fields(obj: Any) -> str:
    """``Name(field=value, ...)`` with full float precision so ``eval(repr(g)) == g``."""
    parts = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, tuple) and value and isinstance(value[0], tuple):
            value = [list(v) for v in value]
        elif isinstance(value, tuple) and f.name in ("angles",):
            value = list(value)
        parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"
