"""Volumes, geometries and known operators as JSON dicts: exact round trips and clear errors."""

from __future__ import annotations

import importlib
import json
import math
import sys

import pytest
import torch
from conftest import OPERATORS

import precisionrecon as pr
from precisionrecon.geometry.serialize import from_dict, to_dict
from precisionrecon.models.serialize import (
    operator_classes,
    operator_from_dict,
    operator_to_dict,
    tensor_from_dict,
    tensor_to_dict,
)


def _json(d: dict) -> dict:
    return json.loads(json.dumps(d))


GEOMETRIES = {
    "parallel2d": pr.ParallelBeam2D(angles=pr.angles(7, start=0.1), det_count=11, det_spacing=0.7, det_offset=-0.3),
    "parallel3d": pr.ParallelBeam3D(angles=pr.angles(5), det_shape=(4, 6), det_spacing=(1.1, 0.9), det_offset=(0.2, 0)),
    "fan-flat": pr.FanBeam2D(angles=pr.angles(9, arc=2 * math.pi), det_count=13, det_spacing=1.3, src_iso=30.0,
                             src_det=55.5, det_offset=0.1),
    "fan-arc": pr.FanBeam2D(angles=pr.angles(6, arc=math.pi + 1.0), det_count=8, det_spacing=1.7, src_iso=29.0,
                            src_det=51.0, detector="arc"),
    "cone-flat": pr.ConeBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(6, 9), det_spacing=(1.4, 1.5),
                               src_iso=30.0, src_det=50.0, det_offset=(0.5, -0.25)),
    "cone-cylindrical": pr.ConeBeam3D(angles=pr.angles(4), det_shape=(5, 7), det_spacing=1.6, src_iso=28.0,
                                      src_det=48.0, detector="cylindrical"),
}
# VectorGeometry in every flavour (parallel/cone, 2-D/3-D, flat/curved), from the operator registry
GEOMETRIES.update({f"registry-{name}": make().geometry for name, make in OPERATORS.items() if "vector" in name})
GEOMETRIES["vector-from-fan-arc"] = GEOMETRIES["fan-arc"].to_vector_geometry()
GEOMETRIES["vector-from-cone-flat"] = GEOMETRIES["cone-flat"].to_vector_geometry()


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_geometry_round_trip(name: str) -> None:
    geom = GEOMETRIES[name]
    d = to_dict(geom)
    assert d["type"] == type(geom).__name__
    back = from_dict(_json(d))
    assert type(back) is type(geom)
    assert back == geom
    assert torch.equal(back.to_vectors(), geom.to_vectors())  # floats survive JSON bit for bit
    assert repr(back) == repr(geom)


def test_every_geometry_class_is_covered() -> None:
    classes = {type(g) for g in GEOMETRIES.values()}
    assert classes == {pr.ParallelBeam2D, pr.ParallelBeam3D, pr.FanBeam2D, pr.ConeBeam3D, pr.VectorGeometry}
    vector_kinds = {(g.ndim, g.beam, g.detector) for g in GEOMETRIES.values() if isinstance(g, pr.VectorGeometry)}
    assert {(2, "parallel", "flat"), (2, "cone", "curved"), (3, "cone", "flat")} <= vector_kinds


@pytest.mark.parametrize(
    "volume",
    [pr.Volume((5, 6)), pr.Volume((3, 4, 5), spacing=(0.5, 1.25, 2.0), center=(0.1, -3.0, 1e-3))],
)
def test_volume_round_trip(volume: pr.Volume) -> None:
    d = to_dict(volume)
    assert d == {"type": "Volume", "shape": list(volume.shape), "spacing": list(volume.spacing),
                 "center": list(volume.center)}
    assert from_dict(_json(d)) == volume


def test_geometry_bad_input() -> None:
    good = to_dict(GEOMETRIES["fan-flat"])
    with pytest.raises(TypeError, match="d must be a dict"):
        from_dict([good])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d\\['type'\\] must be one of"):
        from_dict({**good, "type": "SpiralBeam"})
    with pytest.raises(ValueError, match="missing fields \\['src_det'\\]"):
        from_dict({k: v for k, v in good.items() if k != "src_det"})
    with pytest.raises(ValueError, match="unexpected fields \\['pitch'\\]"):
        from_dict({**good, "pitch": 1.0})
    with pytest.raises(ValueError, match="src_det"):
        from_dict({**good, "src_det": 10.0})  # validated again by the constructor (src_det <= src_iso)
    with pytest.raises(TypeError, match="obj must be a Volume or one of the geometries"):
        to_dict(pr.XRayTransform(pr.Volume((4, 4)), GEOMETRIES["parallel2d"]))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.float32, torch.float64, torch.complex64,
                                   torch.complex128])
def test_tensor_round_trip(dtype: torch.dtype) -> None:
    t = (torch.randn(3, 4, dtype=torch.complex128) * 5).to(dtype) if dtype.is_complex else (
        torch.randn(3, 4, dtype=torch.float64) * 5).to(dtype)
    back = tensor_from_dict(_json(tensor_to_dict(t)))
    assert back.dtype == dtype and back.shape == t.shape
    assert torch.equal(back, t)


def test_tensor_bad_input() -> None:
    d = tensor_to_dict(torch.arange(6.0))
    with pytest.raises(ValueError, match="hold 24 bytes, but shape \\[2, 4\\] of float32 needs 32"):
        tensor_from_dict({"__tensor__": {**d["__tensor__"], "shape": [2, 4]}})
    with pytest.raises(ValueError, match="dtype must be one of"):
        tensor_from_dict({"__tensor__": {**d["__tensor__"], "dtype": "object"}})
    with pytest.raises(ValueError, match="a tensor description must be"):
        tensor_from_dict({"__tensor__": [1, 2]})


def _mr_operators() -> dict[str, pr.LinearOperator]:
    mr = pytest.importorskip("precisionrecon.mr")
    maps = mr.birdcage_maps((3, 8, 10))
    mask = mr.random_lines((8, 10), 2, center_lines=2, seed=1)
    traj = mr.radial(5, 12)
    return {
        "sense": mr.SENSE(mask, maps),
        "nufft-coils": mr.NUFFT(traj, (3, 8, 10)) @ mr.Coils(maps),
        "fft-sampling": mr.Sampling(mask, (8, 10)) @ mr.FFT((8, 10)),
    }


def _ct_operators() -> dict[str, pr.LinearOperator]:
    A = OPERATORS["fan-arc-offset"]()
    B = OPERATORS["cone-flat"]()
    return {
        "xray-fan": A,
        "xray-vector3d": OPERATORS["vector3d-cone"](),
        "normal": A.T @ A,
        "scaled-sum": 2.5 * B + B,
        "adjoint": B.T,
        "voxel-backprojection": pr.VoxelBackprojection(A.volume, A.geometry, distance_weight=True),
        "tv-grad": pr.FiniteDifferences((5, 6), dims=(-1,), spacing=0.5),
        "complex-scaled-identity": (1 - 2j) * pr.IdentityOperator((4,)),
    }


@pytest.mark.parametrize("name", ["xray-fan", "xray-vector3d", "normal", "scaled-sum", "adjoint",
                                  "voxel-backprojection", "tv-grad", "complex-scaled-identity",
                                  "sense", "nufft-coils", "fft-sampling"])
def test_operator_round_trip(name: str) -> None:
    ops = _ct_operators()
    op = ops[name] if name in ops else _mr_operators()[name]
    d = _json(operator_to_dict(op))
    back = operator_from_dict(d)
    assert type(back) is type(op)
    assert tuple(back.domain_shape) == tuple(op.domain_shape) and tuple(back.range_shape) == tuple(op.range_shape)
    dtype = op._example_dtype()
    x = torch.randn(2, *op.domain_shape, dtype=dtype)
    assert torch.equal(back(x), op(x))
    assert operator_to_dict(back) == d  # the description is a fixed point


