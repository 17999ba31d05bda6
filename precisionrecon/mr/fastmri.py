"""Reading fastMRI HDF5 files (``kspace``, ``reconstruction_rss``/``_esc``, ``mask``, attributes,
``ismrmrd_header``), the fastMRI centre crop and RSS target, and a slice dataset."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .coils import rss
from .fft import ifftc

ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"
TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # optional dependency (extra "mr")
        raise ImportError("reading fastMRI files needs h5py: pip install 'precisionrecon[mr]'") from exc
    return h5py


@dataclass(frozen=True)
class FastMRIHeader:
    """The parts of the ISMRMRD XML header that fastMRI uses.

    ``encoding_size`` and ``recon_size`` are ``encoding/encodedSpace/matrixSize`` and
    ``encoding/reconSpace/matrixSize`` as ``(x, y, z)``; the FOVs are the matching
    ``fieldOfView_mm``. ``padding_left`` and ``padding_right`` bound the acquired
    phase-encoding lines (``kspace_encoding_step_1``), computed as in fastMRI's
    ``SliceDataset``: ``padding_left = encoding_size[1] // 2 - center`` and
    ``padding_right = padding_left + maximum + 1``; columns outside are zero padding.
    """

    encoding_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    encoding_fov_mm: tuple[float, float, float] | None
    recon_fov_mm: tuple[float, float, float] | None
    kspace_center: int
    kspace_maximum: int
    padding_left: int
    padding_right: int


def _find(root: ElementTree.Element, path: Sequence[str]) -> ElementTree.Element | None:
    query = "." + "".join(f"//ismrmrd:{p}" for p in path)
    return root.find(query, {"ismrmrd": ISMRMRD_NAMESPACE})


def _text(root: ElementTree.Element, path: Sequence[str]) -> str:
    node = _find(root, path)
    if node is None or node.text is None:
        raise ValueError(f"ISMRMRD header has no {'/'.join(path)}")
    return node.text


def parse_ismrmrd_header(xml: str | bytes) -> FastMRIHeader:
    """Parse the ``ismrmrd_header`` of a fastMRI file (see :class:`FastMRIHeader`).

    Raises ``ValueError`` if the XML is malformed or lacks the fields fastMRI uses. Parse
    trusted files only (``xml.etree``).
    """
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8")
    if not isinstance(xml, str):
        raise TypeError(f"xml must be str or bytes, got {type(xml).__name__}")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ValueError(f"ismrmrd_header is not valid XML: {exc}") from exc

    def size(space: str) -> tuple[int, int, int]:
        base = ["encoding", space, "matrixSize"]
        return tuple(int(_text(root, [*base, a])) for a in "xyz")  # type: ignore[return-value]

    def fov(space: str) -> tuple[float, float, float] | None:
        base = ["encoding", space, "fieldOfView_mm"]
        if _find(root, base) is None:
            return None
        return tuple(float(_text(root, [*base, a])) for a in "xyz")  # type: ignore[return-value]

    enc = size("encodedSpace")
    lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
    center = int(_text(root, [*lims, "center"]))
    maximum = int(_text(root, [*lims, "maximum"]))
    left = enc[1] // 2 - center
    return FastMRIHeader(
        encoding_size=enc,
        recon_size=size("reconSpace"),
        encoding_fov_mm=fov("encodedSpace"),
        recon_fov_mm=fov("reconSpace"),
        kspace_center=center,
        kspace_maximum=maximum,
        padding_left=left,
        padding_right=left + maximum + 1,
    )


def _plain(value: Any) -> Any:
    """HDF5 attribute -> plain Python value (bytes decoded, NumPy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass(frozen=True)
class FastMRIFile:
    """The content of one fastMRI file (or of some of its slices).

    Attributes
    ----------
    path : Path
    kspace : Tensor
        ``(slices, coils, H, W)`` (multi-coil) or ``(slices, H, W)`` (single-coil), complex64,
        centred (fastMRI stores the centred k-space of ``fft2c``).
    target : Tensor or None
        ``reconstruction_rss`` (multi-coil) or ``reconstruction_esc`` (single-coil), float32,
        ``(slices, h, w)``; absent in the test sets.
    target_key : str or None
        Which of the two the target is.
    mask : Tensor or None
        The ``mask`` dataset of test/challenge files (``(W,)`` bool: sampled columns).
    attrs : dict
        File attributes as plain Python values: ``acquisition``, ``max``, ``norm``,
        ``patient_id`` (and ``acceleration``, ``num_low_frequency`` in test files).
    header : FastMRIHeader or None
        Parsed ``ismrmrd_header`` (None if the file has none).
    header_xml : str or None
        The raw XML.
    slices : tuple of int
        Indices of the slices read.
    """

    path: Path
    kspace: Tensor
    target: Tensor | None
    target_key: str | None
    mask: Tensor | None
    attrs: dict[str, Any] = field(default_factory=dict)
    header: FastMRIHeader | None = None
    header_xml: str | None = None
    slices: tuple[int, ...] = ()

    @property
    def multicoil(self) -> bool:
        return self.kspace.dim() == 4


def _slice_indices(selection: int | slice | Sequence[int] | None, n: int) -> list[int]:
    if selection is None:
        return list(range(n))
    if isinstance(selection, slice):
        return list(range(n))[selection]
    if isinstance(selection, (int, np.integer)) and not isinstance(selection, bool):
        idx = [int(selection)]
    else:
        try:
            idx = [int(i) for i in selection]  # type: ignore[union-attr]
        except TypeError as exc:
            raise TypeError(f"slices must be an int, a slice, a sequence of ints or None, got {selection!r}") from exc
    out = [i + n if i < 0 else i for i in idx]
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise ValueError(f"slice indices {bad} out of range for {n} slices")
    return out


def read_fastmri(path: str | Path, slices: int | slice | Sequence[int] | None = None) -> FastMRIFile:
    """Read a fastMRI HDF5 file (all slices, or the selected ones without reading the rest).

    Parameters
    ----------
    path : str or Path
        The ``.h5`` file.
    slices : int, slice, sequence of int, optional
        Slices to read (an int keeps the slice axis, of length 1).

    Returns
    -------
    FastMRIFile
    """
    h5py = _h5py()
    path = Path(path)
    with h5py.File(path, "r") as hf:
        if "kspace" not in hf:
            raise ValueError(f"{path} is not a fastMRI file: no 'kspace' dataset")
        ds = hf["kspace"]
        if ds.ndim not in (3, 4) or ds.dtype.kind != "c":
            raise ValueError(
                f"{path}: 'kspace' must be complex with shape (slices, [coils,] H, W), got {ds.dtype} {ds.shape}"
            )
        n = ds.shape[0]
        idx = _slice_indices(slices, n)
        unique = sorted(set(idx))

        def read(name: str) -> np.ndarray:
            if idx == list(range(n)):
                return hf[name][()]
            data = hf[name][unique] if unique else hf[name][0:0]  # h5py: increasing, unique indices
            pos = {s: k for k, s in enumerate(unique)}
            return data[[pos[i] for i in idx]]

        kspace = torch.from_numpy(read("kspace").astype(np.complex64, copy=False))
        target_key = next((k for k in TARGET_KEYS if k in hf), None)
        target = None if target_key is None else torch.from_numpy(read(target_key).astype(np.float32, copy=False))
        mask = torch.from_numpy(np.asarray(hf["mask"]).astype(bool)) if "mask" in hf else None
        attrs = {k: _plain(v) for k, v in hf.attrs.items()}
        xml = None
        if "ismrmrd_header" in hf:
            raw = hf["ismrmrd_header"][()]
            xml = raw.decode("utf-8") if isinstance(raw, bytes) else str(_plain(raw))
    header = parse_ismrmrd_header(xml) if xml is not None else None
    return FastMRIFile(path, kspace, target, target_key, mask, attrs, header, xml, tuple(idx))


def center_crop(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Crop the last two axes to ``shape = (h, w)`` around the centre, as fastMRI's
    ``center_crop`` (start index ``(H - h) // 2``). Shape: ``(*batch, H, W) -> (*batch, h, w)``."""
    h, w = (int(s) for s in shape)
    H, W = x.shape[-2], x.shape[-1]
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"crop shape {(h, w)} must be positive and fit into {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top : top + h, left : left + w]


def rss_target(kspace: Tensor, shape: Sequence[int] | None = None) -> Tensor:
    """fastMRI's multi-coil target: ``center_crop(rss(ifft2c(kspace)), shape)``.

    Shape: ``(*batch, coils, H, W) -> (*batch, h, w)`` (``shape`` default: no crop), real.
    """
    image = rss(ifftc(kspace, 2), dim=-3)
    return image if shape is None else center_crop(image, shape)


class FastMRISliceDataset(torch.utils.data.Dataset):
    """One item per slice of a list of fastMRI files (reads only that slice).

    Each item is a dict with ``kspace`` (``(coils, H, W)`` or ``(H, W)`` complex64),
    ``target`` (or None), ``mask`` (or None), ``attrs`` (file attributes plus the parsed
    header fields ``padding_left``, ``padding_right``, ``encoding_size``, ``recon_size``, as in
    fastMRI's ``SliceDataset``), ``fname`` and ``slice``.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        h5py = _h5py()
        self.examples: list[tuple[Path, int]] = []
        for p in paths:
            p = Path(p)
            with h5py.File(p, "r") as hf:
                if "kspace" not in hf:
                    raise ValueError(f"{p} is not a fastMRI file: no 'kspace' dataset")
                self.examples += [(p, i) for i in range(hf["kspace"].shape[0])]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, s = self.examples[i]
        f = read_fastmri(path, s)
        attrs = dict(f.attrs)
        if f.header is not None:
            h = f.header
            attrs |= {
                "padding_left": h.padding_left,
                "padding_right": h.padding_right,
                "encoding_size": h.encoding_size,
                "recon_size": h.recon_size,
            }
        return {
            "kspace": f.kspace[0],
            "target": None if f.target is None else f.target[0],
            "mask": f.mask,
            "attrs": attrs,
            "fname": path.name,
            "slice": s,
        }
