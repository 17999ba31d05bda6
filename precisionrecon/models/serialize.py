"""Known operators as JSON-serialisable descriptions, and back.

``operator_to_dict(A)`` describes an operator by its class name and constructor fields,
e.g. ``{"type": "XRayTransform", "volume": {...}, "geometry": {...}}``: volumes and
geometries through :mod:`precisionrecon.geometry.serialize`, nested operators (compositions,
sums, adjoints) recursively, and tensor fields (MR masks, coil maps, trajectories) inline as
``{"__tensor__": {"dtype", "shape", "data"}}`` with the raw little-endian bytes in base64,
so the description alone rebuilds the operator exactly. Devices are not recorded: an
operator is rebuilt on the CPU (move it, or the model holding it, with ``.to(device)``).

Only the operator classes of :func:`operator_classes` are built: an explicit table of
classes, so a description names a class by its key and no module is imported by a name
that comes from the data.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import math
import sys
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import operators as ops
from .._validate import dtype_name, parse_dtype
from ..geometry import Geometry, Volume
from ..geometry import serialize as geometry_serialize
from ..operators.base import AdjointOperator, LinearOperator

_ADJOINT = "AdjointOperator"
_TENSOR = "__tensor__"
_COMPLEX = "__complex__"
_SKIPPED_FIELDS = ("device",)  # rebuilt on the CPU


def tensor_to_dict(t: Tensor) -> dict[str, Any]:
    """A tensor as ``{"__tensor__": {"dtype", "shape", "data"}}`` (little-endian bytes, base64)."""
    arr = t.detach().cpu().contiguous().numpy()
    if sys.byteorder != "little":  # pragma: no cover  (no big-endian machine here)
        arr = arr.byteswap()
    data = base64.b64encode(arr.tobytes()).decode("ascii")
    return {_TENSOR: {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "data": data}}


def tensor_from_dict(d: dict[str, Any]) -> Tensor:
    """Inverse of :func:`tensor_to_dict`."""
    spec = d.get(_TENSOR) if isinstance(d, dict) else None
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
        raise ValueError("a tensor description must be {'__tensor__': {'dtype': ..., 'shape': ..., 'data': ...}}")
    dtype = parse_dtype(spec["dtype"])
    shape = spec["shape"]
    if not isinstance(shape, list) or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"tensor shape must be a list of non-negative ints, got {shape!r}")
    raw = base64.b64decode(spec["data"], validate=True)
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype.newbyteorder("<")
    if len(raw) != math.prod(shape) * np_dtype.itemsize:
        raise ValueError(f"tensor data hold {len(raw)} bytes, but shape {shape} of {spec['dtype']} needs "
                         f"{math.prod(shape) * np_dtype.itemsize}")
    arr = np.frombuffer(raw, dtype=np_dtype).astype(np_dtype.newbyteorder("="), copy=True)
    return torch.from_numpy(arr.reshape(shape))


@functools.cache
def _operator_classes() -> dict[str, type[LinearOperator]]:
    # MR operators imported at the first (de)serialisation, not when models or training are imported
    from ..mr.coils import SENSE, Coils
    from ..mr.fft import FFT
    from ..mr.nufft import NUFFT
    from ..mr.sampling import Sampling

    classes: tuple[type[LinearOperator], ...] = (
        ops.XRayTransform, ops.VoxelBackprojection, ops.RampFilter, ops.ProjectionWeighting, ops.FBP,
        ops.FiniteDifferences, ops.IdentityOperator, ops.ComposedOperator, ops.SumOperator, ops.ScaledOperator,
        ops.ChunkedOperator, FFT, Sampling, Coils, SENSE, NUFFT,
    )  # fmt: skip
    return {cls.__name__: cls for cls in classes}


def operator_classes() -> dict[str, type[LinearOperator]]:
    """Class name -> class of every operator that a description may name (besides
    ``"AdjointOperator"``, the adjoint of one of them); no other class is ever built."""
    return dict(_operator_classes())


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, complex):
        return {_COMPLEX: [_encode(value.real, where), _encode(value.imag, where)]}
    if isinstance(value, (tuple, list)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Tensor):
        return tensor_to_dict(value)
    if isinstance(value, (Volume, Geometry)):
        return geometry_serialize.to_dict(value)
    if isinstance(value, LinearOperator):
        return operator_to_dict(value)
    raise TypeError(f"{where} of type {type(value).__name__} cannot be described as JSON")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        items = [_decode(v) for v in value]
        return tuple(items)
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        return tensor_from_dict(value)
    if _COMPLEX in value:
        re, im = value[_COMPLEX]
        return complex(re, im)
    kind = value.get("type")
    if kind in geometry_serialize.TYPES:
        return geometry_serialize.from_dict(value)
    return operator_from_dict(value)


def operator_to_dict(op: LinearOperator) -> dict[str, Any]:
    """A known operator as a JSON-serialisable dict ``{"type": class name, <field>: ...}``.

    Raises
    ------
    TypeError
        ``op`` is not one of the operator classes of :func:`operator_classes` (or an
        adjoint of one), or holds a value that cannot be described.
    """
    if isinstance(op, AdjointOperator):
        return {"type": _ADJOINT, "op": operator_to_dict(op.op)}
    name = type(op).__name__
    classes = _operator_classes()
    if classes.get(name) is not type(op):
        raise TypeError(f"op must be one of the operators {sorted(classes)} (or an adjoint), got {name}")
    out: dict[str, Any] = {"type": name}
    for f in dataclasses.fields(op):  # type: ignore[arg-type]
        if f.name in _SKIPPED_FIELDS:
            continue
        out[f.name] = _encode(getattr(op, f.name), f"{name}.{f.name}")
    return out


def operator_from_dict(d: dict[str, Any]) -> LinearOperator:
    """Rebuild the operator described by ``d`` (see :func:`operator_to_dict`), on the CPU.

    Raises
    ------
    TypeError
        ``d`` is not a dict.
    ValueError
        ``d["type"]`` is not a key of :func:`operator_classes` (nor ``"AdjointOperator"``),
        or the description has unexpected fields.
    """
    if not isinstance(d, dict):
        raise TypeError(f"an operator description must be a dict, got {type(d).__name__}")
    name = d.get("type")
    if name == _ADJOINT:
        if set(d) != {"type", "op"}:
            raise ValueError(f"an AdjointOperator description has the keys 'type' and 'op', got {sorted(d)}")
        return operator_from_dict(d["op"]).T
    classes = _operator_classes()
    if not isinstance(name, str) or name not in classes:
        raise ValueError(f"operator type must be one of {sorted(classes)} or {_ADJOINT!r}, got {name!r}")
    cls = classes[name]
    fields = {f.name for f in dataclasses.fields(cls) if f.name not in _SKIPPED_FIELDS}
    given = set(d) - {"type"}
    if not given <= fields:
        raise ValueError(f"the {name} description has unexpected fields {sorted(given - fields)}")
    return cls(**{k: _decode(d[k]) for k in given})
