"""fastMRI HDF5 loader, on small files written here in the exact fastMRI layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from precisionrecon import mr

h5py = pytest.importorskip("h5py")

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <studyInformation><studyTime>12:00:00</studyTime></studyInformation>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{ex}</x><y>{ey}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>280</x><y>140.5</y><z>4.5</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm>
    </reconSpace>
    <trajectory>cartesian</trajectory>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{kmax}</maximum><center>{kc}</center></kspace_encoding_step_1>
      <slice><minimum>0</minimum><maximum>1</maximum><center>0</center></slice>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>
"""

H, W, CROP = 40, 30, (24, 24)


def _ifft2c(k: np.ndarray) -> np.ndarray:
    """fastMRI's ifft2c, written with NumPy (independent of the library)."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _crop(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    top, left = (x.shape[-2] - shape[0]) // 2, (x.shape[-1] - shape[1]) // 2
    return x[..., top : top + shape[0], left : left + shape[1]]


def _kspace(n_slices: int, n_coils: int | None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n_slices, H, W) if n_coils is None else (n_slices, n_coils, H, W)
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def _write(path: Path, kspace: np.ndarray, *, target_key: str | None, mask: np.ndarray | None = None,
           header: bool = True) -> dict[str, object]:
    """A file laid out as fastMRI's: datasets kspace, reconstruction_*, (mask), ismrmrd_header; attrs."""
    attrs: dict[str, object] = {"acquisition": "CORPD_FBK", "max": 0.000851, "norm": 0.0312, "patient_id": "abc123"}
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=kspace)
        if target_key == "reconstruction_rss":
            rss = np.sqrt((np.abs(_ifft2c(kspace)) ** 2).sum(axis=1))
            hf.create_dataset(target_key, data=_crop(rss, CROP).astype(np.float32))
        elif target_key == "reconstruction_esc":
            hf.create_dataset(target_key, data=_crop(np.abs(_ifft2c(kspace)), CROP).astype(np.float32))
        if mask is not None:
            hf.create_dataset("mask", data=mask)
            attrs |= {"acceleration": 4, "num_low_frequency": 8}
        if header:
            xml = HEADER.format(ex=2 * H, ey=W, rx=CROP[0], ry=CROP[1], kmax=W - 5, kc=W // 2 - 2)
            hf.create_dataset("ismrmrd_header", data=np.bytes_(xml.encode()))
        for key, value in attrs.items():
            hf.attrs[key] = value
    return attrs


def test_multicoil_file(tmp_path: Path) -> None:
    k = _kspace(3, 4)
    attrs = _write(tmp_path / "file_brain_AXT2_200_2000019.h5", k, target_key="reconstruction_rss")
    f = mr.read_fastmri(tmp_path / "file_brain_AXT2_200_2000019.h5")
    assert f.multicoil and f.kspace.shape == (3, 4, H, W) and f.kspace.dtype == torch.complex64
    np.testing.assert_array_equal(f.kspace.numpy(), k)
    assert f.target_key == "reconstruction_rss" and f.target.shape == (3, *CROP) and f.target.dtype == torch.float32
    assert f.attrs == pytest.approx(attrs)
    assert isinstance(f.attrs["acquisition"], str) and isinstance(f.attrs["max"], float)
    assert f.mask is None and f.slices == (0, 1, 2)
    # the fastMRI target is rss(ifft2c(kspace)) cropped to the recon size
    torch.testing.assert_close(mr.rss_target(f.kspace, CROP), f.target, rtol=1e-5, atol=1e-6)
    h = f.header
    assert h.encoding_size == (2 * H, W, 1) and h.recon_size == (*CROP, 1)
    assert h.encoding_fov_mm == (280.0, 140.5, 4.5) and h.recon_fov_mm == (140.0, 140.0, 3.0)
    assert h.kspace_center == W // 2 - 2 and h.kspace_maximum == W - 5
    assert h.padding_left == W // 2 - (W // 2 - 2) and h.padding_right == h.padding_left + W - 4
    assert "ismrmrdHeader" in f.header_xml


def test_singlecoil_file_and_slices(tmp_path: Path) -> None:
    k = _kspace(4, None, seed=1)
    _write(tmp_path / "file1000001.h5", k, target_key="reconstruction_esc")
    f = mr.read_fastmri(tmp_path / "file1000001.h5", slices=[3, 1, 3])
    assert not f.multicoil and f.kspace.shape == (3, H, W) and f.slices == (3, 1, 3)
    np.testing.assert_array_equal(f.kspace.numpy(), k[[3, 1, 3]])
    esc = _crop(np.abs(_ifft2c(k[[3, 1, 3]])), CROP)
    np.testing.assert_allclose(f.target.numpy(), esc, rtol=1e-5)
    one = mr.read_fastmri(tmp_path / "file1000001.h5", slices=-1)
    assert one.kspace.shape == (1, H, W) and one.slices == (3,)
    np.testing.assert_array_equal(one.kspace[0].numpy(), k[3])
    part = mr.read_fastmri(tmp_path / "file1000001.h5", slices=slice(1, 3))
    np.testing.assert_array_equal(part.kspace.numpy(), k[1:3])
    with pytest.raises(ValueError, match="out of range"):
        mr.read_fastmri(tmp_path / "file1000001.h5", slices=4)


def test_test_set_file_with_mask(tmp_path: Path) -> None:
    mask = np.zeros(W, dtype=bool)
    mask[::4] = True
    mask[W // 2 - 4 : W // 2 + 4] = True
    k = _kspace(2, 3, seed=2) * mask  # test files hold undersampled k-space
    _write(tmp_path / "file_test.h5", k, target_key=None, mask=mask)
    f = mr.read_fastmri(tmp_path / "file_test.h5")
    assert f.target is None and f.target_key is None
    assert f.mask.dtype == torch.bool and torch.equal(f.mask, torch.from_numpy(mask))
    assert f.attrs["acceleration"] == 4 and f.attrs["num_low_frequency"] == 8
    box = mr.acs_region(f.mask.expand(H, W))
    assert box[1] == slice(W // 2 - 4, W // 2 + 4) and box[0] == slice(0, H)


def test_slice_dataset(tmp_path: Path) -> None:
    _write(tmp_path / "a.h5", _kspace(2, 2, seed=3), target_key="reconstruction_rss")
    _write(tmp_path / "b.h5", _kspace(3, 2, seed=4), target_key="reconstruction_rss", header=False)
    ds = mr.FastMRISliceDataset([tmp_path / "a.h5", tmp_path / "b.h5"])
    assert len(ds) == 5
    item = ds[1]
    assert item["fname"] == "a.h5" and item["slice"] == 1 and item["kspace"].shape == (2, H, W)
    assert item["attrs"]["padding_left"] == 2 and item["attrs"]["recon_size"] == (*CROP, 1)
    torch.testing.assert_close(mr.rss_target(item["kspace"], CROP), item["target"], rtol=1e-5, atol=1e-6)
    last = ds[4]
    assert last["fname"] == "b.h5" and last["slice"] == 2 and "padding_left" not in last["attrs"]


def test_center_crop_convention() -> None:
    x = torch.arange(7 * 6).reshape(7, 6)
    np.testing.assert_array_equal(mr.center_crop(x, (4, 3)).numpy(), _crop(x.numpy(), (4, 3)))
    with pytest.raises(ValueError, match="crop"):
        mr.center_crop(x, (8, 3))


def test_bad_files(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "empty.h5", "w") as hf:
        hf.create_dataset("image", data=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="kspace"):
        mr.read_fastmri(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "real.h5", "w") as hf:
        hf.create_dataset("kspace", data=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="complex"):
        mr.read_fastmri(tmp_path / "real.h5")
    with pytest.raises(ValueError, match="XML"):
        mr.parse_ismrmrd_header("<ismrmrdHeader")
    with pytest.raises(ValueError, match="encodedSpace"):
        mr.parse_ismrmrd_header('<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"/>')
