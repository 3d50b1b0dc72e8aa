"""Shared helpers of the fine-tuning tests: a tiny bundle, a small learnable data file, a quick run config."""

from __future__ import annotations

import json
from pathlib import Path

from offsite.emulator import adapter_from_pads, build_layer_map, save_bundle
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train import FinetuneConfig

WORDS = ["cat", "dog", "sun", "map", "pen", "cup", "box", "hat", "red", "sky", "ice", "owl"]


def make_bundle(root: Path, model_type: str = "llama", depth: int = 6, strategy: str = "uniform") -> Path:
    """A bundle of a tiny random ``model_type`` (seed 0) with adapter 1,1 and 2 kept blocks."""
    layer_map = build_layer_map(strategy, depth, adapter_from_pads(1, 1, depth), 2)[0]
    out = root / f"bundle-{model_type}-{strategy}"
    save_bundle(tiny_model(model_type, depth), tiny_tokenizer(), layer_map, out, {"strategy": strategy})
    return out


def write_choices(path: Path, count: int = 12) -> Path:
    """Multiple-choice lines ``{"prompt","choices","gold"}``: the answer repeats the word (short sequences)."""
    lines = [
        {"prompt": f"{w}:", "choices": [w, WORDS[(i + 1) % len(WORDS)]], "gold": 0}
        for i, w in enumerate(WORDS[:count])
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def quick_config(source: Path, task: Path, out: Path, **overrides) -> FinetuneConfig:
    """Settings for a run of a few seconds on a tiny model."""
    settings = dict(source=str(source), task=str(task), out=str(out), epochs=2, lr=1e-2, batch_size=4,
                    max_length=32, log_every=1, save_every=1000)
    return FinetuneConfig(**{**settings, **overrides})
