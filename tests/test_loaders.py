"""Loaders: LoDoPaB-CT HDF5 layout and geometry (checked against ODL's ``parallel_beam_geometry``,
as dival builds it), DICOM CT (HU -> attenuation) and MR slices, on small files written here."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.data import loaders as ld


def _write_lodopab(root: Path, part: str, obs: np.ndarray, gt: np.ndarray | None, index: int = 0,
                   total: int | None = None) -> None:
    """One LoDoPaB-CT chunk file pair; ``total`` samples declared (unwritten ones stay unallocated)."""
    n = total or obs.shape[0]
    with h5py.File(root / f"observation_{part}_{index:03d}.hdf5", "w") as f:
        d = f.create_dataset("data", shape=(n, 1000, 513), dtype="float32", chunks=(1, 1000, 513))
        d[: obs.shape[0]] = obs
    if gt is not None:
        with h5py.File(root / f"ground_truth_{part}_{index:03d}.hdf5", "w") as f:
            d = f.create_dataset("data", shape=(n, 362, 362), dtype="float32", chunks=(1, 362, 362))
            d[: gt.shape[0]] = gt


def test_lodopab_geometry_matches_odl() -> None:
    odl = pytest.importorskip("odl")
    from precisionrecon.interop import from_odl
    from precisionrecon.interop.odl import import_odl

    _, tomo = import_odl()
    space = odl.uniform_discr([-130.0, -130.0], [130.0, 130.0], (362, 362), dtype="float32")  # dival, in mm
    geom = tomo.parallel_beam_geometry(space, num_angles=1000, det_shape=513)
    vol_odl, geom_odl = from_odl(space, geom)
    vol, ours = ld.lodopab_geometry()
    assert vol == vol_odl
    np.testing.assert_allclose(ours.to_vectors(), geom_odl.to_vectors(), atol=1e-9)


def test_lodopab_round_trip(tmp_path: Path) -> None:
    vol, geom = ld.lodopab_geometry()
    A = pr.XRayTransform(vol, geom)
    gt = torch.stack([pr.data.shepp_logan_image(vol), 0.5 * pr.data.shepp_logan_image(vol)]) * 0.4
    obs_m = (A(gt) / 1000.0).numpy()  # stored: line integrals in metres of the normalised image
    # file 000: a full chunk of 128 declared, sample 0 and 1 written; file 001: 1 sample
    _write_lodopab(tmp_path, "test", obs_m, gt.numpy(), 0, total=128)
    _write_lodopab(tmp_path, "test", obs_m[1:], gt.numpy()[1:], 1)
    ds = ld.LoDoPaB(tmp_path, "test")
    assert len(ds) == 129
    obs, truth = ds[1]
    torch.testing.assert_close(truth, gt[1])
    torch.testing.assert_close(obs, A(truth), rtol=1e-5, atol=1e-4)  # units="mm": our A(gt)
    _, truth_last = ds[-1]
    torch.testing.assert_close(truth_last, gt[1])
    obs_raw, _ = ld.LoDoPaB(tmp_path, "test", units="m", dtype=torch.float64)[128]
    assert obs_raw.dtype == torch.float64
    np.testing.assert_allclose(obs_raw.numpy(), obs_m[1], rtol=1e-6)
    with pytest.raises(IndexError):
        ds[129]


def test_lodopab_challenge_and_errors(tmp_path: Path) -> None:
    _write_lodopab(tmp_path, "challenge", np.ones((1, 1000, 513), np.float32), None)
    obs, gt = ld.LoDoPaB(tmp_path, "challenge")[0]
    assert gt is None and obs.shape == (1000, 513) and float(obs[0, 0]) == 1000.0
    with pytest.raises(FileNotFoundError, match="observation_train"):
        ld.LoDoPaB(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ld.LoDoPaB(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="part must be one of"):
        ld.LoDoPaB(tmp_path, "holdout")
    with pytest.raises(ValueError, match="units"):
        ld.LoDoPaB(tmp_path, "challenge", units="cm")
    with h5py.File(tmp_path / "observation_validation_000.hdf5", "w") as f:
        f.create_dataset("data", data=np.zeros((1, 10, 513), np.float32))
    with pytest.raises(ValueError, match=r"\(n, 1000, 513\)"):
        ld.LoDoPaB(tmp_path, "validation")


def test_dicom_ct_hu_to_attenuation(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    hu = np.array([[-1000.0, 0.0, 1000.0], [-500.0, 40.0, 3000.0]])
    ld.write_dicom(tmp_path / "ct.dcm", hu, modality="CT", spacing=(0.7, 0.8), slope=1.0, intercept=-1024.0)
    img = ld.read_dicom_ct(tmp_path / "ct.dcm", dtype=torch.float64)
    assert img.unit == "1/mm" and img.volume == pr.Volume((2, 3), spacing=(0.7, 0.8))
    expected = ld.MU_WATER + hu * (ld.MU_WATER - ld.MU_AIR) / 1000.0
    np.testing.assert_allclose(img.image.numpy(), expected, rtol=1e-12)
    assert abs(float(img.image[0, 0]) - ld.MU_AIR) < 1e-12 and abs(float(img.image[0, 1]) - ld.MU_WATER) < 1e-12
    np.testing.assert_array_equal(ld.read_dicom_ct(tmp_path / "ct.dcm", hounsfield=True).image.numpy(), hu)
    # slope 2: stored integers are halved, values come back up to the rounding
    ld.write_dicom(tmp_path / "ct2.dcm", hu, modality="CT", slope=2.0, intercept=-1024.0)
    np.testing.assert_allclose(ld.read_dicom_ct(tmp_path / "ct2.dcm", hounsfield=True).image.numpy(), hu, atol=1.0)


def test_dicom_series_sorted_by_position(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    series = tmp_path / "series"
    series.mkdir()
    for k, z in enumerate((5.0, 2.5, 0.0)):  # file order reverses the slice order
        ld.write_dicom(series / f"s{k}.dcm", np.full((4, 4), 100.0 * z), modality="CT", position=(0, 0, z),
                      instance=k + 1, intercept=-1024.0)
    img = ld.read_dicom_ct(series, hounsfield=True)
    assert img.image.shape == (3, 4, 4) and img.volume.spacing == (2.5, 1.0, 1.0)
    np.testing.assert_array_equal(img.image[:, 0, 0].numpy(), [0.0, 250.0, 500.0])


def test_dicom_mr_and_errors(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    mag = np.arange(12.0).reshape(3, 4) * 10
    ld.write_dicom(tmp_path / "mr.dcm", mag, modality="MR", spacing=(1.5, 1.5))
    img = ld.read_dicom_mr(tmp_path / "mr.dcm")
    np.testing.assert_array_equal(img.image.numpy(), mag)
    assert img.modality == "MR" and img.volume.spacing == (1.5, 1.5)
    assert math.isclose(float(ld.read_dicom_mr(tmp_path / "mr.dcm", normalize=True).image.max()), 1.0)
    with pytest.raises(ValueError, match="expected CT DICOM"):
        ld.read_dicom_ct(tmp_path / "mr.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom file")
    with pytest.raises(ValueError, match="not a readable DICOM"):
        ld.read_dicom_mr(tmp_path / "junk.dcm")
    with pytest.raises(FileNotFoundError):
        ld.read_dicom_mr(tmp_path / "missing.dcm")
    with pytest.raises(ValueError, match="mu_water"):
        ld.read_dicom_ct(tmp_path / "mr.dcm", mu_water=0.0)
    with pytest.raises(ValueError, match="2-D"):
        ld.write_dicom(tmp_path / "x.dcm", np.zeros((2, 2, 2)), modality="CT")
