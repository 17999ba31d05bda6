"""One registry of every linear operator the library ships, for the generic suite.

``REGISTRY`` maps a name to a :class:`Case`: a factory of a small operator plus the flags
saying which generic checks apply to it (``tests/test_operators.py``). Adding an operator
is adding one line. Factories use public names only (``pr.*``, ``pr.mr.*``).

``OPERATORS`` (the X-ray transforms only) is the registry older suites iterate over
(kernels against the reference, CUDA, serialisation); it is re-exported by ``conftest``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import precisionrecon as pr
from precisionrecon import mr


@dataclass(frozen=True)
class Case:
    """How the generic suite treats one registered operator.

    Attributes
    ----------
    make : callable
        Builds the operator (called once per session, see :func:`build`).
    complex : bool
        Domain and range hold complex tensors (complex64/complex128) instead of real ones.
    tol32 : float
        Bound on the normalized adjoint error in single precision (1e-12 in double).
    rel32 : float
        Bound on the relative L2 difference of single- and double-precision results.
    batch_exact : bool
        Leading batch dims give bitwise the results of a loop over the items; otherwise
        they agree to rounding (relative 1e-12 in float64).
    compile : bool
        In the (expensive) ``torch.compile(fullgraph=True)`` subset.
    gradcheck : bool
        Run ``torch.autograd.gradcheck`` in double precision: for operators with their own
        autograd (custom ops, ``autograd.Function``) not gradchecked elsewhere.
    checks_dtype : bool
        Integer input raises ``TypeError`` (``IdentityOperator`` passes anything through).
    cuda : bool
        The operator runs on CUDA: it has ``.to(device)`` or is device-agnostic.
    requires : tuple of str
        Optional modules the operator needs (``pytest.importorskip``).
    norm_rtol : float
        How far below the largest singular value ``A.norm()`` may stop (it never exceeds
        it): :data:`SLOW_POWER` where the default power iteration stalls on clustered top
        singular values.
    """

    make: Callable[[], pr.LinearOperator]
    complex: bool = False
    tol32: float = 1e-5
    rel32: float = 1e-5
    batch_exact: bool = True
    compile: bool = False
    gradcheck: bool = False
    checks_dtype: bool = True
    cuda: bool = False
    requires: tuple[str, ...] = ()
    norm_rtol: float = 1e-6


# Measured 1e-6 to 1.1e-3: the power iteration of ``A.norm()`` stops when its estimate changes
# by less than 1e-7 per step, which on clustered top singular values is far from converged.
SLOW_POWER = 2e-3


# --- helpers for random but reproducible geometry and data ---------------------------------


def _random_vectors_2d(n: int, beam: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    th = rng.uniform(0, 2 * math.pi, n)
    rows = []
    for t in th:
        c, s = math.cos(t), math.sin(t)
        if beam == "parallel":
            rows.append([-s + 0.1 * rng.normal(), -c, 0.3 * c, -0.3 * s, 0.9 * c, -0.9 * s])
        else:
            r = rng.uniform(25, 35)
            src = np.array([r * s, r * c])
            det = np.array([-15 * s + rng.normal(), -15 * c])
            w = (det - src) / np.linalg.norm(det - src)
            u = 1.1 * np.array([-w[1], w[0]])  # perpendicular to d - s, as a curved detector needs
            rows.append([*src, *det, *u])
    return np.asarray(rows)


def _helical(detector: str, n_views: int = 10) -> pr.HelicalConeBeam:
    """A short helix (pitch 1.2, 4 views per turn) with an alternating flying focal spot."""
    return pr.HelicalConeBeam(n_views=n_views, views_per_rotation=4, det_shape=(6, 16), det_spacing=(1.5, 1.6),
                              src_iso=30, src_det=50, pitch=1.2, z_start=-4.0, detector=detector,
                              det_offset=(0.3, 0.8), ffs_angle=[0.01, -0.01] * (n_views // 2),
                              ffs_radius=[0.4, -0.4] * (n_views // 2), ffs_z=[0.2, 0.2, -0.2, -0.2] * (n_views // 4)
                              + [0.2] * (n_views % 4))


def _random_vectors_3d(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for t in rng.uniform(0, 2 * math.pi, n):
        c, s = math.cos(t), math.sin(t)
        z = rng.uniform(-3, 3)
        rows.append([30 * s, 30 * c, z, -20 * s, -20 * c, -z, 1.2 * c, -1.2 * s, 0.1, 0.05, 0.0, 1.3])
    return np.asarray(rows)


def random_maps(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random complex coil maps (any values: the operators must not assume unit RSS).

    Shape: ``shape``, complex128.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=torch.complex128, generator=gen)


def random_mask(shape: tuple[int, ...], seed: int = 0, weighted: bool = False) -> torch.Tensor:
    """A random sampling mask: boolean (half the samples) or weights in ``[0, 1)``.

    Shape: ``shape``, bool or float64.
    """
    gen = torch.Generator().manual_seed(seed)
    m = torch.rand(shape, generator=gen, dtype=torch.float64)
    return m if weighted else m > 0.5


def random_points(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``n`` uniform random k-space points in ``[-pi, pi)^d`` (radians per pixel).

    Shape: ``(n, d)``, float64.
    """
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi


# --- X-ray transforms: one feature of the geometry space each --------------------------------

OPERATORS: dict[str, Callable[[], pr.XRayTransform]] = {
    "parallel2d-even": lambda: pr.XRayTransform(
        pr.Volume((16, 16)), pr.ParallelBeam2D(angles=pr.angles(12), det_count=24)
    ),
    "parallel2d-odd-nonsquare-aniso-offset": lambda: pr.XRayTransform(
        pr.Volume((13, 19), spacing=(0.7, 1.3), center=(0.5, -1.0)),
        pr.ParallelBeam2D(angles=pr.angles(11, arc=2 * math.pi, start=0.1), det_count=27, det_spacing=0.9,
                          det_offset=1.7),
    ),
    "parallel2d-single-view": lambda: pr.XRayTransform(
        pr.Volume((10, 12)), pr.ParallelBeam2D(angles=[0.3], det_count=15)
    ),
    "parallel2d-axis-aligned": lambda: pr.XRayTransform(
        pr.Volume((9, 8)), pr.ParallelBeam2D(angles=[0.0, math.pi / 4, math.pi / 2, math.pi], det_count=13)
    ),
    "fan-flat": lambda: pr.XRayTransform(
        pr.Volume((15, 16)),
        pr.FanBeam2D(angles=pr.angles(10, arc=2 * math.pi), det_count=25, det_spacing=1.6, src_iso=30, src_det=55),
    ),
    "fan-flat-offset-aniso": lambda: pr.XRayTransform(
        pr.Volume((14, 11), spacing=(1.2, 0.8)),
        pr.FanBeam2D(angles=pr.angles(9, arc=math.pi + 0.8), det_count=22, det_spacing=1.5, src_iso=28, src_det=50,
                     det_offset=-2.3),
    ),
    "fan-arc-offset": lambda: pr.XRayTransform(
        pr.Volume((16, 15)),
        pr.FanBeam2D(angles=pr.angles(8, arc=2 * math.pi), det_count=23, det_spacing=1.7, src_iso=30, src_det=52,
                     detector="arc", det_offset=1.1),
    ),
    "vector2d-parallel": lambda: pr.XRayTransform(
        pr.Volume((12, 14)),
        pr.VectorGeometry(vectors=_random_vectors_2d(7, "parallel", 1), det_shape=18, beam="parallel"),
    ),
    "vector2d-cone-curved": lambda: pr.XRayTransform(
        pr.Volume((12, 13)),
        pr.VectorGeometry(vectors=_random_vectors_2d(6, "cone", 2), det_shape=21, beam="cone", detector="curved"),
    ),
    "parallel3d": lambda: pr.XRayTransform(
        pr.Volume((6, 8, 9)), pr.ParallelBeam3D(angles=pr.angles(7), det_shape=(8, 13), det_spacing=(1.0, 1.0))
    ),
    "parallel3d-aniso-offset": lambda: pr.XRayTransform(
        pr.Volume((7, 6, 8), spacing=(1.3, 0.9, 1.1), center=(0.4, 0.0, -0.3)),
        pr.ParallelBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(9, 12), det_spacing=(1.1, 0.8),
                          det_offset=(0.6, -1.2)),
    ),
    "cone-flat": lambda: pr.XRayTransform(
        pr.Volume((8, 9, 10)),
        pr.ConeBeam3D(angles=pr.angles(6, arc=2 * math.pi), det_shape=(12, 16), det_spacing=(1.4, 1.5),
                      src_iso=30, src_det=50),
    ),
    "cone-cylindrical-offset": lambda: pr.XRayTransform(
        pr.Volume((7, 10, 9), spacing=(1.2, 1.0, 0.9)),
        pr.ConeBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(11, 15), det_spacing=(1.5, 1.6),
                      src_iso=28, src_det=48, detector="cylindrical", det_offset=(0.7, 1.3)),
    ),
    "cone-single-view": lambda: pr.XRayTransform(
        pr.Volume((6, 7, 8)),
        pr.ConeBeam3D(angles=[0.7], det_shape=(9, 11), det_spacing=1.5, src_iso=25, src_det=45),
    ),
    "vector3d-cone": lambda: pr.XRayTransform(
        pr.Volume((7, 8, 9)), pr.VectorGeometry(vectors=_random_vectors_3d(5, 3), det_shape=(10, 12), beam="cone")
    ),
    # helical: table feed, flying focal spot (in angle, radius and z) on a cylindrical and a flat detector
    "helical-cylindrical-ffs": lambda: pr.XRayTransform(pr.Volume((8, 9, 10)), _helical("cylindrical")),
    "helical-flat-ffs": lambda: pr.XRayTransform(pr.Volume((8, 9, 10)), _helical("flat")),
}

