"""Redundancy and pre-weights of FBP: quadrature, Parker (also extended to limited angles), cosine,
full scan; the diagonal operator; the geometry facts they rest on."""

from __future__ import annotations

import math

import analytic as an
import numpy as np
import pytest
import torch

import precisionrecon as pr
from precisionrecon import operators
from precisionrecon.geometry import fan_angles, scan_arc, scan_type
from precisionrecon.operators.weights import (
    ProjectionWeighting,
    angular_weights,
    cosine_weights,
    extended_parker_weights,
    full_scan_weights,
    parker_weight,
    parker_weights,
    redundancy_weights,
)


def _fan(arc: float, detector: str = "flat", n_views: int = 30, det_offset: float = 0.0) -> pr.FanBeam2D:
    return pr.FanBeam2D(angles=pr.angles(n_views, arc=arc, start=0.4), det_count=21, det_spacing=3.0, src_iso=50.0,
                        src_det=90.0, detector=detector, det_offset=det_offset)


def _cone(arc: float, detector: str = "flat", det_offset: tuple[float, float] = (0.0, 0.0)) -> pr.ConeBeam3D:
    return pr.ConeBeam3D(angles=pr.angles(12, arc=arc), det_shape=(7, 17), det_spacing=(2.5, 3.0), src_iso=50.0,
                         src_det=90.0, detector=detector, det_offset=det_offset)


# --- angular quadrature ----------------------------------------------------------------


def test_scan_arc_of_equispaced_and_wrapped_views() -> None:
    start, arc = scan_arc(pr.angles(10, arc=4.0, start=5.0))
    assert arc == pytest.approx(4.0, abs=1e-12)
    assert math.remainder(start - (5.0 - 0.2), 2 * math.pi) == pytest.approx(0.0, abs=1e-12)
    assert scan_arc(pr.angles(7, arc=2 * math.pi))[1] == 2 * math.pi
    # the same views given modulo 2 pi (crossing zero) describe the same arc
    wrapped = torch.remainder(pr.angles(10, arc=4.0, start=5.0), 2 * math.pi)
    assert scan_arc(wrapped)[1] == pytest.approx(4.0, abs=1e-12)


def test_angular_weights_are_voronoi_cells() -> None:
    a = [0.0, 0.1, 0.3, 0.6]
    # open arc: ends extend by half their inner gap; cells (0.1 + 0.1) / 2, (0.1 + 0.2) / 2, ...
    torch.testing.assert_close(angular_weights(a), torch.tensor([0.1, 0.15, 0.25, 0.3], dtype=torch.float64))
    # period 1: the gap 0.6 -> 1.0 wraps round to the first view
    expected = torch.tensor([0.25, 0.15, 0.25, 0.35], dtype=torch.float64)
    torch.testing.assert_close(angular_weights(a, period=1.0), expected)
    # any order: the weights follow their views
    perm = [2, 0, 3, 1]
    torch.testing.assert_close(angular_weights([a[i] for i in perm]), angular_weights(a)[perm])
    # equispaced: arc / n each
    for arc, n in ((math.pi, 9), (2 * math.pi, 10), (2.5, 7)):
        w = angular_weights(pr.angles(n, arc=arc)) if arc < 2 * math.pi else angular_weights(
            pr.angles(n, arc=arc), period=arc)
        torch.testing.assert_close(w, torch.full((n,), arc / n, dtype=torch.float64))


def test_parallel_full_circle_counts_every_line_once() -> None:
    # views theta and theta + pi measure the same lines: modulo pi they share a cell
    w = angular_weights(pr.angles(12, arc=2 * math.pi), period=math.pi)
    torch.testing.assert_close(w, torch.full((12,), math.pi / 12, dtype=torch.float64))
    g = pr.ParallelBeam2D(angles=pr.angles(12, arc=2 * math.pi), det_count=5)
    torch.testing.assert_close(redundancy_weights(g), torch.full((12, 1), math.pi / 12, dtype=torch.float64))
    rng = np.random.default_rng(0)
    irregular = np.sort(rng.uniform(0, math.pi, 15))
    assert float(angular_weights(irregular, period=math.pi).sum()) == pytest.approx(math.pi, abs=1e-12)
    assert float(angular_weights(irregular).sum()) == pytest.approx(scan_arc(irregular)[1], abs=1e-12)


