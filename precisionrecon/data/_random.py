"""Seeding shared by the random phantoms and the noise models."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def make_generator(seed: Any, generator: Any, device: torch.device | str = "cpu") -> torch.Generator | None:
    """The generator to draw from: ``generator`` as given, a fresh one seeded with ``seed``
    on ``device``, or ``None`` (torch's global generator) when neither is given."""
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != torch.device(device).type:
            raise ValueError(f"generator must live on the data's device ({device}), got one on {generator.device}")
        return generator
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    out = torch.Generator(device=device)
    out.manual_seed(int(seed))
    return out
