"""The layer map of an emulator: for each of the base model's L positions, which original block fills it.

Strategies:

- ``uniform`` (Offsite-Tuning): keep ``k`` of the non-adapter layers at stride ``(n-1)/(k-1)``, rounded with
  Python's ``round`` as in the Offsite-Tuning code (``k = 1`` keeps the first); removed positions stay empty.
- ``crash``: cluster the non-adapter layers into ``k`` runs of adjacent similar layers, keep each cluster's
  representative, and fill every removed position with the nearest kept representative (tied weights),
  so the emulator keeps the full depth. Ties between two equally near representatives go to the lower
  (earlier) layer.
- ``crash-noshare``: as ``crash`` but removed positions stay empty (the paper's ablation).

Adapter layers are trainable, always kept at their own positions, and never shared into other positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import OffsiteError
from ..similarity.clustering import Clustering, cluster_adjacent

STRATEGIES = ("uniform", "crash", "crash-noshare")
NEEDS_SIMILARITY = ("crash", "crash-noshare")


@dataclass(frozen=True)
class LayerMap:
    """``sources[p]`` is the original block at position ``p`` (None: removed); ``adapter_layers`` are trainable."""

    sources: tuple[int | None, ...]
    adapter_layers: tuple[int, ...]

    @property
    def num_layers(self) -> int:
        """Depth of the base model."""
        return len(self.sources)

    @property
    def emulator_sources(self) -> tuple[int, ...]:
        """The original block at each position of the emulator, in order (its depth is the length)."""
        return tuple(s for s in self.sources if s is not None)

    @property
    def kept_layers(self) -> tuple[int, ...]:
        """Distinct original blocks the emulator holds, adapter included."""
        return tuple(sorted(set(self.emulator_sources)))

    @property
    def frozen_layers(self) -> tuple[int, ...]:
        """Kept blocks that are not part of the adapter (shipped frozen in the emulator)."""
        return tuple(s for s in self.kept_layers if s not in self.adapter_layers)

    @property
    def adapter_positions(self) -> tuple[int, ...]:
        """Positions in the emulator's block list that hold the adapter layers, in adapter order."""
        positions = {s: i for i, s in enumerate(self.emulator_sources)}
        return tuple(positions[a] for a in self.adapter_layers)

    def describe(self) -> str:
        """One line: each position's source block, ``*`` marking adapter layers and ``·`` removed positions."""
        cells = ["·" if s is None else f"{s}*" if s in self.adapter_layers else str(s) for s in self.sources]
        return " ".join(cells)

    def to_json(self) -> dict:
        return {"sources": list(self.sources), "adapter_layers": list(self.adapter_layers)}

    @classmethod
    def from_json(cls, data: dict) -> "LayerMap":
        layer_map = cls(tuple(data["sources"]), tuple(data["adapter_layers"]))
        validate_adapter_layers(layer_map.adapter_layers, layer_map.num_layers)
        return layer_map


def adapter_from_pads(first: int, last: int, num_layers: int) -> tuple[int, ...]:
    """The first ``first`` and last ``last`` blocks (Offsite-Tuning's default adapter is ``2, 2``)."""
    if first < 0 or last < 0 or first + last == 0:
        raise OffsiteError(f"adapter pads must be non-negative and not both zero, got {first},{last}")
    if first + last >= num_layers:
        raise OffsiteError(f"adapter {first},{last} leaves no layer to emulate in a {num_layers}-layer model")
    return tuple(range(first)) + tuple(range(num_layers - last, num_layers))


def validate_adapter_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Check explicit adapter indices: in range, no repeats, not every layer; returned sorted."""
    for layer in layers:
        if not 0 <= layer < num_layers:
            raise OffsiteError(f"adapter layer {layer} is out of range: this model has layers 0..{num_layers - 1}")
    if len(set(layers)) != len(layers):
        raise OffsiteError(f"adapter layers overlap (an index repeats): {','.join(map(str, layers))}")
    if not layers:
        raise OffsiteError("the adapter needs at least one layer")
    if len(layers) >= num_layers:
        raise OffsiteError("the adapter cannot hold every layer: nothing would be emulated")
    return tuple(sorted(layers))


def uniform_keep(candidates: Sequence[int], keep: int) -> tuple[int, ...]:
    """Offsite-Tuning's stride rule: ``keep`` of ``candidates`` at indices ``round(i * (n-1)/(keep-1))``."""
    if keep == 1:
        return (candidates[0],)
    stride = (len(candidates) - 1) / (keep - 1)
    return tuple(candidates[round(i * stride)] for i in range(keep))


def nearest_kept(position: int, kept: Sequence[int]) -> int:
    """The kept layer nearest to ``position``; on a tie, the lower one."""
    return min(kept, key=lambda layer: (abs(layer - position), layer))


def check_request(
    strategy: str, num_layers: int, adapter_layers: Sequence[int], keep: int
) -> tuple[tuple[int, ...], list[int]]:
    """Validate a request before any costly work; return the sorted adapter and the non-adapter candidates."""
    if strategy not in STRATEGIES:
        raise OffsiteError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    adapter = validate_adapter_layers(list(adapter_layers), num_layers)
    candidates = [layer for layer in range(num_layers) if layer not in adapter]
    if not 1 <= keep <= len(candidates):
        raise OffsiteError(
            f"--keep {keep} is not possible: choose 1..{len(candidates)} (the non-adapter layers of this model)"
        )
    return adapter, candidates


def build_layer_map(
    strategy: str,
    num_layers: int,
    adapter_layers: Sequence[int],
    keep: int,
    similarity: np.ndarray | None = None,
) -> tuple[LayerMap, Clustering | None]:
    """The layer map of ``strategy`` keeping ``keep`` non-adapter blocks, and the clustering it used (if any).

    ``similarity`` (L×L, e.g. linear CKA between block outputs) is required by the CRaSh strategies.
    """
    adapter, candidates = check_request(strategy, num_layers, adapter_layers, keep)
    clustering = None
    if strategy == "uniform":
        kept = uniform_keep(candidates, keep)
    else:
        if similarity is None:
            raise OffsiteError(f"strategy {strategy} needs a layer-similarity matrix")
        if np.shape(similarity) != (num_layers, num_layers):
            raise OffsiteError(f"similarity matrix is {np.shape(similarity)}, expected {num_layers}x{num_layers}")
        clustering = cluster_adjacent(similarity, keep, candidates)
        kept = clustering.representatives
    sources: list[int | None] = []
    for position in range(num_layers):
        if position in adapter or position in kept:
            sources.append(position)
        elif strategy == "crash":
            sources.append(nearest_kept(position, kept))
        else:
            sources.append(None)
    return LayerMap(tuple(sources), adapter), clustering