# --- Parker weights ----------------------------------------------------------------------


@pytest.mark.parametrize("overscan", [0.3, 0.6, 1.0, math.pi / 2])
def test_parker_weight_pairs_sum_to_one(overscan: float) -> None:
    delta = 0.3  # half fan angle <= overscan
    end = math.pi + 2 * overscan
    gamma = torch.linspace(-delta, delta, 41, dtype=torch.float64)[:, None]
    beta = torch.linspace(0.0, end, 301, dtype=torch.float64)[None, :]
    # the same line is measured again at beta + pi - 2 gamma (mod 2 pi) with -gamma
    after, before = beta + math.pi - 2 * gamma, beta - math.pi - 2 * gamma
    w = parker_weight(beta, gamma, overscan)
    total = (
        w
        + torch.where(after <= end, parker_weight(after, -gamma, overscan), 0.0)
        + torch.where(before >= 0, parker_weight(before, -gamma, overscan), 0.0)
    )
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-13)
    assert bool(((after <= end) | (before >= 0)).any())  # pairs exist
    assert bool((w >= 0).all()) and bool((w <= 1).all())
    assert float(parker_weight(torch.tensor(end + 0.1), torch.tensor(0.0), overscan)) == 0.0


@pytest.mark.parametrize("detector", ["flat", "arc"])
@pytest.mark.parametrize("extra", [0.0, 0.7])
def test_parker_weights_of_a_geometry_sum_to_one_over_measured_pairs(detector: str, extra: float) -> None:
    probe = _fan(math.pi, detector)
    g = _fan(math.pi + probe.fan_angle + extra, detector, n_views=24)
    start, arc = scan_arc(g.angles)
    w = parker_weights(g)
    gamma = fan_angles(g)
    n_det = g.det_count
    vec = g.to_vectors().numpy()
    for i in range(0, g.n_views, 5):
        for k in (0, 3, 10, 17, n_det - 1):
            # the conjugate ray: another source angle, mirrored column
            conj = g.replace(angles=[g.angles[i] + math.pi - 2 * float(gamma[k])])
            w_conj = parker_weights(conj, start=start, arc=arc)[0, n_det - 1 - k]
            assert float(w[i, k] + w_conj) == pytest.approx(1.0, abs=1e-12)
            # and it is the same line (checks the sign convention of gamma and beta)
            o1, d1 = an.detector_rays(vec[i : i + 1], g.det_shape, "cone", g.curved)
            o2, d2 = an.detector_rays(conj.to_vectors().numpy(), g.det_shape, "cone", g.curved)
            p, q = o2[0, n_det - 1 - k], o2[0, n_det - 1 - k] + d2[0, n_det - 1 - k]
            d = d1[0, k] / np.linalg.norm(d1[0, k])
            for point in (p, q):
                r = point - o1[0, k]
                assert abs(r[0] * d[1] - r[1] * d[0]) < 1e-9


def test_parker_weights_integrate_to_pi_per_column() -> None:
    probe = _fan(math.pi)
    g = _fan(math.pi + probe.fan_angle + 0.2, n_views=2000)
    # every line once: int w(beta, gamma) dbeta = pi for each gamma (midpoint rule, O(dbeta^2))
    total = (angular_weights(g.angles)[:, None] * parker_weights(g)).sum(0)
    torch.testing.assert_close(total, torch.full_like(total, math.pi), rtol=0, atol=1e-6)
    w = parker_weights(g)
    assert float(w.max()) == pytest.approx(1.0) and float(w.min()) < 1e-3
    # continuous in beta: steps bounded by the steepest ramp, slope pi / (4 (Delta - delta))
    _, arc = scan_arc(g.angles)
    slope = math.pi / (4 * (0.5 * (arc - math.pi) - float(fan_angles(g).abs().max())))
    assert float((w[1:] - w[:-1]).abs().max()) <= slope * arc / g.n_views


def test_cone_parker_weights_repeat_the_columns() -> None:
    g = _cone(math.pi + 1.0)
    w = parker_weights(g)
    assert w.shape == (12, 1, 17)
    fan = pr.FanBeam2D(angles=g.angles, det_count=17, det_spacing=3.0, src_iso=50.0, src_det=90.0)
    torch.testing.assert_close(w[:, 0], parker_weights(fan))


