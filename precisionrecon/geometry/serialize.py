"""Volumes and geometries as plain JSON-serialisable dicts, and back.

``to_dict(obj)`` gives ``{"type": <class name>, <field>: <value>, ...}`` with every
constructor argument of the frozen dataclass as ints, floats, strings and (nested) lists;
``from_dict(d)`` calls the constructor again, so the value is validated once more and
``from_dict(to_dict(g)) == g``. Floats survive ``json.dumps``/``json.loads`` exactly
(Python writes the shortest repr that reads back to the same double).

Example::

    d = to_dict(pr.FanBeam2D(angles=pr.angles(90), det_count=128, det_spacing=1.0,
                             src_iso=500.0, src_det=1000.0))
    # {"type": "FanBeam2D", "angles": [...], "det_count": 128, "det_spacing": 1.0, ...}
    geom = from_dict(json.loads(json.dumps(d)))
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .base import Geometry
from .cone import ConeBeam3D
from .fan import FanBeam2D
from .parallel import ParallelBeam2D, ParallelBeam3D
from .vectors import VectorGeometry
from .volume import Volume

# class name -> class; the only types from_dict builds (no imports driven by the data)
TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (Volume, ParallelBeam2D, ParallelBeam3D, FanBeam2D, ConeBeam3D, VectorGeometry)
}


def _plain(value: Any) -> Any:
    """Tuples (also nested) as lists; numbers and strings as they are."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def to_dict(obj: Volume | Geometry) -> dict[str, Any]:
    """A :class:`Volume` or geometry as a JSON-serialisable dict.

    Returns
    -------
    dict
        ``{"type": class name, **constructor arguments}``, lists for tuples.
    """
    name = type(obj).__name__
    if TYPES.get(name) is not type(obj):
        raise TypeError(f"obj must be a Volume or one of the geometries {sorted(TYPES)[1:]}, got {name}")
    out: dict[str, Any] = {"type": name}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        out[f.name] = _plain(getattr(obj, f.name))
    return out


def from_dict(d: dict[str, Any]) -> Volume | Geometry:
    """Rebuild the :class:`Volume` or geometry described by ``d`` (see :func:`to_dict`).

    Raises
    ------
    TypeError
        ``d`` is not a dict.
    ValueError
        Unknown ``"type"``, a missing or unexpected field, or a value the constructor rejects.
    """
    if not isinstance(d, dict):
        raise TypeError(f"d must be a dict, got {type(d).__name__}")
    name = d.get("type")
    if name not in TYPES:
        raise ValueError(f"d['type'] must be one of {sorted(TYPES)}, got {name!r}")
    cls = TYPES[name]
    expected = {f.name for f in dataclasses.fields(cls)}
    given = set(d) - {"type"}
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise ValueError(f"d describes a {name} but has missing fields {missing} and unexpected fields {extra}")
    return cls(**{k: d[k] for k in expected})
