"""Dataset loaders: LoDoPaB-CT (HDF5) and DICOM CT / MR slices (pydicom).

LoDoPaB-CT (Leuschner, Schmidt, Otero Baguer and Maass, Sci. Data 8:109, 2021) stores
post-log low-dose sinograms and ground-truth images in HDF5 files
``observation_<part>_<k:03d>.hdf5`` / ``ground_truth_<part>_<k:03d>.hdf5`` (``part`` in
``train``, ``validation``, ``test``; ``challenge`` has observations only), each with one
dataset ``data`` holding chunks of 128 samples: observations ``(128, 1000, 513)``, ground
truths ``(128, 362, 362)``. The images cover 26 cm x 26 cm, are attenuation normalised by
``MU_MAX = 81.35858 m^-1`` (values in [0, 1]); the sinograms are parallel beam, 1000 angles
over pi (cell midpoints of ODL's uniform partition), 513 detector cells over the image
diagonal, simulated with ``I0 = 4096`` photons, post-log and divided by ``MU_MAX``: line
integrals in metres of the normalised image.

Arrays are stored in ODL's ``(X, Y)`` axis order; with our mapping (ODL ``X`` = our ``y``,
``Y`` = our ``x``, angle ``phi`` = ours ``+ pi / 2``, see :mod:`precisionrecon.interop.odl`)
the stored image *is* our ``(ny, nx)`` image and the sinogram our ``(views, n_det)``
sinogram, with our angles ``phi - pi / 2``. :func:`lodopab_geometry` gives them in mm, and
:class:`LoDoPaB` scales the observations to mm (``units="mm"``), so that
``XRayTransform(*lodopab_geometry())(ground_truth) ~= observation``.

DICOM: :func:`read_dicom_ct` converts CT slices from Hounsfield units (``RescaleSlope`` /
``RescaleIntercept`` applied) to linear attenuation in 1/mm, :func:`read_dicom_mr` reads MR
magnitude slices; both take one file or a folder of slices (a volume, sorted along the
slice normal) and return the image with its :class:`~precisionrecon.geometry.Volume`, as
images to simulate data from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..geometry import ParallelBeam2D, Volume

LODOPAB_MU_MAX = 81.35858
"""LoDoPaB-CT's normalisation, in 1/m: ``MU(3071 HU)`` with ``mu_water = 20 / m``."""
LODOPAB_I0 = 4096.0
"""Incident photons per detector cell of LoDoPaB-CT's simulation."""
LODOPAB_SHAPE = (362, 362)
LODOPAB_FOV_MM = 260.0
LODOPAB_ANGLES = 1000
LODOPAB_DETECTORS = 513
LODOPAB_SAMPLES_PER_FILE = 128
LODOPAB_PARTS = ("train", "validation", "test", "challenge")

MU_WATER = 0.02
"""Linear attenuation of water in 1/mm used for HU conversion (LoDoPaB-CT's 20 / m)."""
MU_AIR = 0.00002
"""Linear attenuation of air in 1/mm (LoDoPaB-CT's 0.02 / m)."""


def lodopab_geometry(dtype: Any = None) -> tuple[Volume, ParallelBeam2D]:
    """LoDoPaB-CT's volume and geometry in mm and our conventions.

    362 x 362 pixels of ``260 / 362`` mm; 1000 parallel views at ODL's angles
    ``phi_i = (i + 1/2) pi / 1000`` (ours ``phi_i - pi / 2``); 513 detector cells spanning
    the image diagonal ``sqrt(2) * 260`` mm (ODL's ``parallel_beam_geometry``).

    Returns
    -------
    (Volume, ParallelBeam2D)
    """
    del dtype  # geometries are float64 values
    volume = Volume(LODOPAB_SHAPE, spacing=LODOPAB_FOV_MM / LODOPAB_SHAPE[0])
    phi = (torch.arange(LODOPAB_ANGLES, dtype=torch.float64) + 0.5) * (math.pi / LODOPAB_ANGLES)
    det_spacing = math.sqrt(2.0) * LODOPAB_FOV_MM / LODOPAB_DETECTORS
    geometry = ParallelBeam2D(angles=phi - math.pi / 2, det_count=LODOPAB_DETECTORS, det_spacing=det_spacing)
    return volume, geometry


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("reading HDF5 files needs h5py; install it with `pip install h5py`") from exc
    return h5py


