"""Asking a strategy for its layer map: check the request, build, and gather the details for the manifest."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..layer_map import LayerMap
from .base import StrategyResult, make_request
from .inputs import StrategyInputs
from .spec import StrategySpec


def plan_layer_map(
    spec: StrategySpec | str, inputs: StrategyInputs, num_layers: int, adapter: Iterable[int], keep: int | None
) -> StrategyResult:
    """The layer map of ``spec`` keeping ``keep`` non-adapter blocks (None: as many as its explicit kept layers),
    with details naming the strategy, its options and the inputs it used."""
    spec = StrategySpec.parse(spec) if isinstance(spec, str) else spec
    options = spec.settings()
    request = make_request(num_layers, adapter, keep, getattr(options, "kept", None))
    with inputs.tracking() as used:
        result = spec.strategy.build(inputs, request, options)
    details = {"strategy": spec.name, "strategy_spec": spec.to_json(), "keep": request.keep, **result.details,
               **inputs.record(used)}
    return StrategyResult(result.layer_map, details)


def build_layer_map(
    strategy: StrategySpec | str,
    num_layers: int,
    adapter_layers: Iterable[int],
    keep: int | None,
    similarity: np.ndarray | None = None,
) -> tuple[LayerMap, dict]:
    """The layer map of a strategy that needs at most a given layer-similarity matrix (no model), and its details."""
    result = plan_layer_map(strategy, StrategyInputs(similarity=similarity), num_layers, adapter_layers, keep)
    return result.layer_map, result.details
