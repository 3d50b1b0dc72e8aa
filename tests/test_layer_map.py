"""Layer maps of the emulator strategies: the stride rule, clustering + sharing, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from similarity_support import block_similarity

from offsite import OffsiteError
from offsite.emulator import adapter_from_pads, build_layer_map, validate_adapter_layers
from offsite.emulator.layer_map import LayerMap
from offsite.emulator.strategies.fill import nearest


# Worked by hand: middle blocks 2..L-3, stride (n-1)/(k-1), index i*stride rounded (24, 8: the paper's list).
@pytest.mark.parametrize("num_layers, keep, expected", [
    (24, 8, [2, 5, 7, 10, 13, 16, 18, 21]),
    (30, 6, [2, 7, 12, 17, 22, 27]),
    (12, 3, [2, 6, 9]),  # stride 3.5
    (32, 10, [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]),
    (10, 1, [2]),
    (8, 4, [2, 3, 4, 5]),
])
def test_uniform_follows_the_offsite_tuning_stride_rule(num_layers, keep, expected):
    adapter = adapter_from_pads(2, 2, num_layers)
    layer_map, details = build_layer_map("uniform", num_layers, adapter, keep)
    assert "clustering" not in details and details["kept_layers"] == expected
    assert [s for s in layer_map.sources if s is not None] == [0, 1, *expected, num_layers - 2, num_layers - 1]
    assert all(s in (p, None) for p, s in enumerate(layer_map.sources))


def test_crash_keeps_cluster_middles_and_shares_them_to_nearest_positions():
    similarity = block_similarity([2, 6, 11], 14)  # blocks 0-1 | 2-5 | 6-10 | 11-13; adapter 0 and 13
    layer_map, details = build_layer_map("crash", 14, (0, 13), 4, similarity)
    assert details["clustering"]["clusters"] == [[1], [2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert details["clustering"]["representatives"] == [1, 4, 8, 12]
    # Every position is filled (full depth); a removed one takes the nearest kept layer, ties (6, 10) the lower.
    assert layer_map.sources == (0, 1, 1, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 13)
    assert layer_map.emulator_sources.count(8) == 4 and layer_map.kept_layers == (0, 1, 4, 8, 12, 13)


def test_equal_boundaries_merge_leftmost_first():
    similarity = block_similarity([2, 6, 11], 14)
    _, details = build_layer_map("crash", 14, (0, 13), 3, similarity)
    assert details["clustering"]["clusters"] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]


def test_crash_noshare_leaves_removed_positions_empty():
    similarity = block_similarity([2, 6, 11], 14)
    layer_map, _ = build_layer_map("crash-noshare", 14, (0, 13), 4, similarity)
    assert layer_map.sources == (0, 1, None, None, 4, None, None, None, 8, None, None, None, 12, 13)


def test_nearest_breaks_ties_as_asked():
    assert nearest(5, [3, 7], "lower") == 3 and nearest(5, [3, 7], "higher") == 7
    assert nearest(6, [3, 7], "lower") == 7 and nearest(6, [3, 7], "higher") == 7


def test_explicit_adapter_layers_are_never_removed_or_shared():
    similarity = block_similarity([4, 12, 20], 24)
    layer_map, details = build_layer_map("crash", 24, (0, 5, 18, 23), 8, similarity)
    for layer in (0, 5, 18, 23):
        assert layer_map.sources[layer] == layer
        assert layer_map.emulator_sources.count(layer) == 1
    # Clusters never bridge an adapter layer.
    assert not any(min(c) < 5 < max(c) or min(c) < 18 < max(c) for c in details["clustering"]["clusters"])
    assert layer_map.adapter_positions == tuple(layer_map.emulator_sources.index(a) for a in (0, 5, 18, 23))


def test_layer_map_json_round_trip_and_description():
    layer_map, _ = build_layer_map("uniform", 8, (0, 7), 2)
    assert LayerMap.from_json(layer_map.to_json()) == layer_map
    assert layer_map.describe() == "0* 1 · · · · 6 7*"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: build_layer_map("random", 8, (0, 7), 2), "unknown strategy 'random'"),
        (lambda: build_layer_map("uniform", 8, (0, 7), 7), "--keep 7 is not possible"),
        (lambda: build_layer_map("uniform", 8, (0, 7), 0), "--keep 0 is not possible"),
        (lambda: build_layer_map("crash", 8, (0, 7), 2), "needs a layer-similarity matrix"),
        (lambda: build_layer_map("uniform:kept=1,2", 8, (0, 7), 3), "--keep 3 disagrees with the 2 explicit"),
        (lambda: build_layer_map("uniform:kept=0,2", 8, (0, 7), None), "kept layer 0 is not a non-adapter layer"),
        (lambda: build_layer_map("crash:fill=sideways", 8, (0, 7), 2), "fill=sideways is not one of"),
        (lambda: build_layer_map("crash:colour=red", 8, (0, 7), 2), "strategy crash has no option 'colour'"),
        (lambda: build_layer_map("uniform", 8, (0, 7), None), "say how many blocks to keep"),
        (lambda: build_layer_map("crash", 8, (0, 7), 2, np.eye(6)), "expected 8x8"),
        (lambda: validate_adapter_layers([0, 8], 8), "adapter layer 8 is out of range"),
        (lambda: validate_adapter_layers([0, 1, 1], 8), "overlap"),
        (lambda: adapter_from_pads(4, 4, 8), "leaves no layer"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(OffsiteError, match=message):
        call()
