"""ISMRMRD raw data (``.mrd`` / ``.h5``): Cartesian multi-coil acquisitions as centred k-space."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import check_int
from .fft import fftc, ifftc

# acquisitions that are not image data of the encoding (bit = flag - 1, as in ismrmrd's FlagsMixin)
_SKIPPED_FLAGS = (
    "ACQ_IS_NOISE_MEASUREMENT",
    "ACQ_IS_PHASECORR_DATA",
    "ACQ_IS_NAVIGATION_DATA",
    "ACQ_IS_DUMMYSCAN_DATA",
    "ACQ_IS_RTFEEDBACK_DATA",
    "ACQ_IS_HPFEEDBACK_DATA",
    "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA",
    "ACQ_IS_PHASE_STABILIZATION_REFERENCE",
    "ACQ_IS_PHASE_STABILIZATION",
)


def _ismrmrd() -> Any:
    try:
        import ismrmrd
        import ismrmrd.xsd
    except ImportError as err:  # optional dependency (the ``mr`` extra)
        raise ImportError("reading ISMRMRD files needs the ismrmrd package: pip install 'precisionrecon[mr]'") from err
    return ismrmrd


@dataclass(frozen=True)
class MRDData:
    """Cartesian k-space read from an ISMRMRD file by :func:`read_ismrmrd`.

    Attributes
    ----------
    kspace : Tensor
        Centred k-space, ``(n_slices, n_coils, n_readout, n_step1)`` (2-D encodings) or
        ``(n_slices, n_coils, n_step2, n_readout, n_step1)`` (3-D), complex64, in fastMRI's
        layout: the readout along axis -2, phase-encoding lines (``kspace_encode_step_1``)
        along the last axis, so acquired lines are columns, as for :func:`read_fastmri` and
        the mask generators. Lines not acquired (partial Fourier, undersampling) are zero.
    mask : Tensor
        Boolean, ``kspace.shape`` without the coil axis: the acquired k-space points.
    encoded_matrix, recon_matrix : tuple of int
        ``encodedSpace`` and ``reconSpace`` matrix sizes, ``(x, y, z)``.
    limits : dict
        ``encodingLimits`` as ``name -> (minimum, maximum, center)`` for the limits present.
    header : ismrmrd.xsd.ismrmrdHeader
        The parsed XML header.
    xml : str
        The XML header text.
    """

    kspace: Tensor
    mask: Tensor
    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    limits: dict[str, tuple[int, int, int]]
    header: Any
    xml: str


def _matrix(space: Any) -> tuple[int, int, int]:
    m = space.matrixSize
    return int(m.x), int(m.y), int(m.z)


def read_ismrmrd(
    path: str | Path,
    *,
    dataset: str = "dataset",
    encoding: int = 0,
    contrast: int = 0,
    repetition: int = 0,
    remove_oversampling: bool = True,
) -> MRDData:
    r"""Read Cartesian multi-coil raw data of an ISMRMRD file into centred k-space.

    Acquisitions of the chosen ``encoding`` (``encoding_space_ref``), ``contrast`` and
    ``repetition`` are placed on the ``encodedSpace`` grid: phase-encoding step
    :math:`s` at index :math:`s - \text{center} + n // 2` (``encodingLimits`` centre, so
    partial Fourier and asymmetric limits land where they belong, the rest zero-filled), and
    readout sample :math:`i` at :math:`i - \text{center\_sample} + n_x // 2` (asymmetric
    echoes). Averages are averaged; slices are stacked; noise, phase-correction, navigator
    and similar acquisitions are skipped; parallel-imaging calibration lines are kept (they
    are k-space of the same image). Reversed readouts (``ACQ_IS_REVERSE``) are flipped.

    With ``remove_oversampling`` and a ``reconSpace`` readout matrix smaller than the encoded
    one (the usual 2x readout oversampling), the readout is transformed to image space,
    cropped to the central ``recon_matrix.x`` samples and transformed back (orthonormal
    FFTs: the image keeps its values). The mask then marks whole lines.

    Parameters
    ----------
    path : str or Path
        The ``.mrd`` / ``.h5`` file.
    dataset : str
        The HDF5 group of the ISMRMRD dataset.
    encoding, contrast, repetition : int
        Which encoding space, contrast and repetition to read.
    remove_oversampling : bool
        Crop the readout to the recon matrix.

    Returns
    -------
    MRDData
        k-space, mask, matrices, limits and header; see :class:`MRDData` for the layout.
    """
    ismrmrd = _ismrmrd()
    import h5py

    path = Path(path)
    for value, name in ((encoding, "encoding"), (contrast, "contrast"), (repetition, "repetition")):
        check_int(value, name, minimum=0)
    if not isinstance(remove_oversampling, bool):
        raise TypeError(f"remove_oversampling must be a bool, got {type(remove_oversampling).__name__}")
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    with h5py.File(path, "r") as f:
        if dataset not in f or "xml" not in f[dataset] or "data" not in f[dataset]:
            raise ValueError(f"{str(path)!r} is not an ISMRMRD file: no {dataset}/xml and {dataset}/data")
        xml = f[dataset]["xml"][0]
        acquisitions = f[dataset]["data"][()]  # all heads and data at once: one HDF5 read
    xml = xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)
    header = ismrmrd.xsd.CreateFromDocument(xml)
    if encoding >= len(header.encoding):
        raise ValueError(f"encoding must be < {len(header.encoding)} (the header's encodings), got {encoding}")
    enc = header.encoding[encoding]
    if str(getattr(enc.trajectory, "value", enc.trajectory)) != "cartesian":
        raise ValueError(f"only Cartesian encodings are supported, got trajectory {enc.trajectory}")
    encoded, recon = _matrix(enc.encodedSpace), _matrix(enc.reconSpace)
    limits = {}
    for name in ("kspace_encoding_step_1", "kspace_encoding_step_2", "slice", "average", "contrast", "repetition"):
        lim = getattr(enc.encodingLimits, name, None)
        if lim is not None:
            limits[name] = (int(lim.minimum), int(lim.maximum), int(lim.center))

    head = acquisitions["head"]
    idx = head["idx"]
    skip = np.zeros(len(head), dtype=np.uint64)
    for flag in _SKIPPED_FLAGS:
        skip |= np.uint64(1) << np.uint64(getattr(ismrmrd, flag) - 1)
    keep = (
        ((head["flags"] & skip) == 0)
        & (head["encoding_space_ref"] == encoding)
        & (idx["contrast"] == contrast)
        & (idx["repetition"] == repetition)
    )
    if not keep.any():
        raise ValueError(f"{str(path)!r} has no image acquisitions of encoding {encoding}, contrast {contrast}, "
                         f"repetition {repetition}")
    reverse = np.uint64(1) << np.uint64(ismrmrd.ACQ_IS_REVERSE - 1)
    nx, ny, nz = encoded
    three_d = nz > 1
    centre1 = limits.get("kspace_encoding_step_1", (0, 0, ny // 2))[2]
    centre2 = limits.get("kspace_encoding_step_2", (0, 0, nz // 2))[2]
    rows = np.flatnonzero(keep)
    n_slices = int(idx["slice"][rows].max()) + 1
    n_coils = int(head["active_channels"][rows[0]])
    if bool((head["active_channels"][rows] != n_coils).any()):
        raise ValueError(f"{str(path)!r}: the number of active channels changes between acquisitions")
    total = np.zeros((n_slices, n_coils, nz, nx, ny), dtype=np.complex128)
    count = np.zeros((n_slices, nz, nx, ny), dtype=np.int64)
    for r in rows:
        h = head[r]
        n = int(h["number_of_samples"])
        data = acquisitions["data"][r].view(np.complex64).reshape(n_coils, n)
        if int(h["flags"]) & int(reverse):
            data = data[:, ::-1]
        pre, post = int(h["discard_pre"]), int(h["discard_post"])
        x0 = nx // 2 - int(h["center_sample"])
        xs = np.arange(pre, n - post)
        xi = xs + x0
        if xi.size and (xi[0] < 0 or xi[-1] >= nx):
            raise ValueError(f"acquisition {r}: readout samples fall outside the encoded matrix x = {nx}")
        y = int(h["idx"]["kspace_encode_step_1"]) - centre1 + ny // 2
        z = int(h["idx"]["kspace_encode_step_2"]) - centre2 + nz // 2 if three_d else 0
        if not (0 <= y < ny and 0 <= z < nz):
            raise ValueError(f"acquisition {r}: encoding step ({y}, {z}) outside the encoded matrix ({ny}, {nz})")
        s = int(h["idx"]["slice"])
        total[s, :, z, xi, y] += data[:, xs].T
        count[s, z, xi, y] += 1
    kspace = torch.from_numpy(total / np.maximum(count, 1)[:, None]).to(torch.complex64)
    mask = torch.from_numpy(count > 0)
    if remove_oversampling and recon[0] < nx:
        image = ifftc(kspace.movedim(-2, -1), 1)  # readout to image space (last axis)
        start = nx // 2 - recon[0] // 2
        kspace = fftc(image[..., start: start + recon[0]], 1).movedim(-1, -2)
        mask = mask.any(dim=-2, keepdim=True).expand(*mask.shape[:-2], recon[0], ny).clone()
    if not three_d:
        kspace, mask = kspace[:, :, 0], mask[:, 0]
    return MRDData(kspace=kspace.contiguous(), mask=mask, encoded_matrix=encoded, recon_matrix=recon, limits=limits,
                   header=header, xml=xml)


__all__ = ["MRDData", "read_ismrmrd"]