def lodopab_files(root: str | Path, part: str, kind: str) -> list[Path]:
    """The HDF5 files ``<kind>_<part>_NNN.hdf5`` under ``root``, in order.

    ``kind`` is ``"observation"`` or ``"ground_truth"``. FileNotFoundError when there is
    none or the numbering has gaps.
    """
    if part not in LODOPAB_PARTS:
        raise ValueError(f"part must be one of {list(LODOPAB_PARTS)}, got {part!r}")
    if kind not in ("observation", "ground_truth"):
        raise ValueError(f"kind must be 'observation' or 'ground_truth', got {kind!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"LoDoPaB-CT folder {str(root)!r} does not exist")
    pattern = re.compile(rf"^{kind}_{part}_(\d{{3}})\.hdf5$")
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := pattern.match(p.name)))
    if not found:
        raise FileNotFoundError(f"no {kind}_{part}_NNN.hdf5 files in {str(root)!r}")
    numbers = [n for n, _ in found]
    if numbers != list(range(len(numbers))):
        raise FileNotFoundError(f"{kind}_{part} files in {str(root)!r} are not numbered 000..: found {numbers}")
    return [p for _, p in found]


class LoDoPaB(torch.utils.data.Dataset):
    """LoDoPaB-CT samples ``(observation, ground_truth)`` from its HDF5 files.

    Parameters
    ----------
    root : str or Path
        Folder with the ``observation_<part>_NNN.hdf5`` / ``ground_truth_<part>_NNN.hdf5`` files.
    part : {"train", "validation", "test", "challenge"}
        ``"challenge"`` has no ground truth (``ground_truth`` is then None).
    units : {"mm", "m"}
        ``"mm"`` (default): observations times 1000, line integrals in mm of the normalised
        image, so they match ``XRayTransform(*lodopab_geometry())``; ``"m"``: as stored.
    dtype : torch.dtype
        float32 (default) or float64.

    Shape: ``observation (1000, 513)``, ``ground_truth (362, 362)`` (normalised by
    :data:`LODOPAB_MU_MAX`, in [0, 1]).
    """

    def __init__(self, root: str | Path, part: str = "test", *, units: str = "mm", dtype: torch.dtype = torch.float32):
        if units not in ("mm", "m"):
            raise ValueError(f"units must be 'mm' or 'm', got {units!r}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.part = part
        self.units = units
        self.dtype = dtype
        self.observation_files = lodopab_files(root, part, "observation")
        h5py = _h5py()
        self._counts = []
        for k, path in enumerate(self.observation_files):
            with h5py.File(path, "r") as f:
                if "data" not in f:
                    raise ValueError(f"LoDoPaB-CT file {str(path)!r} has no dataset 'data'")
                shape = tuple(f["data"].shape)
            if len(shape) != 3 or shape[1:] != (LODOPAB_ANGLES, LODOPAB_DETECTORS):
                raise ValueError(f"{str(path)!r}: data must be (n, 1000, 513), got {shape}")
            last = k == len(self.observation_files) - 1
            if shape[0] > LODOPAB_SAMPLES_PER_FILE or (not last and shape[0] != LODOPAB_SAMPLES_PER_FILE):
                raise ValueError(f"{str(path)!r}: chunks of {LODOPAB_SAMPLES_PER_FILE} expected, got {shape[0]}")
            self._counts.append(shape[0])
        self.ground_truth_files = [] if part == "challenge" else lodopab_files(root, part, "ground_truth")
        if self.ground_truth_files and len(self.ground_truth_files) != len(self.observation_files):
            raise ValueError(
                f"{len(self.observation_files)} observation files but {len(self.ground_truth_files)} ground-truth files"
            )

    def __len__(self) -> int:
        return sum(self._counts)

    def _read(self, path: Path, index: int, shape: tuple[int, int]) -> Tensor:
        with _h5py().File(path, "r") as f:
            data = f["data"]
            if data.shape[0] <= index or tuple(data.shape[1:]) != shape:
                raise ValueError(f"{str(path)!r}: data must hold sample {index} of shape {shape}, got {data.shape}")
            return torch.from_numpy(np.asarray(data[index], dtype=np.float64)).to(self.dtype)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor | None]:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index %= n
        chunk, item = divmod(index, LODOPAB_SAMPLES_PER_FILE)
        obs = self._read(self.observation_files[chunk], item, (LODOPAB_ANGLES, LODOPAB_DETECTORS))
        if self.units == "mm":
            obs = obs * 1000.0
        gt = self._read(self.ground_truth_files[chunk], item, LODOPAB_SHAPE) if self.ground_truth_files else None
        return obs, gt

    def geometry(self) -> tuple[Volume, ParallelBeam2D]:
        """:func:`lodopab_geometry` (in mm; use with ``units="mm"``)."""
        return lodopab_geometry()


