"""Model loading and the per-architecture layout, on tiny random models of every architecture and the real model."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from offsite import OffsiteError
from offsite.models import (
    check_layer_index,
    final_norm,
    get_blocks,
    head_logits,
    lm_head,
    load_model,
    model_summary,
    num_layers,
    set_blocks,
)
from offsite.models.block_swap import swapped_blocks
from offsite.models.fingerprint import fingerprint
from offsite.models.tiny import tiny_model

TEXT = "The quick brown fox jumps over the lazy dog near the river bank at dawn."


def test_layout_reaches_blocks_norm_and_head(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=5)
    ids = tokenizer([TEXT], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        # The last hidden state is the final norm's output; the head (and any soft-capping) gives the logits.
        by_hand = head_logits(model, out.hidden_states[-1])
    assert num_layers(model) == 5 == len(out.hidden_states) - 1
    assert torch.allclose(by_hand, out.logits, atol=1e-5)
    assert isinstance(final_norm(model), torch.nn.Module)
    assert lm_head(model).weight.shape == (model.config.vocab_size, model.config.hidden_size)


def test_set_blocks_runs_the_chosen_blocks_with_cache(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=6)
    ids = tokenizer([TEXT], return_tensors="pt")["input_ids"]
    blocks = list(get_blocks(model))
    set_blocks(model, [blocks[0], blocks[3], blocks[5]], [0, 3, 5])
    assert num_layers(model) == 3 and model.config.num_hidden_layers == 3
    assert get_blocks(model)[1] is blocks[3]
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=6, do_sample=False)
        uncached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_set_blocks_slices_gemma3_layer_types():
    model = tiny_model("gemma3_text", num_layers=6)
    types = list(model.config.layer_types)
    blocks = list(get_blocks(model))
    set_blocks(model, [blocks[1], blocks[2], blocks[4]], [1, 2, 4])
    assert model.config.layer_types == [types[1], types[2], types[4]]


def block_signature(block: torch.nn.Module) -> list:
    """What a block is built as: its tensors' names and shapes, and each submodule's per-layer settings."""
    settings = [
        (name, getattr(module, "sliding_window", None), getattr(module, "layer_type", None))
        for name, module in block.named_modules()
    ]
    return [sorted((name, tuple(t.shape)) for name, t in block.state_dict().items()), settings]


def test_config_after_set_blocks_builds_the_moved_blocks(architecture):
    # A model built from the rewritten config (what from_pretrained does with an exported emulator) has, at
    # every position, a block of the same kind as the one moved there: sliding or global, sparse or dense.
    model = tiny_model(architecture, num_layers=6)
    blocks = list(get_blocks(model))
    sources = [5, 0, 3, 3, 2]
    set_blocks(model, [copy.deepcopy(blocks[s]) for s in sources], sources)
    rebuilt = get_blocks(AutoModelForCausalLM.from_config(model.config))
    assert len(rebuilt) == 5
    for position, source in enumerate(sources):
        assert block_signature(rebuilt[position]) == block_signature(blocks[source]), (position, source)


def test_qwen_moe_blocks_stay_sparse_or_dense():
    model = tiny_model("qwen2_moe", num_layers=6)
    kinds = [type(block.mlp).__name__ for block in get_blocks(model)]
    assert kinds[1] != kinds[0] and kinds[1::2] == [kinds[1]] * 3  # every second block has experts
    blocks = list(get_blocks(model))
    set_blocks(model, [blocks[1], blocks[2], blocks[5], blocks[4]], [1, 2, 5, 4])
    assert model.config.mlp_only_layers == [1, 3] and model.config.decoder_sparse_step == 1
    rebuilt = AutoModelForCausalLM.from_config(model.config)
    assert [type(block.mlp).__name__ for block in get_blocks(rebuilt)] == [kinds[1], kinds[2], kinds[5], kinds[4]]


def test_swapped_blocks_puts_back_the_whole_config_and_the_outputs(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=6)
    inputs = tokenizer(TEXT, return_tensors="pt")
    before_config, before_logits = model.config.to_dict(), model(**inputs).logits
    blocks = list(get_blocks(model))
    with swapped_blocks(model, [copy.deepcopy(blocks[s]) for s in (5, 1, 2)], [5, 1, 2]):
        assert num_layers(model) == 3 and model.config.to_dict() != before_config
    assert model.config.to_dict() == before_config  # Qwen-MoE's mlp_only_layers and sparse step included
    assert list(get_blocks(model)) == blocks
    assert all(m.layer_idx == i for i, block in enumerate(blocks) for m in block.modules() if hasattr(m, "layer_idx"))
    assert torch.equal(model(**inputs).logits, before_logits)


def test_head_logits_apply_the_final_soft_capping(tokenizer):
    model = tiny_model("gemma2", num_layers=2)
    model.config.final_logit_softcapping = 0.05  # small enough that capping changes every logit
    ids = tokenizer([TEXT], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        uncapped = lm_head(model)(out.hidden_states[-1])
    assert out.logits.abs().max() < 0.05 < uncapped.abs().max()
    torch.testing.assert_close(head_logits(model, out.hidden_states[-1]), out.logits)


def test_set_blocks_refuses_the_same_module_twice():
    model = tiny_model("llama", num_layers=4)
    block = get_blocks(model)[0]
    before = model.config.to_dict()
    with pytest.raises(ValueError, match="own module object"):
        set_blocks(model, [block, block], [0, 0])
    assert model.config.to_dict() == before and num_layers(model) == 4  # refused before anything changed


def test_bad_layer_index_is_a_clear_error():
    model = tiny_model("gpt2", num_layers=4)
    assert check_layer_index(model, 3) == 3
    with pytest.raises(OffsiteError, match="layers 0..3"):
        check_layer_index(model, 4)


def test_fingerprint_tells_models_apart():
    assert fingerprint(tiny_model("llama", seed=0)) == fingerprint(tiny_model("llama", seed=0))
    assert fingerprint(tiny_model("llama", seed=0)) != fingerprint(tiny_model("llama", seed=1))


@pytest.mark.parametrize("name, message", [
    ("no-such-model", r"unknown model 'no-such-model': not an alias \(smollm2-135m, gemma3-270m\), not a local path"),
    ("/nonexistent/model/dir", r"model path not found: /nonexistent/model/dir"),
    ("./missing.gguf", r"GGUF file not found: missing.gguf"),
])
def test_unknown_model_is_a_clear_error(name, message):
    with pytest.raises(OffsiteError, match=message):
        load_model(name)


def _perplexity(model, ids: torch.Tensor) -> float:
    with torch.no_grad():
        return math.exp(model(ids, labels=ids).loss.item())


@pytest.mark.real
def test_embedded_model_has_real_weights(smollm2):
    model, tokenizer = smollm2
    summary = model_summary(model)
    assert summary["num_layers"] == 30 and summary["hidden_size"] == 576
    assert 130e6 < summary["num_parameters"] < 140e6
    paragraph = (
        "The city council met on Tuesday evening to discuss the new budget. Several residents spoke about "
        "the need for better roads and more frequent buses, while others asked the council to protect the "
        "parks along the river. After a long debate, the members agreed to vote on the plan next month."
    )
    ids = tokenizer(paragraph, return_tensors="pt")["input_ids"]
    shuffled = ids[:, torch.tensor(random.Random(0).sample(range(ids.shape[1]), ids.shape[1]))]
    ordered, scrambled = _perplexity(model, ids), _perplexity(model, shuffled)
    assert ordered < 30 and scrambled > 10 * ordered
