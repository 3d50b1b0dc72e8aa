"""``offsite experiment``: the five rows of the protocol per strategy and task, from one YAML config."""

from __future__ import annotations

import argparse

from ..errors import OffsiteError
from ..experiment import Part, load_experiment_config, measure_part, run_experiment


def register(subparsers: argparse._SubParsersAction) -> None:
    experiment = subparsers.add_parser(
        "experiment",
        help="build (and distil) emulators, fine-tune, plug in and score the five rows per emulator and task",
        description="Run the five-row protocol (Full ZS, Full FT, Emulator ZS, Emulator FT, Plug-in) for every "
        "task, emulator (strategy x keep x distilled or not) and seed of CONFIG.yaml, with merged plug-ins where it "
        "asks. Each cell is one small JSON file in the config's results_dir (default: --out); a cell found there is "
        "reused without loading anything, so a stopped run continues, on another machine too. Bundles and runs "
        "live under --out and are rebuilt when a missing cell needs them. The same command run N times at once (same "
        "--out, one machine) shares the work: each process takes the cells, bundles and runs no other is making.",
    )
    experiment.add_argument("config", help="YAML file (see configs/ for examples)")
    experiment.add_argument("--out", required=True, help="experiment directory")
    experiment.add_argument(
        "--part", metavar="K/N",
        help="measure only part K of N (the full model's rows go to part 1, emulators are dealt in a snake) and "
        "write no table: run N parts at once, in processes or on machines sharing the results_dir (or copy their "
        "cells/ into one), then once more without --part for the tables",
    )
    experiment.add_argument(
        "--tables-only", action="store_true",
        help="measure nothing: write the tables, charts and reading of the cells measured so far (a study still "
        "running, or parts not all done)",
    )
    experiment.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    config = load_experiment_config(args.config)
    if args.part is not None and args.tables_only:
        raise OffsiteError("--part measures a share of the cells and --tables-only measures none; give one of them")
    if args.part is not None:
        part = Part.parse(args.part)
        records = measure_part(config, args.out, part)
        print(f"part {part}: {len(records)} cells in {config.results_dir or args.out}/cells; once every part "
              "is done, run again without --part for the tables")
        return
    result = run_experiment(config, args.out, measure=not args.tables_only)
    print(result["table"])
    print(f"wrote {result['results_dir']}/table.md, results.json, chart.png, emulators.png and cells/"
          + (f" ({len(result['missing'])} cells not measured yet)" if result["missing"] else ""))
