"""The ``offsite`` command: argument parsing only; every subcommand calls the library API.

Each module in :data:`COMMAND_MODULES` adds its subcommands with ``register(subparsers)``.

One error path for every command: a usage error or an error the user can cause (:class:`offsite.errors.OffsiteError`)
ends in one line ``offsite: error: ...`` and exit code 2 (``--debug`` or ``OFFSITE_DEBUG=1`` adds the traceback);
any other exception is a bug in offsite, and says so, with its traceback, and exit code 1.
Every subcommand with ``--out`` also gets ``--force``, and its output path is checked before any work starts
(see :func:`offsite.paths.check_output`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from ..errors import OffsiteError
from ..paths import check_output, forcing

COMMAND_MODULES = ["inspect", "analyze", "emulate", "fidelity", "finetune", "evaluate", "experiment", "landscape", "distill", "merge", "demo"]


# Subcommands whose --out names a file (the others write a directory).
FILE_OUTPUTS = ("eval",)
OUTPUT_OPTIONS = ("out", "records")  # checked against the inputs before any work
FORCE_HELP = ("write into an existing directory that offsite did not write, beside its files (they are never "
              "deleted or replaced)")
DEBUG_HELP = "on an error, show the Python traceback too (or set OFFSITE_DEBUG=1)"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="offsite",
        description="Offsite-Tuning with CRaSh emulators. Layers are numbered from 0 (the first block) to L-1.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for command in subparsers.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        if any("--out" in action.option_strings for action in command._actions):
            command.add_argument("--force", action="store_true", help=FORCE_HELP)
    return parser


def _input_paths(args: argparse.Namespace) -> list[str]:
    """Every argument other than an output that names an existing path, or a comma-separated list of them
    (``--tasks a.jsonl,b.jsonl``): what the command reads."""
    values = [v for key, value in vars(args).items() if key not in OUTPUT_OPTIONS
              for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, str) and v]
    return [path for v in values for path in dict.fromkeys([v, *v.split(",")]) if path and Path(path).exists()]


def _check_output(args: argparse.Namespace) -> None:
    """Refuse a harmful output before any work: each of ``--out`` and ``--records`` against the inputs and each
    other."""
    outputs = [(key, getattr(args, key)) for key in OUTPUT_OPTIONS if getattr(args, key, None) is not None]
    inputs = _input_paths(args)
    for key, path in outputs:
        others = [other for name, other in outputs if name != key]
        directory = key == "out" and args.command not in FILE_OUTPUTS
        check_output(path, inputs + others, directory=directory)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("OFFSITE_DEBUG", "") not in ("", "0")
    # transformers' own per-load progress bars drown ours; warnings and errors still show.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        with forcing(getattr(args, "force", False)):
            _check_output(args)
            return args.func(args) or 0
    except OffsiteError as exc:
        if debug:
            traceback.print_exc()
        print(f"offsite: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("offsite: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("offsite: internal error: this is a bug in offsite, not a problem with your input; please report it "
              "with the traceback above (and the command that caused it)", file=sys.stderr)
        return 1
