"""``offsite experiment``: the five rows of the protocol per strategy and task, from one YAML config."""

from __future__ import annotations

import argparse

from ..experiment import load_experiment_config, run_experiment


def register(subparsers: argparse._SubParsersAction) -> None:
    experiment = subparsers.add_parser(
        "experiment",
        help="build (and distil) emulators, fine-tune, plug in and score the five rows per emulator and task",
        description="Run the five-row protocol (Full ZS, Full FT, Emulator ZS, Emulator FT, Plug-in) for every "
        "task, emulator (strategy x keep x distilled or not) and seed of CONFIG.yaml, with merged plug-ins where it "
        "asks. Each cell is one small JSON file in the config's results_dir (default: --out); a cell found there is "
        "reused without loading anything, so a stopped run continues, on another machine too. Bundles and runs "
        "live under --out and are rebuilt when a missing cell needs them.",
    )
    experiment.add_argument("config", help="YAML file (see configs/ for examples)")
    experiment.add_argument("--out", required=True, help="experiment directory")
    experiment.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    result = run_experiment(load_experiment_config(args.config), args.out)
    print(result["table"])
    print(f"wrote {result['results_dir']}/table.md, results.json, chart.png, emulators.png and cells/")
