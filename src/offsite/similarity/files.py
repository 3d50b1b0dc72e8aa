"""Reading a ``similarity.json`` (written by ``offsite analyze``) strictly: a file for a model of another depth,
with values that are not numbers, NaN or infinity, or CKA outside [0, 1] is refused in one line."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import OffsiteError
from ..paths import read_json

_TOLERANCE = 1e-6  # CKA is rounded to 8 decimals on disk
_IMPORTANCE_PER_LAYER = ("block_influence", "angular_distance")


def _numbers(value: Any, shape: tuple[int, ...], name: str, where: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise OffsiteError(f"{where}: {name} is not an array of numbers") from None
    if array.shape != shape:
        raise OffsiteError(f"{where}: {name} has shape {array.shape}, expected {shape} "
                           "(is the file for another model?)")
    if not np.isfinite(array).all():
        raise OffsiteError(f"{where}: {name} holds NaN or infinite values")
    return array


def _check_importance(data: Any, num_layers: int, where: str) -> None:
    """The per-block importance ``offsite analyze`` may add, if there: numbers per layer and two counts."""
    if not isinstance(data, dict):
        raise OffsiteError(f"{where}: importance must be a JSON object")
    for key in _IMPORTANCE_PER_LAYER:
        if key not in data:
            raise OffsiteError(f"{where}: importance.{key} is missing")
        _numbers(data[key], (num_layers,), f"importance.{key}", where)
    if data.get("drop_one_perplexity") is not None:
        _numbers(data["drop_one_perplexity"], (num_layers,), "importance.drop_one_perplexity", where)
    for key in ("num_samples", "num_tokens"):
        if not isinstance(data.get(key), int) or isinstance(data.get(key), bool):
            raise OffsiteError(f"{where}: importance.{key} must be an integer")


def read_similarity_file(path: str | os.PathLike, num_layers: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The L×L CKA matrix of a similarity file for a model with ``num_layers`` blocks, and the file's contents
    (its ``importance``, when present, checked too)."""
    where = f"similarity file {path}"
    data = read_json(path, "similarity file")
    if not isinstance(data, dict) or "cka" not in data:
        raise OffsiteError(f"{where} has no 'cka' matrix: write it with offsite analyze")
    recorded = data.get("num_layers", num_layers)
    if recorded != num_layers:
        raise OffsiteError(f"{where} is for a {recorded!r}-layer model, but this model has {num_layers} layers")
    cka = _numbers(data["cka"], (num_layers, num_layers), "cka", where)
    if cka.min() < -_TOLERANCE or cka.max() > 1 + _TOLERANCE:
        raise OffsiteError(f"{where}: cka holds values outside [0, 1], so it is not a CKA matrix")
    if data.get("importance") is not None:
        _check_importance(data["importance"], num_layers, where)
    return cka, data
