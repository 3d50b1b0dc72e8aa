"""``offsite finetune`` (the data owner trains the adapter on the emulator; or the full-model baseline) and
``offsite plugin`` (the model owner puts the adapter back into the full model)."""

from __future__ import annotations

import argparse
import json

from ..emulator import plugin
from ..report.table import format_table
from ..train import FinetuneConfig, finetune
from ..train.config import SELECT_METRICS
from .emulate import adapter_pads, int_list
from .training import add_optimizer_arguments, add_run_arguments, config_from_args, stopped_early

FINETUNE_EPILOG = """\
what trains:
  offsite finetune BUNDLE ...                 the bundle's adapter blocks, on its emulator (the offsite setting)
  offsite finetune MODEL --full ...           the full model (baseline): its blocks FIRST,LAST (--adapter, default
                                              2,2), or --adapter-layers, or exactly the adapter layers of
                                              --bundle B, or every weight with --all-weights
  with --lora R only LoRA matrices of rank R on the adapter blocks' linear layers train (merged into the adapter
  when saved); with --bitfit only their biases.

data (--task): a registered task (offsite tasks), a .jsonl file of {"prompt","choices","gold"} lines (trains on
  prompt + gold choice) or of {"prompt","completion"} lines (trains on prompt + completion + EOS), or a plain
  text file. The loss covers the answer tokens only. Files have no splits: --eval-task names another file.

the run directory RUN gets adapter.safetensors (model/ with --all-weights), manifest.json and metrics.jsonl;
  the adapter kept is the one with the best validation score on the model being trained (the emulator).
  Interrupted? Run the same command again: it resumes from RUN/checkpoint and ends with the same adapter.
  Several processes (--batch-size is per process): accelerate launch --multi_gpu --num_processes N -m offsite
  finetune ...; on CPUs only, set ACCELERATE_USE_CPU=1 (gloo) for the same command.
Layers are numbered from 0 (the first transformer block)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = FinetuneConfig(source="", task="", out="")
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a bundle's adapter on its emulator (or the full model with --full)",
        description="Fine-tune the adapter blocks of an emulator bundle with the emulator frozen in place, "
        "keeping the adapter with the best validation score.",
        epilog=FINETUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="BUNDLE|MODEL", help="bundle directory; with --full, a model alias/path")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to write (and resume)")

    data = parser.add_argument_group("data")
    data.add_argument("--task", required=True, help="task name, .jsonl file or text file to train on")
    data.add_argument("--train-split", default=defaults.train_split, help="default %(default)s")
    data.add_argument("--eval-split", default=defaults.eval_split, help="default %(default)s")
    data.add_argument("--eval-task", help="evaluate on another task or file (default: --task)")
    data.add_argument("--limit", type=int, help="use the first N training examples")
    data.add_argument("--eval-limit", type=int, help="use the first N evaluation examples")
    data.add_argument("--max-length", type=int, default=defaults.max_length, help="tokens per sequence (default %(default)s)")

    optim = parser.add_argument_group("optimisation (AdamW, cosine schedule)")
    optim.add_argument("--epochs", type=int, default=defaults.epochs, help="default %(default)s")
    add_optimizer_arguments(optim, defaults, batch="sequences")

    trains = parser.add_argument_group("what trains (default: every weight of the adapter blocks)")
    method = trains.add_mutually_exclusive_group()
    method.add_argument("--lora", type=int, metavar="R", help="LoRA of rank R on the adapter blocks")
    method.add_argument("--bitfit", action="store_true", help="only the adapter blocks' biases")
    trains.add_argument("--lora-alpha", type=float, default=defaults.lora_alpha, help="LoRA scale numerator (default %(default)s)")

    full = parser.add_argument_group("full-model baseline")
    full.add_argument("--full", action="store_true", help="SOURCE is a model: train it directly, no emulator")
    layers = full.add_mutually_exclusive_group()
    layers.add_argument("--adapter", type=adapter_pads, metavar="FIRST,LAST", help="train the first/last blocks (default 2,2)")
    layers.add_argument("--adapter-layers", type=int_list, metavar="I,J,...", help="train these blocks")
    layers.add_argument("--bundle", metavar="BUNDLE", help="train exactly this bundle's adapter layers")
    layers.add_argument("--all-weights", action="store_true", help="train every weight (writes RUN/model/)")

    run = parser.add_argument_group("evaluation and checkpoints")
    run.add_argument("--select", choices=SELECT_METRICS,
                     help="keep the adapter with the best of this on the emulator's validation data (default: the "
                     "task's harness metric for multiple choice, acc, exact_match for WebQuestions; else loss: the "
                     "answer tokens' log-perplexity)")
    run.add_argument("--eval-every", type=int, default=defaults.eval_every, help="steps (default: each epoch)")
    run.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations to save memory")
    add_run_arguments(run, defaults, untrained="the untrained adapter")
    parser.set_defaults(func=run_finetune)

    plug = subparsers.add_parser(
        "plugin",
        help="put a fine-tuned adapter into the full model",
        description="Write MODEL with the adapter blocks of RUN (a run directory or an adapter file) in place, as a "
        "directory that from_pretrained loads. Refuses an adapter made for another model or with wrong names, "
        "shapes, dtypes or non-finite values.",
    )
    plug.add_argument("model", help="the base model (alias, local directory, .gguf file or hub name)")
    plug.add_argument("run", help="run directory of offsite finetune, or an adapter .safetensors file")
    plug.add_argument("--out", required=True, help="directory to write")
    plug.set_defaults(func=run_plugin)


def run_finetune(args: argparse.Namespace) -> int:
    lora = args.lora is not None
    config = config_from_args(FinetuneConfig, args, method="lora" if lora else "bitfit" if args.bitfit else "weights",
                              lora_rank=args.lora if lora else FinetuneConfig.lora_rank)
    result = finetune(config, progress=not args.no_progress)
    if result.manifest is None:  # stopped early, or not the main process
        return stopped_early(result.completed, result.step)
    manifest = result.manifest
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    rows = [{"": name, **{k: v for k, v in record.items() if k != "metric"}}
            for name, record in (("best", manifest["best"]), ("final", manifest["final"])) if record]
    print(format_table(rows, ["", "step", "loss", "acc", "acc_norm"]))
    output = result.out / next(iter(manifest["outputs"].values()))
    print(f"kept step {manifest['selected_step']} (best {manifest['select']}); "
          f"{manifest['trainable_parameters']:,} trained parameters; wrote {output}")
    return 0


def run_plugin(args: argparse.Namespace) -> None:
    out = plugin(args.model, args.run, args.out)
    print(f"wrote {out} (the full model with the adapter plugged in)")
