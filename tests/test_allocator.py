"""The training allocator setting of the learned models (issue 17): glibc's mallopt is asked
to keep freed memory, once, from the first training forward, unless the process opted out."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest
import torch

import precisionrecon as pr
from precisionrecon.models import allocator


class _FakeMallopt:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[_FakeMallopt]:
    fn = _FakeMallopt()
    monkeypatch.setattr(allocator, "_mallopt", lambda: fn)
    monkeypatch.setitem(allocator._state, "applied", None)  # a fresh process
    yield fn


def _model() -> pr.models.LearnedPrimalDual:
    A = pr.XRayTransform(pr.Volume((8, 8)), pr.ParallelBeam2D(angles=pr.angles(6), det_count=12))
    return pr.models.LearnedPrimalDual(A, n_iter=1, n_primal=2, n_dual=2, width=4, n_layers=2)


def test_sets_no_mmap_and_a_high_trim_threshold(fake: _FakeMallopt) -> None:
    assert allocator.retain_freed_memory() is True
    assert fake.calls == [(allocator._M_MMAP_MAX, 0), (allocator._M_TRIM_THRESHOLD, 2**31 - 1)]
    assert allocator.retain_freed_memory() is True
    assert len(fake.calls) == 2  # once per process


def test_training_forward_applies_it_once_and_inference_does_not(fake: _FakeMallopt) -> None:
    model = _model()
    y = torch.zeros(1, *model.operator.range_shape)
    with torch.no_grad():
        model(y)
    assert fake.calls == [] and allocator._state["applied"] is None
    model(y)
    model(y)
    assert len(fake.calls) == 2 and allocator._state["applied"] is True


def test_opt_out_before_training_is_respected(fake: _FakeMallopt) -> None:
    assert allocator.retain_freed_memory(False) is False
    _model()(torch.zeros(1, 6, 12))
    assert fake.calls == []
    assert allocator.retain_freed_memory(True) is True  # an explicit call still applies it
    assert len(fake.calls) == 2


def test_without_glibc_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    monkeypatch.setitem(allocator._state, "applied", None)
    assert allocator.retain_freed_memory() is False
    fn = _FakeMallopt(result=0)  # mallopt refusing the value
    monkeypatch.setattr(allocator, "_mallopt", lambda: fn)
    monkeypatch.setitem(allocator._state, "applied", None)
    assert allocator.retain_freed_memory() is False


def test_rejects_a_non_bool() -> None:
    with pytest.raises(TypeError, match="enable must be a bool"):
        allocator.retain_freed_memory(1)  # type: ignore[arg-type]


def test_the_real_mallopt_is_glibcs_or_absent() -> None:
    fn = allocator._mallopt()
    assert fn is None or isinstance(fn, ctypes._CFuncPtr)  # type: ignore[attr-defined]
