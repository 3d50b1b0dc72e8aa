"""The model owner's step: base model (+ similarity data) -> layer map -> bundle on disk."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import num_layers
from ..paths import read_json
from ..similarity import HiddenStateConfig, analysis_texts, layer_cka
from .bundle import save_bundle
from .layer_map import (
    NEEDS_SIMILARITY,
    LayerMap,
    adapter_from_pads,
    build_layer_map,
    check_request,
    validate_adapter_layers,
)


@dataclass(frozen=True)
class SimilaritySource:
    """Which samples the CRaSh strategies measure layer similarity on (linear CKA of pooled block outputs).

    The train split by default, so that the evaluation split is never looked at when building an emulator.
    """

    task: str = "arc_easy"
    split: str = "train"
    limit: int = 128
    pooling: str = "mean"
    skip_first: int = 1
    batch_size: int = 8
    max_length: int = 512

    def texts(self) -> tuple[list[str], dict]:
        """The samples (prompt + gold answer) and a description of where they came from."""
        return analysis_texts(self.task, self.split, self.limit)

    def hidden_state_config(self) -> HiddenStateConfig:
        """How the samples' block outputs are pooled."""
        return HiddenStateConfig(self.pooling, self.skip_first, self.batch_size, self.max_length)


@dataclass(frozen=True)
class EmulatorConfig:
    """An emulator: strategy, ``keep`` blocks besides the adapter, and the adapter as pads or explicit layers."""

    strategy: str
    keep: int
    adapter_pads: tuple[int, int] = (2, 2)
    adapter_layers: tuple[int, ...] | None = None
    similarity: SimilaritySource = SimilaritySource()

    def resolve_adapter(self, depth: int) -> tuple[int, ...]:
        if self.adapter_layers is not None:
            return validate_adapter_layers(list(self.adapter_layers), depth)
        return adapter_from_pads(*self.adapter_pads, depth)


def similarity_from_file(path: str | os.PathLike, depth: int) -> tuple[np.ndarray, dict]:
    """The CKA matrix saved by ``offsite analyze`` (``similarity.json``), checked against the model's depth."""
    data = read_json(path, "similarity file")
    if "cka" not in data:
        raise OffsiteError(f"{path} has no 'cka' matrix: write it with offsite analyze")
    cka = np.asarray(data["cka"], dtype=np.float64)
    if cka.shape != (depth, depth):
        raise OffsiteError(f"{path} holds a {cka.shape[0]}-layer CKA matrix, but the model has {depth} layers")
    settings = {k: data.get(k) for k in ("model", "task", "split", "num_samples", "pooling", "skip_first")}
    return cka, {"file": str(path), **settings}


def measure_similarity(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: SimilaritySource
) -> tuple[np.ndarray, dict]:
    """Linear CKA between all blocks of ``model`` on the samples of ``source``."""
    texts, origin = source.texts()
    cka = layer_cka(model, tokenizer, texts, source.hidden_state_config())
    return cka, {**asdict(source), **origin, "num_samples": len(texts)}


def create_bundle(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: EmulatorConfig,
    out: str | os.PathLike,
    model_name: str,
    similarity_file: str | os.PathLike | None = None,
) -> tuple[LayerMap, dict[str, Any]]:
    """Build the layer map of ``config`` for ``model`` and write its bundle to ``out``; return map and manifest.

    CRaSh strategies measure similarity on ``config.similarity`` unless a saved ``similarity_file`` is given.
    """
    depth = num_layers(model)
    adapter, _ = check_request(config.strategy, depth, config.resolve_adapter(depth), config.keep)
    cka, similarity = None, None
    if config.strategy in NEEDS_SIMILARITY:
        if similarity_file is not None:
            cka, similarity = similarity_from_file(similarity_file, depth)
        else:
            cka, similarity = measure_similarity(model, tokenizer, config.similarity)
    layer_map, clustering = build_layer_map(config.strategy, depth, adapter, config.keep, cka)
    details = {
        "strategy": config.strategy,
        "keep": config.keep,
        "clustering": clustering.to_json() if clustering else None,
        "similarity": similarity,
        "cka": cka.round(8).tolist() if cka is not None else None,
        "base_model": {"name": model_name},
    }
    return layer_map, save_bundle(model, tokenizer, layer_map, out, details)