# --------------------------------------------------------------------------- DICOM


@dataclass(frozen=True)
class DicomImage:
    """An image read from DICOM: ``image`` ``(ny, nx)`` or ``(nz, ny, nx)``, its ``volume``
    (pixel spacing in mm), the ``modality`` and the ``unit`` of the values."""

    image: Tensor
    volume: Volume
    modality: str
    unit: str


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError as exc:
        raise ImportError("reading DICOM needs pydicom; install it with `pip install pydicom`") from exc
    return pydicom


def _dicom_datasets(path: str | Path) -> list[Any]:
    pydicom = _pydicom()
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"DICOM folder {str(path)!r} holds no files")
    else:
        raise FileNotFoundError(f"DICOM path {str(path)!r} does not exist")
    out = []
    for f in files:
        try:
            out.append(pydicom.dcmread(str(f)))
        except Exception as exc:  # pydicom raises several types for non-DICOM content
            raise ValueError(f"{str(f)!r} is not a readable DICOM file: {exc}") from exc
    return out


def _slice_position(ds: Any, k: int) -> float:
    """Position along the slice normal (ImagePositionPatient . normal), else InstanceNumber, else order."""
    pos, ori = getattr(ds, "ImagePositionPatient", None), getattr(ds, "ImageOrientationPatient", None)
    if pos is not None and ori is not None:
        normal = np.cross(np.asarray(ori[:3], dtype=float), np.asarray(ori[3:], dtype=float))
        return float(np.dot(normal, np.asarray(pos, dtype=float)))
    number = getattr(ds, "InstanceNumber", None)
    return float(number) if number is not None else float(k)


def _read_dicom(path: str | Path, modality: str, dtype: torch.dtype) -> tuple[np.ndarray, Volume]:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    datasets = _dicom_datasets(path)
    for ds in datasets:
        found = str(getattr(ds, "Modality", "")).upper()
        if found and found != modality:
            raise ValueError(f"expected {modality} DICOM, got Modality {found!r} in {path!s}")
        if "PixelData" not in ds:
            raise ValueError(f"DICOM in {path!s} has no pixel data")
    order = sorted(range(len(datasets)), key=lambda k: _slice_position(datasets[k], k))
    datasets = [datasets[k] for k in order]
    slices = []
    for ds in datasets:
        pixels = np.asarray(ds.pixel_array, dtype=np.float64)
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        slices.append(pixels * slope + intercept)
    shapes = {s.shape for s in slices}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"DICOM slices in {path!s} must be 2-D images of one shape, got {sorted(shapes)}")
    spacing = [float(v) for v in getattr(datasets[0], "PixelSpacing", [1.0, 1.0])]  # (row, column) = (dy, dx)
    if len(datasets) == 1:
        return slices[0], Volume(slices[0].shape, spacing=(spacing[0], spacing[1]))
    positions = [_slice_position(ds, k) for k, ds in enumerate(datasets)]
    steps = np.diff(positions)
    if steps.size and np.all(steps > 0):
        dz = float(np.median(steps))
    else:
        dz = float(getattr(datasets[0], "SpacingBetweenSlices", getattr(datasets[0], "SliceThickness", 1.0)) or 1.0)
    stack = np.stack(slices)
    return stack, Volume(stack.shape, spacing=(dz, spacing[0], spacing[1]))