def test_parker_needs_pi_plus_fan_angle() -> None:
    g = _fan(math.pi + 0.1)
    with pytest.raises(ValueError, match="pi \\+ fan angle"):
        parker_weights(g)
    assert scan_type(g) == "limited"
    with pytest.raises(ValueError, match="overscan"):
        parker_weight(torch.zeros(1), torch.zeros(1), 2.0)
    with pytest.raises(ValueError, match="both start and arc"):
        parker_weights(_fan(2 * math.pi), start=0.0)


# --- cosine weights ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "geom",
    [
        _fan(2 * math.pi, "flat", det_offset=2.5),
        _fan(2 * math.pi, "arc", det_offset=-4.0),
        _cone(2 * math.pi, "flat", det_offset=(1.5, -2.0)),
        _cone(2 * math.pi, "cylindrical", det_offset=(-1.0, 3.0)),
    ],
    ids=["fan-flat", "fan-arc", "cone-flat", "cone-cylindrical"],
)
def test_cosine_weights_are_the_cosine_to_the_central_ray(geom: pr.Geometry) -> None:
    vec = geom.to_vectors().numpy()
    _, directions = an.detector_rays(vec, geom.det_shape, "cone", geom.curved)
    dim = 2 if geom.ndim == 2 else 3
    central = -vec[:, None, :dim] if dim == 2 else -vec[:, None, None, :dim]  # source -> isocentre
    cos = np.sum(directions * central, -1) / (np.linalg.norm(directions, axis=-1) * np.linalg.norm(central, axis=-1))
    w = cosine_weights(geom)
    assert w.shape == (1, *geom.det_shape)
    np.testing.assert_allclose(np.broadcast_to(w.numpy(), cos.shape), cos, rtol=0, atol=1e-13)
    if dim == 2:  # in 2-D the cosine is that of the fan angle
        np.testing.assert_allclose(np.cos(fan_angles(geom).numpy()), cos[0], rtol=0, atol=1e-13)


def test_fan_angles() -> None:
    flat, arc = _fan(2 * math.pi, "flat", det_offset=1.0), _fan(2 * math.pi, "arc", det_offset=1.0)
    u = (torch.arange(21, dtype=torch.float64) - 10) * 3.0 + 1.0
    torch.testing.assert_close(fan_angles(flat), torch.atan(u / 90.0))
    torch.testing.assert_close(fan_angles(arc), u / 90.0)
    with pytest.raises(TypeError, match="FanBeam2D or ConeBeam3D"):
        fan_angles(pr.ParallelBeam2D(angles=[0.0], det_count=3))


def test_parallel_and_full_scan_weights() -> None:
    g = pr.ParallelBeam3D(angles=pr.angles(6), det_shape=(3, 4))
    assert torch.equal(cosine_weights(g), torch.ones(1, 1, 1, dtype=torch.float64))
    torch.testing.assert_close(redundancy_weights(g), torch.full((6, 1, 1), math.pi / 6, dtype=torch.float64))
    fan = _fan(2 * math.pi)
    assert torch.equal(full_scan_weights(fan), torch.full((30, 1), 0.5, dtype=torch.float64))
    torch.testing.assert_close(redundancy_weights(fan), torch.full((30, 1), math.pi / 30, dtype=torch.float64))
    assert scan_type(fan) == "full" and scan_type(g) == "full"
    assert scan_type(pr.ParallelBeam2D(angles=pr.angles(6, arc=2.0), det_count=3)) == "limited"


def test_redundancy_weights_of_short_scans() -> None:
    probe = _fan(math.pi)
    g = _fan(math.pi + probe.fan_angle + 0.3)
    _, arc = scan_arc(g.angles)
    dbeta = arc / g.n_views
    assert scan_type(g) == "short"
    torch.testing.assert_close(redundancy_weights(g), dbeta * parker_weights(g))
    torch.testing.assert_close(redundancy_weights(g, parker=False), torch.full((30, 1), dbeta * math.pi / arc,
                                                                             dtype=torch.float64))
    # forcing Parker weights on a full circle: overscan pi / 2, still every line once
    full = _fan(2 * math.pi, n_views=400)
    w = redundancy_weights(full, short_scan=True)
    torch.testing.assert_close(w.sum(0), torch.full((21,), math.pi, dtype=torch.float64), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="short_scan=False needs views around the full circle"):
        redundancy_weights(g, short_scan=False)
    with pytest.raises(ValueError, match="short_scan applies to fan and cone beams"):
        redundancy_weights(pr.ParallelBeam2D(angles=pr.angles(4), det_count=3), short_scan=True)
    with pytest.raises(ValueError, match="data are incomplete"):
        redundancy_weights(_fan(math.pi + 0.1), parker=False)
    with pytest.raises(ValueError, match="short_scan must be"):
        redundancy_weights(g, short_scan="yes")
    with pytest.raises(ValueError, match="parker must be"):
        redundancy_weights(g, parker="yes")
    with pytest.raises(TypeError, match="parker must be"):
        redundancy_weights(g, parker=1)  # type: ignore[arg-type]


