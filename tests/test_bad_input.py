"""Bad input raises ValueError/TypeError naming the argument and what was expected."""

from __future__ import annotations

import math

import pytest
import torch

import precisionrecon as pr


def _op() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((8, 9)), pr.ParallelBeam2D(angles=pr.angles(5), det_count=11))


def test_wrong_trailing_shape() -> None:
    op = _op()
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 8, 9\)"):
        op(torch.zeros(9, 8))
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 5, 11\)"):
        op.T(torch.zeros(5, 10))
    with pytest.raises(ValueError, match="x must have shape"):
        op(torch.zeros(9))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])
def test_int_or_complex_dtype(dtype: torch.dtype) -> None:
    op = _op()
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        op(torch.zeros(8, 9, dtype=dtype))
    with pytest.raises(TypeError, match="y must be float32 or float64"):
        op.T(torch.zeros(5, 11, dtype=dtype))


def test_not_a_tensor() -> None:
    import numpy as np

    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        _op()(np.zeros((8, 9)))


def test_device_mismatch() -> None:
    op = _op()
    with pytest.raises(ValueError, match=r"x is on meta, but the operator expects tensors on cpu"):
        op(torch.zeros(8, 9, device="meta"))
    with pytest.raises(ValueError, match="device must be one of"):
        pr.XRayTransform(pr.Volume((8, 9)), pr.ParallelBeam2D(angles=pr.angles(5), det_count=11), device="meta")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_angles(bad: float) -> None:
    with pytest.raises(ValueError, match="angles must be finite"):
        pr.ParallelBeam2D(angles=[0.0, bad], det_count=4)
    with pytest.raises(ValueError, match="angles must be finite"):
        pr.ConeBeam3D(angles=torch.tensor([bad]), det_shape=(2, 2), det_spacing=1, src_iso=5, src_det=9)