# --- geometries of the voxel-driven back-projector and the short FBP / weighting cases -------

VBP_GEOMETRIES: dict[str, Callable[[], tuple[pr.Volume, pr.Geometry]]] = {
    "parallel2d": lambda: (
        pr.Volume((13, 16), spacing=(0.9, 1.1), center=(0.5, -0.3)),
        pr.ParallelBeam2D(angles=pr.angles(9), det_count=23, det_spacing=1.1, det_offset=0.4),
    ),
    "fan-flat": lambda: (
        pr.Volume((14, 15)),
        pr.FanBeam2D(angles=pr.angles(8, arc=2 * math.pi), det_count=29, det_spacing=1.5, src_iso=30, src_det=55,
                     det_offset=0.7),
    ),
    "fan-arc": lambda: (
        pr.Volume((15, 14)),
        pr.FanBeam2D(angles=pr.angles(7, arc=2 * math.pi), det_count=27, det_spacing=1.6, src_iso=30, src_det=52,
                     detector="arc"),
    ),
    "parallel3d": lambda: (
        pr.Volume((6, 8, 9)), pr.ParallelBeam3D(angles=pr.angles(5), det_shape=(8, 13), det_offset=(0.3, -0.6))
    ),
    "cone-flat": lambda: (
        pr.Volume((7, 9, 8), spacing=(1.1, 1.0, 0.9)),
        pr.ConeBeam3D(angles=pr.angles(5, arc=2 * math.pi), det_shape=(12, 16), det_spacing=(1.4, 1.5), src_iso=30,
                      src_det=50, det_offset=(0.5, -0.8)),
    ),
    "cone-cylindrical": lambda: (
        pr.Volume((7, 9, 8)),
        pr.ConeBeam3D(angles=pr.angles(4, arc=2 * math.pi), det_shape=(11, 15), det_spacing=(1.5, 1.6), src_iso=28,
                      src_det=48, detector="cylindrical", det_offset=(0.7, 1.3)),
    ),
    # cylinder about the focal centre, source moved off it by the flying focal spot (15-number views)
    "helical-cylindrical-ffs": lambda: (pr.Volume((7, 9, 8)), _helical("cylindrical", 6)),
}


def _vbp(name: str, weighted: bool, footprint: bool = False) -> pr.VoxelBackprojection:
    vol, geom = VBP_GEOMETRIES[name]()
    if footprint:  # a detector finer than the pixels (pitch 0.5 mm), covering the same width
        geom = geom.replace(det_spacing=0.5, det_count=math.ceil(geom.det_count * geom.det_spacing / 0.5))
    return pr.VoxelBackprojection(vol, geom, distance_weight=weighted, footprint=footprint)


