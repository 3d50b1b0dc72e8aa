"""``offsite emulate`` and ``offsite export``: the model owner builds and ships an emulator bundle."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from ..emulator.bundle import export_bundle
from ..emulator.create import EmulatorConfig
from ..emulator.strategies import SIMILARITY_PRESETS, STRATEGIES, AdapterSpec, SimilaritySource, StrategySpec
from ..evaluate.fidelity import FidelityConfig, fidelity_rows, fidelity_warning
from ..experiment.owner import emulate
from ..models import load_model
from ..report.table import format_table


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


def strategy_help() -> str:
    """Every registered strategy with its summary and options (defaults first), for --help."""
    lines = ["strategies (--strategy NAME[:OPTION=VALUE]...):"]
    for strategy in STRATEGIES.values():
        options = ", ".join(f"{f.name}={f.default}" for f in fields(strategy.options)) or "no options"
        lines.append(f"  {strategy.name}: {strategy.summary} [{options}]")
    return "\n".join(lines)


def add_adapter_arguments(parser: argparse.ArgumentParser) -> None:
    adapter = parser.add_mutually_exclusive_group()
    adapter.add_argument("--adapter", type=adapter_pads, metavar="FIRST,LAST",
                         help="adapter = the first FIRST and last LAST blocks (default 2,2)")
    adapter.add_argument("--adapter-layers", type=int_list, metavar="I,J,...", help="explicit adapter layer indices")


def adapter_spec(args: argparse.Namespace) -> AdapterSpec:
    return AdapterSpec(args.adapter, args.adapter_layers)


def add_similarity_arguments(parser: argparse.ArgumentParser) -> None:
    """The calibration samples strategies measure similarity, importance and loss on."""
    group = parser.add_argument_group("calibration samples (what strategies measure layer similarity, importance "
                                      "and loss on)")
    defaults = SimilaritySource()
    group.add_argument("--similarity-preset", choices=SIMILARITY_PRESETS,
                       help="named settings; authors: 512 validation samples, BOS + prompt + answer, weighted "
                       "pooling, nothing skipped (flags given explicitly still win)")
    group.add_argument("--task", help=f"task whose prompt + gold answer are the samples (default {defaults.task})")
    group.add_argument("--text-file", help="plain-text file instead of a task; one sample per non-empty line")
    group.add_argument("--split", help=f"default {defaults.split}")
    group.add_argument("--limit", type=int, help=f"samples (default {defaults.limit})")
    group.add_argument("--loss-limit", type=int, help=f"samples for loss-based measures (drop-one perplexity, "
                       f"crash-search; default {defaults.loss_limit})")
    group.add_argument("--pooling", help="mean | last | weighted | max")
    group.add_argument("--skip-first", type=int, help="tokens left out of pooling")
    group.add_argument("--similarity", metavar="FILE",
                       help="use the CKA (and importance) of a similarity.json from offsite analyze")


def similarity_source(args: argparse.Namespace) -> SimilaritySource:
    given = {name: getattr(args, name) for name in ("task", "text_file", "split", "limit", "loss_limit", "pooling",
                                                     "skip_first") if getattr(args, name) is not None}
    return SimilaritySource.from_config({**given, "preset": args.similarity_preset})


def add_fidelity_arguments(parser: argparse.ArgumentParser, defaults: FidelityConfig = FidelityConfig()) -> None:
    """The held-out samples the emulator is measured on against the full model."""
    group = parser.add_argument_group("fidelity (the emulator against the full model, on the same held-out samples)")
    group.add_argument("--fidelity-task", default=defaults.task, help=f"task (default {defaults.task})")
    group.add_argument("--fidelity-split", default=defaults.split, help=f"its split (default {defaults.split})")
    group.add_argument("--fidelity-limit", type=int, default=defaults.limit,
                       help=f"questions scored zero-shot (default {defaults.limit}; 0: none)")
    group.add_argument("--fidelity-text-file", default=defaults.text_file,
                       help="perplexity on this text file's first characters (default: the split's samples)")
    group.add_argument("--fidelity-text-chars", type=int, default=defaults.text_chars,
                       help=f"characters of the text file (default {defaults.text_chars})")
    group.add_argument("--fidelity-text-limit", type=int, default=defaults.text_limit,
                       help=f"without a text file: samples joined into the text (default {defaults.text_limit}; 0: none)")


def fidelity_config(args: argparse.Namespace) -> FidelityConfig:
    return FidelityConfig(args.fidelity_task, args.fidelity_split, args.fidelity_limit, args.fidelity_text_file,
                          args.fidelity_text_chars, args.fidelity_text_limit)


def print_fidelity(fidelity: dict) -> None:
    """Where the held-out samples come from, and the figures of both models."""
    held = fidelity["held_out"]
    text = held.get("text_file") or held.get("text") or "no text"
    print(f"fidelity on held-out samples ({held['task']} {held['split']}; text: {text}):")
    print(format_table(fidelity_rows(fidelity), ["figure", "full model", "emulator"]))


def warn_if_broken(manifest: dict) -> None:
    """One line on stderr where the emulator's perplexity is too many times the full model's."""
    warning = fidelity_warning(manifest["fidelity"]) if manifest.get("fidelity") else None
    if warning:
        print(f"offsite: warning: {warning}", file=sys.stderr)


def register(subparsers: argparse._SubParsersAction) -> None:
    emulate = subparsers.add_parser(
        "emulate",
        help="build an emulator bundle (uniform, crash, importance, ...) from a model",
        description="Build an emulator and its adapter from MODEL and write them as a bundle directory. "
        "Layers are numbered from 0. Strategies measure what they need (linear CKA between block outputs, "
        "block importance, loss) on calibration samples, or read CKA from a similarity.json of `offsite analyze`.",
        epilog=strategy_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulate.add_argument("model", help="alias, local directory, .gguf file or hub name")
    emulate.add_argument("--strategy", required=True, metavar="NAME[:OPTION=VALUE]...",
                         help="the strategy and its options, e.g. crash:fill=repeat-all:tie=higher (see below)")
    emulate.add_argument("--keep", type=int, help="blocks kept besides the adapter (clusters for crash)")
    emulate.add_argument("--kept-layers", type=int_list, metavar="I,J,...",
                         help="explicit kept layers (uniform, crash, crash-noshare); --keep may then be left out")
    add_adapter_arguments(emulate)
    add_similarity_arguments(emulate)
    add_fidelity_arguments(emulate)
    emulate.add_argument("--no-fidelity", action="store_true", help="do not measure the emulator's fidelity")
    emulate.add_argument("--out", required=True, help="bundle directory to write")
    emulate.add_argument("--json", action="store_true", help="print the manifest as JSON")
    emulate.set_defaults(func=run_emulate)

    export = subparsers.add_parser("export", help="write a bundle's emulator as a plain transformers directory")
    export.add_argument("bundle")
    export.add_argument("--out", required=True)
    export.set_defaults(func=run_export)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def strategy_spec(args: argparse.Namespace) -> StrategySpec:
    spec = StrategySpec.parse(args.strategy)
    if args.kept_layers is None:
        return spec
    return StrategySpec(spec.name, (*spec.options, ("kept", args.kept_layers)), spec.adapter, spec.label)


def run_emulate(args: argparse.Namespace) -> None:
    config = EmulatorConfig(strategy_spec(args), args.keep, adapter_spec(args), similarity_source(args))
    fidelity = None if args.no_fidelity else fidelity_config(args)
    model, tokenizer = load_model(args.model)
    layer_map, manifest = emulate(model, tokenizer, config, args.out, args.model, args.similarity, fidelity)
    if args.json:
        print(json.dumps(manifest, indent=2))
        warn_if_broken(manifest)
        return
    base = manifest["base_model"]
    full_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bundle_bytes = sum(manifest["files"].values())
    print(f"layer map ({config.strategy.text}; position: source block, * adapter, c frozen copy of an adapter "
          "block, · removed; layers from 0):")
    print(f"  {layer_map.describe()}")
    if manifest.get("clustering"):
        print(f"  clusters: {manifest['clustering']['clusters']}")
    print(f"emulator depth {manifest['emulator_depth']} of {base['num_layers']}, "
          f"{len(layer_map.kept_layers)} distinct blocks ({len(layer_map.adapter_layers)} adapter)")
    print(f"parameters: bundle {manifest['bundle_parameters']:,} vs full model {base['num_parameters']:,} "
          f"({manifest['bundle_parameters'] / base['num_parameters']:.1%}); adapter {manifest['adapter_parameters']:,}")
    print(f"size on disk: bundle {_megabytes(bundle_bytes)} vs full model {_megabytes(full_bytes)} (fp32)")
    if "fidelity" in manifest:
        print_fidelity(manifest["fidelity"])
    print(f"wrote {args.out}")
    warn_if_broken(manifest)


def run_export(args: argparse.Namespace) -> None:
    print(f"wrote {export_bundle(args.bundle, args.out)}")
