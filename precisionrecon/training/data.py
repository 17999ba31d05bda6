"""Simulated training data for a model's operator, seeded per sample.

Every random draw has its own seed derived from ``(seed, stream, step, item)`` with
:class:`numpy.random.SeedSequence`, so the data of step ``t`` do not depend on earlier
steps (a resumed run sees the same data) nor on how the global batch is split over
processes (each process draws only its own items, and the items are those a single
process would draw).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import parse_dtype
from ..data import (
    anatomy_phantom,
    bin_detector,
    gaussian_noise,
    poisson_noise,
    random_ellipses,
    rasterize,
    refine_geometry,
    refine_volume,
)
from ..geometry import Volume
from ..operators import LinearOperator, XRayTransform
from .config import DataConfig

# independent random streams of one seed
PHANTOM_STREAM, NOISE_STREAM, _ORDER, _VAL_PHANTOM, _VAL_NOISE, _STEP, _VALIDATE = range(7)
# sub-streams of a phantom's seed (the ellipses draw from the seed itself, as they always did)
_MIX, _ANATOMY, _ZOOM = range(3)
# sub-stream of a sample's noise seed: its noise level (data.noise_level_max, data.i0_min)
_LEVEL = 0


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for the stream ``key`` of ``seed`` (independent streams for different keys)."""
    words = np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)).generate_state(2, np.uint32)
    return ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)


def log_uniform(seed: int, lo: float, hi: float) -> float:
    """A number drawn log-uniformly in ``[lo, hi]`` (``0 < lo <= hi``) from ``seed``."""
    u = float(np.random.default_rng(derive_seed(seed, _LEVEL)).random())
    return float(lo * (hi / lo) ** u)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of torch's global generator for the random layers (dropout) of one step."""
    return derive_seed(seed, _STEP, step, rank)


def validation_seed(seed: int, step: int) -> int:
    """The seed of torch's global generator for the validation after step ``step`` (models
    that sample, e.g. MC dropout, validate alike in a resumed run)."""
    return derive_seed(seed, _VALIDATE, step)