def _short_fan(n_views: int = 6, detector: str = "flat") -> pr.FanBeam2D:
    return pr.FanBeam2D(angles=pr.angles(n_views, arc=math.pi + 1.2), det_count=11, det_spacing=1.5, src_iso=25,
                        src_det=45, detector=detector)


def _fbp(make_a: Callable[[], pr.XRayTransform], **kwargs: object) -> Callable[[], pr.FBP]:
    return lambda: pr.FBP(make_a(), **kwargs)


_FBP_A: dict[str, Callable[[], pr.XRayTransform]] = {
    "parallel": lambda: pr.XRayTransform(pr.Volume((6, 5)), pr.ParallelBeam2D(angles=pr.angles(4), det_count=9)),
    "parallel-fine": lambda: pr.XRayTransform(
        pr.Volume((6, 5)), pr.ParallelBeam2D(angles=pr.angles(4), det_count=17, det_spacing=0.5)
    ),
    "parallel-limited": lambda: pr.XRayTransform(
        pr.Volume((6, 5)), pr.ParallelBeam2D(angles=pr.angles(5, arc=2.0, start=0.3), det_count=11, det_spacing=0.8)
    ),
    "parallel3d": lambda: pr.XRayTransform(
        pr.Volume((3, 5, 4)), pr.ParallelBeam3D(angles=pr.angles(4), det_shape=(5, 9), det_spacing=(1.0, 0.8))
    ),
    "fan-flat-full": lambda: pr.XRayTransform(pr.Volume((6, 7)), pr.FanBeam2D(
        angles=pr.angles(5, arc=2 * math.pi), det_count=21, det_spacing=0.8, src_iso=25, src_det=45)),
    "fan-arc-full": lambda: pr.XRayTransform(pr.Volume((6, 7)), pr.FanBeam2D(
        angles=pr.angles(5, arc=2 * math.pi), det_count=21, det_spacing=0.8, src_iso=25, src_det=45, detector="arc")),
    "fan-flat-short": lambda: pr.XRayTransform(pr.Volume((6, 7)), _short_fan()),
    "fan-arc-short": lambda: pr.XRayTransform(pr.Volume((6, 7)), _short_fan(detector="arc")),
    "fan-arc-offset": lambda: pr.XRayTransform(pr.Volume((6, 7)), pr.FanBeam2D(
        angles=pr.angles(5, arc=2 * math.pi), det_count=11, det_spacing=1.5, src_iso=25, src_det=45, detector="arc",
        det_offset=0.8)),
    "cone-flat": lambda: pr.XRayTransform(pr.Volume((3, 4, 5)), pr.ConeBeam3D(
        angles=pr.angles(3, arc=2 * math.pi), det_shape=(4, 8), det_spacing=1.5, src_iso=25, src_det=45)),
    "cone-fine": lambda: pr.XRayTransform(pr.Volume((3, 4, 5), spacing=(1.0, 1.5, 1.5)), pr.ConeBeam3D(
        angles=pr.angles(3, arc=2 * math.pi), det_shape=(8, 16), det_spacing=0.75, src_iso=25, src_det=45)),
    "fan-arc-limited": lambda: pr.XRayTransform(pr.Volume((6, 7)), pr.FanBeam2D(
        angles=pr.angles(6, arc=2.2, start=0.4), det_count=11, det_spacing=1.5, src_iso=25, src_det=45,
        detector="arc")),
    "cone-flat-limited": lambda: pr.XRayTransform(pr.Volume((3, 4, 5)), pr.ConeBeam3D(
        angles=pr.angles(5, arc=2.0), det_shape=(4, 8), det_spacing=1.5, src_iso=25, src_det=45)),
    "cone-cylindrical-short": lambda: pr.XRayTransform(pr.Volume((3, 4, 5)), pr.ConeBeam3D(
        angles=pr.angles(5, arc=math.pi + 1.0), det_shape=(4, 8), det_spacing=1.5, src_iso=25, src_det=45,
        detector="cylindrical")),
}

# FiniteDifferences: name -> (shape, dims, spacing)
DIFF_CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...] | None, float | tuple[float, ...] | None]] = {
    "2d": ((7, 9), None, None),
    "2d-aniso": ((6, 5), None, (0.7, 1.9)),
    "3d": ((4, 5, 6), None, (1.0, 2.0, 0.5)),
    "3d-inplane": ((4, 5, 6), (-2, -1), None),
    "3d-z-only": ((5, 3, 4), (0,), 1.5),
    "singleton-axis": ((1, 6), None, None),
}

