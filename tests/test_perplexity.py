"""Text perplexity against a full unpadded forward pass, and the sliding-window bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from offsite.errors import OffsiteError
from offsite.evaluate import text_perplexity
from offsite.evaluate.perplexity import text_windows
from offsite.models.tiny import tiny_model

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away into the woods. " * 2


def full_sequence_perplexity(model, tokenizer, text: str) -> float:
    """All tokens after the BOS token scored in one forward pass, log-probs summed by hand."""
    tokens = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), dim=-1)
    nll = -sum(logprobs[i - 1, tokens[i]].item() for i in range(1, len(tokens))) / (len(tokens) - 1)
    return math.exp(nll)


def test_one_window_equals_the_full_sequence(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=2)
    length = len(TEXT) + 1  # one token per character, plus BOS
    score = text_perplexity(model, tokenizer, TEXT, window=length, stride=length, progress=False)
    assert score.num_tokens == len(TEXT)
    assert score.perplexity == pytest.approx(full_sequence_perplexity(model, tokenizer, TEXT), rel=1e-5)


def test_windows_with_enough_context_equal_the_full_sequence(tokenizer):
    # Mistral attends 16 tokens back per layer, so 3 layers see at most 45 tokens: a window keeping 48 tokens of
    # context loses nothing, and windowing (with left-padded batches) must give the full-sequence result exactly.
    model = tiny_model("mistral", num_layers=3)
    expected = full_sequence_perplexity(model, tokenizer, TEXT)
    for batch_size in (1, 3):
        score = text_perplexity(model, tokenizer, TEXT, window=64, stride=16, batch_size=batch_size, progress=False)
        assert score.perplexity == pytest.approx(expected, rel=1e-5)


def test_short_context_changes_the_result(tokenizer):
    model = tiny_model("llama", num_layers=2)
    short = text_perplexity(model, tokenizer, TEXT, window=8, stride=8, progress=False).perplexity
    assert short != pytest.approx(full_sequence_perplexity(model, tokenizer, TEXT), rel=1e-5)


@pytest.mark.parametrize("length,window,stride", [(2, 4, 2), (50, 10, 3), (50, 10, 10), (101, 16, 7)])
def test_windows_score_every_token_once_within_the_window(length, window, stride):
    windows = text_windows(length, window, stride)
    scored = [t for _, first, end in windows for t in range(first, end)]
    assert scored == list(range(1, length))
    for context_start, first, end in windows:
        assert 0 <= context_start < first
        assert end - 1 - context_start <= window  # tokens fed
        assert end - first <= stride
        if end - 1 - window >= 0:
            assert end - 1 - context_start == window  # full context once the text is long enough


def test_bad_windows_and_empty_text_raise_clear_errors(tokenizer):
    model = tiny_model("gpt2", num_layers=1)  # 256 positions
    with pytest.raises(OffsiteError, match="stride"):
        text_perplexity(model, tokenizer, TEXT, window=8, stride=9, progress=False)
    with pytest.raises(OffsiteError, match="longer than the model"):
        text_perplexity(model, tokenizer, TEXT, window=512, progress=False)
    with pytest.raises(OffsiteError, match="no tokens"):
        text_perplexity(model, tokenizer, "", progress=False)
