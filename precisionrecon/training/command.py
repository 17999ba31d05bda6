"""The training command: ``python -m precisionrecon.training --config cfg.json`` (also under
``torchrun``) and ``precisionrecon train``.

Trains the model of the config, writes checkpoints to its ``output_dir`` and prints one
JSON line (first process only): ``step``, ``steps``, ``finished``, ``stopped`` (why it
stopped early: ``"deadline"``, ``"signal"``, or null), ``checkpoint``, ``device``,
``train_time`` and the latest validation metrics.

Exit status: 0 when the run finished *or* stopped cleanly before its end (``--max-seconds``
used up, SIGTERM or SIGINT: a checkpoint is written and ``"finished": false``; ``--resume``
continues it); 2 on a configuration error (unknown keys or model, bad paths, an output folder
held by another live run, a checkpoint trained with other settings); 3 when the loss or the
weights became NaN or infinite (``error: ...``; no checkpoint of the diverged weights is
written, the newest one on disk holds the last finite weights); 130 on a second SIGINT
(interrupted at once, nothing written).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch.distributed as dist

from .config import TrainingConfig
from .trainer import NonFiniteLossError, Trainer, init_distributed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a training run (also those of ``precisionrecon train``)."""
    parser.add_argument("--config", required=True, help="training config (.json, .yaml or .yml)")
    parser.add_argument("--output-dir", help="override output_dir")
    parser.add_argument("--steps", type=int, help="override steps")
    parser.add_argument("--seed", type=int, help="override seed")
    parser.add_argument("--device", help="override device (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--max-seconds", type=float,
                        help="time budget: checkpoint and stop (exit 0, \"finished\": false) before it is used up")
    parser.add_argument("--num-threads", type=int, help="override num_threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m precisionrecon.training", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, nothing more written
        print("error: interrupted (Ctrl-C); nothing more was written", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    """Train with the options of :func:`add_arguments`; 0 on success, 2 on a configuration error."""
    overrides = {
        "output_dir": args.output_dir,
        "steps": args.steps,
        "seed": args.seed,
        "device": args.device,
        "resume": True if args.resume else None,
        "progress": False if args.no_progress else None,
        "max_seconds": args.max_seconds,
        "num_threads": args.num_threads,
    }
    created = False
    try:
        config = TrainingConfig.from_file(args.config)
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
        created = init_distributed(config.device)
        trainer = Trainer(config)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if created:
            dist.destroy_process_group()
        return 2
    try:
        try:
            trainer.fit()
        except NonFiniteLossError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        if trainer.rank == 0:
            checkpoint = str(trainer.last_checkpoint) if trainer.last_checkpoint is not None else None
            print(json.dumps({
                "step": trainer.step, "steps": trainer.config.steps, "finished": trainer.finished,
                "stopped": trainer.stop_reason, "checkpoint": checkpoint, "device": str(trainer.device),
                "train_time": trainer.train_time, **trainer.metrics,
            }), flush=True)
    finally:
        if created:
            dist.destroy_process_group()
    return 0