# --- extended Parker weights (limited angle) ----------------------------------------------


@pytest.mark.parametrize(("detector", "det_offset"), [("flat", 0.0), ("arc", 0.7)])
def test_extended_parker_weights_are_parker_weights_on_short_scans(detector: str, det_offset: float) -> None:
    geom = _fan(math.pi + _fan(math.pi).fan_angle + 0.1, detector, det_offset=det_offset)
    assert scan_type(geom) == "short"
    torch.testing.assert_close(extended_parker_weights(geom), parker_weights(geom), rtol=0, atol=1e-14)
    cone = pr.ConeBeam3D(angles=geom.angles, det_shape=(3, geom.det_count), det_spacing=(1.0, geom.det_spacing),
                         src_iso=geom.src_iso, src_det=geom.src_det)
    torch.testing.assert_close(extended_parker_weights(cone), parker_weights(cone), rtol=0, atol=1e-14)
    # "extended" is Parker's own weights wherever they apply, not a rounding of them
    assert torch.equal(redundancy_weights(geom, parker="extended"), redundancy_weights(geom))
    full = _fan(2 * math.pi)
    assert torch.equal(redundancy_weights(full, parker="extended"), redundancy_weights(full))


def test_extended_parker_weights_normalise_limited_angle_redundancy() -> None:
    geom = _fan(math.radians(160), n_views=400)
    assert scan_type(geom) == "limited"
    angles = torch.tensor(geom.angles, dtype=torch.float64)
    start, arc = scan_arc(angles)
    w = extended_parker_weights(geom)
    gamma = fan_angles(geom)
    beta = torch.remainder(angles - start, 2 * math.pi)
    n = geom.det_count
    assert w.min() >= 0 and w.max() <= 1
    checked = 0
    for k in (0, 5, n // 2 + 3, n - 1):
        # conjugate rays of column k: angle beta + pi - 2 gamma_k, mirrored column n - 1 - k (gamma -> -gamma)
        conj = geom.replace(angles=(start + beta + math.pi - 2 * gamma[k]).tolist())
        wc = extended_parker_weights(conj, start=start, arc=arc)[:, n - 1 - k]
        twice = beta + math.pi - 2 * gamma[k] <= arc  # the conjugate ray is measured too
        torch.testing.assert_close(w[twice, k] + wc[twice], torch.ones_like(wc[twice]), rtol=0, atol=1e-12)
        once = ~twice & (beta - math.pi - 2 * gamma[k] < 0)  # nor the conjugate on the other side: measured once
        torch.testing.assert_close(w[once, k], torch.ones_like(w[once, k]), rtol=0, atol=0)
        checked += int(twice.sum()) + int(once.sum())
    assert checked > 100


def test_redundancy_weights_of_limited_angle_scans_need_parker_extended() -> None:
    fan, cone = _fan(math.radians(160)), _cone(math.radians(160))
    for g in (fan, cone):
        assert scan_type(g) == "limited"
        trailing = (1,) * (len(g.proj_shape) - 1)
        expected = angular_weights(g.angles).reshape(-1, *trailing) * extended_parker_weights(g)
        assert torch.equal(redundancy_weights(g, parker="extended"), expected)
        with pytest.raises(ValueError, match=r"pi \+ fan angle .*parker='extended'"):
            redundancy_weights(g)
    torch.testing.assert_close(ProjectionWeighting.extended_parker(cone).weights, extended_parker_weights(cone))
    with pytest.raises(ValueError, match="data are incomplete"):
        redundancy_weights(fan, parker=False)
    with pytest.raises(ValueError, match="short_scan=False needs views around the full circle"):
        redundancy_weights(fan, short_scan=False, parker="extended")
    with pytest.raises(TypeError, match="FanBeam2D or ConeBeam3D"):
        extended_parker_weights(pr.ParallelBeam2D(angles=pr.angles(4), det_count=3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both start and arc"):
        extended_parker_weights(fan, start=0.0)


# --- the operator ------------------------------------------------------------------------


def test_weighting_operator_is_diagonal_and_self_adjoint() -> None:
    g = _fan(math.pi + 1.2, "arc")
    op = ProjectionWeighting.redundancy(g)
    assert op.shape == g.proj_shape
    y = torch.randn(2, 3, *g.proj_shape, dtype=torch.float64)
    torch.testing.assert_close(op(y), y * op.weights)
    assert op.T(y).equal(op(y))  # exactly self-adjoint
    torch.testing.assert_close(ProjectionWeighting.parker(g).weights, parker_weights(g))
    torch.testing.assert_close(ProjectionWeighting.cosine(g).weights, cosine_weights(g))
    torch.testing.assert_close(ProjectionWeighting.full_scan(g).weights, full_scan_weights(g))
    torch.testing.assert_close(ProjectionWeighting.angular(g).weights[:, 0], angular_weights(g.angles))
    assert op.norm() == pytest.approx(float(op.weights.max()))


def test_learnable_weights_receive_gradients() -> None:
    g = _fan(2 * math.pi, n_views=6)
    designed = ProjectionWeighting.cosine(g)
    param = torch.nn.Parameter(designed.weights.clone())
    learned = designed.replace(weights=param)
    y = torch.randn(2, *g.proj_shape, dtype=torch.float64)
    assert torch.equal(learned(y), designed(y))
    learned(y).pow(2).sum().backward()
    assert param.grad is not None and torch.count_nonzero(param.grad) == param.numel()
    w = torch.rand(6, 1, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 21, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: ProjectionWeighting((6, 21), w)(x), (x, w))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="do not broadcast"):
        ProjectionWeighting((4, 5), torch.ones(3, 1))
    with pytest.raises(TypeError, match="real floating-point"):
        ProjectionWeighting((4, 5), torch.ones(4, 5, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"weights must be a torch\.Tensor"):
        ProjectionWeighting((4, 5), np.ones((4, 5)))  # type: ignore[arg-type]
    op = ProjectionWeighting((4, 5), torch.ones(1, 5))
    with pytest.raises(ValueError, match="x must have shape"):
        op(torch.ones(5, 4))
    with pytest.raises(TypeError, match="x must be a real floating-point"):
        op(torch.ones(4, 5, dtype=torch.int64))
    vec = pr.VectorGeometry(vectors=[[0, 1, 0, -1, 1, 0]], det_shape=4, beam="parallel")
    with pytest.raises(TypeError, match="circular scan"):
        cosine_weights(vec)
    with pytest.raises(ValueError, match="period must be"):
        angular_weights([0.0, 1.0], period=-1.0)
    with pytest.raises(ValueError, match="at least two views"):
        scan_arc([0.0])
    with pytest.raises(TypeError, match="FanBeam2D or ConeBeam3D"):
        pr.geometry.detector_uv(pr.ParallelBeam2D(angles=[0.0], det_count=3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        angular_weights([0.0, float("nan")])


def test_geometry_facts_keep_their_old_import_paths() -> None:
    """The geometry facts live in precisionrecon.geometry; precisionrecon.operators still exports them."""
    assert operators.scan_arc is pr.geometry.scan_arc is pr.geometry.facts.scan_arc
    assert operators.scan_type is pr.geometry.scan_type and operators.fan_angles is pr.geometry.fan_angles
    assert pr.geometry.CIRCULAR == (pr.ParallelBeam2D, pr.ParallelBeam3D, pr.FanBeam2D, pr.ConeBeam3D)
    assert pr.models.extended_parker_weights is operators.extended_parker_weights
    with pytest.raises(TypeError, match="scan must be a ParallelBeam2D"):
        pr.geometry.check_circular(pr.VectorGeometry(vectors=[[0, 1, 0, -1, 1, 0]], det_shape=4, beam="parallel"),
                                   "scan")
