"""The model owner's step: base model + calibration samples -> a strategy's layer map -> bundle on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..models import num_layers
from .bundle import save_bundle
from .layer_map import LayerMap
from .strategies import AdapterSpec, SimilaritySource, StrategyInputs, StrategyResult, StrategySpec, plan_layer_map


@dataclass(frozen=True)
class EmulatorConfig:
    """An emulator: a strategy (a :class:`StrategySpec` or its text), ``keep`` blocks besides the adapter (None:
    as many as the strategy's explicit kept layers), the adapter (unless the strategy names its own), and the
    calibration samples the strategy measures on."""

    strategy: StrategySpec | str
    keep: int | None = None
    adapter: AdapterSpec = AdapterSpec()
    similarity: SimilaritySource = SimilaritySource()

    def __post_init__(self) -> None:
        if isinstance(self.strategy, str):
            object.__setattr__(self, "strategy", StrategySpec.parse(self.strategy))

    def resolve_adapter(self, depth: int) -> tuple[int, ...]:
        return (self.strategy.adapter or self.adapter).resolve(depth)


def strategy_inputs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    source: SimilaritySource,
    similarity_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> StrategyInputs:
    """What strategies draw on for ``model``: measured on ``source``, or CKA (and importance) from a saved file."""
    if similarity_file is not None:
        return StrategyInputs.from_file(similarity_file, model, tokenizer, source, progress)
    return StrategyInputs(model, tokenizer, source, progress=progress)


def plan_emulator(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: EmulatorConfig,
    inputs: StrategyInputs | None = None,
    similarity_file: str | os.PathLike | None = None,
) -> StrategyResult:
    """The layer map of ``config`` for ``model`` and its manifest details (``inputs`` may be shared by plans)."""
    inputs = inputs or strategy_inputs(model, tokenizer, config.similarity, similarity_file)
    depth = num_layers(model)
    return plan_layer_map(config.strategy, inputs, depth, config.resolve_adapter(depth), config.keep)


def write_bundle(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    plan: StrategyResult,
    out: str | os.PathLike,
    model_name: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the bundle of ``plan`` for ``model`` to ``out`` with ``extra`` manifest entries; return the manifest."""
    details = {**plan.details, "base_model": {"name": model_name}, **(extra or {})}
    return save_bundle(model, tokenizer, plan.layer_map, out, details)


def create_bundle(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: EmulatorConfig,
    out: str | os.PathLike,
    model_name: str,
    similarity_file: str | os.PathLike | None = None,
) -> tuple[LayerMap, dict[str, Any]]:
    """Build the layer map of ``config`` for ``model`` and write its bundle to ``out``; return map and manifest.

    Strategies measure what they need on ``config.similarity`` unless a saved ``similarity_file`` gives it.
    """
    plan = plan_emulator(model, tokenizer, config, similarity_file=similarity_file)
    return plan.layer_map, write_bundle(model, tokenizer, plan, out, model_name)
