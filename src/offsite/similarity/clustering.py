"""Adjacent agglomerative clustering of layers by representation similarity (CRaSh's "Clustering").

Start with one cluster per layer; repeatedly merge the adjacent pair of clusters whose boundary layers
(the last layer of the left cluster, the first of the right) are most similar, until ``num_clusters`` remain.
Only consecutive layer indices are adjacent, so a gap in ``layers`` (an adapter layer, say) is never bridged.
Ties between equally similar boundaries go to the leftmost one. The representative of a cluster is its
middle member ``c[len(c) // 2]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..errors import OffsiteError


@dataclass(frozen=True)
class Merge:
    """One step of the merge history: the two clusters joined and the similarity of their boundary layers."""

    left: tuple[int, ...]
    right: tuple[int, ...]
    similarity: float


@dataclass(frozen=True)
class Clustering:
    clusters: tuple[tuple[int, ...], ...]
    merges: tuple[Merge, ...]

    @property
    def representatives(self) -> tuple[int, ...]:
        return tuple(c[len(c) // 2] for c in self.clusters)

    def to_json(self) -> dict:
        return {
            "clusters": [list(c) for c in self.clusters],
            "representatives": list(self.representatives),
            "merges": [{**asdict(m), "left": list(m.left), "right": list(m.right)} for m in self.merges],
        }


def cluster_adjacent(similarity: np.ndarray, num_clusters: int, layers: Sequence[int] | None = None) -> Clustering:
    """Cluster ``layers`` (default: all) into ``num_clusters`` runs of adjacent layers.

    ``similarity`` is the L×L layer-similarity matrix (e.g. linear CKA) indexed by original layer number.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise OffsiteError(f"similarity must be a square matrix, got shape {similarity.shape}")
    layers = sorted(range(similarity.shape[0]) if layers is None else set(layers))
    if not layers:
        raise OffsiteError("no layers to cluster")
    if layers[0] < 0 or layers[-1] >= similarity.shape[0]:
        raise OffsiteError(f"layer indices must lie in 0..{similarity.shape[0] - 1}")
    segments = 1 + sum(1 for a, b in zip(layers, layers[1:]) if b != a + 1)
    if not segments <= num_clusters <= len(layers):
        raise OffsiteError(
            f"cannot form {num_clusters} clusters from {len(layers)} layers in {segments} separate run(s); "
            f"choose between {segments} and {len(layers)}"
        )
    clusters = [[layer] for layer in layers]
    merges = []
    while len(clusters) > num_clusters:
        best, best_similarity = None, -np.inf
        for i in range(len(clusters) - 1):
            last, first = clusters[i][-1], clusters[i + 1][0]
            if first == last + 1 and similarity[last, first] > best_similarity:
                best, best_similarity = i, float(similarity[last, first])
        left, right = clusters[best], clusters[best + 1]
        merges.append(Merge(tuple(left), tuple(right), best_similarity))
        clusters[best : best + 2] = [left + right]
    return Clustering(tuple(tuple(c) for c in clusters), tuple(merges))
