"""The ``offsite`` command: argument parsing only; every subcommand calls the library API.

Each module in :data:`COMMAND_MODULES` adds its subcommands with ``register(subparsers)``.
Errors a user can cause (:class:`offsite.errors.OffsiteError`) end in one line and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..errors import OffsiteError

COMMAND_MODULES = ["inspect", "analyze", "emulate", "finetune", "evaluate", "experiment", "landscape", "distill", "merge", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offsite",
        description="Offsite-Tuning with CRaSh emulators. Layers are numbered from 0 (the first block) to L-1.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # transformers' own per-load progress bars drown ours; warnings and errors still show.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        return args.func(args) or 0
    except OffsiteError as exc:
        print(f"offsite: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("offsite: interrupted", file=sys.stderr)
        return 130
