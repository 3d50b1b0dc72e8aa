"""``offsite analyze`` (CKA between layers, clusters, heatmaps) and ``offsite lens`` (logit / tuned lens grids)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import OffsiteError
from ..evaluate.targets import load_target
from ..models import load_model
from ..paths import claim_directory, write_json
from ..report.table import format_table
from ..similarity import (
    LENS_KINDS,
    POOLINGS,
    HiddenStateConfig,
    TunedLens,
    TunedLensConfig,
    analysis_texts,
    analyze_similarity,
    lens_grid,
    train_tuned_lens,
    write_similarity,
)

LAYERS_NOTE = "layers are numbered from 0 (the first transformer block)"


def register(subparsers: argparse._SubParsersAction) -> None:
    analyze = subparsers.add_parser(
        "analyze",
        help="linear CKA between every pair of layers, adjacent clusters, heatmaps",
        description=f"Linear CKA between the pooled outputs of all blocks, and adjacent clustering; {LAYERS_NOTE}.",
    )
    analyze.add_argument("models", nargs="+", metavar="MODEL", help="one or more models (alias, path, .gguf, hub name)")
    source = analyze.add_mutually_exclusive_group()
    source.add_argument("--task", help="task whose prompt + gold answer are the samples (default: arc_easy)")
    source.add_argument("--text-file", help="plain-text file; one sample per non-empty line")
    analyze.add_argument("--split", default="validation", help="task split (default: validation)")
    analyze.add_argument("--limit", type=int, default=128, help="number of samples (default: 128)")
    analyze.add_argument("--pooling", choices=POOLINGS, default="mean", help="pool tokens per sample (default: mean)")
    analyze.add_argument("--skip-first", type=int, default=1, metavar="K",
                         help="leave each sample's first K tokens out of pooling (default: 1, the attention sink)")
    analyze.add_argument("--clusters", type=int, default=6, help="number of adjacent clusters (default: 6)")
    analyze.add_argument("--importance-limit", type=int, default=64, metavar="N",
                         help="measure each block's importance (block influence, angular distance, drop-one "
                         "perplexity) on the first N samples (default: 64; 0: skip)")
    analyze.add_argument("--no-drop-one", action="store_true",
                         help="skip drop-one perplexity (one more forward pass over the samples per block)")
    analyze.add_argument("--batch-size", type=int, default=8, help="samples per forward pass (default: 8)")
    analyze.add_argument("--max-length", type=int, default=512, help="truncate samples to this many tokens")
    analyze.add_argument("--out", required=True, help="output directory (one sub-directory per model when several)")
    analyze.set_defaults(func=run_analyze)

    lens = subparsers.add_parser(
        "lens",
        help="logit or tuned lens: each layer's top-1 next token at every position",
        description=f"Each layer's prediction for the next token, as a grid and JSON; {LAYERS_NOTE}.",
    )
    lens.add_argument("model", help="alias, local directory, .gguf file, hub name, or bundle (its emulator)")
    lens.add_argument("--text", required=True, help="the text to read the layers on")
    lens.add_argument("--kind", choices=LENS_KINDS, default="logit", help="logit lens, or tuned lens (default: logit)")
    lens.add_argument("--out", required=True, help="output directory")
    lens.add_argument("--max-length", type=int, default=64, help="truncate the text to this many tokens")
    tuned = lens.add_argument_group("tuned lens", "load translators with --translators, or train them")
    tuned.add_argument("--translators", help="a tuned lens .safetensors file written earlier (skips training)")
    train_source = tuned.add_mutually_exclusive_group()
    train_source.add_argument("--train-task", help="task to train on (default: arc_easy)")
    train_source.add_argument("--train-text-file", help="plain-text file to train on, one sample per non-empty line")
    tuned.add_argument("--train-split", default="train", help="task split to train on (default: train)")
    tuned.add_argument("--train-limit", type=int, default=256, help="training samples (default: 256)")
    tuned.add_argument("--steps", type=int, default=100, help="training steps (default: 100)")
    tuned.add_argument("--batch-size", type=int, default=4, help="samples per step (default: 4)")
    tuned.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    tuned.add_argument("--train-max-length", type=int, default=128, help="truncate training samples (default: 128)")
    lens.set_defaults(func=run_lens)


def _slug(name: str) -> str:
    """A directory name for a model: its path's last part or hub name, with unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.rstrip("/")).name or name).strip("-") or "model"


