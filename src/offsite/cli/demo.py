"""``offsite demo``: the whole method on the embedded model and ARC-Easy, as one HTML report."""

from __future__ import annotations

import argparse

from ..demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="CKA map, a uniform emulator plain and distilled, fine-tuning, plug-in and the five rows, as an HTML report",
    )
    demo.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    run_demo(args.out)
