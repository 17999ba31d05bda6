"""ISMRMRD raw data reader (issue 15): files written with the ismrmrd package itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from precisionrecon import mr

ismrmrd = pytest.importorskip("ismrmrd")
xsd = pytest.importorskip("ismrmrd.xsd")

N_COILS = 4


def _header(nx: int, ny: int, nz: int, recon_x: int, step1: tuple[int, int, int], n_slices: int) -> str:
    def space(x: int) -> object:
        return xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=x, y=ny, z=nz),
                                     fieldOfView_mm=xsd.fieldOfViewMm(x=float(x), y=float(ny), z=5.0))

    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=step1[0], maximum=step1[1], center=step1[2]),
        kspace_encoding_step_2=xsd.limitType(minimum=0, maximum=nz - 1, center=nz // 2),
        slice=xsd.limitType(minimum=0, maximum=n_slices - 1, center=0),
    )
    enc = xsd.encodingType(encodedSpace=space(nx), reconSpace=space(recon_x), encodingLimits=limits,
                           trajectory=xsd.trajectoryType.CARTESIAN)
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(receiverChannels=N_COILS),
        encoding=[enc],
    )
    return xsd.ToXML(header)


def _write(path: Path, images: np.ndarray, recon_x: int, lines: np.ndarray, centre: int) -> np.ndarray:
    """Write coil images ``(n_slices, coils, nx_enc, ny)`` as ISMRMRD acquisitions (one per
    slice and acquired line, readout along x) plus a noise scan; return their k-space."""
    n_slices, _, nx, ny = images.shape
    kspace = mr.fftc(torch.from_numpy(images)).numpy().astype(np.complex64)  # (slices, coils, kx, ky)
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dset:
        dset.write_xml_header(_header(nx, ny, 1, recon_x, (int(lines.min()), int(lines.max()), centre), n_slices))
        noise = ismrmrd.Acquisition.from_array(np.ones((N_COILS, nx), dtype=np.complex64) * 1e3)
        noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        dset.append_acquisition(noise)
        for s in range(n_slices):
            for line in lines:
                ky = int(line) - centre + ny // 2
                acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[s, :, :, ky]), center_sample=nx // 2)
                acq.idx.kspace_encode_step_1 = int(line)
                acq.idx.slice = s
                dset.append_acquisition(acq)
    return kspace


def _object(n_slices: int, nx: int, ny: int) -> np.ndarray:
    """Coil images on the 2x oversampled readout grid: the object sits in the central half."""
    x = mr.shepp_logan((nx // 2, ny), dtype=torch.complex128)
    maps = mr.birdcage_maps((N_COILS, nx // 2, ny), dtype=torch.complex128)
    coil = (x * maps).numpy()
    padded = np.zeros((n_slices, N_COILS, nx, ny), dtype=np.complex128)
    padded[:, :, nx // 4: nx // 4 + nx // 2] = coil * (1 + np.arange(n_slices))[:, None, None, None]
    return padded


def test_read_ismrmrd_partial_fourier_and_oversampling(tmp_path: Path) -> None:
    nx, ny, n_slices = 64, 40, 2
    images = _object(n_slices, nx, ny)
    # partial Fourier: lines 10..39 of 40 (centre 20), every line of the acquired part
    lines = np.arange(10, 40)
    path = tmp_path / "raw.mrd"
    _write(path, images, nx // 2, lines, centre=20)

    data = mr.read_ismrmrd(path)
    assert data.kspace.shape == (n_slices, N_COILS, nx // 2, ny) and data.kspace.dtype == torch.complex64
    assert data.encoded_matrix == (nx, ny, 1) and data.recon_matrix == (nx // 2, ny, 1)
    assert data.limits["kspace_encoding_step_1"] == (10, 39, 20)
    assert int(data.header.encoding[0].encodedSpace.matrixSize.x) == nx
    # expected: the k-space of the cropped (oversampling-free) coil images, zero-filled lines
    expected = mr.fftc(torch.from_numpy(images[:, :, nx // 4: nx // 4 + nx // 2]))
    acquired = torch.zeros(ny, dtype=torch.bool)
    acquired[lines - 20 + ny // 2] = True
    assert torch.equal(data.mask, acquired.expand(n_slices, nx // 2, ny))
    scale = float(expected.abs().max())
    torch.testing.assert_close(data.kspace[..., acquired].to(torch.complex128), expected[..., acquired],
                               rtol=0, atol=1e-5 * scale)
    assert float(data.kspace[..., ~acquired].abs().max()) == 0.0  # zero-filled, the noise scan skipped


def test_read_ismrmrd_keeps_oversampling_and_undersampled_lines(tmp_path: Path) -> None:
    nx, ny = 32, 24
    images = _object(1, nx, ny)
    lines = np.arange(0, ny, 2)  # 2x undersampled, symmetric
    path = tmp_path / "raw.h5"
    kspace = _write(path, images, nx // 2, lines, centre=ny // 2)
    data = mr.read_ismrmrd(path, remove_oversampling=False)
    assert data.kspace.shape == (1, N_COILS, nx, ny)
    torch.testing.assert_close(data.kspace[..., lines], torch.from_numpy(kspace[..., lines]))
    assert torch.equal(data.mask[0, 0], torch.from_numpy(np.isin(np.arange(ny), lines)))


def test_read_ismrmrd_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a file"):
        mr.read_ismrmrd(tmp_path / "missing.mrd")
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["kspace"] = np.zeros((2, 2), dtype=np.complex64)
    with pytest.raises(ValueError, match="not an ISMRMRD file"):
        mr.read_ismrmrd(tmp_path / "other.h5")
    path = tmp_path / "raw.mrd"
    _write(path, _object(1, 16, 8), 8, np.arange(8), centre=4)
    with pytest.raises(ValueError, match="no image acquisitions"):
        mr.read_ismrmrd(path, contrast=1)
    with pytest.raises(ValueError, match="encoding"):
        mr.read_ismrmrd(path, encoding=1)
    with pytest.raises(TypeError, match="remove_oversampling"):
        mr.read_ismrmrd(path, remove_oversampling=1)  # type: ignore[arg-type]


def test_cli_reconstructs_ismrmrd(tmp_path: Path) -> None:
    from precisionrecon import cli

    nx, ny = 64, 32
    images = _object(1, nx, ny)
    lines = np.concatenate([np.arange(0, ny, 2), np.arange(ny // 2 - 4, ny // 2 + 4)])  # 2x with 8 ACS lines
    path = tmp_path / "raw.mrd"
    _write(path, images, nx // 2, np.unique(lines), centre=ny // 2)
    out = tmp_path / "cg.npy"
    assert cli.main(["reconstruct", str(path), "--method", "cg-sense", "--out", str(out), "--iters", "15",
                     "--no-progress"]) == 0
    image = np.abs(np.load(out))
    assert image.shape == (1, nx // 2, ny)
    ref = mr.rss(torch.from_numpy(images[:, :, nx // 4: nx // 4 + nx // 2])).numpy()
    # CG-SENSE with ESPIRiT maps: the object's magnitude (coil-0 phase aside) to a few percent
    assert float(np.linalg.norm(image - ref) / np.linalg.norm(ref)) < 0.05
