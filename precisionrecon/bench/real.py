"""The real-image test set of ``precisionrecon bench --suite real``: the CT and MR slices
bundled in the pydicom wheel, scaled, cropped and resampled for the benchmark tasks.

The files come from ``pydicom.data.get_testdata_file(name, download=False)`` and must lie
inside the installed pydicom package (nothing is downloaded); a file that is missing,
cannot be decoded or is not a CT/MR image is skipped with the reason, and the suite uses
the rest.

CT (the four CT tasks):

- ``CT_small.dcm``: thorax, 128 x 128, 0.66 mm pixels (an 85 mm field of view around a
  thoracic vertebra and the posterior ribs), uncompressed; ``ORIGINAL\\PRIMARY\\AXIAL``.
- ``693_J2KI.dcm``: head, 512 x 512, JPEG 2000 (lossy, hence ``DERIVED\\PRIMARY\\AXIAL``: a
  derived *image*, not a mask); whole skull with the head holder.
- ``J2K_pixelrep_mismatch.dcm``: head at the skull base, 512 x 512, lossless JPEG 2000
  (whose code stream disagrees with ``PixelRepresentation``; pydicom corrects the sign);
  ``ORIGINAL\\PRIMARY\\AXIAL``.

MR (the two MR tasks):

- ``MR_small.dcm``: 64 x 64 magnitude slice (the uncompressed little-endian copy; pydicom
  also ships it in other transfer syntaxes, which are the same image and are not used).
- ``examples_overlay.dcm``: abdomen, 300 x 484 magnitude (liver, kidneys, spleen, aorta).
  Its overlay (a circle on the liver and a "Tra" label) is stored separately in
  ``(6000,3000) OverlayData``, and ``BitsStored`` is 12 with ``HighBit`` 11, so no
  overlay bit sits in the pixel data: the pixels under the overlay are ordinary tissue
  and background values. The image is used as stored, without the overlay.

JPEG 2000 needs a pixel-data handler of pydicom 3: Pillow with OpenJPEG (its wheels have
it), or ``pylibjpeg`` with ``pylibjpeg-openjpeg``; both are in the ``dicom`` extra.

Every file is checked to be a CT or MR *image*: ``Modality`` CT/MR, a CT/MR image storage
SOP class (not segmentation, RT structure set/dose, presentation state, ...), pixel data,
and no ``ImageType`` value that marks a mask, label map or localizer.

Scale: CT values (HU) go to ``mu / (3 mu_water)`` = ``(HU + 1000) / 3000`` clipped to
[0, 1], as the anatomy phantoms' ``units="unit"`` (window [-1000, 2000] HU); MR magnitudes
are divided by their maximum. Each image is cropped to a square around the object (the
bounding box of the pixels above 10 % of the maximum, plus a margin, padded with the
background value 0 where the square leaves the image) and area-resampled (exact box
integration, which keeps the mean) to the size the task simulates from.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import positive_int


@dataclass(frozen=True)
class RealImage:
    """One bundled DICOM file of the real suite.

    Attributes
    ----------
    file : str
        Its name in ``pydicom.data``.
    modality : {"CT", "MR"}
    why : str
        What it shows and why it is in the set.
    """

    file: str
    modality: str
    why: str


REAL_IMAGES: tuple[RealImage, ...] = (
    RealImage("CT_small.dcm", "CT", "thorax (vertebra, ribs, muscle), 128 x 128: the one body CT slice in pydicom"),
    RealImage("693_J2KI.dcm", "CT", "whole head with skull and head holder, 512 x 512, lossy JPEG 2000"),
    RealImage("J2K_pixelrep_mismatch.dcm", "CT", "head at the skull base (bone, air cavities), 512 x 512, "
              "lossless JPEG 2000"),
    RealImage("MR_small.dcm", "MR", "64 x 64 magnitude slice (one copy of the image pydicom ships in several "
              "encodings)"),
    RealImage("examples_overlay.dcm", "MR", "abdomen 300 x 484 (liver, kidneys, spleen); its overlay is separate "
              "OverlayData, not burned into the pixels"),
)
"""The files of the real suite, in table order per modality."""

_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
}
_NOT_AN_IMAGE = ("MASK", "SEGMENTATION", "LABEL", "LOCALIZER")  # ImageType values of non-anatomy pixels
_HU_AIR, _HU_TOP = -1000.0, 2000.0  # the window mapped to [0, 1] (anatomy phantoms' units="unit")
_OBJECT_THRESHOLD = 0.1  # share of the maximum above which a pixel belongs to the object (square crop)
_MARGIN = 0.05  # of the object's size, on each side of its bounding box


class RealImageError(ValueError):
    """A bundled file that cannot be used (missing, undecodable, not a CT/MR image); the message says why."""


def real_image_path(name: str) -> Path:
    """The local path of a bundled pydicom test file, never downloading it.

    ``RealImageError`` when pydicom is missing, or the file is not in the installed package.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError as exc:
        raise RealImageError(f"{name}: the real suite needs pydicom (pip install precisionrecon[dicom])") from exc
    found = get_testdata_file(name, download=False)  # download=False: never reach the network
    package = Path(pydicom.__file__).resolve().parent
    if not isinstance(found, str) or package not in Path(found).resolve().parents:
        raise RealImageError(f"{name}: not a file bundled in the installed pydicom package ({package})")
    return Path(found)


