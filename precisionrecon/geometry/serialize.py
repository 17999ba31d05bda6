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
import inspect
import math
from typing import Any

from .._validate import check_int, finite_float
from .base import Geometry, angles
from .cone import ConeBeam3D
from .fan import FanBeam2D
from .helical import HelicalConeBeam
from .parallel import ParallelBeam2D, ParallelBeam3D
from .vectors import VectorGeometry
from .volume import Volume

# class name -> class; the only types from_dict builds (no imports driven by the data)
TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Volume, ParallelBeam2D, ParallelBeam3D, FanBeam2D, ConeBeam3D, HelicalConeBeam, VectorGeometry)
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


def _short_angles(value: Any) -> Any:
    """``{"n": 180, "arc": 3.14159, "start": 0.0}`` (arc default pi, start 0) as the list of
    :func:`precisionrecon.angles`; anything else as it is (the constructor checks it)."""
    if not isinstance(value, dict):
        return value
    extra = sorted(set(value) - {"n", "arc", "start"})
    if "n" not in value or extra:
        raise ValueError(f"angles as a dict must be {{'n': int, 'arc': float, 'start': float}} (arc and start "
                         f"optional), got keys {sorted(value)}")
    n = check_int(value["n"], "angles['n']", minimum=1)
    arc = finite_float(value.get("arc", math.pi), "angles['arc']")
    start = finite_float(value.get("start", 0.0), "angles['start']")
    return angles(n, arc=arc, start=start).tolist()


def from_file_dict(d: Any, kind: str = "geometry") -> Volume | Geometry:
    """A volume or geometry written by hand (the geometry file of ``precisionrecon reconstruct``).

    Like :func:`from_dict`, with short forms: a volume needs no ``"type"``; fields the
    constructor has defaults for may be left out (``spacing``, ``center``, ``det_spacing``,
    ``det_offset``, ``detector``); ``angles`` may be ``{"n": 180, "arc": 3.14159,
    "start": 0.0}`` (arc default pi, start default 0).

    Parameters
    ----------
    d : dict
    kind : {"volume", "geometry"}
        What ``d`` must describe (and the name in the error messages).

    Raises
    ------
    ValueError
        A wrong type, a missing required or an unknown field, or a value the constructor rejects.
    """
    if not isinstance(d, dict):
        raise ValueError(f"{kind} must be a mapping of fields, got {type(d).__name__}")
    name = d.get("type", "Volume" if kind == "volume" else None)
    allowed = ["Volume"] if kind == "volume" else sorted(n for n in TYPES if n != "Volume")
    if name not in allowed:
        raise ValueError(f"{kind} 'type' must be one of {allowed}, got {name!r}")
    cls = TYPES[name]
    params = inspect.signature(cls.__init__).parameters
    fields = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in d.items() if k != "type"}
    unknown = sorted(set(given) - fields)
    required = sorted(k for k in fields if params[k].default is inspect.Parameter.empty)
    missing = sorted(set(required) - set(given))
    if unknown or missing:
        raise ValueError(f"{kind} ({name}) has unknown fields {unknown} and lacks required fields {missing}; "
                         f"fields: required {required}, optional {sorted(fields - set(required))}")
    if "angles" in given:
        given["angles"] = _short_angles(given["angles"])
    return cls(**given)
