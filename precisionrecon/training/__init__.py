"""Training of reconstruction models on simulated data: one :class:`Trainer` for every
model (Adam, cosine schedule, gradient clipping, seeds, progress bar, validation PSNR/SSIM,
safetensors checkpoints, resume bit for bit, stop at a time budget or on SIGTERM, DDP), its
:class:`TrainingConfig`, and
:func:`load_checkpoint`, which rebuilds a trained model without any of the training code.

Command line (one process, or data parallel under ``torchrun``)::

    python -m precisionrecon.training --config cfg.json
    torchrun --nproc-per-node 2 -m precisionrecon.training --config cfg.json
"""

from .checkpoint import find_checkpoint, list_checkpoints, load_checkpoint, read_checkpoint, write_checkpoint
from .config import DataConfig, TrainingConfig
from .data import SimulatedData, derive_seed
from .trainer import NonFiniteLossError, Trainer, init_distributed, learning_rate, predict, seed_everything, train

__all__ = [
    "DataConfig",
    "NonFiniteLossError",
    "SimulatedData",
    "Trainer",
    "TrainingConfig",
    "derive_seed",
    "find_checkpoint",
    "init_distributed",
    "learning_rate",
    "list_checkpoints",
    "load_checkpoint",
    "predict",
    "read_checkpoint",
    "seed_everything",
    "train",
    "write_checkpoint",
]
