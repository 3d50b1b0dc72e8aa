"""``offsite eval``: zero-shot multiple-choice accuracy and perplexity of a model."""

from __future__ import annotations

import argparse

import torch

from ..data import get_task, load_text
from ..errors import OffsiteError
from ..evaluate import EvalConfig, run_evaluation
from ..evaluate.records import example_records, write_records
from ..evaluate.targets import load_target
from ..paths import write_json
from ..report.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="zero-shot multiple-choice accuracy (acc, acc_norm, exact_match) and perplexity",
        description="Score a model zero-shot as lm-evaluation-harness does: the harness's metrics per task (acc, "
        "acc_norm, exact_match, with standard errors) and the perplexity of the gold answers; and the token-level "
        "perplexity of text files.",
    )
    parser.add_argument("target", help="model (alias, local directory, .gguf file or hub name) or bundle directory "
                        "(scores its emulator)")
    parser.add_argument("--adapter", metavar="RUN", help="fine-tuned adapter (run directory or file): inside the "
                        "bundle's emulator, or plugged into the model")
    parser.add_argument("--tasks", help="comma-separated task names or .jsonl files (see `offsite tasks`)")
    parser.add_argument("--split", default="validation", help="task split (default: validation)")
    parser.add_argument("--limit", type=int, help="score only the first N examples of each task")
    parser.add_argument("--text", action="append", default=[], metavar="FILE",
                        help="plain-text file to compute perplexity on (repeatable)")
    parser.add_argument("--batch-size", type=int, default=EvalConfig.batch_size,
                        help="(prompt, choice) sequences per forward pass (default: %(default)s)")
    parser.add_argument("--text-batch-size", type=int, default=EvalConfig.text_batch_size,
                        help="text windows per forward pass (default: %(default)s)")
    parser.add_argument("--window", type=int, help="tokens per perplexity window (default: model maximum, at most 1024)")
    parser.add_argument("--stride", type=int, help="new tokens scored per perplexity window (default: window/2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: %(default)s)")
    parser.add_argument("--out", help="write the scores to this JSON file")
    parser.add_argument("--records", metavar="FILE.jsonl", help="write one JSON line per example: doc_id, prompt_id, "
                        "every choice's log-likelihood, the predictions and the gold")
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> None:
    task_names = [name.strip() for name in (args.tasks or "").split(",") if name.strip()]
    if not task_names and not args.text:
        raise OffsiteError("nothing to evaluate: give --tasks and/or --text")
    if args.records and not task_names:
        raise OffsiteError("--records needs --tasks: records are per multiple-choice example")
    # Read all data before loading the model, so that bad input fails at once.
    specs = {name: get_task(name) for name in task_names}
    tasks = {name: spec.load(args.split, args.limit) for name, spec in specs.items()}
    texts = {path: load_text(path) for path in args.text}
    config = EvalConfig(batch_size=args.batch_size, text_batch_size=args.text_batch_size, window=args.window, stride=args.stride)
    model, tokenizer = load_target(args.target, args.adapter)
    try:
        model.to(args.device)
    except (RuntimeError, AssertionError) as exc:
        raise OffsiteError(f"cannot use device {args.device!r}: {exc}") from None
    report = run_evaluation(model, tokenizer, tasks, texts, config)

    if report.tasks:
        print(f"\n{args.target}, split {args.split}" + (f", first {args.limit} examples" if args.limit else "") + " (accuracy in %)")
        rows = report.task_rows({name: spec.metrics for name, spec in specs.items()})
        print(format_table(rows, list(rows[0])))
    if report.texts:
        print()
        print(format_table(report.text_rows(), list(report.text_rows()[0])))
    if args.out:
        write_json(args.out, {
            "model": args.target,
            "split": args.split,
            "limit": args.limit,
            "batch_size": args.batch_size,
            "metrics": {name: list(spec.metrics) for name, spec in specs.items()},
            **report.to_dict(),
        })
        print(f"\nwrote {args.out}")
    if args.records:
        write_records(args.records, [r for name, examples in tasks.items()
                                     for r in example_records(name, examples, report.examples[name])])
        print(f"wrote {args.records}")
