"""The built-in benchmark tasks: their operators, test/validation phantoms and simulated data.

Four CT tasks (parallel-beam sparse view, fan-beam limited angle, low-dose Poisson) and two
MR tasks (SENSE at R = 4 and 8). The test images are the modified Shepp-Logan phantom and
held-out random ellipses; the CT data are exact analytic line integrals with detector-cell
integration (no inverse crime), the MR data the SENSE model of the sub-pixel averaged image.
Parameters (FBP windows, iteration counts, TV weights) are chosen on separate validation
ellipses, whose seeds differ from the test and training seeds.

The ``real`` suite (``Suite.images == "real"``) tests on the real CT and MR slices bundled
with pydicom (:mod:`~precisionrecon.bench.real`) and tunes on anatomy phantoms
(:func:`~precisionrecon.data.anatomy_images`), never on the test images. Its CT data are
projected from the image at twice the task size onto a detector with cells of half the
size, then binned (:func:`~precisionrecon.data.fine_projection`; the truth is the 2 x 2
block mean of that image), with the default suite's noise. Its MR k-space is the SENSE
model of the task-size image (an MR inverse crime cannot be avoided the same way with a
Cartesian FFT; area resampling from the larger original is what keeps the data from being
made on the reconstruction grid, and ``MR_small.dcm`` is already 64 x 64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import data
from ..data import fine_projection
from ..geometry import FanBeam2D, ParallelBeam2D, Volume, angles
from ..mr import SENSE, birdcage_maps, equispaced_lines, espirit, nlinv, smooth_phase
from ..operators import LinearOperator, XRayTransform
from .real import real_images

CT_TASKS: tuple[str, ...] = ("sparse-view-30", "sparse-view-60", "limited-angle-fan", "low-dose")
MR_TASKS: tuple[str, ...] = ("mr-4x", "mr-8x")
TASKS: tuple[str, ...] = CT_TASKS + MR_TASKS
TEST_SEED = 880_001  # held-out test ellipses (the trainer draws its phantoms from other seed streams)
VAL_SEED = 880_002  # the validation ellipse images on which iteration counts and TV weights are chosen
NOISE_SEED = 880_003
REAL_FINE_FACTOR = 2  # the real suite's CT data: image grid and detector cells this much finer
IMAGES = ("phantoms", "real")

CT_NOISE: dict[str, dict[str, Any]] = {
    "sparse-view-30": {"noise": "gaussian", "noise_level": 0.05},
    "sparse-view-60": {"noise": "gaussian", "noise_level": 0.05},
    "limited-angle-fan": {"noise": "gaussian", "noise_level": 0.01},
    "low-dose": {"noise": "poisson", "i0": 1e4, "mu_scale": 0.02},  # value 1 ~ water, 0.02 / mm
}
MR_NOISE: dict[str, Any] = {"noise": "gaussian", "noise_level": 0.05, "coils": 12}
MR_ACCELERATION: dict[str, int] = {"mr-4x": 4, "mr-8x": 8}
# 12 coils at 1.2 half-FOVs: regular 4x g-factor over the 64² FOV mean 3.2, max 7.3 (8 coils
# at 1.5: mean 6.9, max 14; real head arrays reach 1.5-3 over the head); 8 fully sampled
# centre lines for ESPIRiT (mr-8x had 3, too few for a calibration box)
MR_RADIUS = 1.2
MR_CENTER_FRACTION = 0.125
# ESPIRiT as benchmarks/mr_maps_bench_tasks.py estimates the maps against the bench's NLINV: two sets
# (soft-SENSE: the real slices fill the field of view), all rows of the ACS block, a kernel of
# 3 across its 8 lines (5 lost 1-3 dB on MR_small.dcm), a low singular value threshold for
# the wide calibration matrix (0.005 against 0.02: +3 dB)
MR_ESPIRIT: dict[str, Any] = {"n_maps": 2, "calib_size": 64, "kernel_size": (6, 3), "threshold": 0.005,
                              "crop": 0.8}
DESCRIPTIONS: dict[str, str] = {
    "sparse-view-30": "parallel beam, 30 views over 180 deg, 5 % Gaussian noise",
    "sparse-view-60": "parallel beam, 60 views over 180 deg, 5 % Gaussian noise",
    "limited-angle-fan": "fan beam (flat detector, magnification 2), 160 deg arc, 1 % Gaussian noise",
    "low-dose": "parallel beam, 180 views, Poisson I0 = 1e4 photons (pre-log), mu(value 1) = 0.02 / mm",
    "mr-4x": "12 birdcage coils, equispaced lines R = 4 (12.5 % centre), 5 % complex Gaussian noise, "
             "NLINV maps from each image's data",
    "mr-8x": "12 birdcage coils, equispaced lines R = 8 (12.5 % centre), 5 % complex Gaussian noise, "
             "NLINV maps from each image's data",
}


@dataclass(frozen=True)
class Suite:
    """Sizes of a benchmark run.

    Attributes
    ----------
    n : int
        Image side (images are ``n x n`` pixels of 1 mm).
    n_ellipses : int
        Held-out ellipse test images (Shepp-Logan comes on top).
    n_val : int
        Validation ellipse images, on which FBP windows, iteration counts and TV weights are chosen.
    sirt_iter, cg_iter, tv_iter : int
        Maximal iterations of SIRT, CG-SENSE and TV.
    tv_grid : tuple of float
        Factors of the TV weight's base value that are tried.
    oversample : int
        Sub-samples per pixel and detector cell of the simulation.
    images : {"phantoms", "real"}
        Test images: Shepp-Logan plus ``n_ellipses`` held-out ellipses, validated on
        ellipses; or the real DICOM slices of :mod:`~precisionrecon.bench.real` (``n_ellipses``
        unused), validated on ``n_val`` anatomy phantoms.
    """

    n: int
    n_ellipses: int
    n_val: int
    sirt_iter: int
    cg_iter: int
    tv_iter: int
    tv_grid: tuple[float, ...]
    oversample: int
    images: str = "phantoms"

    def __post_init__(self) -> None:
        if self.images not in IMAGES:
            raise ValueError(f"images must be one of {list(IMAGES)}, got {self.images!r}")


TV_GRID = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # factors of the TV weight's base value
SUITES: dict[str, Suite] = {
    # the pretrained weights are for 64 x 64 images (the default suite)
    "default": Suite(n=64, n_ellipses=4, n_val=3, sirt_iter=200, cg_iter=60, tv_iter=200, tv_grid=TV_GRID,
                     oversample=4),
    "large": Suite(n=128, n_ellipses=4, n_val=3, sirt_iter=200, cg_iter=60, tv_iter=200, tv_grid=TV_GRID,
                   oversample=4),
    "quick": Suite(n=32, n_ellipses=1, n_val=1, sirt_iter=20, cg_iter=8, tv_iter=20, tv_grid=(1.0,), oversample=2),
    # real CT/MR slices (pydicom's bundled files) at the pretrained models' size
    "real": Suite(n=64, n_ellipses=0, n_val=3, sirt_iter=200, cg_iter=60, tv_iter=200, tv_grid=TV_GRID,
                  oversample=4, images="real"),
}


@dataclass
class TaskData:
    """One task's operator, test data and truth, plus a validation pair for parameter choices.

    Shape: ``truth`` ``(n_test, n, n)`` (phantoms: Shepp-Logan first, then the
    ``n_ellipses`` ellipses; real: the files of ``test_images``; complex for MR), ``y``
    ``(n_test, *operator.range_shape)``; ``truth_val`` ``(n_val, n, n)`` and ``y_val`` alike.
    ``test_images`` names the test images, ``tuned_on`` says what the validation images
    are, ``skipped`` why real files were left out. MR: ``operator`` has the true maps,
    ``estimated`` / ``estimated_val`` hold one soft-SENSE operator per image with maps estimated
    from that image's data (:func:`estimated_operator`).
    """

    name: str
    modality: str
    description: str
    operator: LinearOperator
    y: Tensor
    truth: Tensor
    y_val: Tensor
    truth_val: Tensor
    noise: dict[str, Any]
    test_images: list[str] = field(default_factory=list)
    tuned_on: str = ""
    skipped: list[str] = field(default_factory=list)
    estimated: list[SENSE] = field(default_factory=list)
    estimated_val: list[SENSE] = field(default_factory=list)


def check_task(task: object) -> str:
    """``task`` if it names a built-in task, else ``ValueError``/``TypeError`` listing them."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(TASKS)}")
    return task


