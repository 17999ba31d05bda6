"""Opt-in ``torch.compile`` of the learned networks inside a model (issue 17, item 4).

The unrolled models alternate known operators (compiled C++/CUDA kernels behind custom
ops) with small CNNs. Compiling only the CNN blocks fuses their element-wise work (PReLU,
bias, the VN's radial-basis activations) into few loops; the operators stay as they are.
Measured on a 2-core CPU at 64², one thread (``benchmarks/results/training.md``): LPD
training steps 1.16x (CT) and 1.23x (MR) faster, VN steps 0.83x and 0.77x (slower).
Compilation is in place (:meth:`torch.nn.Module.compile`), so parameter names,
``state_dict`` and checkpoints are unchanged and the outputs agree with the eager model
to float rounding.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .blocks import ConvPReLUStack, UNet
from .varnet import FieldsOfExperts

# the blocks that hold the learned networks of the library's models
COMPILED_BLOCKS: tuple[type[nn.Module], ...] = (ConvPReLUStack, FieldsOfExperts, UNet)


def compile_blocks(model: nn.Module, **options: Any) -> int:
    """Compile every CNN block of ``model`` in place with ``torch.compile``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; its :data:`COMPILED_BLOCKS` (outermost ones only) are compiled.
    **options
        Passed to :func:`torch.compile` (e.g. ``mode="max-autotune-no-cudagraphs"``).

    Returns
    -------
    int
        The number of blocks compiled (0: nothing to compile, the model is unchanged).

    Notes
    -----
    The first call of each block with a new input shape compiles it (seconds to minutes;
    on the CPU inductor needs a C++ compiler), later calls reuse the code. Parameters,
    buffers and ``state_dict`` keys stay as they were.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    count = 0
    pending = [model]
    while pending:
        module = pending.pop()
        if isinstance(module, COMPILED_BLOCKS):
            module.compile(**options)
            count += 1
        else:
            pending.extend(module.children())
    return count
