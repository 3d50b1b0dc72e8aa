"""Training step time and peak memory of adapter fine-tuning on emulators vs fine-tuning the full model.

One run measures, each in a fresh process so that peaks do not mix:

- ``full FT``: every weight of the full model trains (the baseline of the ratios);
- ``full, adapter``: the full model with only the adapter blocks training;
- ``emulator uniform`` and ``emulator crash``: the adapter blocks on each emulator (bundles built here).

A step is :func:`offsite.train.train_step` (forward, backward, clipping, AdamW) on a fixed batch of random tokens.
Peak memory: on a GPU, ``torch.cuda.max_memory_allocated``; on the CPU, the process's peak resident set during the
steps (``VmHWM``, reset once the model is built, so loading does not count) less its resident set after the imports
(the interpreter and libraries, the same for every variant).

    python benchmarks/bench_finetune.py [--model smollm2-135m] [--keep 11] [--batch-size 4] [--seq-len 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offsite.cli.emulate import adapter_pads

VARIANTS = ("full FT", "full, adapter", "emulator uniform", "emulator crash")


def _peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set


def _status_bytes(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":"))) * 1024


def _peak_bytes(baseline: int) -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return _status_bytes("VmHWM") - baseline


def measure(args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps of one variant in this process."""
    import torch
    from accelerate import Accelerator

    from offsite.train import FinetuneConfig, train_step
    from offsite.train.data import collate
    from offsite.train.trainable import build_target, set_trainable

    baseline = 0 if torch.cuda.is_available() else _status_bytes("VmRSS")
    full = args.variant.startswith("full")
    config = FinetuneConfig(
        source=args.source, task="-", out="-", full=full, adapter=args.adapter if args.variant == "full, adapter" else None,
        all_weights=args.variant == "full FT", mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    torch.manual_seed(0)
    target = build_target(config)
    if config.gradient_checkpointing:
        target.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = set_trainable(target, config)
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-5)
    model, optimizer = accelerator.prepare(target.model, optimizer)
    model.train()
    vocab = target.model.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch_size, args.seq_len), generator=torch.Generator().manual_seed(0))
    # The loss covers the second half of each sequence, as an answer after a prompt would.
    pairs = [(row[: args.seq_len // 2].tolist(), row[args.seq_len // 2 :].tolist()) for row in ids]
    batches = [collate(pairs, 0, accelerator.device)]
    parameters = list(trainable.values())
    _peak_reset()
    times = []
    for step in range(args.warmup_steps + args.steps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(accelerator, model, optimizer, batches, parameters, 1.0)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if step >= args.warmup_steps:
            times.append(time.perf_counter() - start)
    return {
        "variant": args.variant,
        "step_s": statistics.median(times),
        "peak_mb": _peak_bytes(baseline) / 2**20,
        "depth": target.model.config.num_hidden_layers,
        "parameters_m": sum(p.numel() for p in target.model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in parameters) / 1e6,
        "device": str(accelerator.device),
    }


def build_bundles(args: argparse.Namespace, root: Path) -> dict[str, str]:
    """Uniform and CRaSh bundles of ``args.model`` (CRaSh measures CKA on ARC-Easy train unless given a file)."""
    from offsite.emulator.create import EmulatorConfig, create_bundle
    from offsite.emulator.strategies import AdapterSpec
    from offsite.models import load_model

    model, tokenizer = load_model(args.model)
    paths = {}
    for strategy in ("uniform", "crash"):
        paths[strategy] = str(root / strategy)
        config = EmulatorConfig(strategy=strategy, keep=args.keep, adapter=AdapterSpec(pads=tuple(args.adapter)))
        create_bundle(model, tokenizer, config, paths[strategy], args.model, args.similarity)
    return paths


def child_rows(children: dict[str, list[str]]) -> list[dict]:
    """Run each named command line in a fresh process (so that peaks do not mix); the JSON row each prints last."""
    rows = []
    for name, child in children.items():
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr)
    return rows


def print_rows(rows: list[dict], as_json: bool, title: str, columns: list[str]) -> None:
    """The measured rows as JSON, or as a titled table of ``columns``."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from offsite.report.table import format_table

    print(title)
    print(format_table(rows, columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--keep", type=int, default=11, help="blocks kept besides the adapter (default 11)")
    parser.add_argument("--adapter", type=adapter_pads, default=(2, 2), help="FIRST,LAST")
    parser.add_argument("--similarity", help="similarity.json from offsite analyze (else CKA is measured here)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed first steps (the first ones are slow)")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement, in a child
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        bundles = build_bundles(args, Path(tmp))
        sources = {"full FT": args.model, "full, adapter": args.model,
                   "emulator uniform": bundles["uniform"], "emulator crash": bundles["crash"]}
        rows = child_rows({variant: [sys.executable, __file__, *sys.argv[1:], "--variant", variant, "--source",
                                     sources[variant]] for variant in VARIANTS})
    base = rows[0]
    for row in rows:
        row["time_ratio"] = row["step_s"] / base["step_s"]
        row["memory_ratio"] = row["peak_mb"] / base["peak_mb"]
    title = (f"{args.model}: batch {args.batch_size} x {args.seq_len} tokens, adapter {args.adapter}, keep "
             f"{args.keep}, precision {args.mixed_precision}, median of {args.steps} steps on {base['device']}; "
             "ratios vs full FT")
    print_rows(rows, args.json, title, ["variant", "depth", "parameters_m", "trainable_m", "step_s", "peak_mb",
                                        "time_ratio", "memory_ratio"])


if __name__ == "__main__":
    main()
