"""``offsite fidelity``: how well each strategy's emulator stands in for the full model, at several sizes."""

from __future__ import annotations

import argparse

from ..emulator.strategies import AdapterSpec, StrategySpec
from ..experiment import DistillSettings
from ..experiment.fidelity_table import DEFAULT_STRATEGIES, FidelityTableConfig, run_fidelity_table
from .emulate import (
    add_adapter_arguments,
    add_fidelity_arguments,
    add_similarity_arguments,
    fidelity_config,
    int_list,
    similarity_source,
    strategy_help,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    fidelity = subparsers.add_parser(
        "fidelity",
        help="perplexity and zero-shot accuracy of every strategy's emulator at several sizes, as one table",
        description="Build (in memory) the emulator of each strategy at each --keep and measure it against the full "
        "model on the same held-out samples. One JSON file per cell under OUT/cells, so a stopped run continues; "
        "OUT/table.md and OUT/results.json at the end.",
        epilog=strategy_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fidelity.add_argument("model", help="alias, local directory, .gguf file or hub name")
    fidelity.add_argument("--strategies", nargs="+", default=list(DEFAULT_STRATEGIES), metavar="NAME[:OPTION=VALUE]",
                          help="strategies and variants (default: every strategy and the authors' variants)")
    fidelity.add_argument("--keep", type=int_list, default=(6, 11, 16), metavar="K,K,...",
                          help="emulator sizes: blocks kept besides the adapter (default 6,11,16)")
    add_adapter_arguments(fidelity)
    add_similarity_arguments(fidelity)
    add_fidelity_arguments(fidelity)
    defaults = DistillSettings()
    distilled = fidelity.add_argument_group("distillation: with --distill-steps, each emulator also distilled "
                                            "(as offsite distill; bundles under OUT/bundles)")
    distilled.add_argument("--distill-steps", type=int, default=0, metavar="N",
                           help="optimizer steps (default 0: no distilled rows)")
    distilled.add_argument("--distill-text", nargs="+", default=list(defaults.corpus), metavar="SOURCE",
                           help="corpus: bundled sources, text or JSONL files (default: %(default)s)")
    distilled.add_argument("--distill-lr", type=float, default=defaults.lr, help="default %(default)s")
    distilled.add_argument("--distill-batch-size", type=int, default=defaults.batch_size, help="default %(default)s")
    distilled.add_argument("--distill-block-size", type=int, default=defaults.block_size, help="default %(default)s")
    distilled.add_argument("--distill-held-out", type=int, default=defaults.held_out, help="default %(default)s")
    distilled.add_argument("--distill-eval-every", type=int, default=defaults.eval_every, help="default %(default)s")
    fidelity.add_argument("--out", required=True, help="table directory (reused cells are kept)")
    fidelity.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    config = FidelityTableConfig(
        model=args.model,
        strategies=tuple(StrategySpec.parse(text) for text in args.strategies),
        keeps=args.keep,
        adapter=AdapterSpec(args.adapter, args.adapter_layers),
        similarity=similarity_source(args),
        similarity_file=args.similarity,
        fidelity=fidelity_config(args),
        distillation=None if args.distill_steps == 0 else DistillSettings(
            corpus=tuple(args.distill_text), steps=args.distill_steps, lr=args.distill_lr,
            batch_size=args.distill_batch_size, block_size=args.distill_block_size, held_out=args.distill_held_out,
            eval_every=args.distill_eval_every),
    )
    result = run_fidelity_table(config, args.out)
    print(result["table"])
    print(f"wrote {args.out}/table.md, results.json")