@pytest.mark.parametrize("field", ["src_iso", "src_det"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_distances(field: str, bad: float) -> None:
    kwargs = {"src_iso": 10.0, "src_det": 20.0, field: bad}
    with pytest.raises(ValueError, match=f"{field} must be finite"):
        pr.FanBeam2D(angles=[0.0], det_count=4, det_spacing=1.0, **kwargs)
    with pytest.raises(ValueError, match=f"{field} must be finite"):
        pr.ConeBeam3D(angles=[0.0], det_shape=(2, 2), det_spacing=1.0, **kwargs)


def test_non_finite_spacing_and_offset() -> None:
    with pytest.raises(ValueError, match="det_spacing must be finite"):
        pr.ParallelBeam2D(angles=[0.0], det_count=4, det_spacing=float("nan"))
    with pytest.raises(ValueError, match="det_offset must be finite"):
        pr.ParallelBeam2D(angles=[0.0], det_count=4, det_offset=float("inf"))
    with pytest.raises(ValueError, match="spacing"):
        pr.Volume((4, 4), spacing=(1.0, float("nan")))
    with pytest.raises(ValueError, match="vectors must be finite"):
        pr.VectorGeometry(vectors=[[0, 1, 0, 0, 1, float("nan")]], det_shape=3, beam="parallel")


@pytest.mark.parametrize(("src_iso", "src_det"), [(20.0, 20.0), (20.0, 10.0)])
def test_src_det_must_exceed_src_iso(src_iso: float, src_det: float) -> None:
    with pytest.raises(ValueError, match="src_det must exceed src_iso"):
        pr.FanBeam2D(angles=[0.0], det_count=4, det_spacing=1.0, src_iso=src_iso, src_det=src_det)
    with pytest.raises(ValueError, match="src_det must exceed src_iso"):
        pr.ConeBeam3D(angles=[0.0], det_shape=(2, 2), det_spacing=1.0, src_iso=src_iso, src_det=src_det)


def test_non_positive_distances_and_spacing() -> None:
    with pytest.raises(ValueError, match="src_iso must be positive"):
        pr.FanBeam2D(angles=[0.0], det_count=4, det_spacing=1.0, src_iso=-1.0, src_det=5.0)
    with pytest.raises(ValueError, match="det_spacing must be positive"):
        pr.ParallelBeam2D(angles=[0.0], det_count=4, det_spacing=0.0)
    with pytest.raises(ValueError, match=r"spacing\[1\] must be positive"):
        pr.Volume((4, 4), spacing=(1.0, -1.0))


def test_zero_views_or_pixels() -> None:
    with pytest.raises(ValueError, match="angles must hold at least one view"):
        pr.ParallelBeam2D(angles=[], det_count=4)
    with pytest.raises(ValueError, match="angles must hold at least one view"):
        pr.ConeBeam3D(angles=torch.zeros(0), det_shape=(2, 2), det_spacing=1.0, src_iso=5, src_det=9)
    with pytest.raises(ValueError, match="det_count must be positive"):
        pr.ParallelBeam2D(angles=[0.0], det_count=0)
    with pytest.raises(ValueError, match=r"det_shape\[0\] must be positive"):
        pr.ParallelBeam3D(angles=[0.0], det_shape=(0, 3))
    with pytest.raises(ValueError, match="vectors must hold at least one view"):
        pr.VectorGeometry(vectors=torch.zeros(0, 6), det_shape=3, beam="parallel")
    with pytest.raises(ValueError, match=r"shape\[1\] must be positive"):
        pr.Volume((4, 0))
    with pytest.raises(ValueError, match="n must be positive"):
        pr.angles(0)


def test_wrong_types_and_choices() -> None:
    with pytest.raises(TypeError, match="det_count must be an int"):
        pr.ParallelBeam2D(angles=[0.0], det_count=4.5)
    with pytest.raises(TypeError, match="angles must hold real numbers"):
        pr.ParallelBeam2D(angles=["a"], det_count=4)
    with pytest.raises(TypeError, match="angles must be real"):
        pr.ParallelBeam2D(angles=torch.zeros(2, dtype=torch.complex64), det_count=4)
    with pytest.raises(ValueError, match="angles must be 1-D"):
        pr.ParallelBeam2D(angles=[[0.0]], det_count=4)
    with pytest.raises(ValueError, match="detector must be one of"):
        pr.FanBeam2D(angles=[0.0], det_count=4, det_spacing=1.0, src_iso=5, src_det=9, detector="curved")
    with pytest.raises(ValueError, match="detector must be one of"):
        pr.ConeBeam3D(angles=[0.0], det_shape=(2, 2), det_spacing=1.0, src_iso=5, src_det=9, detector="arc")
    with pytest.raises(ValueError, match="det_shape must be"):
        pr.ConeBeam3D(angles=[0.0], det_shape=5, det_spacing=1.0, src_iso=5, src_det=9)
    with pytest.raises(TypeError, match="positional argument"):
        pr.ParallelBeam2D([0.0], 4)  # type: ignore[misc]
    with pytest.raises(ValueError, match="shape must have 2 or 3 entries"):
        pr.Volume((4,))


def test_vector_geometry_validation() -> None:
    with pytest.raises(ValueError, match="6 \\(2-D\\), 12 \\(3-D\\) or 15 \\(3-D, cylinder axis point\\) columns"):
        pr.VectorGeometry(vectors=torch.zeros(2, 5), det_shape=3, beam="cone")
    with pytest.raises(ValueError, match="det_shape must be \\(rows, cols\\)"):
        pr.VectorGeometry(vectors=torch.ones(2, 12), det_shape=3, beam="cone")
    with pytest.raises(ValueError, match="ray direction of a parallel-beam view is zero"):
        pr.VectorGeometry(vectors=[[0, 0, 0, 0, 1, 0]], det_shape=3, beam="parallel")
    with pytest.raises(ValueError, match="source coincides with the detector centre"):
        pr.VectorGeometry(vectors=[[1, 1, 1, 1, 1, 0]], det_shape=3, beam="cone")
    with pytest.raises(ValueError, match=r"u must be perpendicular to d - s"):
        pr.VectorGeometry(vectors=[[0, 10, 0, -10, 1, 0.5]], det_shape=3, beam="cone", detector="curved")
    with pytest.raises(ValueError, match="u must be perpendicular to v"):
        pr.VectorGeometry(vectors=[[0, 10, 0, 0, -10, 0, 1, 0, 0.5, 0, 0, 1]], det_shape=(2, 3), beam="cone",
                          detector="curved")
    with pytest.raises(ValueError, match="detector='curved' needs beam='cone'"):
        pr.VectorGeometry(vectors=[[0, 1, 0, 0, 1, 0]], det_shape=3, beam="parallel", detector="curved")


def test_mismatched_dimensions_and_composition() -> None:
    with pytest.raises(ValueError, match="a 2-D volume needs a 2-D geometry"):
        pr.XRayTransform(pr.Volume((4, 4)), pr.ParallelBeam3D(angles=[0.0], det_shape=(2, 2)))
    with pytest.raises(TypeError, match="volume must be a precisionrecon Volume"):
        pr.XRayTransform((4, 4), pr.ParallelBeam2D(angles=[0.0], det_count=3))
    with pytest.raises(TypeError, match="geometry must be a precisionrecon geometry"):
        pr.XRayTransform(pr.Volume((4, 4)), "parallel")
    a = _op()
    b = pr.XRayTransform(pr.Volume((8, 9)), pr.ParallelBeam2D(angles=pr.angles(math.floor(6)), det_count=11))
    with pytest.raises(ValueError, match="cannot compose"):
        _ = a @ b
    with pytest.raises(ValueError, match="cannot add"):
        _ = a + b
