"""``crash`` (CRaSh): cluster layers by similarity, keep one representative per cluster, share them.

Options (defaults first; the authors' choices in brackets):

- ``cluster``: ``non-adapter`` clusters the non-adapter layers into ``keep`` runs (never across an adapter
  layer); ``all`` [authors] clusters every layer, adapter layers counted among them, into the fewest runs
  that leave ``keep`` runs without an adapter layer (each such run keeps its middle member; a run holding an
  adapter layer is represented by it).
- ``fill``: how removed positions are filled (see :mod:`.fill`): ``repeat-non-trainable`` (default),
  ``repeat-all`` [authors], ``cluster`` (only from the position's own cluster), ``none`` (= ``crash-noshare``).
- ``tie``: ``lower`` or ``higher`` [authors], between two equally near blocks.
- ``kept``: explicit kept layers instead of the representatives (the authors picked theirs among the
  representatives by hand); no similarity is measured then unless ``fill=cluster`` needs the clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import OffsiteError
from ...similarity import Clustering, cluster_adjacent
from .base import Request, Strategy, StrategyResult, choice_option, layers_option, register
from .fill import FILLS, TIES, fill_layer_map
from .inputs import StrategyInputs

CLUSTER_OVER = ("non-adapter", "all")


@dataclass(frozen=True)
class CrashOptions:
    cluster: str = "non-adapter"
    fill: str = "repeat-non-trainable"
    tie: str = "lower"
    kept: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        choice_option("cluster", self.cluster, CLUSTER_OVER)
        choice_option("fill", self.fill, FILLS)
        choice_option("tie", self.tie, TIES)
        object.__setattr__(self, "kept", layers_option("kept", self.kept))
        if self.kept is not None and self.fill == "cluster":
            raise OffsiteError("fill=cluster fills from the cluster representatives; it takes no explicit kept layers")


def _adapter_free(clustering: Clustering, adapter: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [c for c in clustering.clusters if not set(c) & set(adapter)]


def cluster_layers(similarity: np.ndarray, request: Request, over: str) -> tuple[Clustering, tuple[int, ...]]:
    """The clustering and the kept representatives (one per adapter-free cluster, ``request.keep`` of them)."""
    if np.shape(similarity) != (request.num_layers, request.num_layers):
        raise OffsiteError(
            f"similarity matrix is {np.shape(similarity)}, expected {request.num_layers}x{request.num_layers}"
        )
    if over == "non-adapter":
        clustering = cluster_adjacent(similarity, request.keep, request.candidates)
        return clustering, clustering.representatives
    # One more cluster splits one cluster in two (the merges are nested), adding at most one adapter-free
    # cluster; with every layer on its own there are enough, so some count has exactly keep of them.
    clusterings = (cluster_adjacent(similarity, count) for count in range(request.keep, request.num_layers + 1))
    clustering = next(c for c in clusterings if len(_adapter_free(c, request.adapter)) == request.keep)
    return clustering, tuple(c[len(c) // 2] for c in _adapter_free(clustering, request.adapter))


def build(inputs: StrategyInputs, request: Request, options: CrashOptions) -> StrategyResult:
    details: dict = {}
    clusters: tuple[tuple[int, ...], ...] = ()
    kept = options.kept
    if kept is None:
        clustering, kept = cluster_layers(inputs.similarity(), request, options.cluster)
        clusters = clustering.clusters
        details["clustering"] = clustering.to_json()
    layer_map = fill_layer_map(request, kept, options.fill, options.tie, clusters)
    return StrategyResult(layer_map, {**details, "kept_layers": sorted(kept)})


register(Strategy("crash", "CRaSh: cluster similar layers, keep a representative each, share it into the cluster's "
                  "removed positions", CrashOptions, build))