def task_modality(task: str) -> str:
    """``"ct"`` or ``"mr"``: the modality of a built-in ``task``."""
    return "ct" if check_task(task) in CT_TASKS else "mr"


def _ct_operator(task: str, n: int) -> XRayTransform:
    vol = Volume((n, n))
    if task == "limited-angle-fan":
        # fan beam over 160 degrees (< 180 + fan angle: limited angle), magnification 2
        det = 2 * math.ceil(math.sqrt(2.0) * n) + 8
        views = max(n // 2, 16) if n < 128 else 160
        geom = FanBeam2D(angles=angles(views, arc=math.radians(160.0)), det_count=det, det_spacing=1.0,
                         src_iso=2.0 * n, src_det=4.0 * n)
        return XRayTransform(vol, geom)
    views = {"sparse-view-30": 30, "sparse-view-60": 60, "low-dose": 180}[task]
    det = math.ceil(math.sqrt(2.0) * n) + 2  # the detector covers the image diagonal (1 mm cells)
    return XRayTransform(vol, ParallelBeam2D(angles=angles(views), det_count=det))


def _mr_operator(task: str, n: int, device: torch.device | str) -> SENSE:
    R = MR_ACCELERATION[task]
    maps = birdcage_maps((MR_NOISE["coils"], n, n), radius=MR_RADIUS).to(device)
    # at least 5 centre lines: ESPIRiT's smallest calibration box (small test suites)
    mask = equispaced_lines((n, n), R, center_lines=max(5, round(MR_CENTER_FRACTION * n)), seed=0).to(device)
    return SENSE(mask, maps)


def espirit_operator(A: SENSE, y: Tensor) -> SENSE:
    """The SENSE model with ESPIRiT maps (:data:`MR_ESPIRIT`, two sets) estimated from one
    image's k-space.

    Shape: ``y`` ``A.range_shape``; the result maps ``(2, n, n) -> A.range_shape``.
    """
    return SENSE(A.mask, espirit(y, A.mask, **MR_ESPIRIT), sets=True)


def nlinv_operator(A: SENSE, y: Tensor) -> SENSE:
    """The SENSE model with NLINV maps (:func:`~precisionrecon.mr.nlinv`, its defaults: coils on
    a 1.5x oversampled grid) estimated from one image's k-space, as one set.

    Shape: ``y`` ``A.range_shape``; the result maps ``(1, n, n) -> A.range_shape``.
    """
    return SENSE(A.mask, nlinv(y, A.mask).maps[None], sets=True)


def estimated_operator(A: SENSE, y: Tensor) -> SENSE:
    """The SENSE model with maps estimated from one image's k-space, as a user with real data
    has it: NLINV (:func:`nlinv_operator`). On the bench's MR tasks its maps beat ESPIRiT's
    (:func:`espirit_operator`) in CG-SENSE by 1.2 / 0.0 dB (mr-4x / mr-8x, phantoms) and
    9.2 / 2.7 dB (real slices), ``benchmarks/results/mr_maps_bench_tasks.md``.

    Shape: ``y`` ``A.range_shape``; the result maps ``(1, n, n) -> A.range_shape``.
    """
    return nlinv_operator(A, y)


def task_operator(task: str, n: int, device: torch.device | str = "cpu") -> LinearOperator:
    """The forward operator of a built-in task, as the benchmark and the training configs of
    the pretrained weights build it.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
    n : int
        Image side in pixels (1 mm each).
    device : torch.device or str
        Where the operator lives.

    Returns
    -------
    LinearOperator
        CT: an :class:`~precisionrecon.XRayTransform` (parallel beam, or fan beam over 160 deg
        for ``limited-angle-fan``); MR: a :class:`~precisionrecon.mr.SENSE` operator with 12
        birdcage coils (radius 1.2) and equispaced lines, 12.5 % of them fully sampled in
        the centre, with the true maps.
        Shape: domain ``(n, n)``.
    """
    modality = task_modality(task)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 8:
        raise ValueError(f"n must be >= 8, got {n}")
    if modality == "ct":
        return _ct_operator(task, n).to(device)
    return _mr_operator(task, n, device)


def _phantoms(vol: Volume, n_ellipses: int, seed: int, with_sl: bool) -> list[Any]:
    out = [data.shepp_logan_2d(vol)] if with_sl else []
    # only ellipses inside the image: the exact data must hold nothing outside the volume
    out += [data.random_ellipses(50, volume=vol, seed=seed + k, contained=True) for k in range(n_ellipses)]
    return out


def _ct_noise(clean: Tensor, noise: dict[str, Any], seed: int) -> Tensor:
    """The task's noise on each item of ``clean``, item ``i`` with ``seed + i``."""
    if noise["noise"] == "poisson":
        return torch.stack([data.poisson_noise(clean[i], noise["i0"], seed=seed + i, mu_scale=noise["mu_scale"])
                            for i in range(clean.shape[0])])
    return torch.stack([data.gaussian_noise(clean[i], noise["noise_level"], seed=seed + i)
                        for i in range(clean.shape[0])])


def _simulate_ct(A: XRayTransform, noise: dict[str, Any], phantoms: list[Any], seed: int, oversample: int,
                 device: torch.device) -> tuple[Tensor, Tensor]:
    # exact line integrals of the ellipses, detector cells integrated: no inverse crime
    truth = torch.stack([data.rasterize(p, A.volume, oversample=oversample) for p in phantoms])
    clean = torch.stack([data.analytic_projection(p, A.geometry, oversample=oversample) for p in phantoms])
    return _ct_noise(clean, noise, seed).float().to(device), truth.float().to(device)


def _simulate_ct_fine(A: XRayTransform, noise: dict[str, Any], fine: Tensor, seed: int,
                      device: torch.device) -> tuple[Tensor, Tensor]:
    """Data of images given at ``REAL_FINE_FACTOR`` times the task size: projected on that
    grid with a detector as much finer, binned; the truth is their block mean.

    Shape: ``fine`` ``(batch, f n, f n)``.
    """
    f = REAL_FINE_FACTOR
    fine = fine.to(torch.float64)
    clean = fine_projection(lambda volume: fine, A, factor=f)
    truth = torch.nn.functional.avg_pool2d(fine[:, None], f)[:, 0]  # the same object on the task grid
    return _ct_noise(clean, noise, seed).float().to(device), truth.float().to(device)


def _simulate_mr(A: SENSE, magnitudes: Tensor, seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Magnitudes times a smooth phase per image; the k-space comes from the discrete image
    (the SENSE model itself), with complex noise on the sampled lines.

    Shape: ``magnitudes`` ``(batch, n, n)``.
    """
    n, count = magnitudes.shape[-1], magnitudes.shape[0]
    images = []
    for k in range(count):
        a = (0.5 + 0.5 * k / max(count, 1)) * math.pi / 2
        images.append(torch.polar(magnitudes[k].abs().float(), a * smooth_phase((n, n), 1.0).float()))
    truth = torch.stack(images).to(device)
    with torch.no_grad():
        clean = A(truth)
    noisy = torch.stack([data.gaussian_noise(clean[i], MR_NOISE["noise_level"], seed=seed + i, item_ndim=3)
                         for i in range(count)])
    y = clean + (noisy - clean) * (A.mask != 0).to(clean.real.dtype)  # unsampled k-space stays zero
    return y, truth


def _validation_anatomy(n: int, count: int, modality: str, oversample: int) -> Tensor:
    """The real suite's validation images: anatomy phantoms (body and head), MR ones scaled to maximum 1.

    Shape: ``(count, n, n)``, float64.
    """
    images = data.anatomy_images(Volume((n, n)), count, seed=VAL_SEED, kind="random", oversample=oversample,
                                 dtype=torch.float64)
    if modality == "mr":
        images = images / images.amax((-2, -1), keepdim=True)
    return images


def tuning_set(suite: Suite) -> str:
    """What the FBP windows, iteration counts and TV weights of ``suite`` are tuned on, one sentence."""
    if suite.images == "real":
        return (f"{suite.n_val} anatomy phantoms (pr.data.anatomy_images, kind 'random', seed {VAL_SEED}; "
                "MR magnitudes scaled to maximum 1), simulated like the test data; never the test images")
    return f"{suite.n_val} validation random-ellipse images (seeds {VAL_SEED}+k), not the test images"


def build_task(task: str, suite: Suite, device: torch.device | str = "cpu") -> TaskData:
    """The operator and the simulated test and validation data of a built-in task.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
    suite : Suite
        Image size, test images (phantoms or real), number of test / validation images and
        simulation oversampling (e.g. ``SUITES["default"]``).
    device : torch.device or str
        Where the operator and the data live.

    Returns
    -------
    TaskData
        Shape: ``truth`` ``(n_test, n, n)`` with ``n_test = 1 + suite.n_ellipses`` (phantoms)
        or the number of usable real files (``ValueError`` if none is), ``y`` ``(n_test,
        *operator.range_shape)``, ``truth_val`` / ``y_val`` with ``suite.n_val`` items.
    """
    modality = task_modality(task)
    if not isinstance(suite, Suite):
        raise TypeError(f"suite must be a Suite (e.g. SUITES['default']), got {type(suite).__name__}")
    device = torch.device(device)
    n = suite.n
    vol = Volume((n, n))
    if modality == "ct":
        xray = _ct_operator(task, n)  # simulated on the CPU from its geometry, then moved
        operator: LinearOperator = xray.to(device)
        noise = dict(CT_NOISE[task])
    else:
        sense = _mr_operator(task, n, device)
        operator = sense
        R = MR_ACCELERATION[task]
        noise = {**MR_NOISE, "acceleration": R, "center_fraction": MR_CENTER_FRACTION, "radius": MR_RADIUS,
                 "maps": "NLINV (pr.mr.nlinv defaults), estimated from each image's k-space"}

    skipped: list[str] = []
    if suite.images == "phantoms":
        test = _phantoms(vol, suite.n_ellipses, TEST_SEED, True)
        val = _phantoms(vol, suite.n_val, VAL_SEED, False)
        names = ["shepp-logan"] + [f"ellipses-{TEST_SEED + k}" for k in range(suite.n_ellipses)]
        if modality == "ct":
            y, truth = _simulate_ct(xray, noise, test, NOISE_SEED, suite.oversample, device)
            y_val, truth_val = _simulate_ct(xray, noise, val, NOISE_SEED + 1000, suite.oversample, device)
        else:
            def magnitudes(phantoms: list[Any]) -> Tensor:  # sub-pixel averaged ellipses
                return torch.stack([data.rasterize(p, vol, oversample=suite.oversample).abs() for p in phantoms])
            y, truth = _simulate_mr(sense, magnitudes(test), NOISE_SEED, device)
            y_val, truth_val = _simulate_mr(sense, magnitudes(val), NOISE_SEED + 1000, device)
    else:
        f = REAL_FINE_FACTOR if modality == "ct" else 1
        names, images, skipped = real_images(modality.upper(), f * n)
        if images is None:
            raise ValueError(f"no usable real {modality.upper()} image for {task}: " + "; ".join(skipped))
        # the phantoms at f n with oversample / f sub-samples: the same sampling density as the task grid's
        val_images = _validation_anatomy(f * n, suite.n_val, modality, max(suite.oversample // f, 1))
        if modality == "ct":
            y, truth = _simulate_ct_fine(xray, noise, images, NOISE_SEED, device)
            y_val, truth_val = _simulate_ct_fine(xray, noise, val_images, NOISE_SEED + 1000, device)
        else:
            y, truth = _simulate_mr(sense, images, NOISE_SEED, device)
            y_val, truth_val = _simulate_mr(sense, val_images, NOISE_SEED + 1000, device)
        noise = {**noise, "fine_factor": f} if modality == "ct" else noise
    estimated: list[SENSE] = []
    estimated_val: list[SENSE] = []
    if modality == "mr":
        estimated = [estimated_operator(sense, y[i]) for i in range(y.shape[0])]
        estimated_val = [estimated_operator(sense, y_val[i]) for i in range(y_val.shape[0])]
    return TaskData(task, modality, DESCRIPTIONS[task], operator, y, truth, y_val, truth_val, noise,
                    test_images=names, tuned_on=tuning_set(suite), skipped=skipped, estimated=estimated,
                    estimated_val=estimated_val)
