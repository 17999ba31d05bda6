"""DICOM-CT-PD reader and writer: round trips, the tags one by one against the format's
definitions (Chen et al. 2015 and the DICOM-CT-PD user manual), bad files, the command line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon.cli import main
from precisionrecon.data.dicom_ct_pd import TAGS, read_dicom_ct_pd, write_dicom_ct_pd

pydicom = pytest.importorskip("pydicom")

ROWS, COLS = 4, 10


def geometry(mode: str = "FFSXYZ", detector: str = "cylindrical", n: int = 8) -> pr.HelicalConeBeam:
    xy = mode in ("FFSXY", "FFSXYZ")
    z = mode in ("FFSZ", "FFSXYZ")
    return pr.HelicalConeBeam(
        n_views=n, views_per_rotation=4, start_angle=0.3, det_shape=(ROWS, COLS), det_spacing=(1.1, 1.3),
        src_iso=595.0, src_det=1085.6, pitch=0.8, z_start=-20.0, detector=detector, det_offset=(0.55, -0.65),
        ffs_angle=[4e-4 * xy, -4e-4 * xy] * (n // 2), ffs_radius=[1.0 * xy, -1.0 * xy] * (n // 2),
        ffs_z=[0.1 * z] * (n // 2) + [-0.1 * z] * (n // 2))


def projections(g: pr.HelicalConeBeam) -> torch.Tensor:
    return torch.rand(g.proj_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5


def tag(ds, name: str):
    g, e, vr = TAGS[name]
    elem = ds[(g << 16) | e]
    assert elem.VR == vr, name
    return elem.value


@pytest.mark.parametrize("detector", ["cylindrical", "flat"])
@pytest.mark.parametrize("mode", ["FFSNONE", "FFSZ", "FFSXY", "FFSXYZ"])
def test_round_trip(tmp_path: Path, mode: str, detector: str) -> None:
    g = geometry(mode, detector)
    y = projections(g)
    paths = write_dicom_ct_pd(tmp_path, y, g)
    assert [p.name for p in paths] == [f"proj_{i:05d}.dcm" for i in range(1, 9)]
    scan = read_dicom_ct_pd(tmp_path, dtype=torch.float64)
    y2, g2 = scan
    step = float(y.max() - y.min()) / 65535
    assert float((y2 - y).abs().max()) <= 0.5 * step * (1 + 1e-6)
    assert isinstance(g2, pr.HelicalConeBeam)
    assert scan.ffs_mode == mode and scan.views_per_rotation == 4 and scan.water_attenuation == 0.0192
    assert g2.detector == detector and g2.det_shape == g.det_shape
    # geometry tags are float32: the geometry comes back to float32 precision
    np.testing.assert_allclose(g2.angles, g.angles, rtol=0, atol=1e-6)
    np.testing.assert_allclose(g2.to_vectors().numpy(), g.to_vectors().numpy(), rtol=0, atol=5e-4)
    assert g2.table_feed == pytest.approx(g.table_feed, abs=1e-4)
    assert g2.det_offset == pytest.approx(g.det_offset, abs=1e-5)
    for name in ("ffs_angle", "ffs_z", "ffs_radius"):
        np.testing.assert_allclose(getattr(g2, name), getattr(g, name), rtol=0, atol=1e-7)


def test_tags_one_by_one(tmp_path: Path) -> None:
    """Each attribute with its VR and the meaning of the format (Chen et al. 2015)."""
    g = geometry("FFSXYZ")
    y = projections(g)
    write_dicom_ct_pd(tmp_path, y, g, photon_statistics=np.linspace(1e5, 2e5, COLS))
    files = sorted(tmp_path.iterdir())
    c, s = g.focal_centres(), g.sources()
    for i in (0, 5):
        ds = pydicom.dcmread(files[i])
        for group in (0x7029, 0x7031, 0x7033, 0x7037, 0x7039, 0x7041):
            assert ds[(group << 16) | 0x0010].value == "DICOM-CT-PD"  # private creator of block 0x10
        assert tag(ds, "NumberofDetectorRows") == ROWS and tag(ds, "NumberofDetectorColumns") == COLS
        assert tag(ds, "DetectorElementTransverseSpacing") == pytest.approx(1.3, rel=1e-7)
        assert tag(ds, "DetectorElementAxialSpacing") == pytest.approx(1.1, rel=1e-7)
        assert tag(ds, "DetectorShape") == "CYLINDRICAL"
        phi0, z0, rho0 = (tag(ds, f"DetectorFocalCenter{k}") for k in ("AngularPosition", "AxialPosition",
                                                                        "RadialDistance"))
        assert 0 <= phi0 < 2 * math.pi  # wrapped
        # focal centre: x = -rho0 sin(phi0), y = rho0 cos(phi0), z = z0
        np.testing.assert_allclose([-rho0 * math.sin(phi0), rho0 * math.cos(phi0), z0], c[i], rtol=0, atol=2e-4)
        dphi, dz, drho = (tag(ds, f"Source{k}") for k in ("AngularPositionShift", "AxialPositionShift",
                                                          "RadialDistanceShift"))
        # source: (rho0 + drho, phi0 + dphi, z0 + dz)
        r, p = rho0 + drho, phi0 + dphi
        np.testing.assert_allclose([-r * math.sin(p), r * math.cos(p), z0 + dz], s[i], rtol=0, atol=2e-4)
        assert tag(ds, "ConstantRadialDistance") == pytest.approx(1085.6, rel=1e-7)
        # central element (column X, row Y), 1-based: where the ray focal centre -> isocentre hits
        x_col, y_row = tag(ds, "DetectorCentralElement")
        assert x_col == pytest.approx((COLS + 1) / 2 + 0.65 / 1.3, rel=1e-6)
        assert y_row == pytest.approx((ROWS + 1) / 2 + 0.55 / 1.1, rel=1e-6)
        assert tag(ds, "FlyingFocalSpotMode") == "FFSXYZ"
        assert tag(ds, "NumberofSourceAngularSteps") == 4
        assert tag(ds, "NumberofSpectra") == 1 and tag(ds, "SpectrumIndex") == 1
        assert tag(ds, "TypeofProjectionData") == "HELICAL" and tag(ds, "TypeofProjectionGeometry") == "FANBEAM"
        assert tag(ds, "LogFlag") == "YES"
        assert float(tag(ds, "WaterAttenuationCoefficient")) == 0.0192
        np.testing.assert_allclose(tag(ds, "PhotonStatistics"), np.linspace(1e5, 2e5, COLS), rtol=1e-7)
        assert float(ds.SpiralPitchFactor) == pytest.approx(0.8)
        assert ds.Modality == "CT" and int(ds.InstanceNumber) == i + 1
        # one detector column per DICOM row; DICOM row order: row 1 farthest into the gantry (largest z)
        assert (ds.Rows, ds.Columns) == (COLS, ROWS)
        stored = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(stored, y[i].numpy()[::-1].T, rtol=0, atol=1e-4 * 5)


def _hand_made(folder: Path, *, phi0: float, shape: str = "CYLINDRICAL", layout: str = "tcia", **over) -> Path:
    """One projection written tag by tag from the manual (not by our writer): a single 1 in DICOM row 1
    of column 1 (stored at index [column 0, row 0] in the TCIA layout)."""
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    values = {
        "NumberofDetectorRows": ROWS, "NumberofDetectorColumns": COLS, "DetectorElementTransverseSpacing": 1.0,
        "DetectorElementAxialSpacing": 1.0, "DetectorShape": shape, "DetectorFocalCenterAngularPosition": phi0,
        "DetectorFocalCenterAxialPosition": 5.0, "DetectorFocalCenterRadialDistance": 500.0,
        "ConstantRadialDistance": 1000.0, "DetectorCentralElement": [(COLS + 1) / 2, (ROWS + 1) / 2],
        "LogFlag": "YES",
    }
    values.update(over)
    for name, value in values.items():
        if value is None:
            continue
        g, e, vr = TAGS[name]
        ds.add_new((g << 16) | e, vr, value)
    image = np.zeros((COLS, ROWS), np.uint16)
    image[0, 0] = 1000
    if layout != "tcia":
        image = np.ascontiguousarray(image.T)
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = "0.001", "0"
    ds.PixelData = image.tobytes()
    folder.mkdir(exist_ok=True)
    path = folder / "p.dcm"
    ds.save_as(str(path), enforce_file_format=True)
    return path


@pytest.mark.parametrize("layout", ["tcia", "transposed"])
def test_reader_follows_the_manual(tmp_path: Path, layout: str) -> None:
    """phi0 = 0: focal centre at 12 o'clock (+y); seen from the table, column 1 is the leftmost (-x) and
    row 1 the farthest into the gantry (+z)."""
    _hand_made(tmp_path, phi0=0.0, layout=layout)
    y, g = read_dicom_ct_pd(tmp_path)
    np.testing.assert_allclose(g.focal_centres()[0], [0.0, 500.0, 5.0], atol=1e-9)
    vec = g.to_vectors().numpy()[0]
    assert vec[6] > 0 and abs(vec[7]) < 1e-12  # columns run along +x
    assert vec[11] > 0  # our rows run along +z
    assert float(y[0, ROWS - 1, 0]) == pytest.approx(1.0)  # DICOM row 1 (largest z) is our last row
    assert float(y.sum()) == pytest.approx(1.0)
    assert g.det_offset == (0.0, 0.0)
    # phi0 = pi / 2: the focal centre at 9 o'clock seen from the table, x = -rho0
    _hand_made(tmp_path, phi0=math.pi / 2)
    _, g = read_dicom_ct_pd(tmp_path)
    np.testing.assert_allclose(g.focal_centres()[0, :2], [-500.0, 0.0], atol=1e-4)


def test_vector_geometry_when_not_one_helix(tmp_path: Path) -> None:
    """Step-and-shoot (z jumps between rotations) gives per-view vectors, each view at its own z0."""
    g = geometry("FFSXY", n=8).replace(table_feed=0.0)
    write_dicom_ct_pd(tmp_path, projections(g), g)
    for i, path in enumerate(sorted(tmp_path.iterdir())):
        ds = pydicom.dcmread(path)
        g_, e_, _ = TAGS["DetectorFocalCenterAxialPosition"]
        ds[(g_ << 16) | e_].value = 10.0 * (i // 4)
        ds.save_as(str(path))
    _, g2 = read_dicom_ct_pd(tmp_path)
    assert isinstance(g2, pr.VectorGeometry) and g2.detector == "curved"
    vec, ref = g2.to_vectors().numpy(), g.to_vectors().numpy()
    z = 10.0 * (np.arange(8) // 4) - g.focal_centres()[:, 2]
    np.testing.assert_allclose(vec[:, 2] - ref[:, 2], z, atol=2e-4)
    np.testing.assert_allclose(vec[:, 5] - ref[:, 5], z, atol=2e-4)
    np.testing.assert_allclose(vec[:, [0, 1, 3, 4, 6, 7, 8, 9, 10, 11]], ref[:, [0, 1, 3, 4, 6, 7, 8, 9, 10, 11]],
                               atol=5e-4)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory"):
        read_dicom_ct_pd(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        read_dicom_ct_pd(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("not DICOM")
    with pytest.raises(ValueError, match=r"notes\.txt: not a readable DICOM file"):
        read_dicom_ct_pd(tmp_path / "text")
    _hand_made(tmp_path / "lacks", phi0=0.0, ConstantRadialDistance=None)
    with pytest.raises(ValueError, match=r"lacks DICOM-CT-PD attribute ConstantRadialDistance \(7031,1031\)"):
        read_dicom_ct_pd(tmp_path / "lacks")
    _hand_made(tmp_path / "sphere", phi0=0.0, shape="SPHERICAL")
    with pytest.raises(ValueError, match="SPHERICAL"):
        read_dicom_ct_pd(tmp_path / "sphere")
    _hand_made(tmp_path / "raw", phi0=0.0, LogFlag="NO")
    with pytest.raises(ValueError, match="not line integrals"):
        read_dicom_ct_pd(tmp_path / "raw")
    path = _hand_made(tmp_path / "short", phi0=0.0)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(str(path))
    with pytest.raises(ValueError, match="truncated"):
        read_dicom_ct_pd(tmp_path / "short")
    path = _hand_made(tmp_path / "size", phi0=0.0, NumberofDetectorRows=ROWS + 1)
    with pytest.raises(ValueError, match="the detector 5 rows x 10 columns"):
        read_dicom_ct_pd(tmp_path / "size")


def test_files_must_agree_and_spectra_are_chosen(tmp_path: Path) -> None:
    g = geometry("FFSNONE", n=4)
    paths = write_dicom_ct_pd(tmp_path / "a", projections(g), g)
    ds = pydicom.dcmread(paths[2])
    g_, e_, _ = TAGS["ConstantRadialDistance"]
    ds[(g_ << 16) | e_].value = 1000.0
    ds.save_as(str(paths[2]))
    with pytest.raises(ValueError, match=r"proj_00003\.dcm: ConstantRadialDistance"):
        read_dicom_ct_pd(tmp_path / "a")
    write_dicom_ct_pd(tmp_path / "b", projections(g), g, spectrum=(1, 2))
    second = write_dicom_ct_pd(tmp_path / "c", projections(g) * 2, g, spectrum=(2, 2))
    for p in second:
        p.rename(tmp_path / "b" / ("s2_" + p.name))
    with pytest.raises(ValueError, match=r"mixes spectra \[1, 2\]"):
        read_dicom_ct_pd(tmp_path / "b")
    scan = read_dicom_ct_pd(tmp_path / "b", spectrum=2)
    assert scan.spectrum == (2, 2) and scan.projections.shape == g.proj_shape


def test_writer_checks_its_input(tmp_path: Path) -> None:
    g = geometry()
    with pytest.raises(TypeError, match="HelicalConeBeam"):
        write_dicom_ct_pd(tmp_path, projections(g), g.circular())
    with pytest.raises(ValueError, match="projections"):
        write_dicom_ct_pd(tmp_path, projections(g)[:3], g)
    with pytest.raises(ValueError, match="photon_statistics"):
        write_dicom_ct_pd(tmp_path, projections(g), g, photon_statistics=[1.0, 2.0])


def test_command_line_reconstructs_a_dicom_series_in_hu(tmp_path: Path) -> None:
    """A water cylinder (mu = 0.0192 / mm) scanned helically: about 0 HU inside, -1000 outside, slices
    at their z with the spacing asked for."""
    mu = 0.0192
    phantom = [pr.data.ellipsoid((0.0, 0.0, 0.0), (10.0, 10.0, 40.0), (0.0, 0.0, 0.0), mu)]
    g = pr.HelicalConeBeam(n_views=160, views_per_rotation=32, det_shape=(8, 40), det_spacing=(2.0, 2.0),
                           src_iso=100, src_det=200, pitch=1.0, z_start=-20.0, ffs_angle=[0.002, -0.002] * 80)
    write_dicom_ct_pd(tmp_path / "proj", pr.data.analytic_projection(phantom, g), g, water_attenuation=mu)
    out = tmp_path / "images"
    assert main(["reconstruct", str(tmp_path / "proj"), "--out", str(out), "--size", "26", "--fov", "26",
                 "--slice", "2", "--no-progress"]) == 0
    files = sorted(out.iterdir())
    lo, hi = g.z_range(13.0)
    assert len(files) == int(np.floor((hi - lo) / 2)) + 1
    assert (tmp_path / "images.png").stat().st_size > 0
    series = [pydicom.dcmread(f) for f in files]
    z = [float(ds.ImagePositionPatient[2]) for ds in series]
    np.testing.assert_allclose(np.diff(z), 2.0, atol=1e-9)
    assert float(series[0].PixelSpacing[0]) == pytest.approx(1.0) and float(series[0].SliceThickness) == 2.0
    assert float(series[0].ImagePositionPatient[0]) == pytest.approx(-13 + 0.5)
    hu = pr.data.read_dicom_ct(out, hounsfield=True).image.numpy()
    centre, corner = hu[:, 11:15, 11:15], hu[:, :3, :3]  # the corner: outside the cylinder, inside the FOV
    assert abs(float(np.median(centre))) < 30
    assert float(np.median(corner)) == pytest.approx(-1000, abs=30)
    assert main(["reconstruct", str(tmp_path / "proj"), "--out", str(out), "--method", "unknown"]) == 2
