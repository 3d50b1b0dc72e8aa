"""Peak memory of loading an emulator bundle, against its size on disk and against loading the full model.

Bundles as in the demo (uniform and CRaSh, ``--keep 6`` with adapter ``2,2`` by default) are built from the model
first; then each load is measured in a fresh process: the peak resident set while loading and then reading every
weight once, as a first forward pass would (``VmHWM``, reset after the imports; a memory-mapped weight counts only
once read), less the resident set after the imports (the interpreter, torch and transformers, the same for every
row). ``ratio to size`` is that increase over the files' size on disk; the target for a bundle is at most 1.3.

    python benchmarks/bench_load.py [--model smollm2-135m] [--keep 6] [--adapter 2,2] [--similarity FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_finetune import build_bundles, child_rows, print_rows

from offsite.cli.emulate import adapter_pads

TARGET_RATIO = 1.3


def _status_bytes(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":"))) * 1024


def measure(kind: str, source: str) -> dict:
    """Load ``source`` (a bundle, or with ``kind`` "model" a model) in this process; report the memory it took."""
    from offsite.emulator import load_emulator
    from offsite.models import load_model, resolve_local_path

    load = (lambda: load_model(source)[0]) if kind == "model" else (lambda: load_emulator(source))
    baseline = _status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    model = load()
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.detach().sum()
    directory = Path(resolve_local_path(source))
    return {
        "peak_increase_mb": (_status_bytes("VmHWM") - baseline) / 2**20,
        "size_on_disk_mb": sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 2**20,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "depth": model.config.num_hidden_layers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--keep", type=int, default=6, help="blocks kept besides the adapter (default 6, as the demo)")
    parser.add_argument("--adapter", type=adapter_pads, default=(2, 2), help="FIRST,LAST")
    parser.add_argument("--similarity", help="similarity.json from offsite analyze (else CKA is measured here)")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "SOURCE"), help=argparse.SUPPRESS)  # in a child
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    from offsite.models import load_model

    load_model(args.model)  # converts and caches the model once, so that no child does
    with tempfile.TemporaryDirectory() as tmp:
        children = {"full model": [sys.executable, __file__, "--measure", "model", args.model]}
        children.update({f"bundle {strategy}": [sys.executable, __file__, "--measure", "bundle", path]
                         for strategy, path in build_bundles(args, Path(tmp)).items()})
        rows = [{"load": name, **row} for name, row in zip(children, child_rows(children))]
    full = rows[0]
    for row in rows:
        row["ratio_to_size"] = row["peak_increase_mb"] / row["size_on_disk_mb"]
        row["vs_full_model"] = row["peak_increase_mb"] / full["peak_increase_mb"]
    title = (f"{args.model}: keep {args.keep}, adapter {args.adapter}; peak resident memory of one load in a fresh "
             f"process, over the process after its imports (target for a bundle: ratio to size <= {TARGET_RATIO})")
    print_rows(rows, args.json, title, ["load", "depth", "parameters_m", "size_on_disk_mb", "peak_increase_mb",
                                        "ratio_to_size", "vs_full_model"])
    over = [row["load"] for row in rows[1:] if row["ratio_to_size"] > TARGET_RATIO]
    if over:
        print(f"over the target: {', '.join(over)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