_SHAPE_2D = (6, 11)  # (views, detector pixels) of _short_fan


def _learned_response() -> torch.Tensor:
    """A learnable filter (a parameter with a perturbed Ram-Lak design)."""
    designed = pr.RampFilter((3, 20)).designed_response
    gen = torch.Generator().manual_seed(4)
    return torch.nn.Parameter(designed * (1.0 + 0.3 * torch.rand(designed.shape, generator=gen, dtype=torch.float64)))


# --- NUFFT and the composed / combined operators ------------------------------------------------

_NUFFT = ("finufft",)


def _xray_pair() -> tuple[pr.XRayTransform, pr.XRayTransform]:
    """Two transforms with the same domain and range (angles shifted by half a step)."""
    vol = pr.Volume((9, 8))
    return (
        pr.XRayTransform(vol, pr.ParallelBeam2D(angles=pr.angles(5), det_count=13)),
        pr.XRayTransform(vol, pr.ParallelBeam2D(angles=pr.angles(5, start=math.pi / 10), det_count=13,
                                                 det_offset=0.3)),
    )


def _sum_of_xrays() -> pr.LinearOperator:
    a, b = _xray_pair()
    return a + b


def _difference_of_xrays() -> pr.LinearOperator:
    a, b = _xray_pair()
    return a - 0.5 * b


def _sense_minus_sense() -> pr.LinearOperator:
    maps = random_maps((3, 7, 8), seed=5)
    return mr.SENSE(random_mask((7, 8), seed=6), maps) - mr.SENSE(random_mask((7, 8), seed=7, weighted=True), maps)


REGISTRY: dict[str, Case] = {
    # X-ray transforms (Joseph, custom ops): batches are folded into one kernel call
    **{f"xray-{name}": Case(make, rel32=1e-6, cuda=True, compile=name == "fan-arc-offset",
                              norm_rtol=SLOW_POWER if name == "parallel2d-single-view" else 1e-6)
       for name, make in OPERATORS.items()},
    # voxel-driven back-projector (custom ops), with and without the (D/l)^2 weight
    **{f"vbp-{name}{'-weighted' if w else ''}": Case(functools.partial(_vbp, name, w), cuda=True)
       for name in VBP_GEOMETRIES for w in (False, True)},
    # 2-D pixel footprints, on a detector finer than the pixels
    **{f"vbp-footprint-{name}{'-weighted' if w else ''}": Case(functools.partial(_vbp, name, w, True), cuda=True)
       for name in ("parallel2d", "fan-flat", "fan-arc") for w in (False, True)},
    # FBP / FDK, B @ H @ P, every back-projector that applies
    "fbp-parallel-voxel": Case(_fbp(_FBP_A["parallel"], backprojector="voxel"), cuda=True, compile=True),
    "fbp-parallel-voxel-mean": Case(_fbp(_FBP_A["parallel-fine"], backprojector="voxel-mean"), cuda=True),
    "fbp-parallel-footprint": Case(_fbp(_FBP_A["parallel-fine"], backprojector="footprint"), cuda=True),
    "fbp-parallel-adjoint": Case(_fbp(_FBP_A["parallel"], backprojector="adjoint"), cuda=True),
    "fbp-parallel-limited": Case(_fbp(_FBP_A["parallel-limited"]), cuda=True),
    "fbp-parallel-limited-adjoint": Case(_fbp(_FBP_A["parallel-limited"], backprojector="adjoint"), cuda=True),
    "fbp-parallel3d-voxel": Case(_fbp(_FBP_A["parallel3d"]), cuda=True),
    "fbp-parallel3d-adjoint": Case(_fbp(_FBP_A["parallel3d"], backprojector="adjoint"), cuda=True,
                                   norm_rtol=SLOW_POWER),
    "fbp-fan-flat-full-voxel": Case(_fbp(_FBP_A["fan-flat-full"], backprojector="voxel"), cuda=True),
    "fbp-fan-flat-full-voxel-mean": Case(_fbp(_FBP_A["fan-flat-full"], backprojector="voxel-mean"), cuda=True,
                                         norm_rtol=SLOW_POWER),
    "fbp-fan-arc-full-footprint": Case(_fbp(_FBP_A["fan-arc-full"], backprojector="footprint"), cuda=True,
                                       norm_rtol=SLOW_POWER),
    "fbp-fan-flat-short": Case(_fbp(_FBP_A["fan-flat-short"]), cuda=True),
    "fbp-fan-arc-short-voxel": Case(_fbp(_FBP_A["fan-arc-short"], backprojector="voxel"), cuda=True),
    "fbp-fan-flat-short-no-parker": Case(_fbp(_FBP_A["fan-flat-short"], parker=False, short_scan=True),
                                         cuda=True),
    "fbp-fan-arc-offset-hann": Case(_fbp(_FBP_A["fan-arc-offset"], filter="hann"), cuda=True,
                                    norm_rtol=SLOW_POWER),
    "fdk-cone-flat": Case(_fbp(_FBP_A["cone-flat"]), cuda=True),
    # limited-angle fan / cone: Parker weights continued below pi + fan angle
    "fbp-fan-arc-limited-extended": Case(_fbp(_FBP_A["fan-arc-limited"], parker="extended"), cuda=True),
    "fdk-cone-flat-limited-extended": Case(_fbp(_FBP_A["cone-flat-limited"], parker="extended"), cuda=True),
    "fdk-cone-voxel-mean": Case(_fbp(_FBP_A["cone-fine"], backprojector="voxel-mean"), cuda=True),
    "fdk-cone-cylindrical-short": Case(_fbp(_FBP_A["cone-cylindrical-short"], filter="shepp-logan", cutoff=0.8),
                                       cuda=True),
    # chunked execution: slabs x views x batch groups (the split depends on the batch size)
    **{f"chunked-{name}": Case(lambda make=make: pr.ChunkedOperator(make(), max_bytes=2 * 8 * (2 * 20 + 2 * 32)),
                               batch_exact=False, cuda=True)
       for name, make in (("xray-cone", _FBP_A["cone-flat"]),
                          ("vbp-cone", lambda: pr.VoxelBackprojection(
                              pr.Volume((3, 4, 5)), _FBP_A["cone-flat"]().geometry, distance_weight=True)),
                          ("fdk-cone", _fbp(_FBP_A["cone-flat"])))},
    # helical FDK with WFBP-style row weights (flying focal spot, both detector shapes)
    "helical-fbp-cylindrical": Case(lambda: pr.HelicalFBP(OPERATORS["helical-cylindrical-ffs"]()), cuda=True),
    "helical-fbp-flat-hann": Case(lambda: pr.HelicalFBP(OPERATORS["helical-flat-ffs"](), "hann", flat=0.3),
                                  cuda=True),
    "chunked-helical-fbp": Case(lambda: pr.ChunkedOperator(pr.HelicalFBP(OPERATORS["helical-flat-ffs"]()),
                                                           max_bytes=2 * 8 * (3 * 90 + 4 * 20)),
                                batch_exact=False, cuda=True),
    # ramp filters (self-adjoint), every window and a learnable response
    **{f"ramp-{window}": Case(functools.partial(pr.RampFilter, (7, 45), det_spacing=0.8, window=window,
                                                cutoff=0.8 if window == "hann" else 1.0), tol32=1e-6, cuda=True,
                              norm_rtol=SLOW_POWER)
       for window in ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")},
    "ramp-learned": Case(lambda: pr.RampFilter((3, 20), response=_learned_response()), tol32=1e-6, cuda=True,
                         compile=True, norm_rtol=SLOW_POWER),
    "ramp-3d": Case(lambda: pr.RampFilter((4, 3, 17), det_spacing=1.3, window="cosine"), tol32=1e-6, cuda=True,
                    norm_rtol=SLOW_POWER),
    # diagonal pre-weights of FBP (self-adjoint)
    "weighting-cosine-fan": Case(lambda: pr.ProjectionWeighting.cosine(_short_fan()), tol32=1e-7, cuda=True),
    "weighting-cosine-cone": Case(lambda: pr.ProjectionWeighting.cosine(_FBP_A["cone-flat"]().geometry),
                                  tol32=1e-7, cuda=True),
    "weighting-parker-fan-arc": Case(lambda: pr.ProjectionWeighting.parker(_short_fan(detector="arc")), tol32=1e-7,
                                     cuda=True),
    "weighting-extended-parker-limited": Case(
        lambda: pr.ProjectionWeighting.extended_parker(_FBP_A["fan-arc-limited"]().geometry), tol32=1e-7, cuda=True),
    "weighting-angular-irregular": Case(lambda: pr.ProjectionWeighting.angular(pr.ParallelBeam2D(
        angles=np.sort(np.random.default_rng(2).uniform(0, math.pi, 7)), det_count=9)), tol32=1e-7, cuda=True),
    "weighting-full-scan": Case(lambda: pr.ProjectionWeighting.full_scan(_FBP_A["fan-flat-full"]().geometry),
                                tol32=1e-7, cuda=True),
    "weighting-redundancy-short": Case(lambda: pr.ProjectionWeighting.redundancy(_short_fan(detector="arc")),
                                       tol32=1e-7, cuda=True, compile=True),
    "weighting-explicit": Case(lambda: pr.ProjectionWeighting(_SHAPE_2D, random_mask(_SHAPE_2D, 8, weighted=True)),
                               tol32=1e-7, cuda=True),
    # finite differences (Neumann), real and complex
    **{f"diff-{name}{'-complex' if c else ''}": Case(functools.partial(pr.FiniteDifferences, shape, dims=dims,
                                                                       spacing=spacing), complex=c, cuda=True,
                                                     compile=name == "3d" and not c)
       for name, (shape, dims, spacing) in DIFF_CASES.items() for c in (False, True)},
    # Cartesian MR (complex)
    "mr-fft2d-even": Case(lambda: mr.FFT((8, 6)), complex=True, cuda=True),
    "mr-fft2d-odd": Case(lambda: mr.FFT((7, 9)), complex=True, cuda=True),
    "mr-fft3d": Case(lambda: mr.FFT((5, 4, 6)), complex=True, cuda=True),
    "mr-fft2d-coils": Case(lambda: mr.FFT((3, 7, 8), dims=2), complex=True, cuda=True),
    "mr-fft1d": Case(lambda: mr.FFT((11,)), complex=True, cuda=True),
    "mr-sampling-bool": Case(lambda: mr.Sampling(random_mask((7, 8))), complex=True),
    "mr-sampling-weighted-broadcast": Case(lambda: mr.Sampling(random_mask((1, 8), weighted=True), (3, 5, 8)),
                                           complex=True),
    "mr-coils2d": Case(lambda: mr.Coils(random_maps((4, 7, 6))), complex=True, norm_rtol=SLOW_POWER),
    "mr-coils3d": Case(lambda: mr.Coils(random_maps((3, 4, 5, 6))), complex=True),
    "mr-sense2d": Case(lambda: mr.SENSE(random_mask((7, 8)), random_maps((4, 7, 8))), complex=True, compile=True),
    "mr-sense2d-lines": Case(lambda: mr.SENSE(mr.equispaced_lines((9, 8), 2, center_lines=2, seed=1),
                                              random_maps((3, 9, 8))), complex=True, norm_rtol=SLOW_POWER),
    "mr-sense3d": Case(lambda: mr.SENSE(random_mask((4, 5, 6), weighted=True), random_maps((2, 4, 5, 6))),
                       complex=True),
    "mr-coils2d-sets": Case(lambda: mr.Coils(random_maps((2, 4, 7, 6)), sets=True), complex=True),
    "mr-sense2d-sets": Case(lambda: mr.SENSE(random_mask((7, 8)), random_maps((2, 3, 7, 8)), sets=True),
                            complex=True),
    "mr-sense3d-sets": Case(lambda: mr.SENSE(random_mask((4, 5, 6)), random_maps((2, 2, 4, 5, 6)), sets=True),
                            complex=True),
    "mr-wavelet-db4": Case(lambda: mr.Wavelet((16, 24), "db4", 1), complex=True, requires=("ptwt",)),
    "mr-wavelet-haar-3level": Case(lambda: mr.Wavelet((8, 16), "haar", 3), complex=True, requires=("ptwt",)),
    # non-Cartesian MR (finufft; its own autograd.Function, hence gradcheck)
    "nufft-radial-even": Case(lambda: mr.NUFFT(mr.radial(9, 16), (8, 8), eps=1e-12), complex=True, gradcheck=True,
                              requires=_NUFFT),
    "nufft-spiral-odd": Case(lambda: mr.NUFFT(mr.spiral(3, 40, n_turns=2.5), (7, 9), eps=1e-12), complex=True,
                             gradcheck=True, requires=_NUFFT),
    "nufft-random3d": Case(lambda: mr.NUFFT(random_points(60, 3), (4, 5, 6), eps=1e-12), complex=True,
                           gradcheck=True, requires=_NUFFT),
    "nufft-coils-channels": Case(lambda: mr.NUFFT(random_points(30, 2), (3, 6, 5), eps=1e-12), complex=True,
                                 gradcheck=True, requires=_NUFFT),
    "nufft-toeplitz": Case(lambda: mr.NUFFT(mr.radial(7, 12), (6, 7), eps=1e-12).toeplitz(), complex=True,
                           gradcheck=True, requires=_NUFFT),
    "nufft-toeplitz-weighted-3d": Case(lambda: mr.NUFFT(random_points(40, 3), (4, 5, 4), eps=1e-12).toeplitz(
        torch.rand(40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))), complex=True,
        gradcheck=True, requires=_NUFFT),
    "nufft-sense": Case(lambda: mr.NUFFT(mr.radial(6, 14), (4, 7, 7), eps=1e-12)
                        @ mr.Coils(mr.birdcage_maps((4, 7, 7), dtype=torch.complex128)), complex=True,
                        gradcheck=True, requires=_NUFFT),
    # identity, adjoints, compositions, sums and scalings (combinations have no .to(device): those of
    # device-bound operators stay off the CUDA test)
    "identity": Case(lambda: pr.IdentityOperator((3, 4)), checks_dtype=False, cuda=True),
    "identity-complex": Case(lambda: pr.IdentityOperator((5,)), complex=True, checks_dtype=False, cuda=True),
    "xray-adjoint": Case(lambda: OPERATORS["fan-arc-offset"]().T, rel32=1e-6, cuda=False),
    "xray-normal": Case(lambda: (lambda a: a.T @ a)(OPERATORS["parallel2d-axis-aligned"]()), cuda=False),
    "xray-sum": Case(_sum_of_xrays, cuda=False),
    "xray-difference": Case(_difference_of_xrays, cuda=False),
    "xray-scaled": Case(lambda: 2.5 * OPERATORS["cone-single-view"](), cuda=False),
    "fbp-after-xray": Case(lambda: (lambda fbp: fbp @ fbp.A)(pr.FBP(_FBP_A["fan-flat-short"]())), cuda=False),
    "ramp-after-weighting": Case(lambda: pr.RampFilter(_SHAPE_2D, det_spacing=0.8)
                                 @ pr.ProjectionWeighting.parker(_short_fan()), cuda=True, norm_rtol=SLOW_POWER),
    "diff-laplacian": Case(lambda: (lambda d: d.T @ d)(pr.FiniteDifferences((5, 6), spacing=0.5)), cuda=True),
    "diff-negated-adjoint": Case(lambda: -pr.FiniteDifferences((4, 5, 3)).T, cuda=True),
    "identity-plus-laplacian": Case(lambda: pr.IdentityOperator((5, 6))
                                    + 0.1 * (lambda d: d.T @ d)(pr.FiniteDifferences((5, 6))), cuda=True),
    "mr-sense-complex-scaled": Case(lambda: (1.0 - 2.0j) * mr.SENSE(random_mask((6, 7)), random_maps((2, 6, 7))),
                                    complex=True),
    "mr-sense-difference": Case(_sense_minus_sense, complex=True),
    "mr-sense-normal-plus-identity": Case(lambda: (lambda a: a.T @ a + pr.IdentityOperator((7, 8)))(
        mr.SENSE(random_mask((7, 8)), random_maps((3, 7, 8)))), complex=True),
    "mr-fft-after-coils": Case(lambda: mr.FFT((3, 5, 6), dims=2) @ mr.Coils(random_maps((3, 5, 6))), complex=True,
                               cuda=False),
}


@functools.cache
def build(name: str) -> pr.LinearOperator:
    """The operator of ``REGISTRY[name]``, built once per session.

    Operators are immutable, so the tests share one instance (and its cached norm).
    """
    return REGISTRY[name].make()
