"""``offsite experiment``: the five rows of the protocol per strategy and task, from one YAML config."""

from __future__ import annotations

import argparse

from ..experiment import load_experiment_config, run_experiment


def register(subparsers: argparse._SubParsersAction) -> None:
    experiment = subparsers.add_parser(
        "experiment",
        help="build emulators, fine-tune, plug in and score the five rows per strategy and task",
        description="Run the five-row protocol (Full ZS, Full FT, Emulator ZS, Emulator FT, Plug-in) for every "
        "task, strategy and seed of CONFIG.yaml. Finished cells are reused, so a stopped run continues.",
    )
    experiment.add_argument("config", help="YAML file (see configs/ for examples)")
    experiment.add_argument("--out", required=True, help="experiment directory")
    experiment.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    result = run_experiment(load_experiment_config(args.config), args.out)
    print(result["table"])
    print(f"wrote {args.out}/table.md, results.json, chart.png")
