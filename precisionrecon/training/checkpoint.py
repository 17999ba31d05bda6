"""Checkpoints: safetensors for the tensors, JSON for everything else; no pickle.

A checkpoint is a folder ``step-00001000/`` holding

* ``model.safetensors``: the model's ``state_dict``;
* ``optimizer.safetensors``: the optimizer's state tensors (Adam moments);
* ``config.json``: the model's ``config()`` (which rebuilds it), the training config,
  the step, the parameter dtype, the optimizer's hyper-parameters, the latest
  validation metrics, the history and the training losses since its last entry.

The folder is written under a temporary name and renamed into place, so a reader never
sees half a checkpoint; ``latest.json`` in the output folder (replaced atomically) names
the newest. A run holds ``.lock`` (its host, PID and process start) in the output folder
while it trains, so a second live run on the same folder is refused; the lock of a process
that is gone is taken over, and the ``.step-*.tmp`` leftovers of a save it did not finish
are removed (:func:`acquire_lock`, :func:`remove_temporary`). :func:`load_checkpoint`
needs nothing but this module, the model classes and ``safetensors``: ``torch.load`` is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._io import default_mode
from .._validate import dtype_name, parse_dtype
from ._io import atomic_write_json, read_json

CHECKPOINT_FORMAT = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
LATEST_FILE = "latest.json"
LOCK_FILE = ".lock"
_PREFIX = "step-"


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError as exc:  # pragma: no cover - a dependency of the training extra
        raise ImportError("checkpoints need the safetensors package (pip install safetensors)") from exc
    return safetensors.torch


def _tensors_bytes(tensors: dict[str, Any], what: str) -> bytes:
    out = {}
    for k, v in tensors.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"{what} entry {k!r} is a {type(v).__name__}, not a tensor; safetensors holds tensors only")
        out[k] = v.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
    return _safetensors().save(out)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point parameters (float32 without any)."""
    for p in model.parameters():
        if p.dtype.is_floating_point:
            return p.dtype
    return torch.float32


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The optimizer's ``state_dict`` split into tensors (``state.<param>.<name>``) and a
    JSON-serialisable rest (hyper-parameters, non-tensor state)."""
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "state": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("state", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def write_checkpoint(
    output_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    record: dict[str, Any],
    *,
    keep: int | None = None,
) -> Path:
    """Write checkpoint ``step`` of ``model`` (and ``optimizer``) under ``output_dir``.

    Parameters
    ----------
    record : dict
        Extra JSON entries of ``config.json`` (training config, metrics, ...).
    keep : int, optional
        Keep only the newest ``keep`` checkpoints.

    Returns
    -------
    Path
        The checkpoint folder.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if not callable(config):
        raise TypeError(f"the model ({type(model).__name__}) has no config() method: a checkpoint could not rebuild it")
    name = f"{_PREFIX}{step:08d}"
    meta: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "dtype": dtype_name(model_dtype(model)),
        "model": config(),
        **record,
    }
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.", suffix=".tmp"))
    try:
        # mkdtemp's folder is private (0700); a checkpoint is shared like any folder the user makes
        os.chmod(tmp, default_mode(folder=True))
        (tmp / MODEL_FILE).write_bytes(_tensors_bytes(model.state_dict(), "state_dict"))
        if optimizer is not None:
            tensors, meta["optimizer"] = optimizer_state(optimizer)
            (tmp / OPTIMIZER_FILE).write_bytes(_tensors_bytes(tensors, "optimizer state"))
        atomic_write_json(tmp / CONFIG_FILE, meta)
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_json(out / LATEST_FILE, {"checkpoint": name, "step": step})
    if keep is not None:
        for old in list_checkpoints(out)[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``; None elsewhere or when it is gone):
    tells a live run from a new process that reuses a dead run's PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of stat, counting after the name


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    now = _process_start(pid)
    return started is None or now is None or now == started


