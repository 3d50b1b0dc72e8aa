"""Pooling and hidden-state collection on tiny random models of every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offsite.data import MultipleChoiceExample
from offsite.errors import OffsiteError
from offsite.models import final_norm, head_logits, num_layers
from offsite.models.tiny import tiny_model
from offsite.similarity import (
    HiddenStateConfig,
    block_outputs,
    collect_hidden_states,
    example_texts,
    pool,
    pooling_mask,
    text_samples,
)
from offsite.similarity.hidden_states import pad_batch

TEXTS = ["The cat sat on the mat.", "Hi!", "A much longer sample, with several clauses, to make padding matter.",
         "Short one", "Question: why?\nAnswer: because"]

# Two samples, d=2: sample 0 has 3 real tokens, sample 1 has 2 (then one pad, which holds a huge value).
HIDDEN = torch.tensor(
    [[[1.0, -1.0], [2.0, 5.0], [4.0, 0.0]],
     [[3.0, 1.0], [5.0, -2.0], [1e6, 1e6]]]
)
ATTENTION = torch.tensor([[1, 1, 1], [1, 1, 0]])


@pytest.mark.parametrize(
    ("method", "skip", "expected"),
    [
        ("mean", 0, [[7 / 3, 4 / 3], [4.0, -0.5]]),
        ("mean", 1, [[3.0, 2.5], [5.0, -2.0]]),
        ("last", 0, [[4.0, 0.0], [5.0, -2.0]]),
        ("last", 1, [[4.0, 0.0], [5.0, -2.0]]),
        ("weighted", 0, [[(1 + 4 + 12) / 6, (-1 + 10) / 6], [(3 + 10) / 3, (1 - 4) / 3]]),
        ("weighted", 1, [[(2 + 8) / 3, 5 / 3], [5.0, -2.0]]),  # the kept tokens are weighted 1, 2, ...
        ("max", 0, [[4.0, 5.0], [5.0, 1.0]]),
        ("max", 1, [[4.0, 5.0], [5.0, -2.0]]),
    ],
)
def test_pooling_by_hand(method, skip, expected):
    pooled = pool(HIDDEN, pooling_mask(ATTENTION, skip), method)
    assert pooled.dtype == torch.float64
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-12)


def test_pooling_errors():
    with pytest.raises(OffsiteError, match="leaves no token"):
        pooling_mask(ATTENTION, 2)
    with pytest.raises(OffsiteError, match="unknown pooling 'median'"):
        pool(HIDDEN, pooling_mask(ATTENTION), "median")
    with pytest.raises(OffsiteError, match="unknown pooling"):
        HiddenStateConfig(pooling="median")
    with pytest.raises(OffsiteError, match="skip_first must be 0 or more"):
        HiddenStateConfig(skip_first=-1)


def test_block_outputs_are_raw_block_outputs_and_the_last_gives_the_logits(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=3)
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS[:3]]
    input_ids, attention_mask = pad_batch(ids, tokenizer.pad_token_id)
    outputs, logits = block_outputs(model, input_ids, attention_mask)
    with torch.no_grad():
        reference = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        normed = final_norm(model)(outputs[-1])
        head = head_logits(model, normed)
    assert len(outputs) == 3
    for i in range(2):
        torch.testing.assert_close(outputs[i], reference.hidden_states[i + 1])
    # transformers puts the final norm into its last hidden state; block L-1's output is taken before it.
    torch.testing.assert_close(normed, reference.hidden_states[-1])
    assert not torch.allclose(outputs[-1], reference.hidden_states[-1])
    torch.testing.assert_close(head, reference.logits)
    torch.testing.assert_close(logits, reference.logits)


def test_collected_states_match_pooled_full_hidden_states(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=3)
    config = HiddenStateConfig(pooling="mean", skip_first=1, batch_size=2)
    states = collect_hidden_states(model, tokenizer, TEXTS, config, progress=False)
    assert states.layers.shape == (3, len(TEXTS), model.config.hidden_size)
    assert (states.num_layers, states.num_samples) == (num_layers(model), len(TEXTS))
    assert states.layers.dtype == np.float64 and states.embedding.dtype == np.float64
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    assert states.num_tokens == sum(lengths) - len(TEXTS)
    # Each sample alone, no padding, pooled by hand from output_hidden_states, in the original order.
    for index, text in enumerate(TEXTS):
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
        np.testing.assert_allclose(states.embedding[index], hidden[0][0, 1:].double().mean(0).numpy(), atol=1e-5)
        for layer in range(2):
            expected = hidden[layer + 1][0, 1:].double().mean(0).numpy()
            np.testing.assert_allclose(states.layers[layer, index], expected, atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "last", "weighted", "max"])
def test_batch_size_does_not_change_the_result(pooling, tokenizer):
    model = tiny_model("llama", num_layers=4, seed=1)
    one = collect_hidden_states(model, tokenizer, TEXTS, HiddenStateConfig(pooling, 0, batch_size=1), progress=False)
    all_ = collect_hidden_states(model, tokenizer, TEXTS, HiddenStateConfig(pooling, 0, batch_size=8), progress=False)
    np.testing.assert_allclose(one.layers, all_.layers, atol=1e-4)
    assert not np.allclose(one.layers[:, 0], one.layers[:, 1])  # samples differ, so order matters


def test_max_length_truncates(tokenizer):
    model = tiny_model("gpt2", num_layers=2)
    long = collect_hidden_states(model, tokenizer, ["abcdefghij"], HiddenStateConfig("mean", 0, max_length=4),
                                 progress=False)
    short = collect_hidden_states(model, tokenizer, ["abcd"], HiddenStateConfig("mean", 0), progress=False)
    np.testing.assert_allclose(long.layers, short.layers, atol=1e-6)


def test_bad_samples_are_clear_errors(tokenizer):
    model = tiny_model("llama", num_layers=2)
    with pytest.raises(OffsiteError, match=r"sample 1 has only 3 token\(s\), so skip_first=3 leaves none"):
        collect_hidden_states(model, tokenizer, ["long enough", "Hi!"], HiddenStateConfig(skip_first=3),
                              progress=False)
    with pytest.raises(OffsiteError, match="sample 0 has no tokens"):
        collect_hidden_states(model, tokenizer, [""], progress=False)
    with pytest.raises(OffsiteError, match="no samples"):
        collect_hidden_states(model, tokenizer, [], progress=False)


def test_sample_texts():
    example = MultipleChoiceExample("Question: 2+2?\nAnswer:", ("3", "4"), 1)
    assert example_texts([example]) == ["Question: 2+2?\nAnswer: 4"]
    assert text_samples("first line\n\n  second  \n\nthird\n", limit=2) == ["first line", "second"]
    with pytest.raises(OffsiteError, match="no non-empty line"):
        text_samples(" \n\n")

