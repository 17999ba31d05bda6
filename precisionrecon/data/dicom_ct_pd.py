r"""DICOM-CT-PD: the open format of CT projection data (Chen et al., Med. Phys. 42(12), 2015;
the DICOM-CT-PD user manual of the TCIA "LDCT-and-Projection-data" collection).

One DICOM file per projection. Private tags (block ``0x10`` of groups 0x7029-0x7041)
hold the geometry; :data:`TAGS` lists the ones read and written here with their VR:

=====================================  ===========  ===  =====================================
attribute                              tag          VR   meaning
=====================================  ===========  ===  =====================================
NumberofDetectorRows                   (7029,1010)  US   detector rows ``N_row``
NumberofDetectorColumns                (7029,1011)  US   detector columns ``N_col``
DetectorElementTransverseSpacing       (7029,1002)  FL   column width at the detector (mm)
DetectorElementAxialSpacing            (7029,1006)  FL   row width at the detector (mm)
DetectorShape                          (7029,100B)  CS   CYLINDRICAL, SPHERICAL or FLAT
DetectorFocalCenterAngularPosition     (7031,1001)  FL   ``phi_0`` (rad)
DetectorFocalCenterAxialPosition       (7031,1002)  FL   ``z_0`` (mm)
DetectorFocalCenterRadialDistance      (7031,1003)  FL   ``rho_0`` (mm)
ConstantRadialDistance                 (7031,1031)  FL   ``d_0``, focal centre to detector (mm)
DetectorCentralElement                 (7031,1033)  FL   (column X, row Y), 1-based, of the
                                                         ray from the focal centre through
                                                         the isocentre
SourceAngularPositionShift             (7033,100B)  FL   ``dphi`` (rad), flying focal spot
SourceAxialPositionShift               (7033,100C)  FL   ``dz`` (mm)
SourceRadialDistanceShift              (7033,100D)  FL   ``drho`` (mm)
FlyingFocalSpotMode                    (7033,100E)  CS   FFSNONE, FFSZ, FFSXY, FFSXYZ
NumberofSourceAngularSteps             (7033,1013)  US   projections per rotation
NumberofSpectra                        (7033,1061)  US   spectra in the scan
SpectrumIndex                          (7033,1063)  US   this series' spectrum
PhotonStatistics                       (7033,1065)  FL   photons per column (1-n)
Timestamp                              (7033,1067)  FL   time of the projection (ms)
TypeofProjectionData                   (7037,1009)  CS   AXIAL or HELICAL
TypeofProjectionGeometry               (7037,100A)  CS   FANBEAM (third generation)
BeamHardeningCorrectionFlag ...        (7039,1003)  CS   YES / NO (also 1004-1008)
LogFlag                                (7039,1009)  CS   YES: the data are line integrals
WaterAttenuationCoefficient            (7041,1001)  DS   ``mu_water`` (1/mm) for HU
=====================================  ===========  ===  =====================================

Coordinates (the manual's left-handed cylindrical system, fixed to the patient): the
focal centre is at ``x = -rho_0 sin phi_0``, ``y = rho_0 cos phi_0``, ``z = z_0``, the
source at ``(rho_0 + drho, phi_0 + dphi, z_0 + dz)``; ``phi = 0`` is 12 o'clock and grows
counterclockwise seen from the table, z points from the table into the gantry. Seen from
the table with the detector at 6 o'clock, column 1 is the leftmost and row 1 the one
farthest into the gantry. These are the world axes of
:class:`~precisionrecon.geometry.HelicalConeBeam` with ``t = -phi_0`` (its source at
``(R sin t, R cos t)``, columns along ``(cos t, -sin t)``, i.e. +x at ``t = 0``), rows
stored along -z (so the reader flips them to our +z order), and ``ffs_angle = -dphi``.
The pixel data hold one detector column per DICOM row (``Rows = N_col``,
``Columns = N_row``, as in the TCIA files); the reader also takes the transposed layout.
Values are ``RescaleSlope * stored + RescaleIntercept``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import REAL, check_tensor, finite_float
from ..geometry import HelicalConeBeam, VectorGeometry
from .loaders import _pydicom, save_dataset

# attribute -> (group, element, VR); element 0x10xx of the private block 0x10 of each group
TAGS: dict[str, tuple[int, int, str]] = {
    "NumberofDetectorRows": (0x7029, 0x1010, "US"),
    "NumberofDetectorColumns": (0x7029, 0x1011, "US"),
    "DetectorElementTransverseSpacing": (0x7029, 0x1002, "FL"),
    "DetectorElementAxialSpacing": (0x7029, 0x1006, "FL"),
    "DetectorShape": (0x7029, 0x100B, "CS"),
    "DetectorFocalCenterAngularPosition": (0x7031, 0x1001, "FL"),
    "DetectorFocalCenterAxialPosition": (0x7031, 0x1002, "FL"),
    "DetectorFocalCenterRadialDistance": (0x7031, 0x1003, "FL"),
    "ConstantRadialDistance": (0x7031, 0x1031, "FL"),
    "DetectorCentralElement": (0x7031, 0x1033, "FL"),
    "SourceAngularPositionShift": (0x7033, 0x100B, "FL"),
    "SourceAxialPositionShift": (0x7033, 0x100C, "FL"),
    "SourceRadialDistanceShift": (0x7033, 0x100D, "FL"),
    "FlyingFocalSpotMode": (0x7033, 0x100E, "CS"),
    "NumberofSourceAngularSteps": (0x7033, 0x1013, "US"),
    "NumberofSpectra": (0x7033, 0x1061, "US"),
    "SpectrumIndex": (0x7033, 0x1063, "US"),
    "PhotonStatistics": (0x7033, 0x1065, "FL"),
    "Timestamp": (0x7033, 0x1067, "FL"),
    "TypeofProjectionData": (0x7037, 0x1009, "CS"),
    "TypeofProjectionGeometry": (0x7037, 0x100A, "CS"),
    "BeamHardeningCorrectionFlag": (0x7039, 0x1003, "CS"),
    "GainCorrectionFlag": (0x7039, 0x1004, "CS"),
    "DarkFieldCorrectionFlag": (0x7039, 0x1005, "CS"),
    "FlatFieldCorrectionFlag": (0x7039, 0x1006, "CS"),
    "BadPixelCorrectionFlag": (0x7039, 0x1007, "CS"),
    "ScatterCorrectionFlag": (0x7039, 0x1008, "CS"),
    "LogFlag": (0x7039, 0x1009, "CS"),
    "WaterAttenuationCoefficient": (0x7041, 0x1001, "DS"),
}
# the private creator of each group's block 0x10 written by write_dicom_ct_pd (readers go by tag number)
PRIVATE_CREATOR = "DICOM-CT-PD"
FFS_MODES = ("FFSNONE", "FFSZ", "FFSXY", "FFSXYZ")
# tags every projection file must have
REQUIRED = (
    "NumberofDetectorRows",
    "NumberofDetectorColumns",
    "DetectorElementTransverseSpacing",
    "DetectorElementAxialSpacing",
    "DetectorShape",
    "DetectorFocalCenterAngularPosition",
    "DetectorFocalCenterAxialPosition",
    "DetectorFocalCenterRadialDistance",
    "ConstantRadialDistance",
    "DetectorCentralElement",
)
# z of the focal centres may leave the fitted helix by this much (mm) before the reader gives
# per-view vectors instead of a HelicalConeBeam (float32 storage rounds z by ~1e-5 mm)
HELIX_TOL = 1e-3
_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True)
class DicomCTPD:
    """A DICOM-CT-PD scan: projections, geometry and what the header says about them.

    Unpacks as ``projections, geometry = read_dicom_ct_pd(folder)``.

    Attributes
    ----------
    projections : Tensor
        Line integrals, shape ``(n_views, rows, cols)`` (rows along +z).
    geometry : HelicalConeBeam or VectorGeometry
        ``HelicalConeBeam`` when the focal centres follow one helix (or circle), else the
        per-view vectors. Angles ``t = -phi_0`` unwrapped, the first in ``[0, 2 pi)``.
    ffs_mode : str
        ``FlyingFocalSpotMode`` (``"FFSNONE"`` when absent).
    views_per_rotation : int or None
        ``NumberofSourceAngularSteps``.
    water_attenuation : float or None
        ``WaterAttenuationCoefficient`` (1/mm), for Hounsfield units.
    spectrum : tuple of (int, int)
        ``(SpectrumIndex, NumberofSpectra)``.
    info : dict
        Further header values (manufacturer, scan type, pitch factor, correction flags).
    """

    projections: Tensor
    geometry: HelicalConeBeam | VectorGeometry
    ffs_mode: str = "FFSNONE"
    views_per_rotation: int | None = None
    water_attenuation: float | None = None
    spectrum: tuple[int, int] = (1, 1)
    info: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        yield self.projections
        yield self.geometry


def _tag(name: str) -> int:
    g, e, _ = TAGS[name]
    return (g << 16) | e


def _value(ds: Any, name: str, path: Path, default: Any = ...) -> Any:
    """The value of DICOM-CT-PD attribute ``name`` in ``ds`` (found by tag number, whatever the
    private creator); ``default`` when absent, else a ValueError naming the file and the tag."""
    tag = _tag(name)
    if tag not in ds:
        if default is ...:
            g, e, _ = TAGS[name]
            raise ValueError(f"{path.name}: lacks DICOM-CT-PD attribute {name} ({g:04X},{e:04X})")
        return default
    elem = ds[tag]
    value = elem.value
    vr = TAGS[name][2]
    if elem.VR in ("UN", "OB") and isinstance(value, bytes):  # implicit VR files without the private dictionary
        value = _decode(value, vr)
    return value


def _decode(raw: bytes, vr: str) -> Any:
    if vr == "FL":
        out = np.frombuffer(raw, "<f4")
        return out.tolist() if out.size != 1 else float(out[0])
    if vr == "US":
        out = np.frombuffer(raw, "<u2")
        return out.tolist() if out.size != 1 else int(out[0])
    return raw.decode("ascii", "replace").strip(" \x00")


def _floats(value: Any, name: str, path: Path, n: int | None = None) -> list[float]:
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path.name}: {name} must hold numbers, got {value!r}") from exc
    if n is not None and len(out) != n:
        raise ValueError(f"{path.name}: {name} must hold {n} numbers, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{path.name}: {name} must be finite, got {out}")
    return out


def _text(value: Any) -> str:
    return str(value).strip().upper()


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"folder must be a directory of DICOM-CT-PD files, got {str(folder)!r}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"folder {str(folder)!r} holds no files")
    return files


def _read(path: Path) -> Any:
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises several types for broken files
        raise ValueError(f"{path.name}: not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


def _pixels(ds: Any, path: Path, rows: int, cols: int) -> np.ndarray:
    """The stored projection as ``(rows, cols)`` float64, rows along +z, rescaled."""
    if "PixelData" not in ds:
        raise ValueError(f"{path.name}: has no PixelData")
    n_r, n_c = int(ds.Rows), int(ds.Columns)
    bits = int(getattr(ds, "BitsAllocated", 16))
    dtype = {(16, 0): "<u2", (16, 1): "<i2", (32, 0): "<u4", (32, 1): "<i4"}.get(
        (bits, int(getattr(ds, "PixelRepresentation", 0))))
    if dtype is None:
        raise ValueError(f"{path.name}: BitsAllocated {bits} is not 16 or 32")
    raw = np.frombuffer(ds.PixelData, dtype=dtype)
    if raw.size < n_r * n_c:
        raise ValueError(f"{path.name}: PixelData holds {raw.size} values, Rows x Columns needs {n_r * n_c} "
                         "(truncated file?)")
    image = raw[: n_r * n_c].reshape(n_r, n_c).astype(np.float64)
    if (n_r, n_c) == (cols, rows):  # TCIA layout: one detector column per DICOM row
        image = image.T
    elif (n_r, n_c) != (rows, cols):
        raise ValueError(f"{path.name}: the image is {n_r} x {n_c}, the detector {rows} rows x {cols} columns")
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    return image[::-1] * slope + intercept  # row 1 (farthest into the gantry, largest z) last


def read_dicom_ct_pd(
    folder: str | Path, *, spectrum: int | None = None, dtype: torch.dtype = torch.float32
) -> DicomCTPD:
    """Read a folder of DICOM-CT-PD projections (one file per view; see the module docstring).

    Files are ordered by ``InstanceNumber`` (else ``Timestamp``, else name). Scan-wide
    attributes (detector, distances, central element) must agree in every file.

    Parameters
    ----------
    folder : str or Path
    spectrum : int, optional
        ``SpectrumIndex`` to read when the folder mixes spectra (dual source / dual energy).
    dtype : torch.dtype
        Of the projections.

    Returns
    -------
    DicomCTPD
        Projections in line integrals, shape ``(n_views, rows, cols)``, and the geometry.

    Raises
    ------
    ValueError
        An unreadable or non-DICOM file, a missing attribute (named with its tag),
        attributes that differ between files, pixel data that do not fit the detector, a
        spherical detector, data that are not log-transformed (``LogFlag`` NO), or mixed
        spectra without ``spectrum``.
    """
    folder = Path(folder)
    items = []
    for path in _files(folder):
        ds = _read(path)
        for name in REQUIRED:
            _value(ds, name, path)
        items.append((path, ds))
    if spectrum is not None:
        items = [(p, d) for p, d in items if int(_value(d, "SpectrumIndex", p, 1)) == int(spectrum)]
        if not items:
            raise ValueError(f"no file of folder {str(folder)!r} has SpectrumIndex {spectrum}")
    indices = {int(_value(d, "SpectrumIndex", p, 1)) for p, d in items}
    if len(indices) > 1:
        raise ValueError(f"the folder mixes spectra {sorted(indices)}: pass spectrum= to read one")
    items.sort(key=_order_key)
    first_path, first = items[0]

    def scan_wide(name: str, convert: Any) -> Any:
        value = convert(_value(first, name, first_path))
        for p, d in items[1:]:
            other = convert(_value(d, name, p))
            if other != value:
                raise ValueError(f"{p.name}: {name} is {other!r}, {first_path.name} has {value!r}; "
                                 "a scan has one detector")
        return value

    rows = scan_wide("NumberofDetectorRows", int)
    cols = scan_wide("NumberofDetectorColumns", int)
    du = scan_wide("DetectorElementTransverseSpacing", float)
    dv = scan_wide("DetectorElementAxialSpacing", float)
    shape = scan_wide("DetectorShape", _text)
    d0 = scan_wide("ConstantRadialDistance", float)
    centre = scan_wide("DetectorCentralElement", lambda v: tuple(_floats(v, "DetectorCentralElement", first_path, 2)))
    if shape not in ("CYLINDRICAL", "FLAT"):
        raise ValueError(f"{first_path.name}: DetectorShape {shape!r} is not supported (CYLINDRICAL or FLAT)")
    log = _text(_value(first, "LogFlag", first_path, "YES"))
    if log != "YES":
        raise ValueError(f"{first_path.name}: LogFlag is {log!r}: the data are not line integrals (log-transform "
                         "them first)")
    if min(rows, cols) <= 0 or min(du, dv, d0) <= 0:
        raise ValueError(f"{first_path.name}: detector size, spacings and ConstantRadialDistance must be positive")

    def per_view(name: str, default: Any = ...) -> np.ndarray:
        return np.array([_floats(_value(d, name, p, default), name, p, 1)[0] for p, d in items])

    phi = per_view("DetectorFocalCenterAngularPosition")
    z0 = per_view("DetectorFocalCenterAxialPosition")
    rho = per_view("DetectorFocalCenterRadialDistance")
    dphi = per_view("SourceAngularPositionShift", 0.0)
    dz = per_view("SourceAxialPositionShift", 0.0)
    drho = per_view("SourceRadialDistanceShift", 0.0)
    projections = np.stack([_pixels(d, p, rows, cols) for p, d in items])
    t = -np.unwrap(phi)
    t -= 2.0 * math.pi * math.floor(t[0] / (2.0 * math.pi))  # the first angle in [0, 2 pi)
    (x_col, y_row) = centre
    det_offset = (dv * (y_row - 0.5 * (rows + 1)), du * (0.5 * (cols + 1) - x_col))
    geometry = _geometry(t, z0, rho, d0, (rows, cols), (dv, du), det_offset,
                         "cylindrical" if shape == "CYLINDRICAL" else "flat", -dphi, dz, drho)
    steps = _value(first, "NumberofSourceAngularSteps", first_path, None)
    water = _value(first, "WaterAttenuationCoefficient", first_path, None)
    info = {
        name: _text(_value(first, name, first_path))
        for name in ("TypeofProjectionData", "TypeofProjectionGeometry", "BeamHardeningCorrectionFlag",
                     "GainCorrectionFlag", "DarkFieldCorrectionFlag", "FlatFieldCorrectionFlag",
                     "BadPixelCorrectionFlag", "ScatterCorrectionFlag", "LogFlag")
        if _tag(name) in first
    }
    for keyword in ("Manufacturer", "SpiralPitchFactor", "KVP", "ExposureTime"):
        if keyword in first:
            info[keyword] = first.data_element(keyword).value
    return DicomCTPD(
        projections=torch.from_numpy(projections).to(dtype),
        geometry=geometry,
        ffs_mode=_text(_value(first, "FlyingFocalSpotMode", first_path, "FFSNONE")),
        views_per_rotation=None if steps is None else int(_floats(steps, "NumberofSourceAngularSteps", first_path,
                                                                  1)[0]),
        water_attenuation=None if water is None else float(water),
        spectrum=(int(_value(first, "SpectrumIndex", first_path, 1)), int(_value(first, "NumberofSpectra",
                                                                                 first_path, 1))),
        info=info,
    )


def _order_key(item: tuple[Path, Any]) -> tuple[float, float, str]:
    path, ds = item
    instance = float(ds.InstanceNumber) if "InstanceNumber" in ds and ds.InstanceNumber is not None else math.inf
    stamp = _value(ds, "Timestamp", path, math.inf)
    return instance, float(stamp if not isinstance(stamp, list) else stamp[0]), path.name


def _geometry(
    t: np.ndarray, z0: np.ndarray, rho: np.ndarray, d0: float, det_shape: tuple[int, int],
    spacing: tuple[float, float], det_offset: tuple[float, float], detector: str,
    ffs_angle: np.ndarray, ffs_z: np.ndarray, ffs_radius: np.ndarray,
) -> HelicalConeBeam | VectorGeometry:
    """A HelicalConeBeam when the focal centres lie on one helix of one radius, else the
    per-view vectors of the same views (each view's detector attached to its focal centre)."""
    src_iso = float(np.median(rho))
    common = dict(det_shape=det_shape, det_spacing=spacing, src_iso=src_iso, src_det=d0, detector=detector,
                  det_offset=det_offset, ffs_angle=ffs_angle, ffs_z=ffs_z)
    if len(t) > 1 and np.ptp(t) > 0:
        feed, start = np.polyfit(t / (2.0 * math.pi), z0, 1)
    else:
        feed, start = 0.0, float(z0[0])
    helix = start + feed * t / (2.0 * math.pi)
    if np.max(np.abs(helix - z0)) <= HELIX_TOL and np.max(np.abs(rho - src_iso)) <= HELIX_TOL:
        return HelicalConeBeam(angles=t, table_feed=float(feed), z_start=float(start), ffs_radius=ffs_radius,
                               **common)
    # per view: the circular geometry at radius rho_i, moved to z_i
    circle = HelicalConeBeam(angles=t, table_feed=0.0, z_start=0.0, ffs_radius=ffs_radius, **common)
    vec = circle._vectors()
    radial = rho - src_iso
    s, c = np.sin(t), np.cos(t)
    shift = np.stack([radial * s, radial * c, z0], axis=1)  # moves focal centre and detector together
    vec[:, 0:3] += shift
    vec[:, 3:6] += shift
    if vec.shape[1] == 15:  # the cylinder axis point (the focal centre) moves with them
        vec[:, 12:15] += shift
    return VectorGeometry(vectors=vec, det_shape=det_shape, beam="cone",
                          detector="curved" if detector == "cylindrical" else "flat")


def ffs_mode(geometry: HelicalConeBeam) -> str:
    """The ``FlyingFocalSpotMode`` of a geometry's focal spot offsets: FFSNONE, FFSZ (z only),
    FFSXY (angle or radius only) or FFSXYZ."""
    xy = any(v != 0.0 for v in geometry.ffs_angle + geometry.ffs_radius)
    z = any(v != 0.0 for v in geometry.ffs_z)
    return "FFSXYZ" if xy and z else "FFSXY" if xy else "FFSZ" if z else "FFSNONE"


def write_dicom_ct_pd(
    folder: str | Path,
    projections: Tensor | np.ndarray,
    geometry: HelicalConeBeam,
    *,
    water_attenuation: float = 0.0192,
    views_per_rotation: int | None = None,
    spectrum: tuple[int, int] = (1, 1),
    photon_statistics: Sequence[float] | None = None,
    manufacturer: str = "precisionrecon (simulated)",
) -> list[Path]:
    """Write projections as a DICOM-CT-PD series, one file per view (``proj_00001.dcm``, ...).

    The inverse of :func:`read_dicom_ct_pd` (see the module docstring for tags and
    coordinates): geometry tags are FL (float32), so the geometry reads back to float32
    precision; the line integrals are stored as uint16 with one ``RescaleSlope`` /
    ``RescaleIntercept`` for the series (a step of ``(max - min) / 65535``).

    Parameters
    ----------
    folder : str or Path
        Created if missing; each file is written atomically.
    projections : Tensor or ndarray
        Line integrals, shape ``geometry.proj_shape`` (rows along +z).
    geometry : HelicalConeBeam
    water_attenuation : float
        ``WaterAttenuationCoefficient`` (1/mm).
    views_per_rotation : int, optional
        ``NumberofSourceAngularSteps``; default ``round(2 pi / median angle step)``.
    spectrum : (int, int)
        ``(SpectrumIndex, NumberofSpectra)``.
    photon_statistics : sequence of float, optional
        ``PhotonStatistics`` per detector column (written to every file).
    manufacturer : str

    Returns
    -------
    list of Path
        The files, in view order.
    """
    pydicom = _pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if not isinstance(geometry, HelicalConeBeam):
        raise TypeError(f"geometry must be a HelicalConeBeam, got {type(geometry).__name__}")
    data = projections if isinstance(projections, Tensor) else torch.as_tensor(np.asarray(projections))
    check_tensor(data, "projections", dtype=REAL, shape_suffix=tuple(geometry.proj_shape), finite=True)
    if data.dim() != 3:
        raise ValueError(f"projections must have shape {tuple(geometry.proj_shape)}, got {tuple(data.shape)}")
    values = data.detach().to("cpu", torch.float64).numpy()
    water = finite_float(water_attenuation, "water_attenuation", minimum=0.0)
    rows, cols = geometry.det_shape
    (dv, du), (ov, ou) = geometry.det_spacing, geometry.det_offset
    t = np.asarray(geometry.angles)
    if views_per_rotation is None:
        step = float(np.median(np.abs(np.diff(t)))) if len(t) > 1 else 2.0 * math.pi
        views_per_rotation = max(1, round(2.0 * math.pi / step))
    if photon_statistics is not None and len(photon_statistics) != cols:
        raise ValueError(f"photon_statistics must hold one value per column ({cols}), got {len(photon_statistics)}")
    lo, hi = float(values.min()), float(values.max())
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    stored = np.round((values - lo) / slope).astype(np.uint16)
    z0 = geometry.focal_centres()[:, 2]
    mode = ffs_mode(geometry)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    header = {
        "NumberofDetectorRows": rows,
        "NumberofDetectorColumns": cols,
        "DetectorElementTransverseSpacing": du,
        "DetectorElementAxialSpacing": dv,
        "DetectorShape": geometry.detector.upper(),
        "DetectorFocalCenterRadialDistance": geometry.src_iso,
        "ConstantRadialDistance": geometry.src_det,
        "DetectorCentralElement": [0.5 * (cols + 1) - ou / du, 0.5 * (rows + 1) + ov / dv],
        "FlyingFocalSpotMode": mode,
        "NumberofSourceAngularSteps": int(views_per_rotation),
        "NumberofSpectra": int(spectrum[1]),
        "SpectrumIndex": int(spectrum[0]),
        "TypeofProjectionData": "HELICAL" if geometry.table_feed != 0.0 else "AXIAL",
        "TypeofProjectionGeometry": "FANBEAM",
        "BeamHardeningCorrectionFlag": "NO",
        "GainCorrectionFlag": "YES",
        "DarkFieldCorrectionFlag": "YES",
        "FlatFieldCorrectionFlag": "YES",
        "BadPixelCorrectionFlag": "YES",
        "ScatterCorrectionFlag": "NO",
        "LogFlag": "YES",
        "WaterAttenuationCoefficient": f"{water:.10g}",
    }
    if photon_statistics is not None:
        header["PhotonStatistics"] = [float(v) for v in photon_statistics]
    paths = []
    for i in range(len(t)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = _CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = _CT_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = "CT"
        ds.Manufacturer = manufacturer
        ds.InstanceNumber = i + 1
        if geometry.table_feed != 0.0:
            ds.SpiralPitchFactor = float(geometry.pitch)
        view = dict(header)
        # wrapped to [0, 2 pi), as scanners write it
        view["DetectorFocalCenterAngularPosition"] = float(np.mod(-t[i], 2.0 * math.pi))
        view["DetectorFocalCenterAxialPosition"] = float(z0[i])
        view["SourceAngularPositionShift"] = -geometry.ffs_angle[i]
        view["SourceAxialPositionShift"] = geometry.ffs_z[i]
        view["SourceRadialDistanceShift"] = geometry.ffs_radius[i]
        view["Timestamp"] = float(i)
        for group in sorted({g for g, _, _ in TAGS.values()}):
            ds.private_block(group, PRIVATE_CREATOR, create=True)
        for name, value in view.items():
            g, e, vr = TAGS[name]
            ds.add_new((g << 16) | e, vr, value)
        ds.Rows, ds.Columns = cols, rows  # one detector column per DICOM row (TCIA layout)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{lo:.10g}"
        ds.PixelData = np.ascontiguousarray(stored[i, ::-1].T).tobytes()  # rows stored from the largest z
        paths.append(save_dataset(ds, folder / f"proj_{i + 1:05d}.dcm"))
    return paths


__all__ = ["FFS_MODES", "TAGS", "DicomCTPD", "ffs_mode", "read_dicom_ct_pd", "write_dicom_ct_pd"]
