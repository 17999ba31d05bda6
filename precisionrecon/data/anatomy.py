"""Procedural, seeded, anatomy-like CT/MR training phantoms in 2-D and 3-D (no downloads).

A phantom is a list of smooth random shapes ("blobs": superellipses/superquadrics whose
boundary radius is perturbed by a few random plane waves on the direction sphere) painted
one over another in world coordinates, plus two texture fields (power-law and
Gaussian-smoothed noise on a fixed lattice, interpolated). Everything random is drawn
from the seed *before* any grid is seen, and the shapes are evaluated at world points, so
the same seed gives the same object on any :class:`~precisionrecon.Volume`: at the task
grid, or 2-4x finer for simulating data without the inverse crime
(:func:`~precisionrecon.data.fine_projection`).

Geometry: lengths are in units of ``R``, the smaller half-extent of the volume in x and y
(mm), about the volume centre, so the body fills the field of view whatever its spacing;
``y`` grows with the image row, so anterior is at the top of ``imshow`` and the spine at
the bottom, as radiologists display axial slices. In 3-D, z is the body axis (the same
``R`` in mm, isotropic).

Values: linear attenuation at about 70 keV in 1/mm (``units="mu"``): air 0, lung
0.004-0.006, fat 0.0172, water 0.0193, soft tissue 0.0200, muscle 0.0205, blood 0.0210,
trabecular bone about 0.024-0.03, cortical bone 0.040-0.048, calcifications 0.05-0.06.
``units="unit"`` maps them linearly to ``mu / (3 mu_water)`` clipped to [0, 1]: the
display window [-1000, 2000] HU, so air is 0, water 1/3, soft tissue about 0.35, cortical
bone about 0.75 and 2000 HU is 1. A real CT slice (pydicom's ``CT_small.dcm``) has a mean
of 0.35 inside the body in this window, and these phantoms have 0.3-0.4; the random
ellipses of Adler & Öktem have a mean of about 0.01.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import choice, finite_float, positive_float, positive_int
from ..geometry import Volume
from .analytic import _check_dtype
from .phantoms import random_ellipse_images

MU_WATER = 0.0193  # 1/mm at ~70 keV
UNIT_MU = 3.0 * MU_WATER  # mu that units="unit" maps to 1 (2000 HU)
KINDS = ("body", "head", "random")
UNITS = ("unit", "mu")

# tissue attenuation (1/mm, ~70 keV)
_AIR, _LUNG, _FAT, _WATER, _CSF = 0.0, 0.005, 0.0172, 0.0193, 0.0194
_SOFT, _MUSCLE, _BLOOD, _LIVER, _KIDNEY, _SPLEEN = 0.0200, 0.0205, 0.0210, 0.0208, 0.0212, 0.0207
_GREY, _WHITE = 0.0201, 0.0198
_MARROW, _CORTICAL, _CALC = 0.025, 0.045, 0.055
_SOFT_RANGE = (0.0165, 0.0235)  # "any soft tissue" for where= conditions

_LATTICE_2D, _LATTICE_3D, _LATTICE_HALF = 128, 48, 1.25  # texture lattice: points per axis, half-size in R


@dataclass
class _Blob:
    """A superquadric in normalised world coordinates (units of R, world order x, y(, z)),
    painted with ``value``; its boundary radius is ``1 + sum_m amps_m cos(waves_m . n + phases_m)``
    along the direction ``n`` of the local point."""

    center: np.ndarray
    axes: np.ndarray
    rot: np.ndarray  # columns: directions of the semi-axes
    value: float
    p: float
    pz: float
    waves: np.ndarray  # (M, D)
    phases: np.ndarray  # (M,)
    amps: np.ndarray  # (M,)
    tex: float  # amplitude of the coarse texture (1/mm)
    fine: float  # amplitude of the fine (trabecular) texture (1/mm)
    where: tuple[float, float] | None  # paint only where lo <= current value < hi
    add: bool  # add value instead of replacing


class _Scene:
    """Collects blobs for one phantom; every draw comes from ``rng``."""

    def __init__(self, rng: np.random.Generator, ndim: int) -> None:
        self.rng = rng
        self.ndim = ndim
        self.blobs: list[_Blob] = []

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def add(
        self,
        center: Sequence[float],
        axes: Sequence[float],
        value: float,
        *,
        angle: float = 0.0,
        z: float = 0.0,
        az: float = 10.0,
        p: float = 2.0,
        pz: float = 2.0,
        wobble: float = 0.0,
        freq: float = 4.0,
        tex: float = 0.0,
        fine: float = 0.0,
        where: tuple[float, float] | None = None,
        add: bool = False,
        tilt: float = 0.0,
    ) -> None:
        """Append a blob; ``z``, ``az``, ``pz`` and ``tilt`` (about x) matter in 3-D only."""
        d = self.ndim
        c, s = math.cos(angle), math.sin(angle)
        if d == 2:
            rot = np.array([[c, -s], [s, c]])
            ctr, ax = np.array([center[0], center[1]]), np.array([axes[0], axes[1]])
        else:
            ct, st = math.cos(tilt), math.sin(tilt)
            rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            rx = np.array([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])
            rot = rx @ rz
            ctr, ax = np.array([center[0], center[1], z]), np.array([axes[0], axes[1], az])
        m = 4 if wobble > 0 else 0
        dirs = self.rng.normal(size=(m, d))
        if d == 3 and m:
            dirs[:, 2] *= 0.3  # mostly in-plane bumps: organs vary slowly along the body axis
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
        waves = dirs * self.rng.uniform(1.0, freq, size=(m, 1))
        phases = self.rng.uniform(0, 2 * math.pi, size=m)
        amps = wobble * self.rng.uniform(0.3, 1.0, size=m) / math.sqrt(max(m, 1))
        self.blobs.append(_Blob(ctr, ax, rot, float(value), p, pz, waves, phases, amps, tex, fine, where, add))

    def bone(self, center: Sequence[float], axes: Sequence[float], cortex: float, **kw: Any) -> None:
        """A bone cross-section: cortical shell of relative thickness ``cortex`` around a
        trabecular interior."""
        self.add(center, axes, self.u(0.040, 0.048), **kw)
        inner = [a * (1 - cortex) for a in axes]
        kw = dict(kw)
        if "az" in kw:
            kw["az"] = kw["az"] * (1 - 0.5 * cortex)
        self.add(center, inner, self.u(0.023, 0.027), fine=0.006, **kw)


# -- layouts -----------------------------------------------------------------------------------


def _vertebra(s: _Scene, x: float, y: float, r: float, z: float = 0.0, az: float = 10.0) -> None:
    """Vertebral body, arch with spinal canal, spinous and transverse processes, paraspinal
    muscles; ``(x, y)`` is the centre of the body of radius ``r``."""
    u = s.u
    canal = y + 1.45 * r
    for side in (-1, 1):  # paraspinal muscles behind the arch
        s.add(
            (x + side * 1.25 * r, canal + 0.55 * r),
            (0.95 * r, 0.75 * r),
            _MUSCLE,
            angle=side * 0.3,
            z=z,
            az=10.0,
            wobble=0.05,
            tex=0.0003,
        )
    s.bone((x, y), (r * u(0.95, 1.1), r * u(0.8, 0.95)), 0.15, p=u(2.2, 3.0), z=z, az=az, pz=6.0)
    s.add((x, canal), (0.85 * r, 0.7 * r), _CORTICAL, z=z, az=az, pz=6.0)  # arch
    for side in (-1, 1):
        s.add(
            (x + side * 0.95 * r, canal - 0.05 * r),
            (0.65 * r, 0.16 * r),
            _CORTICAL,
            angle=side * 0.35,
            z=z,
            az=az,
            pz=6.0,
        )
    s.add((x, canal + 0.95 * r), (0.16 * r, 0.6 * r), _CORTICAL, z=z, az=az, pz=6.0)
    s.add((x, canal - 0.05 * r), (0.48 * r, 0.42 * r), _CSF, z=z, az=10.0)  # the canal runs through


def _spine(s: _Scene, x: float, y: float, r: float) -> None:
    """One vertebra in 2-D; in 3-D a column of vertebrae with discs between them."""
    if s.ndim == 2:
        _vertebra(s, x, y, r)
        return
    pitch = 2.6 * r
    z0 = s.u(-0.5, 0.5) * pitch
    for k in range(-5, 6):
        _vertebra(s, x, y, r, z=z0 + k * pitch, az=0.38 * pitch)
        s.add(
            (x, y), (0.9 * r, 0.8 * r), 0.0205, z=z0 + (k + 0.5) * pitch, az=0.1 * pitch, where=_SOFT_RANGE
        )  # intervertebral disc


def _body_wall(s: _Scene, width: float, height: float, fat: float, cy: float) -> tuple[float, float]:
    """Skin-fat-muscle layers of the trunk; returns the half-axes of the inner cavity."""
    u = s.u
    p = u(2.1, 2.8)
    s.add((0, cy), (width, height), _FAT, p=p, wobble=0.03, freq=5, tex=0.0002)
    mw, mh = width * (1 - fat), height * (1 - fat * width / height)
    s.add((0, cy + 0.3 * fat * height), (mw, mh), _MUSCLE, p=p, wobble=0.03, freq=5, tex=0.0003)
    iw, ih = mw - 0.05, mh - 0.05
    return iw, ih


def _lesions(s: _Scene, n: int, region: tuple[float, float, float, float], where: tuple[float, float]) -> None:
    """Low-contrast lesions (+-1-6 %) in the box ``(x0, x1, y0, y1)``, only over ``where``."""
    u = s.u
    for _ in range(n):
        r = u(0.02, 0.07)
        sign = 1.0 if s.rng.random() < 0.5 else -1.0
        s.add(
            (u(region[0], region[1]), u(region[2], region[3])),
            (r, r * u(0.7, 1.3)),
            sign * u(0.01, 0.06) * _SOFT,
            angle=u(0, math.pi),
            z=u(-0.4, 0.4),
            az=r * u(0.7, 1.3),
            wobble=0.15,
            where=where,
            add=True,
        )


def _calcifications(s: _Scene, n: int, cx: float, cy: float, spread: float) -> None:
    u = s.u
    for _ in range(n):
        r = u(0.004, 0.012)
        s.add((cx + u(-spread, spread), cy + u(-spread, spread)), (r, r), u(0.045, 0.06), z=u(-0.4, 0.4), az=r)


def _thorax(s: _Scene) -> None:
    u, rng = s.u, s.rng
    width = u(0.84, 0.95)
    height = width * u(0.6, 0.74)
    cy = u(-0.06, 0.06)
    iw, ih = _body_wall(s, width, height, u(0.05, 0.12), cy)
    s.add((0, cy), (iw, ih), _SOFT, p=2.3, wobble=0.02, tex=0.0003)  # mediastinum / chest wall
    r = 0.1 * iw
    vy = cy + ih - 2.6 * r
    # ribs in the chest wall, sternum in front
    n_ribs = int(rng.integers(6, 11))
    for t in np.sort(rng.uniform(0.15, 2 * math.pi - 0.15, n_ribs)) + math.pi / 2:
        if abs(math.sin(t)) > 0.92 and math.sin(t) > 0:
            continue  # no ribs over the spine
        x, y = 0.97 * iw * math.cos(t), cy + 0.97 * ih * math.sin(t)
        rr = u(0.022, 0.035)
        s.bone((x, y), (rr * u(1.3, 2.0), rr), 0.3, angle=t + math.pi / 2, z=u(-0.5, 0.5), az=u(0.04, 0.07), pz=4)
    s.bone((0, cy - 0.97 * ih), (u(0.06, 0.1), 0.028), 0.3, p=3.0, z=0.0, az=0.8)
    # lungs (patient's right on the image left), airways and vessels
    lungs = []
    for side in (-1, 1):
        lx, ly = side * u(0.44, 0.52) * iw, cy - 0.03 * ih
        la, lb = u(0.36, 0.44) * iw, u(0.72, 0.85) * ih
        s.add(
            (lx, ly),
            (la, lb),
            u(0.004, 0.006),
            angle=side * u(0.0, 0.25),
            p=u(2.0, 2.6),
            z=0.15,
            az=0.9,
            wobble=0.06,
            freq=4,
            tex=0.0012,
        )
        lungs.append((lx, ly, la, lb))
    hx = u(0.05, 0.2) * iw
    heart = (u(0.26, 0.34) * iw, u(0.32, 0.42) * ih, u(0.3, 0.8))
    for scale, value, az, tex in ((1.0, _MUSCLE, 0.4, 0.0003), (0.65, _BLOOD, 0.3, 0.0)):  # myocardium, chambers
        s.add(
            (hx, cy - 0.1 * ih),
            (scale * heart[0], scale * heart[1]),
            value,
            angle=heart[2],
            z=-0.15,
            az=az,
            wobble=0.06,
            tex=tex,
        )
    contrast = u(0.0, 0.006) if rng.random() < 0.5 else 0.0  # contrast-enhanced blood
    ar = u(0.055, 0.075) * iw
    ax, ay = -1.6 * r, vy - 1.3 * r
    s.add((ax, ay), (ar, ar), _BLOOD + contrast)  # descending aorta
    s.add((u(-0.15, 0.05), cy - u(0.35, 0.55) * ih), (ar * 1.2, ar * 1.1), _BLOOD + contrast, z=0.3, az=0.3)
    if rng.random() < 0.6:  # trachea / main bronchi
        s.add((u(-0.05, 0.05), cy - u(0.05, 0.35) * ih), (0.055, 0.05), _AIR, wobble=0.05, z=0.3, az=0.6)
    s.add((0.25 * r, vy - 1.25 * r), (0.03, 0.025), _AIR, wobble=0.2, z=0.0, az=0.5)  # oesophagus
    for lx, ly, la, lb in lungs:
        for _ in range(int(rng.integers(12, 30))):
            rv = u(0.005, 0.02)
            s.add(
                (lx + u(-la, la), ly + u(-lb, lb)),
                (rv, rv * u(1, 3)),
                _BLOOD,
                angle=u(0, math.pi),
                z=u(-0.5, 0.6),
                az=u(0.05, 0.4),
                tilt=u(-1, 1),
                where=(0.0, 0.012),
            )
        if rng.random() < 0.5:  # nodule
            rn = u(0.015, 0.045)
            s.add(
                (lx + u(-0.5, 0.5) * la, ly + u(-0.6, 0.6) * lb),
                (rn, rn),
                _SOFT,
                wobble=0.2,
                freq=6,
                z=u(-0.3, 0.5),
                az=rn,
                where=(0.0, 0.012),
            )
    _spine(s, 0.0, vy, r)
    _calcifications(s, int(rng.integers(0, 4)), ax, ay, ar)
    _lesions(s, int(rng.integers(1, 4)), (-0.3 * iw, 0.4 * iw, cy - 0.5 * ih, cy + 0.3 * ih), _SOFT_RANGE)


def _abdomen(s: _Scene) -> None:
    u, rng = s.u, s.rng
    width = u(0.82, 0.95)
    height = width * u(0.68, 0.85)
    cy = u(-0.05, 0.05)
    iw, ih = _body_wall(s, width, height, u(0.06, 0.18), cy)
    visceral = u(0.0176, 0.0186)  # fat mixed with soft tissue
    s.add((0, cy), (iw, ih), visceral, p=2.3, wobble=0.03, tex=0.0003)
    r = 0.09 * iw
    vy = cy + ih - 2.5 * r
    for side in (-1, 1):  # psoas
        s.add((side * 1.9 * r, vy + 0.1 * r), (0.8 * r, 1.0 * r), _MUSCLE, angle=side * 0.3, wobble=0.05, tex=0.0003)
    contrast = u(0.0, 0.008) if rng.random() < 0.5 else 0.0
    liver = (-u(0.3, 0.4) * iw, cy - u(0.05, 0.15) * ih, u(0.42, 0.55) * iw, u(0.55, 0.7) * ih)
    s.add(
        liver[:2],
        liver[2:],
        _LIVER + 0.4 * contrast,
        angle=u(-0.4, 0.2),
        p=u(2.0, 2.6),
        z=0.2,
        az=0.5,
        wobble=0.08,
        freq=3,
        tex=0.0003,
        where=(0.017, 0.03),
    )
    for _ in range(int(rng.integers(4, 12))):  # hepatic vessels
        rv = u(0.008, 0.025)
        s.add(
            (liver[0] + u(-0.6, 0.6) * liver[2], liver[1] + u(-0.6, 0.6) * liver[3]),
            (rv, rv * u(1, 2)),
            _BLOOD + contrast,
            angle=u(0, math.pi),
            z=u(-0.2, 0.5),
            az=u(0.05, 0.3),
            tilt=u(-1, 1),
            where=(_LIVER - 1e-6, _LIVER + 0.4 * contrast + 1e-6),
        )
    _lesions(
        s,
        int(rng.integers(1, 4)),
        (liver[0] - 0.5 * liver[2], liver[0] + 0.5 * liver[2], liver[1] - 0.5 * liver[3], liver[1] + 0.5 * liver[3]),
        (_LIVER - 1e-6, _LIVER + 0.4 * contrast + 1e-6),
    )
    if rng.random() < 0.7:  # spleen
        s.add(
            (u(0.5, 0.65) * iw, cy + u(0.0, 0.3) * ih),
            (u(0.14, 0.22) * iw, u(0.25, 0.35) * ih),
            _SPLEEN,
            angle=u(-0.6, 0.0),
            z=0.2,
            az=0.3,
            wobble=0.08,
            tex=0.0003,
            where=(0.017, 0.019),
        )
    for side in (-1, 1):  # kidneys: cortex and renal sinus
        kx, ky = side * u(0.36, 0.46) * iw, vy - u(0.0, 0.15) * ih
        ka, kb = u(0.1, 0.14) * iw, u(0.15, 0.2) * ih
        ang = side * u(0.3, 0.7)
        kz = u(-0.3, 0.0)
        s.add((kx, ky), (ka, kb), _KIDNEY + contrast, angle=ang, z=kz, az=0.25, wobble=0.05, tex=0.0002)
        s.add((kx - side * 0.3 * ka, ky), (0.45 * ka, 0.5 * kb), _WATER, angle=ang, z=kz, az=0.12, wobble=0.15)
        if rng.random() < 0.15:  # stone
            _calcifications(s, 1, kx, ky, 0.3 * ka)
    # stomach with an air pocket, bowel loops (soft tissue, air, oral contrast) in the visceral fat
    sx, sy = u(0.15, 0.35) * iw, cy - u(0.3, 0.5) * ih
    s.add(
        (sx, sy),
        (u(0.18, 0.28) * iw, u(0.15, 0.22) * ih),
        _SOFT,
        angle=u(-0.5, 0.5),
        wobble=0.1,
        z=0.3,
        az=0.3,
        where=(0.017, 0.019),
    )
    s.add(
        (sx, sy - 0.08 * ih),
        (0.12 * iw, 0.08 * ih),
        _AIR,
        p=4.0,
        wobble=0.1,
        z=0.3,
        az=0.25,
        where=(_SOFT - 1e-6, _SOFT + 1e-6),
    )
    for _ in range(int(rng.integers(8, 20))):
        bx, by = u(-0.6, 0.7) * iw, cy + u(-0.6, 0.4) * ih
        rb = u(0.04, 0.1)
        s.add(
            (bx, by),
            (rb, rb * u(0.6, 1.2)),
            _SOFT,
            angle=u(0, math.pi),
            wobble=0.15,
            z=u(-0.5, 0.5),
            az=u(0.05, 0.3),
            tilt=u(-1, 1),
            where=(0.017, 0.019),
            tex=0.0003,
        )
        fill = rng.random()
        if fill < 0.35:
            s.add(
                (bx, by),
                (0.6 * rb, 0.5 * rb),
                _AIR,
                wobble=0.2,
                z=u(-0.5, 0.5),
                az=u(0.03, 0.2),
                where=(_SOFT - 1e-6, _SOFT + 1e-6),
            )
        elif fill < 0.5:
            s.add(
                (bx, by),
                (0.6 * rb, 0.5 * rb),
                u(0.024, 0.035),
                wobble=0.2,
                z=u(-0.5, 0.5),
                az=u(0.03, 0.2),
                where=(_SOFT - 1e-6, _SOFT + 1e-6),
            )
    ar = u(0.04, 0.06) * iw
    ax, ay = -0.8 * r, vy - 1.6 * r
    s.add((ax, ay), (ar, ar), _BLOOD + contrast)  # aorta
    s.add((-u(2.5, 3.2) * r, vy - 1.5 * r), (1.5 * ar, ar), _BLOOD + 0.5 * contrast, angle=u(-0.3, 0.3))  # IVC
    n_ribs = int(rng.integers(0, 6))
    for t in rng.uniform(-0.9, 0.9, n_ribs) + np.where(rng.random(n_ribs) < 0.5, 0.0, math.pi):
        x, y = 0.97 * iw * math.cos(t), cy + 0.95 * ih * math.sin(t)
        rr = u(0.02, 0.03)
        s.bone((x, y), (1.6 * rr, rr), 0.3, angle=t + math.pi / 2, z=u(-0.5, 0.5), az=u(0.04, 0.07), pz=4)
    _spine(s, 0.0, vy, r)
    _calcifications(s, int(rng.integers(0, 4)), ax, ay, ar)
    _lesions(s, int(rng.integers(0, 3)), (-0.5 * iw, 0.6 * iw, cy - 0.5 * ih, cy + 0.2 * ih), _SOFT_RANGE)


def _head(s: _Scene) -> None:
    u, rng = s.u, s.rng
    width = u(0.68, 0.8)
    height = min(width * u(1.12, 1.28), 0.95)
    p = u(2.0, 2.3)
    low = rng.random() < 0.3  # a slice through the orbits and sinuses
    s.add((0, 0), (width, height), _SOFT, p=p, wobble=0.02, freq=3, az=0.95, tex=0.0002)  # scalp
    t = u(0.05, 0.08)
    k1 = 1 - 0.04 / width
    s.add((0, 0), (width * k1, height * k1), _CORTICAL, p=p, wobble=0.01, freq=3, az=0.9 * k1, pz=2.0)
    k2 = k1 - 0.35 * t
    s.add((0, 0), (width * k2, height * k2), 0.03, p=p, wobble=0.01, freq=3, az=0.9 * k2, fine=0.007)  # diploe
    k3 = k1 - 0.7 * t
    s.add((0, 0), (width * k3, height * k3), _CORTICAL, p=p, wobble=0.01, freq=3, az=0.9 * k3)
    kb = k1 - t
    bw, bh = width * kb, height * kb
    s.add((0, 0), (bw, bh), _GREY, p=p, wobble=0.01, freq=3, az=0.9 * kb, tex=0.0002)
    s.add(
        (0, 0.03),
        (0.78 * bw, 0.8 * bh),
        _WHITE,
        p=p,
        wobble=0.12,
        freq=18,
        az=0.6,
        tex=0.0001,
        where=(_GREY - 1e-6, _GREY + 1e-6),
    )
    s.add((0, 0.0), (0.006, 0.85 * bh), _CSF, az=0.8, where=(_WHITE - 1e-6, _GREY + 1e-6))  # falx / fissure
    for side in (-1, 1):  # lateral ventricles
        s.add(
            (side * u(0.05, 0.09), u(-0.05, 0.05)),
            (u(0.035, 0.07), u(0.16, 0.26)),
            _CSF,
            angle=side * u(0.1, 0.35),
            wobble=0.15,
            freq=3,
            z=0.05,
            az=0.2,
        )
    s.add((0, u(0.08, 0.14)), (0.012, 0.05), _CSF, z=-0.1, az=0.15)  # third ventricle
    if rng.random() < 0.6:
        _calcifications(s, 1, 0, 0.2, 0.01)  # pineal
    if rng.random() < 0.4:
        _calcifications(s, 2, 0, 0.0, 0.15)  # choroid plexus
    for _ in range(int(rng.integers(3, 9))):  # vessels
        rv = u(0.006, 0.015)
        s.add(
            (u(-0.5, 0.5) * bw, u(-0.5, 0.5) * bh),
            (rv, rv),
            _BLOOD + u(0.0, 0.004),
            z=u(-0.5, 0.5),
            az=u(0.05, 0.3),
            tilt=u(-1, 1),
            where=(_WHITE - 1e-6, _GREY + 1e-6),
        )
    _lesions(s, int(rng.integers(1, 4)), (-0.6 * bw, 0.6 * bw, -0.6 * bh, 0.6 * bh), (_WHITE - 1e-6, _GREY + 1e-6))
    if low:
        for side in (-1, 1):  # orbits with lens
            ex, ey = side * u(0.25, 0.32) * width, -0.9 * height
            re = u(0.11, 0.14) * width
            s.add((ex, ey), (re * 1.4, re * 1.3), _FAT, z=-0.3, az=0.2)
            s.add((ex, ey), (re, re), _CSF, z=-0.3, az=0.15)
            s.add((ex * 0.95, ey - 0.75 * re), (0.35 * re, 0.18 * re), 0.0225, z=-0.3, az=0.06)
        for _ in range(int(rng.integers(4, 12))):  # ethmoid air cells
            ra = u(0.02, 0.05)
            s.add((u(-0.12, 0.12), -0.8 * height + u(-0.1, 0.15)), (ra, ra), _AIR, wobble=0.2, z=-0.3, az=0.15)
    elif rng.random() < 0.4:  # frontal sinus
        s.add(
            (u(-0.05, 0.05), -height * k2),
            (u(0.08, 0.16), u(0.03, 0.05)),
            _AIR,
            wobble=0.2,
            freq=5,
            z=0.3,
            az=0.15,
            where=(0.025, 0.05),
        )


def _scene(seed: int, ndim: int, kind: str) -> _Scene:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(ndim,)))
    s = _Scene(rng, ndim)
    if kind == "random":
        kind = "body" if rng.random() < 0.6 else "head"
    if kind == "head":
        _head(s)
    elif rng.random() < 0.5:
        _thorax(s)
    else:
        _abdomen(s)
    return s


# -- texture ---------------------------------------------------------------------------------


def _lattice_fields(rng: np.random.Generator, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-variance random fields on the texture lattice: a power-law (1/f^1.5,
    organ texture) and a fine Gaussian-smoothed one (trabecular bone)."""
    n = _LATTICE_2D if ndim == 2 else _LATTICE_3D
    h = 2 * _LATTICE_HALF / (n - 1)  # lattice step in R
    freqs = np.meshgrid(*([np.fft.fftfreq(n, d=h)] * ndim), indexing="ij")
    k = np.sqrt(sum(f * f for f in freqs))
    out = []
    for spectrum in (
        np.maximum(k, 0.5) ** -1.5 * np.exp(-((k * 0.02 * 2 * math.pi) ** 2) / 2),
        np.exp(-((k * 0.015 * 2 * math.pi) ** 2) / 2),
    ):
        white = rng.standard_normal((n,) * ndim)
        field = np.fft.irfftn(np.fft.rfftn(white) * spectrum[..., : n // 2 + 1], s=white.shape, axes=range(ndim))
        out.append(field / max(float(field.std()), 1e-12))
    coarse, fine = out
    return coarse, np.tanh(1.5 * fine)  # saturated: spongy trabeculae


def _on_grid(field: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """A lattice field (axes in world order x, y(, z), ``n`` points on ``[-half, half]``)
    interpolated multi-linearly to the tensor-product grid ``coords`` (tensor order:
    ``coords[t]`` lives on tensor axis ``t``, world axis ``D - 1 - t``)."""
    ndim = field.ndim
    lattice = field.transpose(tuple(range(ndim - 1, -1, -1)))  # tensor order
    lower, weights = [], []
    for t in range(ndim):
        n = lattice.shape[t]
        pos = np.clip((coords[t] + _LATTICE_HALF) / (2 * _LATTICE_HALF) * (n - 1), 0, n - 1)
        i0 = np.minimum(np.floor(pos).astype(np.int64), n - 2)
        lower.append(i0)
        weights.append(pos - i0)
    out = 0.0
    for corner in itertools.product((0, 1), repeat=ndim):
        index = np.ix_(*[i0 + c for i0, c in zip(lower, corner, strict=True)])
        w = np.ix_(*[wt if c else 1 - wt for wt, c in zip(weights, corner, strict=True)])
        weight = w[0]
        for wt in w[1:]:
            weight = weight * wt
        out = out + weight * lattice[index]
    return out


# -- rendering -------------------------------------------------------------------------------


def _paint(blobs: list[_Blob], coords: list[np.ndarray], shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Base values and texture amplitudes on the grid ``coords`` (tensor order, units of R).

    float32 throughout: the shapes need no more, and it halves the time."""
    ndim = len(shape)
    f32 = np.float32
    coords = [c.astype(f32) for c in coords]
    base = np.zeros(shape, f32)
    amp_coarse = np.zeros(shape, f32)
    amp_fine = np.zeros(shape, f32)
    for b in blobs:
        reach = (1 + float(np.abs(b.amps).sum())) * 1.0001
        half = np.abs(b.rot) @ b.axes * reach  # bounding box half-widths (world order)
        index, dw = [], [None] * ndim
        for t in range(ndim):
            k = ndim - 1 - t
            c = coords[t]
            lo = int(np.searchsorted(c, b.center[k] - half[k], side="left"))
            hi = int(np.searchsorted(c, b.center[k] + half[k], side="right"))
            index.append(slice(lo, hi))
            # world offset along k, broadcast along tensor axis t
            dw[k] = (c[lo:hi] - f32(b.center[k])).reshape([-1 if a == t else 1 for a in range(ndim)])
        if any(sl.start >= sl.stop for sl in index):
            continue
        rot = b.rot.astype(f32) / b.axes.astype(f32)[None, :]
        q = [sum(dw[k] * rot[k, j] for k in range(ndim)) for j in range(ndim)]
        if b.p == 2.0:
            rxy = np.sqrt(q[0] * q[0] + q[1] * q[1])
        else:
            rxy = (np.abs(q[0]) ** f32(b.p) + np.abs(q[1]) ** f32(b.p)) ** f32(1 / b.p)
        r = rxy if ndim == 2 else (rxy ** f32(b.pz) + np.abs(q[2]) ** f32(b.pz)) ** f32(1 / b.pz)
        if b.amps.size:
            inv = 1 / (np.sqrt(sum(qj * qj for qj in q)) + f32(1e-12))
            rho = f32(1.0)
            for w, ph, a in zip(b.waves.astype(f32), b.phases, b.amps, strict=True):
                rho = rho + f32(a) * np.cos(sum(w[j] * q[j] for j in range(ndim)) * inv + f32(ph))
            inside = r <= rho
        else:
            inside = r <= 1.0
        sl = tuple(index)
        cur = base[sl]
        if b.where is not None:
            inside &= (cur >= b.where[0]) & (cur < b.where[1])
        if b.add:
            cur += f32(b.value) * inside
            continue
        cur[inside] = b.value
        amp_coarse[sl][inside] = b.tex
        amp_fine[sl][inside] = b.fine
    return base, amp_coarse, amp_fine


def _check_volume(volume: Any) -> Volume:
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a precisionrecon Volume, got {type(volume).__name__}")
    return volume


def _check_seed(seed: Any, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return int(seed)


def anatomy_phantom(
    volume: Volume,
    *,
    seed: int,
    kind: str = "random",
    units: str = "unit",
    oversample: int = 2,
    zoom: float = 1.0,
    center: Sequence[float] = (0.0, 0.0),
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One procedural anatomy-like phantom (trunk or head) on ``volume``, 2-D or 3-D.

    ``kind="body"`` is a thorax (fat and muscle layers, lungs with vessels and nodules,
    heart, aorta, airways, ribs, sternum, a vertebra) or an abdomen (liver with vessels,
    spleen, kidneys, stomach with air, bowel loops with air or oral contrast, aorta, IVC,
    psoas, ribs, vertebra), ``"head"`` a skull (tables and diploe) around grey and white
    matter, ventricles, vessels and sometimes orbits and sinuses; ``"random"`` draws one
    of them (body 60 %). Every phantom gets low-contrast lesions (1-6 %), small
    calcifications and texture. 3-D volumes get the same structures extruded along z with
    organ-specific lengths (a column of vertebrae with discs, lungs above the heart, ...).

    The object is defined in world coordinates relative to the volume's box (see the
    module docstring), so the same seed on a finer grid is the same object: rendering on a
    grid ``f`` times finer with ``oversample=1`` and averaging ``f^D`` blocks gives the
    image at ``oversample=f`` up to rounding.

    Parameters
    ----------
    volume : Volume
        2-D or 3-D grid to render on.
    seed : int
        Non-negative; the same seed gives the same phantom bit for bit.
    kind : {"random", "body", "head"}
    units : {"unit", "mu"}
        ``"mu"``: attenuation in 1/mm at ~70 keV; ``"unit"``: ``mu / (3 * 0.0193)`` clipped
        to [0, 1] (the window [-1000, 2000] HU; water is 1/3).
    oversample : int
        Sub-samples per voxel and axis, averaged (partial-volume effect, anti-aliasing).
    zoom : float
        In-plane magnification (> 0): the volume shows the object within ``R / zoom`` of
        ``center``, i.e. the world point ``(y, x)`` appears at ``((y, x) - center) zoom``.
        ``zoom > 1`` makes the body fill the field of view and cross its border, as a
        cropped real slice does (``CT_small.dcm``). z (3-D) is not magnified.
    center : (float, float)
        The object point ``(y, x)``, in units of ``R``, at the centre of the volume.
    dtype : torch.dtype
        Result dtype (computed in float64).

    Returns
    -------
    Tensor
        Shape: ``volume.shape``, ``(ny, nx)`` or ``(nz, ny, nx)``; CPU.
    """
    zoom = positive_float(zoom, "zoom")
    if isinstance(center, (str, bytes)) or not isinstance(center, Sequence) or len(center) != 2:
        raise ValueError(f"center must be two numbers (y, x), got {center!r}")
    shift = [finite_float(v, "center") for v in center]
    volume = _check_volume(volume)
    seed = _check_seed(seed)
    choice(kind, "kind", KINDS)
    choice(units, "units", UNITS)
    m = positive_int(oversample, "oversample")
    dtype = _check_dtype(dtype)
    ndim = volume.ndim
    scene = _scene(seed, ndim, kind)
    radius = min(volume.extent[-1], volume.extent[-2]) / 2
    # Sample coordinates as centre + (i - (N - 1) / 2) * (spacing / m) with N = n m: the
    # same numbers for (n, m) as for a grid of 2n voxels and m / 2, so refined renders agree.
    coords = []
    for n, sp in zip(volume.shape, volume.spacing, strict=True):
        big = n * m
        coords.append((np.arange(big) - (big - 1) / 2) * (sp / m) / radius)  # about the volume centre
    for k in range(2):  # the in-plane axes: magnified about the object point `center`
        axis = ndim - 2 + k
        coords[axis] = coords[axis] / zoom + shift[k]
    fine_shape = tuple(len(c) for c in coords)
    base, amp_coarse, amp_fine = _paint(scene.blobs, coords, fine_shape)
    coarse, fine = _lattice_fields(scene.rng, ndim)
    mu = base.astype(np.float64)
    if amp_coarse.any():
        mu = mu + amp_coarse * _on_grid(coarse, coords)
    if amp_fine.any():
        mu = mu + amp_fine * _on_grid(fine, coords)
    # units per sub-sample, then the mean: a finer render block-averaged gives the same
    mu = np.clip(mu / UNIT_MU, 0.0, 1.0) if units == "unit" else np.maximum(mu, 0.0)
    if m > 1:
        split = []
        for n in volume.shape:
            split += [n, m]
        mu = mu.reshape(split).mean(axis=tuple(range(1, 2 * ndim, 2)))
    return torch.from_numpy(np.ascontiguousarray(mu)).to(dtype)


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a batch drawn with ``seed`` (independent of the batch size)."""
    seed = _check_seed(seed)
    index = _check_seed(index, "index")
    words = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)


def anatomy_images(
    volume: Volume,
    batch: int,
    *,
    seed: int,
    kind: str = "random",
    units: str = "unit",
    oversample: int = 2,
    ellipse_fraction: float = 0.0,
    n_ellipses: float = 50,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A batch of :func:`anatomy_phantom` images, optionally mixed with random ellipses.

    Item ``i`` is drawn with the seed :func:`item_seed(seed, i) <item_seed>`, so it does
    not depend on ``batch``. With probability ``ellipse_fraction`` (a draw of the item's
    seed) the item is instead :func:`~precisionrecon.data.random_ellipse_images` with that
    seed (times ``3 * 0.0193`` for ``units="mu"``, so both kinds share the scale).

    Parameters
    ----------
    volume : Volume
    batch : int
    seed : int
    kind, units, oversample, dtype
        As :func:`anatomy_phantom`.
    ellipse_fraction : float
        Expected share of random-ellipse items, in [0, 1].
    n_ellipses : float
        Mean number of ellipses of those items.

    Returns
    -------
    Tensor
        Shape: ``(batch, *volume.shape)``.
    """
    volume = _check_volume(volume)
    batch = positive_int(batch, "batch")
    seed = _check_seed(seed)
    if isinstance(ellipse_fraction, bool) or not isinstance(ellipse_fraction, (int, float)):
        raise TypeError(f"ellipse_fraction must be a number, got {type(ellipse_fraction).__name__}")
    if not 0.0 <= ellipse_fraction <= 1.0:
        raise ValueError(f"ellipse_fraction must be in [0, 1], got {ellipse_fraction}")
    images = []
    for i in range(batch):
        s = item_seed(seed, i)
        if ellipse_fraction > 0 and np.random.default_rng(s).random() < ellipse_fraction:
            image = random_ellipse_images(volume, 1, s, n_ellipses=n_ellipses, oversample=oversample, dtype=dtype)[0]
            images.append(image * UNIT_MU if units == "mu" else image)
        else:
            images.append(anatomy_phantom(volume, seed=s, kind=kind, units=units, oversample=oversample, dtype=dtype))
    return torch.stack(images)


__all__ = ["KINDS", "MU_WATER", "UNIT_MU", "anatomy_images", "anatomy_phantom", "item_seed"]
