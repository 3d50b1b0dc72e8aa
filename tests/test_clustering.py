"""Adjacent agglomerative clustering of layers (offsite.similarity.clustering)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.similarity.clustering import cluster_adjacent
from offsite.errors import OffsiteError
from offsite.similarity import linear_cka_matrix


def block_matrix(sizes: list[int], inside: float = 0.9, across: float = 0.3, seed: int = 0) -> np.ndarray:
    """A symmetric similarity matrix with high values inside each diagonal block and low values across."""
    n = sum(sizes)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    matrix = np.where(labels[:, None] == labels[None, :], inside, across)
    noise = np.random.default_rng(seed).uniform(-0.05, 0.05, size=(n, n))
    matrix = matrix + (noise + noise.T) / 2
    np.fill_diagonal(matrix, 1.0)
    return matrix


def runs(sizes: list[int]) -> tuple[tuple[int, ...], ...]:
    bounds = np.cumsum([0, *sizes])
    return tuple(tuple(range(a, b)) for a, b in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("sizes", [[4, 5, 3], [1, 6, 2, 7], [10], [3, 3, 3, 3, 3]])
def test_finds_known_blocks(sizes):
    clustering = cluster_adjacent(block_matrix(sizes), len(sizes))
    assert clustering.clusters == runs(sizes)
    assert clustering.representatives == tuple(c[len(c) // 2] for c in runs(sizes))


def test_finds_blocks_from_cka_of_features_with_block_structure():
    # End to end: layers that are noisy copies of one of three latent representations.
    rng = np.random.default_rng(0)
    sizes = [3, 5, 4]
    latents = [rng.normal(size=(60, 16)) for _ in sizes]
    layers = [latent @ rng.normal(size=(16, 16)) + 0.3 * rng.normal(size=(60, 16))
              for latent, size in zip(latents, sizes) for _ in range(size)]
    assert cluster_adjacent(linear_cka_matrix(layers), 3).clusters == runs(sizes)


def test_merge_history_records_each_step():
    sim = block_matrix([2, 3, 2], seed=1)
    clustering = cluster_adjacent(sim, 3)
    assert len(clustering.merges) == 7 - 3
    for merge in clustering.merges:
        assert merge.left[-1] + 1 == merge.right[0]
        assert merge.similarity == sim[merge.left[-1], merge.right[0]]
    # Every merge joins two clusters that existed at that point, ending in the final clusters.
    clusters = [(i,) for i in range(7)]
    for merge in clustering.merges:
        index = clusters.index(merge.left)
        assert clusters[index + 1] == merge.right
        clusters[index : index + 2] = [merge.left + merge.right]
    assert tuple(clusters) == clustering.clusters
    data = clustering.to_json()
    assert data["clusters"] == [list(c) for c in clustering.clusters]
    assert data["representatives"] == list(clustering.representatives)
    assert data["merges"][0] == {"left": list(clustering.merges[0].left), "right": list(clustering.merges[0].right),
                                 "similarity": clustering.merges[0].similarity}


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 14).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n), st.integers(0, 10_000))))
def test_equals_cutting_at_the_least_similar_adjacent_pairs(case):
    # Merging never changes the other boundaries, so K clusters = cuts at the K-1 lowest adjacent similarities.
    n, k, seed = case
    sim = np.random.default_rng(seed).uniform(size=(n, n))
    sim = (sim + sim.T) / 2
    adjacent = np.array([sim[i, i + 1] for i in range(n - 1)])
    cuts = sorted(np.argsort(adjacent, kind="stable")[: k - 1] + 1)
    bounds = [0, *cuts, n]
    clustering = cluster_adjacent(sim, k)
    assert clustering.clusters == tuple(tuple(range(a, b)) for a, b in zip(bounds, bounds[1:]))
    similarities = [m.similarity for m in clustering.merges]
    assert similarities == sorted(similarities, reverse=True)


def test_gap_in_layers_is_never_bridged():
    sim = np.ones((8, 8))  # layers 2 and 5 would be the most similar pair if they were adjacent
    sim[0, 1] = sim[1, 0] = 0.5
    clustering = cluster_adjacent(sim, 2, layers=[0, 1, 2, 5, 6, 7])
    assert clustering.clusters == ((0, 1, 2), (5, 6, 7))


def test_ties_go_to_the_leftmost_pair():
    clustering = cluster_adjacent(np.ones((4, 4)), 3)
    assert clustering.clusters == ((0, 1), (2,), (3,))


@pytest.mark.parametrize(
    ("sim", "k", "layers", "message"),
    [
        (np.eye(4), 5, None, "cannot form 5 clusters from 4 layers"),
        (np.eye(4), 0, None, "cannot form 0 clusters"),
        (np.eye(6), 1, [0, 1, 4, 5], r"2 separate run\(s\)"),
        (np.ones((3, 4)), 2, None, "square matrix"),
        (np.eye(4), 2, [2, 4], "must lie in 0..3"),
        (np.eye(4), 1, [], "no layers"),
    ],
)
def test_bad_requests_are_clear_errors(sim, k, layers, message):
    with pytest.raises(OffsiteError, match=message):
        cluster_adjacent(sim, k, layers)
