"""Emulators in memory and on disk, on a tiny random model of every architecture."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offsite import OffsiteError
from offsite.emulator import build_emulator, export_bundle, load_bundle, save_adapter, save_bundle
from offsite.emulator.adapter import block_state
from offsite.emulator.create import EmulatorConfig, create_bundle
from offsite.emulator.layer_map import LayerMap
from offsite.emulator.strategies import AdapterSpec, SimilaritySource
from offsite.models import get_blocks, layout_of, per_layer_config
from offsite.models.tiny import tiny_model

TEXT = "Offsite tuning keeps the model and the data apart, which is the whole point of it."
# Position <- source: adapter 0 and 5; block 2 shared into positions 1-3; block 4 removed.
LAYER_MAP = LayerMap((0, 2, 2, 2, None, 5), (0, 5))
# Adapter 0 and 5, each also filling a neighbour as a frozen, untied copy of its pretrained weights.
COPY_MAP = LayerMap((0, 0, 2, 5, None, 5), (0, 5), copies=(1, 3))


def by_hand(base, layer_map: LayerMap):
    """A fresh transformers model whose block at each position is an untied copy of the mapped original block."""
    config = copy.deepcopy(base.config)
    sources = layer_map.emulator_sources
    config.num_hidden_layers = len(sources)
    for key, value in per_layer_config(base.config, sources).items():
        setattr(config, key, value)
    model = AutoModelForCausalLM.from_config(config)
    prefix = layout_of(base).blocks + "."
    state = {k: v for k, v in base.state_dict().items() if not k.startswith(prefix)}
    originals = get_blocks(base)
    for position, source in enumerate(sources):
        state.update({f"{prefix}{position}.{k}": v for k, v in originals[source].state_dict().items()})
    model.load_state_dict(state)
    return model.eval()


def logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(tokenizer([TEXT], return_tensors="pt")["input_ids"]).logits


def test_emulator_equals_the_mapped_blocks_composed_by_hand(architecture, tokenizer):
    base = tiny_model(architecture, num_layers=6)
    expected = logits(by_hand(base, LAYER_MAP), tokenizer)
    emulator = build_emulator(base, LAYER_MAP)
    assert torch.allclose(logits(emulator, tokenizer), expected, atol=1e-5)


def test_shared_positions_share_storage_but_not_layer_idx():
    emulator = build_emulator(tiny_model("llama", num_layers=6), LAYER_MAP)
    blocks = get_blocks(emulator)
    for a, b in zip(blocks[1].parameters(), blocks[3].parameters()):
        assert a.data_ptr() == b.data_ptr()
    assert [blocks[p].self_attn.layer_idx for p in range(5)] == [0, 1, 2, 3, 4]
    distinct = {p.data_ptr() for p in emulator.parameters()}
    assert len(distinct) == len(list(emulator.parameters()))


def test_generation_with_cache_on_shared_layers(architecture, tokenizer):
    emulator = build_emulator(tiny_model(architecture, num_layers=6), LAYER_MAP)
    ids = tokenizer([TEXT], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        cached = emulator.generate(ids, max_new_tokens=8, do_sample=False)
        uncached = emulator.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and cached.shape[1] == ids.shape[1] + 8


def tensor_layers(path) -> set[int]:
    with safe_open(str(path), framework="pt") as handle:
        return {int(k.split(".")[1]) for k in handle.keys() if k.startswith("layers.")}


def test_bundle_round_trip_and_export(architecture, tokenizer, tmp_path):
    base = tiny_model(architecture, num_layers=6)
    full = sum(p.numel() for p in base.parameters())
    dropped = sum(p.numel() for i in (1, 3, 4) for p in get_blocks(base)[i].parameters())
    manifest = save_bundle(base, tokenizer, LAYER_MAP, tmp_path / "bundle", {"strategy": "test"})
    expected = logits(build_emulator(base, LAYER_MAP), tokenizer)
    # Removed block 4 is nowhere; the frozen block 2 is stored once; the adapter holds exactly 0 and 5.
    assert tensor_layers(tmp_path / "bundle" / "emulator.safetensors") == {2}
    assert tensor_layers(tmp_path / "bundle" / "adapter.safetensors") == {0, 5}
    assert manifest["layer_map"]["sources"] == [0, 2, 2, 2, None, 5]
    # The size a model owner reads: the full model less blocks 1, 3 and 4, block 2 counted once.
    assert manifest["base_model"]["num_parameters"] == full and manifest["bundle_parameters"] == full - dropped
    bundle = load_bundle(tmp_path / "bundle")
    assert manifest["bundle_parameters"] == sum(p.numel() for p in bundle.model.parameters())
    assert torch.allclose(logits(bundle.model, tokenizer), expected, atol=1e-6)
    export_bundle(tmp_path / "bundle", tmp_path / "plain")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "plain").eval()
    assert plain.config.num_hidden_layers == 5
    assert torch.allclose(logits(plain, tokenizer), expected, atol=1e-6)


def test_loading_a_bad_bundle_is_a_clear_error(tmp_path, tokenizer):
    with pytest.raises(OffsiteError, match="not a directory"):
        load_bundle(tmp_path / "missing")
    save_bundle(tiny_model("gpt2", num_layers=6), tokenizer, LAYER_MAP, tmp_path / "b", {"strategy": "test"})
    (tmp_path / "b" / "emulator.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(OffsiteError, match="corrupt"):
        load_bundle(tmp_path / "b")
    (tmp_path / "b" / "manifest.json").write_text("{")
    with pytest.raises(OffsiteError, match="not valid JSON"):
        load_bundle(tmp_path / "b")


def test_frozen_copies_are_untied_and_keep_their_pretrained_weights(tokenizer, tmp_path):
    base = tiny_model("llama", num_layers=6)
    expected = logits(by_hand(base, COPY_MAP), tokenizer)
    manifest = save_bundle(base, tokenizer, COPY_MAP, tmp_path / "bundle", {"strategy": "test"})
    assert manifest["layer_map"]["copies"] == [1, 3] and manifest["layer_map_text"] == "0* 0c 2 5c · 5*"
    emulator = build_emulator(copy.deepcopy(base), COPY_MAP)
    blocks = get_blocks(emulator)
    assert torch.allclose(logits(emulator, tokenizer), expected, atol=1e-5)
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(blocks[0].parameters(), blocks[1].parameters()))
    with safe_open(str(tmp_path / "bundle" / "emulator.safetensors"), framework="pt") as handle:
        assert {int(k.split(".")[1]) for k in handle.keys() if k.startswith("copies.")} == {0, 5}
    # A fine-tuned adapter replaces the trainable blocks only; the frozen copies keep the pretrained weights.
    tuned = {k: v + 0.5 for k, v in block_state(base, (0, 5), (0, 5)).items()}
    save_adapter(tmp_path / "tuned.safetensors", tuned, manifest["base_model"]["fingerprint"])
    loaded = get_blocks(load_bundle(tmp_path / "bundle", adapter=tmp_path / "tuned.safetensors").model)
    original = get_blocks(base)
    for position, layer, frozen in ((0, 0, False), (1, 0, True), (3, 5, True), (4, 5, False)):
        for (name, value), pretrained in zip(loaded[position].state_dict().items(), original[layer].state_dict().values()):
            assert torch.equal(value, pretrained if frozen else tuned[f"layers.{layer}.{name}"])


@pytest.mark.parametrize(
    "strategy",
    ["uniform", "crash", "crash-noshare", "crash:fill=repeat-all:tie=higher:kept=3,5",
     "crash:cluster=all:fill=cluster", "importance", "importance:metric=influence", "crash-search"],
)
def test_a_bundle_from_each_strategy_round_trips(strategy, tokenizer, tmp_path):
    base = tiny_model("llama", num_layers=8)
    (tmp_path / "calibration.txt").write_text("\n".join(f"Calibration line {i}: {TEXT}" for i in range(8)))
    source = SimilaritySource(text_file=str(tmp_path / "calibration.txt"), limit=8, loss_limit=4, batch_size=4)
    config = EmulatorConfig(strategy, keep=None if "kept" in strategy else 2, adapter=AdapterSpec((1, 1)),
                            similarity=source)
    layer_map, manifest = create_bundle(base, tokenizer, config, tmp_path / "bundle", "tiny")
    if "kept=3,5" in strategy:
        assert layer_map.describe() == "0* 0c 3 3 5 5 7c 7*"
    expected = logits(build_emulator(copy.deepcopy(base), layer_map), tokenizer)
    assert torch.allclose(logits(load_bundle(tmp_path / "bundle").model, tokenizer), expected, atol=1e-6)
    export_bundle(tmp_path / "bundle", tmp_path / "plain")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "plain").eval()
    assert plain.config.num_hidden_layers == len(layer_map.emulator_sources) == manifest["emulator_depth"]
    assert torch.allclose(logits(plain, tokenizer), expected, atol=1e-6)
