"""Memory options of the unrolled 3-D models: checkpointing per iteration (same outputs and
gradients), mixed precision of the CNN parts (operators in float32), their configs (old
configs unchanged and still loading), and slab-wise training with ``slab_operator``."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import precisionrecon as pr
from precisionrecon import models
from precisionrecon.operators import slab_operator, xray

F64 = torch.float64


def _cone() -> pr.XRayTransform:
    return pr.XRayTransform(pr.Volume((6, 8, 7)), pr.ConeBeam3D(angles=pr.angles(8, arc=2 * math.pi),
                                                                det_shape=(8, 11), det_spacing=1.6, src_iso=40,
                                                                src_det=70))


MODELS: dict[str, Callable[..., models.ReconModel]] = {
    "lpd": lambda A, **kw: models.LearnedPrimalDual(A, n_iter=3, n_primal=2, n_dual=2, width=4, op_norm=10.0, **kw),
    "vn": lambda A, **kw: models.VariationalNetwork(A, n_steps=3, n_filters=3, kernel_size=3, n_rbf=7, init="adjoint",
                                                    op_norm=10.0, **kw),
}


def _grads(model: models.ReconModel, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad()
    out = model(y)
    out.square().mean().backward()
    return out.detach(), torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpointing_keeps_outputs_and_gradients(name: str) -> None:
    A = _cone()
    y = torch.randn((2, *A.range_shape), dtype=F64)
    torch.manual_seed(1)
    plain = MODELS[name](A, dtype=F64)
    torch.manual_seed(1)
    saving = MODELS[name](A, dtype=F64, checkpoint=True)
    (out, grad), (out_c, grad_c) = _grads(plain, y), _grads(saving, y)
    assert torch.allclose(out_c, out, rtol=1e-13, atol=0) and torch.allclose(grad_c, grad, rtol=1e-12, atol=1e-15)
    with torch.no_grad():  # no grad: no checkpoint, the plain loop
        assert torch.equal(saving(y), out_c)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mixed_precision_runs_the_cnn_in_bfloat16_and_the_operator_in_float32(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    A = _cone()
    y = torch.randn((1, *A.range_shape))
    torch.manual_seed(1)
    full = MODELS[name](A, dtype=torch.float32)
    torch.manual_seed(1)
    mixed = MODELS[name](A, dtype=torch.float32, mixed_precision="bfloat16")
    conv_dtypes: list[torch.dtype] = []
    convs = [m for m in mixed.modules() if isinstance(m, torch.nn.Conv3d)]
    for conv in convs:
        conv.register_forward_hook(lambda _m, _i, out: conv_dtypes.append(out.dtype))
    operator_dtypes: list[torch.dtype] = []
    real_forward = xray.ops.xray_forward

    def spy(x: torch.Tensor, *args: object) -> torch.Tensor:
        operator_dtypes.append(x.dtype)
        return real_forward(x, *args)

    monkeypatch.setattr(xray.ops, "xray_forward", spy)  # the projector's kernel call, seen from outside
    out = mixed(y)
    assert out.dtype == torch.float32 and set(operator_dtypes) == {torch.float32}
    if convs:  # LPD: nn.Conv3d modules; VN convolves with its own kernels (checked through the output)
        assert set(conv_dtypes) == {torch.bfloat16}
    with torch.no_grad():
        rel = float((out - full(y)).norm() / full(y).norm())
    assert 0 < rel < 0.05  # bfloat16 has 8 bits of mantissa: different, and close
    out.square().mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in mixed.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_options_in_configs_and_old_configs_load(name: str) -> None:
    A = _cone()
    plain = MODELS[name](A, dtype=F64)
    assert "checkpoint" not in plain.config()["kwargs"] and "mixed_precision" not in plain.config()["kwargs"]
    model = MODELS[name](A, dtype=F64, checkpoint=True, mixed_precision="bfloat16")
    config = model.config()
    assert config["kwargs"]["checkpoint"] is True and config["kwargs"]["mixed_precision"] == "bfloat16"
    rebuilt = models.build(config)
    assert rebuilt.checkpoint and rebuilt.mixed_precision == "bfloat16" and rebuilt.config() == config
    old = models.build(plain.config())  # a config written before the options existed
    assert old.checkpoint is False and old.mixed_precision is None
    with pytest.raises(TypeError, match="checkpoint must be a bool"):
        MODELS[name](A, checkpoint="yes")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        MODELS[name](A, mixed_precision="int8")


def test_slab_operator_rows_and_refusals() -> None:
    vol = pr.Volume((12, 10, 11), spacing=(1.0, 0.9, 0.9), center=(0.7, 0.0, 0.0))
    x = torch.randn(vol.shape, dtype=F64)
    for geom in (pr.ParallelBeam3D(angles=pr.angles(9), det_shape=(12, 16), det_offset=(0.7, 0.3)),
                 pr.ParallelBeam3D(angles=pr.angles(9), det_shape=(20, 16), det_spacing=(0.6, 1.0))):
        A = pr.XRayTransform(vol, geom)
        for start, stop in ((0, 4), (3, 9), (8, 12)):
            As, (r0, r1) = slab_operator(A, start, stop)
            assert As.volume == pr.operators.volume_slab(vol, start, stop) and r1 > r0
            assert float((As(x[start:stop]) - A(x)[:, r0:r1]).abs().max()) < 1e-12 * float(A(x).abs().max())
    with pytest.raises(ValueError, match="slabs are coupled"):
        slab_operator(_cone(), 0, 3)
    with pytest.raises(TypeError, match="op must be a 3-D XRayTransform"):
        slab_operator(pr.XRayTransform(pr.Volume((5, 5)), pr.ParallelBeam2D(angles=pr.angles(3), det_count=7)), 0, 2)
    far = pr.XRayTransform(vol, pr.ParallelBeam3D(angles=pr.angles(9), det_shape=(4, 16), det_offset=(20.0, 0.0)))
    with pytest.raises(ValueError, match="determine no detector row"):
        slab_operator(far, 0, 3)


def test_slab_wise_training_then_the_whole_volume() -> None:
    """Train an LPD on 4-slice slabs of a parallel-beam problem, then reconstruct the whole
    volume with the same weights (``for_operator``)."""
    vol = pr.Volume((12, 10, 10))
    A = pr.XRayTransform(vol, pr.ParallelBeam3D(angles=pr.angles(8), det_shape=(12, 15)))
    As, _ = slab_operator(A, 0, 4)
    torch.manual_seed(2)
    model = models.LearnedPrimalDual(As, n_iter=2, n_primal=2, n_dual=2, width=4, checkpoint=True)
    x = torch.rand((2, *vol.shape)) * (torch.rand((2, *vol.shape)) > 0.6)
    y = A(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(4):
        start = (3 * step) % 9
        slab_op, (r0, r1) = slab_operator(A, start, start + 4)
        assert (r0, r1) == (start, start + 4)
        model.bind_operator(slab_op)  # every slab of this geometry has the same shapes
        loss = (model(y[:, :, r0:r1]) - x[:, start : start + 4]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    whole = models.for_operator(model, A)
    assert tuple(whole.operator.domain_shape) == vol.shape and whole.op_norm == model.op_norm
    with torch.no_grad():
        out = whole(y)
    assert out.shape == x.shape and torch.isfinite(out).all()
    for a, b in zip(whole.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