def run_analyze(args: argparse.Namespace) -> None:
    config = HiddenStateConfig(args.pooling, args.skip_first, args.batch_size, args.max_length)
    if args.text_file is None and args.task is None:
        args.task = "arc_easy"
    texts, source = analysis_texts(args.task, args.split, args.limit, args.text_file)
    out = Path(args.out)
    slugs = [_slug(name) for name in args.models]
    if len(set(slugs)) != len(slugs):
        raise OffsiteError("two models would share an output directory; give each model once")
    results = []
    for name, slug in zip(args.models, slugs):
        model, tokenizer = load_model(name)
        result = analyze_similarity(model, tokenizer, texts, args.clusters, config, name, source,
                                    importance_limit=args.importance_limit, drop_one=not args.no_drop_one)
        del model
        claim_directory(out)  # only now: a bad input above leaves no directory behind
        model_out = out if len(args.models) == 1 else out / slug
        paths = write_similarity(result, model_out)
        results.append(result)
        print(f"\n{name}: {result.num_samples} samples, {args.pooling} pooling, first {args.skip_first} token(s) "
              f"skipped; {LAYERS_NOTE}")
        print(format_table(result.cluster_rows(), ["cluster", "layers", "size", "representative", "min_cka"]))
        if result.importance is not None:
            rows = result.importance.rows()
            print(format_table(rows, list(rows[0])))
        print("wrote " + ", ".join(str(p) for p in paths))
    if len(results) > 1:
        from ..report.similarity_plots import save_cka_comparison  # matplotlib only when plotting

        comparison = out / "cka_comparison.png"
        save_cka_comparison(comparison, [(r.model, r.cka, r.clustering.clusters) for r in results])
        print(f"wrote {comparison}")


def run_lens(args: argparse.Namespace) -> None:
    from ..report.similarity_plots import save_lens_grid  # matplotlib only when plotting

    if args.translators and args.kind != "tuned":
        raise OffsiteError("--translators only applies to --kind tuned")
    model, tokenizer = load_target(args.model)
    out = Path(args.out)
    tuned, training = None, None
    if args.kind == "tuned" and args.translators:
        tuned = TunedLens.load(args.translators)
        training = {"translators": args.translators}
    elif args.kind == "tuned":
        if args.train_text_file is None and args.train_task is None:
            args.train_task = "arc_easy"
        texts, source = analysis_texts(args.train_task, args.train_split, args.train_limit, args.train_text_file)
        config = TunedLensConfig(args.steps, args.batch_size, args.train_max_length, args.lr)
        tuned, history = train_tuned_lens(model, tokenizer, texts, config)
        translators = claim_directory(out) / "tuned_lens.safetensors"
        tuned.save(translators, args.model)
        training = {"translators": str(translators), **source, "num_samples": len(texts), "steps": config.steps,
                    "batch_size": config.batch_size, "lr": config.lr, "kl_before_each_step": history}
        print(f"tuned lens: mean KL to the final layer {history[0]:.3f} -> {history[-1]:.3f}; wrote {translators}")
    grid = lens_grid(model, tokenizer, args.text, tuned, args.model, args.max_length)
    claim_directory(out)
    write_json(out / "lens.json", {**grid.to_json(), **({"tuned_lens": training} if training else {})})
    save_lens_grid(out / "lens.png", grid.input_tokens, grid.top_tokens, grid.probabilities,
                   f"{args.model}: {grid.kind} lens")
    rows = [
        {"layer": layer, "top-1 at last position": f"'{grid.top_tokens[layer][-1]}'",
         "probability": float(grid.probabilities[layer, -1]), "KL to final": float(grid.kl_to_final[layer])}
        for layer in range(len(grid.top_tokens))
    ]
    print(format_table(rows, ["layer", "top-1 at last position", "probability", "KL to final"]))
    print(f"wrote {out / 'lens.json'}, {out / 'lens.png'}")
