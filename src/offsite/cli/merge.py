"""``offsite merge``: merge adapters fine-tuned with different seeds or data orders into one run."""

from __future__ import annotations

import argparse
import json

from ..train.merge import MERGE_METHODS, MergeConfig, merge_runs


def float_list(text: str) -> tuple[float, ...]:
    """Parse ``"1,2,0.5"`` into floats, with a clear error for anything else."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="merge fine-tuned adapters (weighted average or parameter selection)",
        description="Merge the adapters of several runs (same layers, same base model) into one run directory, "
        "which offsite plugin and offsite eval --adapter take. average: the weighted mean of every parameter. "
        "select: parameter-selection merging (Ju et al., EMNLP 2024), every element taken from one run drawn at "
        "random, with probabilities proportional to --weights.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories or adapter files (two or more)")
    parser.add_argument("--method", choices=tuple(MERGE_METHODS), default="average", help="default %(default)s")
    parser.add_argument("--weights", type=float_list, metavar="W1,W2,...", help="one per run (default equal)")
    parser.add_argument("--seed", type=int, default=0, help="the random draw of --method select (default %(default)s)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> None:
    manifest = merge_runs(MergeConfig(tuple(args.runs), args.out, args.method, args.weights, args.seed))
    if args.json:
        print(json.dumps(manifest, indent=2))
        return
    weights = ", ".join(f"{w:.3g}" for w in manifest["merge"]["weights"])
    print(f"merged {len(args.runs)} adapters (layers {manifest['adapter_layers']}) by {args.method}, weights {weights}; "
          f"wrote {args.out}")
