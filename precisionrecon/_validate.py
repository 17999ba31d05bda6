"""Argument checks shared across the packages: the one home of their error messages.

Every check names the argument it rejects and says what was expected, in one style:
``"<name> must be <expected>, got <what it got>"``; a wrong type or dtype raises
``TypeError``, a wrong value, shape or device ``ValueError``. The module sits below
:mod:`precisionrecon.geometry` (which uses it), so it imports nothing else of the package
at module level.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .operators.base import LinearOperator

# ----------------------------------------------------------------------------- scalars


def _real_number(value: Any, name: str) -> float:
    # bool is an int subclass, but True as a step size is a caller's mistake
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def finite_float(value: Any, name: str, *, minimum: float | None = None) -> float:
    """``value`` as a finite float, at least ``minimum`` when given.

    Raises
    ------
    TypeError
        ``value`` is not a real number (bools are rejected).
    ValueError
        ``value`` is not finite or below ``minimum``.
    """
    out = _real_number(value, name)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def positive_float(value: Any, name: str) -> float:
    """``value`` as a finite float > 0 (``TypeError``/``ValueError`` naming ``name``)."""
    out = finite_float(value, name)
    if out <= 0.0:
        raise ValueError(f"{name} must be positive, got {out}")
    return out


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (numpy integers accepted, bools rejected), in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def max_threads() -> int:
    """The most threads :func:`check_threads` accepts: 4 per core, at least 64 (libgomp
    segfaults when it cannot create the threads asked for, e.g. 100000)."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_threads(value: Any, name: str = "num_threads") -> int:
    """A thread count for ``torch.set_num_threads``: an int in ``[1, max_threads()]``."""
    return check_int(value, name, minimum=1, maximum=max_threads())


# the most unrolled iterations a model config may ask for: more only hangs in construction
MAX_UNROLLED = 1000


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int > 0 (``TypeError``/``ValueError`` naming ``name``)."""
    out = check_int(value, name)
    if out <= 0:
        raise ValueError(f"{name} must be positive, got {out}")
    return out


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return str(value)


# ----------------------------------------------------------------------- sequences


def as_float_array(value: Any, name: str, *, ndim: int = 1) -> np.ndarray:
    """A sequence, array or tensor of finite real numbers as a float64 array.

    Shape: ``value``'s shape, which must have ``ndim`` dimensions.
    """
    if isinstance(value, Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        value = value.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(arr.shape)}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return arr


def as_float_tuple(value: Any, name: str) -> tuple[float, ...]:
    """A 1-D sequence, array or tensor of finite real numbers as a tuple of floats."""
    return tuple(float(v) for v in as_float_array(value, name))


def per_axis(value: Any, n: int, name: str, *, positive: bool) -> tuple[float, ...]:
    """A scalar broadcast to ``n`` axes, or a sequence of exactly ``n`` numbers."""
    check = positive_float if positive else finite_float
    if isinstance(value, (Sequence, np.ndarray, Tensor)) and not isinstance(value, str):
        items = list(value.tolist() if isinstance(value, (np.ndarray, Tensor)) else value)
        if len(items) != n:
            raise ValueError(f"{name} must be a number or {n} numbers, got {len(items)}")
        return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(items))
    return (check(value, name),) * n


def as_shape(shape: Sequence[int] | int, name: str = "shape") -> tuple[int, ...]:
    """A non-empty tuple of positive ints (an int is a 1-tuple)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        out = tuple(int(n) for n in shape)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from exc
    if any(n != m for n, m in zip(out, shape, strict=True)) or not out or min(out) <= 0:
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {tuple(shape)!r}")
    return out


def geometry_angles(angles: Any) -> tuple[float, ...]:
    """The angles of a geometry (:func:`angles_tuple`), refusing a tensor that requires grad:
    a geometry holds plain floats, so the gradient would be dropped without a word."""
    if isinstance(angles, Tensor) and angles.requires_grad:
        raise ValueError(
            "angles requires grad, but a geometry holds plain floats and would drop the gradient; "
            "use precisionrecon.ParametricXRayTransform for gradients with respect to the geometry "
            "(or pass angles.detach())"
        )
    return angles_tuple(angles)