def acquire_lock(output_dir: str | Path) -> Path:
    """Mark ``output_dir`` as held by this process (``.lock``: host, PID, process start).

    The lock of this process (a second trainer in it) is kept; that of a dead process on this
    host, or of another host (a folder copied from another machine), is taken over with a
    warning.

    Raises
    ------
    ValueError
        A live process on this host holds ``output_dir``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    host, pid = socket.gethostname(), os.getpid()
    mine = {"host": host, "pid": pid, "started": _process_start(pid)}
    try:
        held = json.loads(path.read_text())
    except FileNotFoundError:
        held = None
    except (OSError, ValueError):
        held = {}  # unreadable (a write cut short): stale
    if isinstance(held, dict) and held.get("host") == host and held.get("pid") == pid:
        return path
    if isinstance(held, dict) and held:
        other = held.get("pid")
        if held.get("host") == host and isinstance(other, int) and _alive(other, held.get("started")):
            raise ValueError(
                f"output_dir {str(out)!r} is held by a live training run (pid {other}); wait for it, stop it, or "
                "use another folder"
            )
        where = "this host" if held.get("host") == host else f"host {held.get('host')!r}"
        warnings.warn(f"taking over the stale lock of {str(out)!r} (pid {other} on {where})", RuntimeWarning,
                      stacklevel=2)
    atomic_write_json(path, mine)
    return path


def release_lock(output_dir: str | Path) -> None:
    """Remove ``output_dir``'s lock if this process holds it."""
    path = Path(output_dir) / LOCK_FILE
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(held, dict) and held.get("host") == socket.gethostname() and held.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def remove_temporary(output_dir: str | Path) -> list[Path]:
    """Delete the leftovers of writes that a killed run did not finish (``.step-*.tmp``
    folders, ``.*.tmp`` files) in ``output_dir``; call it holding the lock. Returns them."""
    found = sorted(Path(output_dir).glob(".*.tmp"))
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoint folders under ``output_dir``, oldest first."""
    return sorted(p for p in Path(output_dir).glob(f"{_PREFIX}*") if p.is_dir() and (p / CONFIG_FILE).is_file())


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder that ``path`` means: a checkpoint folder, a file in one, or an
    output folder (its newest checkpoint, after ``latest.json``)."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.is_dir():
        raise FileNotFoundError(f"checkpoint path {str(path)!r} does not exist")
    if (p / CONFIG_FILE).is_file() and (p / MODEL_FILE).is_file():
        return p
    if (p / LATEST_FILE).is_file():
        latest = read_json(p / LATEST_FILE, "checkpoint index")
        name = str(latest.get("checkpoint", "")) if isinstance(latest, dict) else ""
        target = p / name
        # latest.json names a checkpoint folder of this output folder, nothing else
        if name and (not name.startswith(_PREFIX) or target.resolve().parent != p.resolve()):
            raise ValueError(f"{str(p / LATEST_FILE)!r} names {name!r}, which is not a checkpoint folder in "
                             f"{str(p)!r}; refusing to follow it")
        if name and (target / CONFIG_FILE).is_file():
            return target
    found = list_checkpoints(p)
    if found:
        return found[-1]
    raise FileNotFoundError(f"no checkpoint ({MODEL_FILE} + {CONFIG_FILE}) in {str(path)!r}")


def read_checkpoint(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(folder, contents of config.json)`` of the checkpoint ``path`` means."""
    folder = find_checkpoint(path)
    meta = read_json(folder / CONFIG_FILE, "checkpoint config")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        where = str(folder / CONFIG_FILE)
        raise ValueError(f"{where!r} is not a precisionrecon checkpoint (format {CHECKPOINT_FORMAT})")
    return folder, meta


def load_state(folder: Path, name: str = MODEL_FILE) -> dict[str, Tensor]:
    """The tensors of a checkpoint file (on the CPU)."""
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    return _safetensors().load_file(str(path), device="cpu")


def load_checkpoint(
    path: str | Path,
    *,
    builder: Callable[[dict[str, Any]], nn.Module] | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The trained model of a checkpoint, rebuilt from its config, in eval mode.

    Parameters
    ----------
    path : str or Path
        A checkpoint folder, a file in one, or a training output folder (its newest).
    builder : callable, optional
        Builds models that are not in :mod:`precisionrecon.models` (see
        :func:`precisionrecon.uncertainty.build`).
    device : optional
        Move the model there (default: the CPU).

    Returns
    -------
    nn.Module
        The model with the saved parameters and dtype.
    """
    from ..uncertainty import build

    folder, meta = read_checkpoint(path)
    where = str(folder / CONFIG_FILE)
    missing = [k for k in ("model", "dtype") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint config {where!r} lacks {missing}")
    dtype = parse_dtype(meta["dtype"])
    if not dtype.is_floating_point:  # complex or integer parameters would break every model silently
        raise ValueError(f"checkpoint config {where!r}: dtype must be real floating point, got {meta['dtype']!r}")
    model = build(meta["model"], builder=builder)
    model.to(dtype)
    model.load_state_dict(load_state(folder))
    if device is not None:
        model.to(torch.device(device))
    return model.eval()
