"""``offsite emulate`` and ``offsite export``: the model owner builds and ships an emulator bundle."""

from __future__ import annotations

import argparse
import json

from ..emulator.bundle import export_bundle
from ..emulator.create import EmulatorConfig, SimilaritySource, create_bundle
from ..emulator.layer_map import STRATEGIES
from ..errors import OffsiteError
from ..models import load_model


def int_list(text: str) -> tuple[int, ...]:
    """Parse ``"0,5,18,23"`` into integers, with a clear error for anything else."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def adapter_pads(text: str) -> tuple[int, int]:
    values = int_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"--adapter takes FIRST,LAST (e.g. 2,2), got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    emulate = subparsers.add_parser(
        "emulate",
        help="build an emulator bundle (uniform, crash, crash-noshare) from a model",
        description="Build an emulator and its adapter from MODEL and write them as a bundle directory. "
        "Layers are numbered from 0. CRaSh strategies measure linear CKA between block outputs on a task split "
        "(or read it from a similarity.json written by `offsite analyze`).",
    )
    emulate.add_argument("model", help="alias, local directory, .gguf file or hub name")
    emulate.add_argument("--strategy", required=True, choices=STRATEGIES)
    emulate.add_argument("--keep", type=int, required=True, help="blocks kept besides the adapter (clusters for crash)")
    adapter = emulate.add_mutually_exclusive_group()
    adapter.add_argument("--adapter", type=adapter_pads, default=(2, 2), metavar="FIRST,LAST",
                         help="adapter = the first FIRST and last LAST blocks (default 2,2)")
    adapter.add_argument("--adapter-layers", type=int_list, metavar="I,J,...", help="explicit adapter layer indices")
    defaults = SimilaritySource()
    emulate.add_argument("--task", default=defaults.task, help=f"similarity data (default {defaults.task})")
    emulate.add_argument("--split", default=defaults.split, help=f"default {defaults.split}")
    emulate.add_argument("--limit", type=int, default=defaults.limit, help=f"samples (default {defaults.limit})")
    emulate.add_argument("--pooling", default=defaults.pooling, help="mean | last | weighted | max")
    emulate.add_argument("--skip-first", type=int, default=defaults.skip_first, help="tokens left out of pooling")
    emulate.add_argument("--similarity", metavar="FILE", help="use the CKA of a similarity.json from offsite analyze")
    emulate.add_argument("--out", required=True, help="bundle directory to write")
    emulate.add_argument("--json", action="store_true", help="print the manifest as JSON")
    emulate.set_defaults(func=run_emulate)

    export = subparsers.add_parser("export", help="write a bundle's emulator as a plain transformers directory")
    export.add_argument("bundle")
    export.add_argument("--out", required=True)
    export.set_defaults(func=run_export)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def run_emulate(args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise OffsiteError(f"--limit must be at least 1, got {args.limit}")
    config = EmulatorConfig(
        strategy=args.strategy,
        keep=args.keep,
        adapter_pads=args.adapter,
        adapter_layers=args.adapter_layers,
        similarity=SimilaritySource(args.task, args.split, args.limit, args.pooling, args.skip_first),
    )
    model, tokenizer = load_model(args.model)
    layer_map, manifest = create_bundle(model, tokenizer, config, args.out, args.model, args.similarity)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return
    base = manifest["base_model"]
    full_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bundle_bytes = sum(manifest["files"].values())
    print(f"layer map ({args.strategy}; position: source block, * adapter, · removed; layers from 0):")
    print(f"  {layer_map.describe()}")
    if manifest["clustering"]:
        print(f"  clusters: {manifest['clustering']['clusters']}")
    print(f"emulator depth {manifest['emulator_depth']} of {base['num_layers']}, "
          f"{len(layer_map.kept_layers)} distinct blocks ({len(layer_map.adapter_layers)} adapter)")
    print(f"parameters: bundle {manifest['bundle_parameters']:,} vs full model {base['num_parameters']:,} "
          f"({manifest['bundle_parameters'] / base['num_parameters']:.1%}); adapter {manifest['adapter_parameters']:,}")
    print(f"size on disk: bundle {_megabytes(bundle_bytes)} vs full model {_megabytes(full_bytes)} (fp32)")
    print(f"wrote {args.out}")


def run_export(args: argparse.Namespace) -> None:
    print(f"wrote {export_bundle(args.bundle, args.out)}")
