"""The shared argument checks of precisionrecon._validate: accepted values come back
normalised, rejected ones raise TypeError/ValueError naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon import _validate as v


def test_scalars() -> None:
    assert v.finite_float(np.float32(1.5), "tol") == 1.5
    assert v.finite_float(0, "tol", minimum=0.0) == 0.0
    assert v.positive_float(2, "step") == 2.0
    assert v.check_int(np.int64(0), "n_iter", minimum=0) == 0
    assert v.positive_int(3, "n") == 3
    with pytest.raises(TypeError, match="tol must be a real number, got bool"):
        v.finite_float(True, "tol")
    with pytest.raises(TypeError, match="tol must be a real number, got str"):
        v.finite_float("1", "tol")
    with pytest.raises(ValueError, match="tol must be finite, got nan"):
        v.finite_float(math.nan, "tol")
    with pytest.raises(ValueError, match=r"tol must be >= 0\.0, got -1\.0"):
        v.finite_float(-1, "tol", minimum=0.0)
    with pytest.raises(ValueError, match=r"step must be positive, got 0\.0"):
        v.positive_float(0.0, "step")
    with pytest.raises(ValueError, match="step must be finite"):
        v.positive_float(math.inf, "step")
    with pytest.raises(TypeError, match="n_iter must be an int, got float"):
        v.check_int(1.0, "n_iter")
    with pytest.raises(ValueError, match="n_iter must be >= 0, got -1"):
        v.check_int(-1, "n_iter", minimum=0)
    with pytest.raises(ValueError, match="n must be positive, got 0"):
        v.positive_int(0, "n")
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        v.positive_int(True, "n")
    assert v.choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b'\), got 'c'"):
        v.choice("c", "mode", ("a", "b"))


def test_sequences() -> None:
    assert v.per_axis(2, 3, "spacing", positive=True) == (2.0, 2.0, 2.0)
    assert v.per_axis([1, -2], 2, "offset", positive=False) == (1.0, -2.0)
    with pytest.raises(ValueError, match="spacing must be a number or 3 numbers, got 2"):
        v.per_axis([1, 2], 3, "spacing", positive=True)
    with pytest.raises(ValueError, match=r"spacing\[1\] must be positive"):
        v.per_axis([1, 0], 2, "spacing", positive=True)
    assert v.as_shape(4) == (4,)
    assert v.as_shape(torch.Size([2, 3])) == (2, 3)
    with pytest.raises(ValueError, match="image_shape must be a non-empty tuple of positive ints"):
        v.as_shape((2, 0), "image_shape")
    with pytest.raises(ValueError, match="shape must be a non-empty tuple of positive ints"):
        v.as_shape(())
    with pytest.raises(TypeError, match="shape must be a tuple of ints"):
        v.as_shape(None)
    np.testing.assert_array_equal(v.as_float_array(torch.tensor([1, 2]), "x"), [1.0, 2.0])
    with pytest.raises(TypeError, match="x must be real"):
        v.as_float_array(torch.ones(2, dtype=torch.complex64), "x")
    with pytest.raises(ValueError, match=r"x must be 1-D, got shape \(1, 2\)"):
        v.as_float_array([[1, 2]], "x")
    with pytest.raises(ValueError, match="x must be finite"):
        v.as_float_array([1.0, math.inf], "x")
    assert v.angles_tuple([0, 1]) == (0.0, 1.0)
    with pytest.raises(ValueError, match="angles must hold at least one view"):
        v.angles_tuple([])
    assert v.fan_distances(10, 20) == (10.0, 20.0)
    with pytest.raises(ValueError, match="src_det must exceed src_iso"):
        v.fan_distances(20, 10)


def test_dtypes() -> None:
    for dt in (torch.bool, torch.int64, torch.float32, torch.complex128):
        assert v.parse_dtype(v.dtype_name(dt)) is dt
    assert v.parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="dtype must be one of"):
        v.parse_dtype("float8")
    with pytest.raises(TypeError, match=r"dtype torch\.bfloat16 has no serialisable name"):
        v.dtype_name(torch.bfloat16)


def test_check_tensor_accepts() -> None:
    x = torch.zeros(2, 3, 4)
    assert v.check_tensor(x, "x") is x
    assert v.check_tensor(x, "x", dtype=v.REAL, shape_suffix=(3, 4), ndim_min=3, device=torch.device("cpu")) is x
    assert v.check_tensor(x.to(torch.complex64), "x", dtype=v.REAL_OR_COMPLEX) is not None
    assert v.check_tensor(x.long(), "x", dtype=None) is not None
    assert v.check_tensor(x.double(), "x", dtype=(torch.float32, torch.float64), finite=True) is not None
    assert v.batch_shape(x, (4,), "x") == (2, 3)
    assert v.batch_shape(x, (2, 3, 4), "x") == ()


def test_check_tensor_rejects() -> None:
    x = torch.zeros(2, 3, 4)
    with pytest.raises(TypeError, match=r"y must be a torch\.Tensor, got ndarray"):
        v.check_tensor(np.zeros(3), "y")
    with pytest.raises(TypeError, match=r"y must be a real floating-point tensor, got torch\.complex64"):
        v.check_tensor(x.to(torch.complex64), "y", dtype=v.REAL)
    with pytest.raises(TypeError, match=r"y must be a real or complex floating-point tensor, got torch\.int64"):
        v.check_tensor(x.long(), "y")
    with pytest.raises(TypeError, match=r"y must be float32 or float64, got torch\.float16"):
        v.check_tensor(x.half(), "y", dtype=(torch.float32, torch.float64))
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 5, 4\), got \(2, 3, 4\)"):
        v.check_tensor(x, "y", shape_suffix=(5, 4))
    with pytest.raises(ValueError, match=r"y must have shape \(\*batch, 1, 2, 3, 4\)"):
        v.batch_shape(x, (1, 2, 3, 4), "y")
    with pytest.raises(ValueError, match=r"y must have at least 4 dimensions, got shape \(2, 3, 4\)"):
        v.check_tensor(x, "y", ndim_min=4)
    with pytest.raises(ValueError, match="y is on meta, but the operator expects tensors on cpu"):
        v.check_tensor(x.to("meta"), "y", device=torch.device("cpu"))
    with pytest.raises(ValueError, match="y must be finite, got non-finite values"):
        v.check_tensor(torch.tensor([0.0, math.nan]), "y", finite=True)
    with pytest.raises(ValueError, match="dtype must be one of"):
        v.check_tensor(x, "y", dtype="float")


def test_model_and_operator() -> None:
    net = torch.nn.Linear(2, 2)
    assert v.check_model(net) is net
    with pytest.raises(TypeError, match=r"models\[1\] must be a torch\.nn\.Module, got int"):
        v.check_model(1, "models[1]")
    op = pr.IdentityOperator((3,))
    assert v.check_operator(op, "A") is op
    with pytest.raises(TypeError, match="A must be a precisionrecon LinearOperator, got function"):
        v.check_operator(lambda x: x, "A")


def test_geometry_pair() -> None:
    vol2 = pr.Volume((4, 4))
    geom2 = pr.ParallelBeam2D(angles=pr.angles(3), det_count=5)
    geom3 = pr.ParallelBeam3D(angles=pr.angles(3), det_shape=(2, 5))
    v.check_geometry_pair(vol2, geom2)
    with pytest.raises(TypeError, match="volume must be a precisionrecon Volume, got tuple"):
        v.check_geometry_pair((4, 4), geom2)
    with pytest.raises(TypeError, match="geometry must be a precisionrecon geometry, got Volume"):
        v.check_geometry_pair(vol2, vol2)
    with pytest.raises(ValueError, match="a 2-D volume needs a 2-D geometry, got a 3-D one"):
        v.check_geometry_pair(vol2, geom3)


def test_is_heteroscedastic_is_public() -> None:
    from precisionrecon.uncertainty import is_heteroscedastic

    assert is_heteroscedastic((torch.zeros(2), torch.zeros(2)))
    assert not is_heteroscedastic(torch.zeros(2))
    assert not is_heteroscedastic((torch.zeros(2),))


def test_same_device_reads_an_unindexed_cuda_device_as_the_current_one() -> None:
    cpu, cuda0, cuda1 = torch.device("cpu"), torch.device("cuda:0"), torch.device("cuda:1")
    assert v.same_device(cpu, torch.device("cpu")) and not v.same_device(cpu, cuda0)
    assert v.same_device(cuda1, torch.device("cuda", 1)) and not v.same_device(cuda0, cuda1)
    if torch.cuda.is_available():
        assert v.same_device(torch.device("cuda"), torch.device("cuda", torch.cuda.current_device()))
