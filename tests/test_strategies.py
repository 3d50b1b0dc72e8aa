"""Emulator strategies on known similarity and importance inputs: the authors' variants of CRaSh, importance,
the greedy search, explicit kept layers, and strategy specs as users write them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from similarity_support import block_similarity

from offsite import OffsiteError
from offsite.emulator import build_emulator, build_layer_map
from offsite.emulator.strategies import AdapterSpec, SimilaritySource, StrategyInputs, StrategySpec, plan_layer_map
from offsite.models.tiny import tiny_model
from offsite.similarity.importance import LayerImportance
from offsite.similarity.language_loss import mean_token_nll, token_batches

OPT_ADAPTER = (0, 5, 18, 23)
OPT_KEPT = "1,2,3,9,12,15,20,22"


def plain(layer_map) -> str:
    return layer_map.describe().replace("*", "")


def test_the_authors_opt_1_3b_map_with_repeat_all():
    layer_map, details = build_layer_map(f"crash:fill=repeat-all:tie=higher:kept={OPT_KEPT}", 24, OPT_ADAPTER, None)
    assert plain(layer_map) == "0 1 2 3 5c 5 5c 9 9 9 9 12 12 12 15 15 15 18c 18 20 20 22 22 23"
    assert layer_map.copies == (4, 6, 17) and layer_map.copied_layers == (5, 18)
    assert layer_map.adapter_positions == (0, 5, 18, 23)  # the trainable blocks, never their copies
    assert layer_map.first_copy_positions == {5: 4, 18: 17}
    assert details["keep"] == 8 and "cka" not in details  # explicit kept layers: nothing measured


def test_repeat_non_trainable_avoids_adapters_and_ties_go_as_asked():
    higher, _ = build_layer_map(f"crash:tie=higher:kept={OPT_KEPT}", 24, OPT_ADAPTER, 8)
    lower, _ = build_layer_map(f"crash:kept={OPT_KEPT}", 24, OPT_ADAPTER, 8)
    assert plain(higher) == "0 1 2 3 3 5 9 9 9 9 9 12 12 12 15 15 15 15 18 20 20 22 22 23"
    assert plain(lower) == "0 1 2 3 3 5 3 9 9 9 9 12 12 12 15 15 15 15 18 20 20 20 22 23"
    assert not higher.copies and not lower.copies


def test_cluster_over_all_layers_counts_adapters_among_them():
    # Runs 0-3 | 4-9 | 10-15 | 16-19 of 20 layers; adapter 0 and 19 sit in the first and last run.
    similarity = block_similarity([4, 10, 16], 20)
    layer_map, details = build_layer_map("crash:cluster=all", 20, (0, 19), 2, similarity)
    assert details["clustering"]["clusters"] == [list(range(0, 4)), list(range(4, 10)), list(range(10, 16)),
                                                 list(range(16, 20))]
    assert details["kept_layers"] == [7, 13]  # the middles of the two runs without an adapter layer
    # Ours, over the non-adapter layers only, makes keep=2 runs of layers 1-18 (equal boundaries merge leftmost first).
    _, ours = build_layer_map("crash", 20, (0, 19), 2, similarity)
    assert ours["clustering"]["clusters"] == [list(range(1, 16)), [16, 17, 18]]


def test_fill_from_own_cluster_only_and_with_adapter_copies():
    similarity = block_similarity([4, 10, 16], 20)
    layer_map, _ = build_layer_map("crash:cluster=all:fill=cluster:tie=higher", 20, (0, 19), 2, similarity)
    # Runs 0-3 and 16-19 are filled from their adapter block (frozen copies), the others from their middle.
    assert plain(layer_map) == "0 0c 0c 0c 7 7 7 7 7 7 13 13 13 13 13 13 19c 19c 19c 19"
    noshare, _ = build_layer_map("crash-noshare:cluster=all", 20, (0, 19), 2, similarity)
    assert plain(noshare) == "0 · · · · · · 7 · · · · · 13 · · · · · 19"


def test_uniform_with_explicit_kept_layers_is_the_papers_baseline():
    paper, _ = build_layer_map("uniform:kept=2,5,7,10,13,16,18,21", 24, (0, 1, 22, 23), None)
    stride, _ = build_layer_map("uniform", 24, (0, 1, 22, 23), 8)
    assert paper == stride and paper.kept_layers == (0, 1, 2, 5, 7, 10, 13, 16, 18, 21, 22, 23)


def importance(influence: list[float], angular: list[float], drop_one: list[float]) -> LayerImportance:
    return LayerImportance(*(np.asarray(v, dtype=np.float64) for v in (influence, angular, drop_one)), 10.0, 4, 40)


# Each metric ranks the middle blocks (1..6) differently, so a strategy reading the wrong one keeps other blocks.
SCORES = importance(influence=[0, 1, 9, 8, 2, 7, 3, 0], angular=[0, 6, 1, 2, 9, 3, 8, 0],
                    drop_one=[9, 50, 7, 30, 30, 2, 30, 8])


@pytest.mark.parametrize("metric, kept, text", [
    ("drop-one", [1, 3, 4], "0 1 · 3 4 · · 7"),  # 50, then two of the three 30s: the lower ones
    ("influence", [2, 3, 5], "0 · 2 3 · 5 · 7"),
    ("angular", [1, 4, 6], "0 1 · · 4 · 6 7"),
])
def test_importance_keeps_the_highest_scores_of_its_metric_ties_to_the_lower_layer(metric, kept, text):
    result = plan_layer_map(f"importance:metric={metric}", StrategyInputs(importance=SCORES), 8, (0, 7), 3)
    assert result.details["kept_layers"] == kept
    assert plain(result.layer_map) == text
    assert result.details["importance"]["drop_one_perplexity"] == [9, 50, 7, 30, 30, 2, 30, 8]


def test_crash_search_is_greedy_on_the_calibration_loss(tokenizer, tmp_path):
    model = tiny_model("llama", num_layers=8)
    texts = [f"Sample {i}: the quick brown fox jumps over the lazy dog." for i in range(6)]
    (tmp_path / "calibration.txt").write_text("\n".join(texts))
    source = SimilaritySource(text_file=str(tmp_path / "calibration.txt"), loss_limit=6, batch_size=4)
    inputs = StrategyInputs(model, tokenizer, source, similarity=block_similarity([4], 8), progress=False)
    result = plan_layer_map("crash-search", inputs, 8, (0, 7), 2)
    search = result.details["search"]
    assert [c["cluster"] for c in search["choices"]] == [[1, 2, 3], [4, 5, 6]]
    assert search["evaluations"] == 1 + 5 + 5
    assert search["forward_passes"] == search["evaluations"] * 2  # 6 samples in batches of 4
    assert search["calibration_loss"] <= search["calibration_loss_start"]
    # The recorded loss is the loss of the emulator the map describes, built independently.
    emulator = build_emulator(copy.deepcopy(model), result.layer_map)
    batches = token_batches(tokenizer, texts, batch_size=1)
    assert mean_token_nll(emulator, batches) == pytest.approx(search["calibration_loss"], rel=1e-5)
    for choice in search["choices"]:
        kept, cluster = choice["kept"], choice["cluster"]
        expected = [kept if choice["shared"] or p == kept else None for p in cluster]
        assert [result.layer_map.sources[p] for p in cluster] == expected


def test_strategies_that_need_a_model_say_so():
    with pytest.raises(OffsiteError, match="needs layer importance"):
        build_layer_map("importance", 8, (0, 7), 2)
    with pytest.raises(OffsiteError, match="needs a layer-similarity matrix"):
        build_layer_map("crash-search", 8, (0, 7), 2)


def test_spec_from_a_string_and_from_a_mapping_agree():
    text = StrategySpec.parse("crash:fill=repeat-all:tie=higher:kept=1,2,3:adapter_layers=0,5,18,23")
    mapping = StrategySpec.from_config({"name": "crash", "fill": "repeat-all", "tie": "higher", "kept": [1, 2, 3],
                                        "adapter_layers": [0, 5, 18, 23]})
    assert text == mapping
    assert text.adapter == AdapterSpec(layers=(0, 5, 18, 23)) and text.settings().kept == (1, 2, 3)
    assert text.text == "crash:fill=repeat-all:tie=higher:kept=1,2,3:adapter_layers=0,5,18,23"
    assert StrategySpec.from_config(text.to_config()) == text
    assert StrategySpec.parse("uniform").to_config() == "uniform"
    labelled = StrategySpec.from_config({"name": "uniform", "label": "uniform (paper)", "adapter": [1, 1]})
    assert labelled.title == "uniform (paper)" and labelled.slug == "uniform_paper"
    assert labelled.adapter.resolve(6) == (0, 5)


@pytest.mark.parametrize(
    "value, message",
    [
        ("crash:fill=cluster:kept=1,2", "takes no explicit kept layers"),
        ("importance:metric=loud", "metric=loud is not one of: drop-one, influence, angular"),
        ("uniform:kept=a,b", "option kept takes comma-separated layer indices"),
        ({"fill": "none"}, "a mapping with 'name'"),
        ({"name": "uniform", "adapter": [1, 1], "adapter_layers": [0]}, "not both"),
    ],
)
def test_bad_specs_are_one_clear_error(value, message):
    with pytest.raises(OffsiteError, match=message):
        StrategySpec.from_config(value)