def check_image_dataset(ds: Any, modality: str) -> None:
    """``RealImageError`` unless the pydicom dataset ``ds`` is a ``modality`` (CT/MR) image:
    the modality, an image storage SOP class, pixel data, and no mask/label/localizer ImageType."""
    name = Path(str(getattr(ds, "filename", "") or "dataset")).name
    found = str(getattr(ds, "Modality", "")).strip().upper()
    if found != modality:
        raise RealImageError(f"{name}: Modality {found!r}, expected {modality!r}")
    sop = str(getattr(ds, "SOPClassUID", ""))
    if sop not in _IMAGE_SOP_CLASSES or not _IMAGE_SOP_CLASSES[sop].startswith(modality):
        raise RealImageError(f"{name}: SOP class {sop!r} is not a {modality} image storage class "
                             "(segmentation, RT or other non-image objects are not used)")
    image_type = [str(v).strip().upper() for v in (getattr(ds, "ImageType", None) or [])]
    marked = sorted(set(image_type) & set(_NOT_AN_IMAGE))
    if marked:
        raise RealImageError(f"{name}: ImageType {image_type} marks a {'/'.join(marked).lower()}, not anatomy")
    if "PixelData" not in ds:
        raise RealImageError(f"{name}: no pixel data")


def square_crop(image: Tensor, *, threshold: float = _OBJECT_THRESHOLD, margin: float = _MARGIN) -> Tensor:
    """The square around the object of a non-negative image, padded with 0 where it leaves the image.

    The object is the bounding box of the pixels above ``threshold`` times the maximum; the
    square's side is its longer side plus ``margin`` of it on each end (at most the image's
    longer side), centred on the box and shifted to stay inside the image along an axis
    that is long enough (else centred, with zero padding at both ends).

    Shape: ``image`` ``(ny, nx)``; returns ``(s, s)``.
    """
    if not isinstance(image, Tensor) or image.dim() != 2:
        raise ValueError(f"image must be a 2-D tensor, got {getattr(image, 'shape', type(image).__name__)}")
    inside = image > threshold * float(image.max())
    if not bool(inside.any()):
        raise ValueError("image must have positive values (nothing above the threshold)")
    rows = torch.nonzero(inside.any(1)).flatten()
    cols = torch.nonzero(inside.any(0)).flatten()
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    side = max(r1 - r0, c1 - c0)
    # the margin never reaches past the image's longer side: an object that fills the
    # image (a zoomed field of view) is not framed with padding it does not have
    side = min(side + 2 * math.ceil(margin * side), max(image.shape))

    def start(lo: int, hi: int, size: int) -> int:
        # inside the image where it is long enough, else centred on it (padded both ends)
        return min(max((lo + hi - side) // 2, 0), size - side) if side <= size else (size - side) // 2

    top, left = start(r0, r1, image.shape[0]), start(c0, c1, image.shape[1])
    out = image.new_zeros((side, side))
    ys, ye = max(top, 0), min(top + side, image.shape[0])
    xs, xe = max(left, 0), min(left + side, image.shape[1])
    out[ys - top : ye - top, xs - left : xe - left] = image[ys:ye, xs:xe]
    return out


def _area_matrix(n_in: int, n_out: int) -> Tensor:
    """``(n_out, n_in)``: row ``i`` averages the input cells under output cell ``i`` by overlap length."""
    edges_in = torch.arange(n_in + 1, dtype=torch.float64) / n_in
    edges_out = torch.arange(n_out + 1, dtype=torch.float64) / n_out
    lo = torch.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = torch.minimum(edges_out[1:, None], edges_in[None, 1:])
    return (hi - lo).clamp_min(0.0) * n_out


def area_resample(image: Tensor, n: int) -> Tensor:
    """Resample a square image to ``n x n`` by exact box (area) integration.

    Each output pixel is the mean of the input over its area (input pixels counted by their
    overlap), for any ratio of sizes: anti-aliased when shrinking, and the image mean is
    kept exactly.

    Shape: ``image`` ``(*batch, s, s)``; returns ``(*batch, n, n)`` (computed in float64,
    returned in the input's real dtype).
    """
    if not isinstance(image, Tensor) or image.dim() < 2 or image.shape[-1] != image.shape[-2]:
        raise ValueError(f"image must be a square (*batch, s, s) tensor, got {getattr(image, 'shape', image)}")
    n = positive_int(n, "n")
    W = _area_matrix(image.shape[-1], n).to(image.device)
    return (W @ image.to(torch.float64) @ W.T).to(image.dtype)


def _decode(item: RealImage) -> Tensor:
    """The file's pixels on the bench scale (CT window / MR maximum), full resolution, float64."""
    import pydicom

    path = real_image_path(item.file)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises several types for unreadable files
        raise RealImageError(f"{item.file}: not readable ({exc})") from exc
    check_image_dataset(ds, item.modality)
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as exc:  # a missing pixel-data handler (e.g. JPEG 2000) raises RuntimeError and others
        raise RealImageError(f"{item.file}: pixel data not decodable ({type(exc).__name__}: {exc}); "
                             "JPEG 2000 needs Pillow with OpenJPEG or pylibjpeg-openjpeg") from exc
    if pixels.ndim != 2:
        raise RealImageError(f"{item.file}: expected one 2-D slice, got pixel array {pixels.shape}")
    if item.modality == "CT":
        hu = pixels * float(ds.get("RescaleSlope", 1.0) or 1.0) + float(ds.get("RescaleIntercept", 0.0) or 0.0)
        return torch.from_numpy(np.clip((hu - _HU_AIR) / (_HU_TOP - _HU_AIR), 0.0, 1.0))
    magnitude = np.abs(pixels)
    return torch.from_numpy(magnitude / magnitude.max())


@functools.cache
def _loaded(file: str) -> Tensor | str:
    item = next(i for i in REAL_IMAGES if i.file == file)
    try:
        return square_crop(_decode(item))
    except RealImageError as exc:
        return str(exc)


def real_images(modality: str, n: int) -> tuple[list[str], Tensor | None, list[str]]:
    """The real test images of one modality, cropped square and area-resampled to ``n x n``.

    Parameters
    ----------
    modality : {"CT", "MR"}
    n : int
        Image side after resampling (e.g. twice the task size, to simulate on a finer grid).

    Returns
    -------
    names : list of str
        The files used, in :data:`REAL_IMAGES` order.
    images : Tensor or None
        Shape: ``(len(names), n, n)``, float64, CT in ``(HU + 1000) / 3000`` clipped to
        [0, 1], MR magnitudes with maximum 1 (before resampling); ``None`` if no file was usable.
    skipped : list of str
        One message per file that could not be used, saying why.
    """
    if modality not in ("CT", "MR"):
        raise ValueError(f"modality must be 'CT' or 'MR', got {modality!r}")
    n = positive_int(n, "n")
    names, images, skipped = [], [], []
    for item in REAL_IMAGES:
        if item.modality != modality:
            continue
        loaded = _loaded(item.file)
        if isinstance(loaded, str):
            skipped.append(loaded)
            continue
        names.append(item.file)
        images.append(area_resample(loaded, n))
    return names, (torch.stack(images) if images else None), skipped


__all__ = ["REAL_IMAGES", "RealImage", "RealImageError", "area_resample", "check_image_dataset", "real_image_path",
           "real_images", "square_crop"]