def read_dicom_ct(
    path: str | Path,
    *,
    mu_water: float = MU_WATER,
    mu_air: float = MU_AIR,
    hounsfield: bool = False,
    dtype: torch.dtype = torch.float32,
) -> DicomImage:
    r"""CT slices as linear attenuation (1/mm) or Hounsfield units.

    Stored values ``v`` become ``HU = RescaleSlope * v + RescaleIntercept`` and then

    .. math:: \mu = \mu_\mathrm{water} + \mathrm{HU} \, (\mu_\mathrm{water} - \mu_\mathrm{air}) / 1000,

    clipped at 0 (values below air), the inverse of the HU definition; LoDoPaB-CT's
    ``mu_water = 20 / m``, ``mu_air = 0.02 / m`` are the defaults (in 1/mm).

    Parameters
    ----------
    path : str or Path
        One DICOM file (a 2-D slice) or a folder of slices (a volume sorted along the slice
        normal, ``ImagePositionPatient``, else ``InstanceNumber``).
    mu_water, mu_air : float
        Attenuation of water and air in 1/mm (``mu_water > mu_air >= 0``).
    hounsfield : bool
        Return HU instead of attenuation.
    dtype : torch.dtype

    Returns
    -------
    DicomImage
        Shape: ``(ny, nx)`` for a file, ``(nz, ny, nx)`` for a folder; ``volume`` spacing from
        ``PixelSpacing`` (and the slice positions).
    """
    if not (math.isfinite(mu_water) and math.isfinite(mu_air) and mu_water > mu_air >= 0):
        raise ValueError(f"need mu_water > mu_air >= 0 (1/mm), got mu_water={mu_water}, mu_air={mu_air}")
    hu, volume = _read_dicom(path, "CT", dtype)
    if hounsfield:
        return DicomImage(torch.from_numpy(hu).to(dtype), volume, "CT", "HU")
    mu = np.maximum(mu_water + hu * (mu_water - mu_air) / 1000.0, 0.0)
    return DicomImage(torch.from_numpy(mu).to(dtype), volume, "CT", "1/mm")


def read_dicom_mr(path: str | Path, *, normalize: bool = False, dtype: torch.dtype = torch.float32) -> DicomImage:
    """MR magnitude slices (``RescaleSlope``/``RescaleIntercept`` applied when present).

    Parameters
    ----------
    path : str or Path
        One DICOM file or a folder of slices (see :func:`read_dicom_ct`).
    normalize : bool
        Divide by the maximum (values in [0, 1]).
    dtype : torch.dtype

    Returns
    -------
    DicomImage
        Shape: ``(ny, nx)`` or ``(nz, ny, nx)``; real (magnitude) values, unit ``"a.u."``.
    """
    image, volume = _read_dicom(path, "MR", dtype)
    if normalize:
        peak = float(np.abs(image).max())
        if peak > 0:
            image = image / peak
    return DicomImage(torch.from_numpy(image).to(dtype), volume, "MR", "a.u.")


def write_dicom(
    path: str | Path,
    image: Tensor | np.ndarray,
    *,
    modality: str,
    spacing: Sequence[float] = (1.0, 1.0),
    slope: float = 1.0,
    intercept: float = 0.0,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    instance: int = 1,
    slice_thickness: float | None = None,
) -> Path:
    """Write one 2-D slice as a minimal DICOM file (uint16 or int16 pixels), atomically.

    ``image`` holds the rescaled values (e.g. HU); the stored integers are
    ``round((image - intercept) / slope)``. Meant for tests and examples: readers of
    :func:`read_dicom_ct` / :func:`read_dicom_mr` get ``image`` back up to that rounding.
    ``slice_thickness`` (mm), when given, is written as SliceThickness.
    """
    pydicom = _pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if modality not in ("CT", "MR"):
        raise ValueError(f"modality must be 'CT' or 'MR', got {modality!r}")
    values = np.asarray(image.detach().cpu() if isinstance(image, Tensor) else image, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"image must be 2-D (ny, nx), got shape {values.shape}")
    if not slope > 0:
        raise ValueError(f"slope must be > 0, got {slope}")
    stored = np.round((values - intercept) / slope)
    signed = bool(stored.min() < 0)
    info = np.iinfo(np.int16 if signed else np.uint16)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError(f"image does not fit 16-bit pixels with slope {slope} and intercept {intercept}")
    pixels = stored.astype(np.int16 if signed else np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.InstanceNumber = int(instance)
    if slice_thickness is not None:
        ds.SliceThickness = float(slice_thickness)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = float(slope)
    ds.RescaleIntercept = float(intercept)
    ds.PixelData = pixels.tobytes()
    return save_dataset(ds, path)


def save_dataset(ds: Any, path: str | Path) -> Path:
    """Save a pydicom dataset (with its file meta) atomically: a temporary file renamed to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        ds.save_as(str(tmp), enforce_file_format=True)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = [
    "LODOPAB_I0",
    "LODOPAB_MU_MAX",
    "MU_AIR",
    "MU_WATER",
    "DicomImage",
    "LoDoPaB",
    "lodopab_files",
    "lodopab_geometry",
    "read_dicom_ct",
    "read_dicom_mr",
    "write_dicom",
]
