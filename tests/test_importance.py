"""Layer importance (block influence, angular distance, drop-one perplexity) against a direct computation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from offsite.models import get_blocks
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.similarity import HiddenStateConfig
from offsite.similarity.importance import LayerImportance, layer_importance

TEXTS = ["The cat sat on the mat.", "A much longer sentence, so that padding matters here!", "Short one.", "Hi there"]


def direct_cosines(model, tokenizer, skip_first: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text, unbatched: each block's input and output by hooks, cosines in numpy, averaged over all tokens."""
    blocks = get_blocks(model)
    influence, angular, count = np.zeros(len(blocks)), np.zeros(len(blocks)), 0
    for text in TEXTS:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        seen = {}
        handles = [b.register_forward_pre_hook(lambda m, a, k, i=i: seen.__setitem__(("in", i), (a or (k["hidden_states"],))[0]),
                                               with_kwargs=True) for i, b in enumerate(blocks)]
        handles += [b.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("out", i), o[0] if isinstance(o, tuple) else o))
                    for i, b in enumerate(blocks)]
        with torch.no_grad():
            model(ids, use_cache=False)
        for handle in handles:
            handle.remove()
        for i in range(len(blocks)):
            x = seen[("in", i)][0, skip_first:].double().numpy()
            y = seen[("out", i)][0, skip_first:].double().numpy()
            cos = np.clip((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1), -1, 1)
            influence[i] += (1 - cos).sum()
            angular[i] += (np.arccos(cos) / math.pi).sum()
        count += ids.shape[1] - skip_first
    return influence / count, angular / count


def direct_perplexity(model, tokenizer) -> float:
    """Each text alone, BOS first, through transformers' own loss."""
    total, count = 0.0, 0
    for text in TEXTS:
        ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            total += float(model(ids, labels=ids, use_cache=False).loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    return math.exp(total / count)


def without_block(model, layer: int):
    smaller = copy.deepcopy(model)
    blocks = get_blocks(smaller)
    del blocks[layer]
    smaller.config.num_hidden_layers -= 1
    return smaller


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_importance_equals_a_direct_computation(architecture):
    model, tokenizer = tiny_model(architecture, num_layers=5), tiny_tokenizer()
    result = layer_importance(model, tokenizer, TEXTS, HiddenStateConfig("mean", skip_first=1, batch_size=3),
                              progress=False)
    influence, angular = direct_cosines(model, tokenizer, skip_first=1)
    np.testing.assert_allclose(result.block_influence, influence, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.angular_distance, angular, rtol=1e-5, atol=1e-7)
    assert result.perplexity == pytest.approx(direct_perplexity(model, tokenizer), rel=1e-5)
    expected = [direct_perplexity(without_block(model, layer), tokenizer) for layer in range(5)]
    np.testing.assert_allclose(result.drop_one_perplexity, expected, rtol=1e-5)
    # The model is itself again afterwards.
    assert [b.self_attn.layer_idx if architecture == "llama" else b.attn.layer_idx for b in get_blocks(model)] == \
        list(range(5))
    assert model.config.num_hidden_layers == 5
    assert LayerImportance.from_json(result.to_json()).to_json() == result.to_json()


def test_without_drop_one_only_the_cosines_are_measured():
    model, tokenizer = tiny_model("llama", num_layers=4), tiny_tokenizer()
    result = layer_importance(model, tokenizer, TEXTS, drop_one=False, progress=False)
    assert result.drop_one_perplexity is None and result.perplexity is None
    assert result.block_influence.shape == (4,) and np.all((result.angular_distance >= 0) & (result.angular_distance <= 1))
