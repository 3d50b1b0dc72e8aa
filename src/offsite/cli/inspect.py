"""``offsite models``, ``offsite info``, ``offsite tasks``: what is available and what a model looks like."""

from __future__ import annotations

import argparse
import json

from ..data import task_table
from ..emulator.bundle import read_manifest
from ..emulator.summary import bundle_summary, is_bundle
from ..models import alias_table, load_model, model_summary
from ..report.table import format_table
from .emulate import print_fidelity, warn_if_broken


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list the built-in model aliases and where they come from")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=run_models)

    info = subparsers.add_parser("info", help="architecture, depth, width and size of a model; layer map, sizes and "
                                 "fidelity of a bundle")
    info.add_argument("model", help="alias, local directory, .gguf file, hub name, or bundle directory")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=run_info)

    tasks = subparsers.add_parser("tasks", help="list the multiple-choice tasks, their splits and sizes")
    tasks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tasks.set_defaults(func=run_tasks)


def run_models(args: argparse.Namespace) -> None:
    rows = alias_table()
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, ["name", "installed", "cached", "description"]))


def run_bundle_info(args: argparse.Namespace) -> None:
    manifest = read_manifest(args.model)
    summary, fidelity = bundle_summary(args.model, manifest), manifest.get("fidelity")
    if args.json:
        print(json.dumps({**summary, "fidelity": fidelity}, indent=2))
        return
    for key, value in summary.items():
        print(f"{key:>15}: {value}")
    if fidelity:
        print_fidelity(fidelity)
    else:
        print("fidelity: not measured (built with --no-fidelity or by an older offsite)")
    warn_if_broken({"fidelity": fidelity})


def run_info(args: argparse.Namespace) -> None:
    if is_bundle(args.model):
        run_bundle_info(args)
        return
    model, _ = load_model(args.model)
    summary = {"model": args.model, **model_summary(model)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>15}: {value:,}" if isinstance(value, int) else f"{key:>15}: {value}")
        print(f"{'layers':>15}: 0..{summary['num_layers'] - 1} (numbered from 0, the first transformer block)")


def run_tasks(args: argparse.Namespace) -> None:
    rows = task_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    flat = [
        {
            "name": r["name"],
            "harness": r["harness"],
            "metrics": ",".join(r["metrics"]),
            **{s: ("" if s not in r["splits"] else "hub" if r["splits"][s] is None else r["splits"][s])
               for s in ("train", "validation", "test")},
            "source": ", ".join(r["origins"]),
        }
        for r in rows
    ]
    print(format_table(flat, ["name", "harness", "metrics", "train", "validation", "test", "source"]))