def test_xray_description_names_volume_and_geometry() -> None:
    A = OPERATORS["parallel2d-even"]()
    d = operator_to_dict(A)
    assert d == {"type": "XRayTransform", "volume": to_dict(A.volume), "geometry": to_dict(A.geometry)}


def test_operator_bad_input() -> None:
    class Custom(pr.LinearOperator):
        domain_shape = (2,)
        range_shape = (2,)

    with pytest.raises(TypeError, match="op must be one of the operators"):
        operator_to_dict(Custom())
    with pytest.raises(ValueError, match="operator type must be one of"):
        operator_from_dict({"type": "os.system", "command": "true"})
    with pytest.raises(ValueError, match="unexpected fields \\['pitch'\\]"):
        operator_from_dict({**operator_to_dict(OPERATORS["parallel2d-even"]()), "pitch": 1})
    with pytest.raises(TypeError, match="must be a dict"):
        operator_from_dict("XRayTransform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON cannot hold"):
        operator_to_dict(float("nan") * pr.IdentityOperator((2,)))


@pytest.fixture
def cli_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Calls of the command line's main(), recorded instead of run; precisionrecon.__main__
    is not imported when the test starts."""
    calls: list[tuple] = []
    monkeypatch.setattr("precisionrecon.cli.main", lambda *args: calls.append(args) or 0)
    monkeypatch.delitem(sys.modules, "precisionrecon.__main__", raising=False)
    return calls


def _lfbp_config() -> dict:
    return pr.models.LearnedFBP(OPERATORS["parallel2d-even"]()).config()


@pytest.mark.parametrize("module", ["precisionrecon.__main__", "precisionrecon.cli", "os"])
def test_model_config_imports_nothing_by_name(module: str, cli_calls: list) -> None:
    """A config naming a module (the command line, anything) with an unregistered class raises
    ValueError listing the registered models, and imports and runs nothing."""
    config = {**_lfbp_config(), "class": "main", "module": module}
    build_wrapped = pr.uncertainty.build  # the checkpoint loader's entry (imported before the snapshot)
    loaded = set(sys.modules)
    with pytest.raises(ValueError, match=r"registered model .*'LearnedFBP'.*got 'main'"):
        pr.models.build(config)
    with pytest.raises(ValueError, match=r"registered model .*got 'main'"):
        build_wrapped(config)
    assert set(sys.modules) - loaded == set()
    assert cli_calls == []


def test_model_config_module_entry_is_ignored(cli_calls: list) -> None:
    """A registered class is built whatever module the config names (the entry is informational)."""
    config = _lfbp_config()
    model = pr.models.build({**config, "module": "precisionrecon.__main__"})
    assert type(model) is pr.models.LearnedFBP and model.config() == config
    assert "precisionrecon.__main__" not in sys.modules
    assert cli_calls == []


@pytest.mark.parametrize("kind", ["precisionrecon.__main__", "main", "os.system", "LinearOperator", ["FFT"]])
def test_operator_type_outside_the_table_is_refused(kind: object, cli_calls: list) -> None:
    loaded = set(sys.modules)
    with pytest.raises(ValueError, match=r"operator type must be one of .*'XRayTransform'"):
        operator_from_dict({"type": kind})
    assert set(sys.modules) - loaded == set()
    assert cli_calls == []


def test_operator_table_is_explicit() -> None:
    classes = operator_classes()
    assert set(classes) == {
        "XRayTransform", "VoxelBackprojection", "RampFilter", "ProjectionWeighting", "FBP", "FiniteDifferences",
        "IdentityOperator", "ComposedOperator", "SumOperator", "ScaledOperator", "ChunkedOperator",
        "FFT", "Sampling", "Coils", "SENSE", "NUFFT",
    }  # fmt: skip
    for name, cls in classes.items():
        assert cls.__name__ == name and issubclass(cls, pr.LinearOperator)
    classes.clear()  # a copy: the table itself is unchanged
    assert "XRayTransform" in operator_classes()


def test_importing_main_module_runs_nothing(cli_calls: list) -> None:
    importlib.import_module("precisionrecon.__main__")
    assert cli_calls == []
