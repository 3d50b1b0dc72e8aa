"""Emulators in memory and on disk, on a tiny random model of every architecture."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offsite import OffsiteError
from offsite.emulator import build_emulator, export_bundle, load_bundle, save_bundle
from offsite.emulator.layer_map import LayerMap
from offsite.models import get_blocks, layout_of, per_layer_config
from offsite.models.tiny import tiny_model

TEXT = "Offsite tuning keeps the model and the data apart, which is the whole point of it."
# Position <- source: adapter 0 and 5; block 2 shared into positions 1-3; block 4 removed.
LAYER_MAP = LayerMap((0, 2, 2, 2, None, 5), (0, 5))


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
    manifest = save_bundle(base, tokenizer, LAYER_MAP, tmp_path / "bundle", {"strategy": "test"})
    expected = logits(build_emulator(base, LAYER_MAP), tokenizer)
    # Removed block 4 is nowhere; the frozen block 2 is stored once; the adapter holds exactly 0 and 5.
    assert tensor_layers(tmp_path / "bundle" / "emulator.safetensors") == {2}
    assert tensor_layers(tmp_path / "bundle" / "adapter.safetensors") == {0, 5}
    assert manifest["layer_map"]["sources"] == [0, 2, 2, 2, None, 5]
    bundle = load_bundle(tmp_path / "bundle")
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