def angles_tuple(angles: Any) -> tuple[float, ...]:
    """Projection angles (radians) as a non-empty tuple of finite floats."""
    out = as_float_tuple(angles, "angles")
    if len(out) == 0:
        raise ValueError("angles must hold at least one view, got 0")
    return out


def fan_distances(src_iso: Any, src_det: Any) -> tuple[float, float]:
    """``(src_iso, src_det)`` of a fan or cone beam: positive, detector beyond the isocentre."""
    s = positive_float(src_iso, "src_iso")
    d = positive_float(src_det, "src_det")
    if d <= s:
        raise ValueError(f"src_det must exceed src_iso (detector beyond the isocentre), got src_det={d} <= src_iso={s}")
    return s, d


# ------------------------------------------------------------------------- dtypes

_DTYPES: dict[str, torch.dtype] = {
    "bool": torch.bool,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32 -> "float32"`` (the names of :func:`parse_dtype`)."""
    for name, dt in _DTYPES.items():
        if dt == dtype:
            return name
    raise TypeError(f"dtype {dtype} has no serialisable name; expected one of {sorted(_DTYPES)}")


def parse_dtype(name: Any) -> torch.dtype:
    """``"float32" -> torch.float32``; a ``torch.dtype`` is returned as it is."""
    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or a torch.dtype, got {name!r}")
    return _DTYPES[name]


# ------------------------------------------------------------------------- tensors

# the dtype kinds check_tensor accepts by name
REAL = "real"  # real floating point
REAL_OR_COMPLEX = "real_or_complex"  # real or complex floating point
_KIND_TEXT = {REAL: "a real floating-point tensor", REAL_OR_COMPLEX: "a real or complex floating-point tensor"}


def batch_shape(x: Tensor, shape_suffix: Sequence[int], name: str) -> tuple[int, ...]:
    """The leading (batch) shape of ``x``, checking that its shape ends with ``shape_suffix``.

    Shape: ``x`` is ``(*batch, *shape_suffix)``; returns ``batch``.
    """
    suffix = tuple(shape_suffix)
    k = len(suffix)
    if x.dim() < k or tuple(x.shape[x.dim() - k :]) != suffix:
        raise ValueError(f"{name} must have shape (*batch, {', '.join(map(str, suffix))}), got {tuple(x.shape)}")
    return tuple(x.shape[: x.dim() - k])


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same, where a CUDA device without an index (``"cuda"``)
    stands for the current one (tensors always carry the index: ``"cuda:0"``)."""
    if a.type != b.type:
        return False
    if a.index == b.index or a.type == "cpu":
        return True
    if a.type != "cuda" or (a.index is not None and b.index is not None):
        return False
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def check_tensor(
    x: Any,
    name: str,
    *,
    dtype: str | Sequence[torch.dtype] | None = REAL_OR_COMPLEX,
    shape_suffix: Sequence[int] | None = None,
    ndim_min: int = 0,
    device: torch.device | None = None,
    finite: bool = False,
) -> Tensor:
    """``x`` if it is a tensor of the expected dtype, shape, device and values.

    Parameters
    ----------
    x : Any
        The value to check.
    name : str
        The argument's name, used in the error messages.
    dtype : str, sequence of torch.dtype or None
        ``"real"`` (real floating point), ``"real_or_complex"`` (real or complex floating
        point), the allowed dtypes, e.g. ``(torch.float32, torch.float64)``, or None for
        any dtype.
    shape_suffix : sequence of int, optional
        The trailing shape: ``x`` must be ``(*batch, *shape_suffix)``.
    ndim_min : int
        Least number of dimensions.
    device : torch.device, optional
        The device an operator expects ``x`` on.
    finite : bool
        Reject NaN and infinite entries (a synchronising check on GPUs: use it on
        configuration tensors, not on every operator call).

    Returns
    -------
    Tensor
        ``x`` itself.

    Raises
    ------
    TypeError
        ``x`` is not a tensor or has another dtype.
    ValueError
        ``x`` has another shape, lies on another device, or holds non-finite values.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(dtype, str):
        if dtype not in _KIND_TEXT:
            raise ValueError(f"dtype must be one of {tuple(_KIND_TEXT)} or a sequence of torch dtypes, got {dtype!r}")
        ok = x.dtype.is_floating_point or (dtype == REAL_OR_COMPLEX and x.dtype.is_complex)
        if not ok:
            raise TypeError(f"{name} must be {_KIND_TEXT[dtype]}, got {x.dtype}")
    elif dtype is not None and x.dtype not in tuple(dtype):
        raise TypeError(f"{name} must be {' or '.join(dtype_name(d) for d in dtype)}, got {x.dtype}")
    if x.dim() < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimensions, got shape {tuple(x.shape)}")
    if shape_suffix is not None:
        batch_shape(x, shape_suffix, name)
    if device is not None and not same_device(x.device, device):
        raise ValueError(f"{name} is on {x.device}, but the operator expects tensors on {device}")
    if finite and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return x


# ----------------------------------------------------------------- modules, operators


def check_model(model: Any, name: str = "model") -> nn.Module:
    """``model`` if it is a ``torch.nn.Module``, else a ``TypeError`` naming it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_operator(op: Any, name: str) -> LinearOperator:
    """``op`` if it is a precisionrecon ``LinearOperator``, else a ``TypeError`` naming it."""
    from .operators.base import LinearOperator  # a higher floor: imported on use only

    if not isinstance(op, LinearOperator):
        raise TypeError(f"{name} must be a precisionrecon LinearOperator, got {type(op).__name__}")
    return op


def check_geometry_pair(volume: Any, geometry: Any) -> None:
    """Check that ``volume`` is a ``Volume`` and ``geometry`` a geometry of the same
    dimension (what every projector and the ASTRA/ODL converters need).

    Raises
    ------
    TypeError
        ``volume`` or ``geometry`` has the wrong type.
    ValueError
        Their dimensions differ.
    """
    from .geometry import Geometry, Volume  # geometry imports this module: imported on use

    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    if not isinstance(geometry, Geometry):
        raise TypeError(f"geometry must be a precisionrecon geometry, got {type(geometry).__name__}")
    if volume.ndim != geometry.ndim:
        raise ValueError(f"a {volume.ndim}-D volume needs a {volume.ndim}-D geometry, got a {geometry.ndim}-D one")


def check_sources_outside(volume: Any, geometry: Any) -> None:
    """Reject a divergent-beam geometry with a source inside or on the box of ``volume``.

    The projectors integrate each ray over the whole volume, also behind the source, so such
    a view would give a silently wrong line integral; we refuse it instead of clipping.

    Raises
    ------
    ValueError
        Naming the first such view and its source position.
    """
    if geometry.beam == "parallel":
        return
    check_source_vectors_outside(volume, geometry._vectors())


def check_source_vectors_outside(volume: Any, vectors: np.ndarray) -> None:
    """:func:`check_sources_outside` for raw divergent-beam ``vectors`` (kernel order, source first).

    Shape: ``vectors`` ``(n_views, 6)`` in 2-D, ``(n_views, 12)`` or ``(n_views, 15)`` in 3-D.
    """
    d = volume.ndim
    n, sp, off = volume.kernel_params()  # tensor order; vectors are in kernel order (x first)
    src = vectors[:, :d]
    inside = np.ones(len(src), dtype=bool)
    for k in range(d):
        axis = d - 1 - k
        index = src[:, k] / sp[axis] + off[axis]  # continuous voxel index; the box is [-0.5, n - 0.5]
        inside &= (index >= -0.5) & (index <= n[axis] - 0.5)
    if inside.any():
        view = int(np.flatnonzero(inside)[0])
        raise ValueError(
            f"geometry: the source of view {view} (at {tuple(round(float(v), 6) for v in src[view])} mm) lies inside "
            f"or on the volume box ({int(inside.sum())} of {len(src)} views); rays would be integrated behind the "
            "source: move the source out (larger src_iso) or use a smaller volume"
        )
