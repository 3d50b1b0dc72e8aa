"""The options every training command has (``offsite finetune`` and ``offsite distill``), from
:class:`offsite.train.config.RunSettings`, and how such a command turns its arguments into a config and reports a
run that stopped early."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, TypeVar

from ..train.config import PRECISIONS, RunSettings

Config = TypeVar("Config", bound=RunSettings)


def add_optimizer_arguments(group: argparse._ArgumentGroup, defaults: RunSettings, batch: str) -> None:
    """AdamW on a cosine schedule; ``batch`` says what one element of a batch is."""
    group.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (default %(default)s)")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size,
                       help=f"{batch} per process (default %(default)s)")
    group.add_argument("--grad-accum", type=int, default=defaults.grad_accum,
                       help="micro-batches per step (default %(default)s)")
    group.add_argument("--warmup", type=float, default=defaults.warmup,
                       help="a fraction of all steps if below 1, else steps (default %(default)s)")
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="default %(default)s")
    group.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm,
                       help="clip (default %(default)s)")
    group.add_argument("--seed", type=int, default=defaults.seed, help="data order (default %(default)s)")


def add_run_arguments(group: argparse._ArgumentGroup, defaults: RunSettings, untrained: str) -> None:
    """Evaluation batch, checkpoints, logging, precision and output; ``untrained`` names step 0 (what the run
    starts from), which is kept only when asked."""
    group.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size, help="default %(default)s")
    group.add_argument("--select-include-init", action="store_true",
                       help=f"{untrained} (step 0) may be kept too (default: trained steps only)")
    group.add_argument("--save-every", type=int, default=defaults.save_every,
                       help="checkpoint every N steps (default %(default)s)")
    group.add_argument("--log-every", type=int, default=defaults.log_every,
                       help="metrics line every N steps (default %(default)s)")
    group.add_argument("--mixed-precision", choices=PRECISIONS, default=defaults.mixed_precision,
                       help="autocast precision (fp16 needs a GPU; default %(default)s)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    group.add_argument("--json", action="store_true", help="print the result's manifest record as JSON")
    # Stops as if killed after this many steps: for testing that a rerun resumes.
    group.add_argument("--stop-after-steps", type=int, help=argparse.SUPPRESS)


def config_from_args(config_class: type[Config], args: argparse.Namespace, **values: Any) -> Config:
    """``config_class`` with every field that has an argument of the same name taken from ``args``, and ``values``
    for the others (or instead)."""
    named = {f.name: getattr(args, f.name) for f in fields(config_class) if hasattr(args, f.name)}
    return config_class(**{**named, **values})


def stopped_early(completed: bool, step: int) -> int:
    """The exit code of a run that returned no manifest: 1, with a line saying how to resume, when it stopped
    before the end; 0 when it finished but this process is not the main one."""
    if completed:
        return 0
    print(f"offsite: stopped at step {step}; run the same command again to resume")
    return 1