class SimulatedData:
    """Simulated training pairs ``(y, x)`` for an operator, and a fixed validation set.

    Parameters
    ----------
    operator : LinearOperator
        The model's forward operator (image -> data). CT: its ``volume`` (or a unit-spaced
        volume of its domain shape) is filled with random ellipses and/or anatomy-like
        phantoms (``config.phantom``); MR: the same images times a smooth random phase.
        CT with ``config.oversample > 1`` needs an :class:`~precisionrecon.XRayTransform`
        (the data are projected on a finer grid and detector).
    config : DataConfig
    seed : int
        The run's seed.
    dtype : {"float32", "float64"}
        Real precision of images and data (MR: the complex counterpart).
    device : torch.device
        Where the data are returned (phantoms are drawn on the CPU, projected there).
    """

    def __init__(self, operator: LinearOperator, config: DataConfig, seed: int, dtype: str, device: Any) -> None:
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"the model's operator must be a LinearOperator, got {type(operator).__name__}")
        self.operator = operator
        self.config = config
        self.seed = seed
        self.device = torch.device(device)
        self.real = parse_dtype(dtype)
        complex_op = operator._example_dtype().is_complex
        kind = config.kind if config.kind != "auto" else ("mr" if complex_op else "ct")
        if kind == "mr" and not complex_op:
            raise ValueError("data.kind is 'mr' but the model's operator is real (CT); use 'ct' or 'auto'")
        if kind == "ct" and complex_op:
            raise ValueError("data.kind is 'ct' but the model's operator is complex (MR); use 'mr' or 'auto'")
        if kind == "mr" and config.noise == "poisson":
            raise ValueError("data.noise 'poisson' is a CT noise model; use 'gaussian' or 'none' for MR")
        self.kind = kind
        self.dtype = self.real if kind == "ct" else self.real.to_complex()
        shape = tuple(operator.domain_shape)
        volume = getattr(operator, "volume", None)
        self.volume = volume if isinstance(volume, Volume) else Volume(shape)
        if tuple(self.volume.shape) != shape:
            raise ValueError(f"the operator's volume {self.volume.shape} differs from its domain {shape}")
        self._fine_op: XRayTransform | None = None
        if kind == "ct" and config.oversample > 1:
            if not isinstance(operator, XRayTransform):
                raise ValueError(
                    f"data.oversample > 1 projects on a finer grid and needs an XRayTransform as the model's "
                    f"operator, got {type(operator).__name__}; use data.oversample = 1"
                )
            f = config.oversample
            self._fine_op = XRayTransform(
                refine_volume(self.volume, f), refine_geometry(operator.geometry, f), device=operator.device
            )
        self._pool: dict[int, tuple[Tensor, Tensor | None]] = {}
        self._orders: dict[int, Tensor] = {}

    # -- images -------------------------------------------------------------------------------
    def _is_anatomy(self, seed: int) -> bool:
        c = self.config
        if c.phantom != "mix":
            return c.phantom == "anatomy"
        return bool(np.random.default_rng(derive_seed(seed, _MIX)).random() < c.anatomy_fraction)

    def _render(self, seed: int, volume: Volume, oversample: int, g: torch.Generator) -> Tensor:
        """The phantom of ``seed`` on ``volume`` (float64); ellipses draw from ``g``."""
        c = self.config
        if self._is_anatomy(seed):
            zoom, center = 1.0, (0.0, 0.0)
            if c.zoom_max > 1.0:
                rng = np.random.default_rng(derive_seed(seed, _ZOOM))
                zoom = float(c.zoom_max ** rng.random())
                center = tuple(float(v) for v in rng.uniform(-1.0, 1.0, 2) * (1.0 - 1.0 / zoom))
            return anatomy_phantom(
                volume,
                seed=derive_seed(seed, _ANATOMY),
                kind=c.anatomy_kind,
                oversample=oversample,
                zoom=zoom,
                center=center,
                dtype=torch.float64,
            )
        # the draws of random_ellipse_images(self.volume, 1, generator=g): today's data, bit for bit
        ellipses = random_ellipses(c.n_ellipses, volume=self.volume, generator=g, interior=c.interior)
        return rasterize(ellipses, volume, oversample=oversample, dtype=torch.float64)

    def _phantom(self, seed: int) -> tuple[Tensor, Tensor | None]:
        """Image ``x`` of ``seed`` and, on a finer grid (CT, ``oversample > 1``), its clean
        data; ``None`` means ``y = A x``."""
        g = torch.Generator().manual_seed(seed)
        c = self.config
        f = c.oversample
        if self._fine_op is not None:
            fine = self._render(seed, self._fine_op.volume, 1, g)
            split = [k for n in self.volume.shape for k in (n, f)]
            image = fine.reshape(split).mean(tuple(range(1, 2 * self.volume.ndim, 2)))
            with torch.no_grad():
                y = self._fine_op(fine.to(self.real).to(self._fine_op.device))
            return image.to(self.dtype), bin_detector(y, f, self.volume.ndim).to(self.device)
        # anatomy always gets >= 2x2 sub-samples per pixel (anti-aliasing)
        sub = max(f, 2) if self._is_anatomy(seed) else f
        image = self._render(seed, self.volume, sub, g)
        if self.kind == "mr":
            from ..mr import random_phase, smooth_phase

            if c.phase == "random":
                phase = random_phase(image.shape, c.phase_amplitude, generator=g)
            else:
                a = (2 * float(torch.rand((), generator=g, dtype=torch.float64)) - 1) * c.phase_amplitude
                phase = a * smooth_phase(image.shape, 1.0)
            image = torch.polar(image, phase)
        return image.to(self.dtype), None

    def _train_image(self, index: int) -> tuple[Tensor, Tensor | None]:
        """Training sample number ``index`` (counting over steps): a fresh phantom, or one of
        the fixed set in the order of its epoch."""
        size = self.config.train_size
        if size is None:
            return self._phantom(derive_seed(self.seed, PHANTOM_STREAM, index))
        epoch, position = divmod(index, size)
        if epoch not in self._orders:
            g = torch.Generator().manual_seed(derive_seed(self.seed, _ORDER, epoch))
            self._orders = {epoch: torch.randperm(size, generator=g)}  # one epoch at a time
        k = int(self._orders[epoch][position])
        if k not in self._pool:
            self._pool[k] = self._phantom(derive_seed(self.seed, PHANTOM_STREAM, k))
        return self._pool[k]

    # -- measurements -------------------------------------------------------------------------
    def measure(self, x: Tensor, noise_seeds: list[int], clean: Tensor | None = None) -> Tensor:
        """Data of the images ``x`` (on :attr:`device`) with the configured noise, item ``i``
        seeded by ``noise_seeds[i]``; ``clean`` replaces ``A x`` when given (same shape)."""
        with torch.no_grad():
            y = self.operator(x) if clean is None else clean
            c = self.config
            if c.noise == "none":
                return y
            item_ndim = len(self.operator.range_shape)
            noisy = []
            for i, s in enumerate(noise_seeds):
                if c.noise == "poisson":
                    i0 = c.i0 if c.i0_min is None else log_uniform(s, c.i0_min, c.i0)
                    noisy.append(poisson_noise(y[i], i0, seed=s, mu_scale=c.mu_scale))
                else:
                    level = c.noise_level if c.noise_level_max is None else log_uniform(s, c.noise_level,
                                                                                         c.noise_level_max)
                    noisy.append(gaussian_noise(y[i], level, seed=s, item_ndim=item_ndim))
            out = torch.stack(noisy)
            mask = getattr(self.operator, "mask", None)
            if self.kind == "mr" and isinstance(mask, Tensor):
                out = y + (out - y) * (mask != 0).to(out.real.dtype)  # unsampled k-space stays zero
            return out

    def batch(self, step: int, items: range, batch_size: int) -> tuple[Tensor, Tensor]:
        """Items ``items`` (indices into the global batch of size ``batch_size``) of step ``step``:
        ``(y, x)`` of shapes ``(len(items), *range_shape)`` and ``(len(items), *domain_shape)``."""
        x, clean = self._stack([self._train_image(step * batch_size + i) for i in items])
        y = self.measure(x, [derive_seed(self.seed, NOISE_STREAM, step, i) for i in items], clean)
        return y, x

    def _stack(self, samples: list[tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor | None]:
        x = torch.stack([s[0] for s in samples]).to(self.device)
        if samples[0][1] is None:
            return x, None
        return x, torch.stack([s[1] for s in samples]).to(self.device)

    def validation_set(self) -> tuple[Tensor, Tensor] | None:
        """The fixed validation pairs ``(y, x)`` (``val_size`` items), the same for every run
        with the same ``val_seed``; ``None`` when ``val_size`` is 0."""
        n, s = self.config.val_size, self.config.val_seed
        if n == 0:
            return None
        x, clean = self._stack([self._phantom(derive_seed(s, _VAL_PHANTOM, k)) for k in range(n)])
        return self.measure(x, [derive_seed(s, _VAL_NOISE, k) for k in range(n)], clean), x


def shard(batch_size: int, rank: int, world_size: int) -> range:
    """The items of the global batch that process ``rank`` of ``world_size`` computes."""
    if batch_size % world_size != 0:
        raise ValueError(
            f"batch_size ({batch_size}) must be divisible by the number of processes ({world_size}), so that "
            "every process computes an equal share of the global batch"
        )
    per = batch_size // world_size
    return range(rank * per, (rank + 1) * per)


__all__ = ["SimulatedData", "derive_seed", "shard", "step_seed", "validation_seed"]
