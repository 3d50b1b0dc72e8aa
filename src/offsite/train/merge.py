"""Merging fine-tuned adapters of the same layers and base model, e.g. runs that differ only in their data order.

Methods (:data:`MERGE_METHODS`):

- ``average``: the weighted mean of every parameter (weights normalised to sum to 1);
- ``select``: parameter-selection merging ("Mitigating Training Imbalance in LLM Fine-Tuning via Selective
  Parameter Merging", Ju et al., EMNLP 2024): every element of every parameter is taken whole from one run, drawn
  at random per element (with probabilities proportional to the weights), reproducibly from a seed.

The result is a run directory (``adapter.safetensors`` + ``manifest.json``) that ``offsite plugin`` and
``offsite eval --adapter`` take like any fine-tuning run.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..emulator import save_adapter
from ..emulator.adapter import adapter_layers_of, load_adapter
from ..emulator.bundle import versions
from ..emulator.plugin import adapter_path
from ..errors import OffsiteError
from ..paths import atomic_path, sha256_of, write_json
from .loop import ADAPTER_FILE, MANIFEST, RUN_FORMAT

Tensors = dict[str, torch.Tensor]


def average_adapters(adapters: Sequence[Tensors], weights: Sequence[float], seed: int = 0) -> Tensors:
    """The weighted mean of each tensor (``weights`` sum to 1), computed in float64, in the tensors' own dtype."""
    return {
        name: sum(w * a[name].double() for w, a in zip(weights, adapters)).to(adapters[0][name].dtype)
        for name in adapters[0]
    }


def select_adapters(adapters: Sequence[Tensors], weights: Sequence[float], seed: int = 0) -> Tensors:
    """Each element of each tensor from one adapter, adapter ``i`` drawn with probability ``weights[i]``. The draw
    of a tensor depends only on ``seed`` and its name, so it does not change with the other tensors."""
    bounds = torch.tensor(list(weights), dtype=torch.float64).cumsum(0)[:-1]
    merged = {}
    for name in adapters[0]:
        digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        stacked = torch.stack([a[name] for a in adapters])
        choice = torch.bucketize(torch.rand(stacked.shape[1:], generator=generator, dtype=torch.float64), bounds,
                                 right=True)
        merged[name] = stacked.gather(0, choice.unsqueeze(0)).squeeze(0)
    return merged


MERGE_METHODS: dict[str, Callable[[Sequence[Tensors], Sequence[float], int], Tensors]] = {
    "average": average_adapters,
    "select": select_adapters,
}


@dataclass(frozen=True)
class MergeConfig:
    """Merge the adapters of ``runs`` (run directories or adapter files) into the run directory ``out``.

    ``weights`` (one per run, non-negative, default equal) are normalised to sum to 1.
    """

    runs: tuple[str, ...]
    out: str
    method: str = "average"
    weights: tuple[float, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.runs) < 2:
            raise OffsiteError("merging needs at least two runs")
        if self.method not in MERGE_METHODS:
            raise OffsiteError(f"unknown merge method {self.method!r}; choose one of: {', '.join(MERGE_METHODS)}")
        if self.weights is not None and len(self.weights) != len(self.runs):
            raise OffsiteError(f"--weights gives {len(self.weights)} weights for {len(self.runs)} runs")
        if self.weights is not None and (not all(math.isfinite(w) and w >= 0 for w in self.weights)
                                         or sum(self.weights) <= 0):
            raise OffsiteError("--weights must be finite, non-negative and not all zero")

    def normalised_weights(self) -> tuple[float, ...]:
        weights = self.weights or (1.0,) * len(self.runs)
        return tuple(w / sum(weights) for w in weights)


def load_matching_adapters(runs: Sequence[str]) -> tuple[list[Tensors], str]:
    """The adapters of ``runs`` and their base model's fingerprint, refused unless every adapter was made for the
    same base model and holds the same tensors (names, shapes, dtypes) as the first."""
    adapters, fingerprints = [], []
    for run in runs:
        tensors, metadata = load_adapter(adapter_path(run))
        adapters.append(tensors)
        fingerprints.append(metadata.get("base_fingerprint"))
    first = runs[0]
    for run, tensors, base in zip(runs[1:], adapters[1:], fingerprints[1:]):
        if base != fingerprints[0]:
            raise OffsiteError(f"{run} was fine-tuned for another base model than {first} "
                               f"(fingerprint {base}, not {fingerprints[0]})")
        if tensors.keys() != adapters[0].keys():
            raise OffsiteError(f"{run} covers other layers or tensors than {first} (layers "
                               f"{list(adapter_layers_of(tensors))} vs {list(adapter_layers_of(adapters[0]))})")
        for name, tensor in tensors.items():
            reference = adapters[0][name]
            if tensor.shape != reference.shape or tensor.dtype != reference.dtype:
                raise OffsiteError(f"{run} tensor {name} is {tuple(tensor.shape)} {tensor.dtype}, but in {first} "
                                   f"{tuple(reference.shape)} {reference.dtype}")
    return adapters, fingerprints[0]


def merge_runs(config: MergeConfig) -> dict:
    """Merge the adapters of ``config.runs`` by ``config.method`` and write the run directory ``config.out``;
    return its manifest."""
    adapters, base_fingerprint = load_matching_adapters(config.runs)
    weights = config.normalised_weights()
    merged = MERGE_METHODS[config.method](adapters, weights, config.seed)
    out = Path(config.out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_adapter(tmp / ADAPTER_FILE, merged, base_fingerprint)
        manifest = {
            "format": RUN_FORMAT,
            "format_version": 1,
            "mode": "merge",
            "merge": {
                "method": config.method,
                "weights": list(weights),
                "seed": config.seed if config.method == "select" else None,
                "runs": [{"run": run, "adapter_sha256": sha256_of(adapter_path(run))} for run in config.runs],
            },
            "base_model_fingerprint": base_fingerprint,
            "adapter_layers": list(adapter_layers_of(merged)),
            "outputs": {"adapter": ADAPTER_FILE},
            "versions": versions(),
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest
