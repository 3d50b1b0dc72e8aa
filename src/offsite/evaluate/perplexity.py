"""Token-level perplexity of plain text, with a sliding window so that text longer than the model still gets context."""

from __future__ import annotations

import math

from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..similarity.hidden_states import start_token
from .forward import eval_mode, model_max_length, sum_target_logprobs
from .scores import PerplexityScore

DEFAULT_WINDOW = 1024


def text_windows(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """``(context_start, first_target, end)`` windows over a sequence of ``length`` tokens whose token 0 is a start
    token: the window feeds tokens ``[context_start, end - 1)`` and scores targets ``[first_target, end)``.

    Targets 1..length-1 are each scored exactly once, ``stride`` per window, with at most ``window`` tokens fed.
    """
    windows = []
    for first in range(1, length, stride):
        end = min(first + stride, length)
        windows.append((max(0, end - 1 - window), first, end))
    return windows


def text_perplexity(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    *,
    window: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
    progress: bool = True,
) -> PerplexityScore:
    """Perplexity of ``text`` under ``model``, every token scored once.

    The text is tokenised without special tokens and preceded by the BOS token (EOS where there is none), so that
    its first token is scored too, as the harness's rolling log-likelihood does. Each window feeds up to ``window``
    tokens (default: the model's maximum, at most 1024) and scores its last ``stride`` (default ``window // 2``),
    so every scored token but those of the first window sees at least ``window - stride`` tokens of context.
    """
    window = window or min(model_max_length(model), DEFAULT_WINDOW)
    stride = stride or max(1, window // 2)
    if not 1 <= stride <= window:
        raise OffsiteError(f"stride must be between 1 and the window ({window}), got {stride}")
    if window > model_max_length(model):
        raise OffsiteError(f"window {window} is longer than the model's maximum of {model_max_length(model)} tokens")
    if batch_size < 1:
        raise OffsiteError(f"batch size must be at least 1, got {batch_size}")
    tokens = [start_token(tokenizer)] + tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(tokens) < 2:
        raise OffsiteError("the text has no tokens to score")

    windows = text_windows(len(tokens), window, stride)
    total = 0.0
    with tqdm(total=len(windows), desc="perplexity", unit="window", disable=not progress) as bar, eval_mode(model):
        for begin in range(0, len(windows), batch_size):
            batch = windows[begin:begin + batch_size]
            inputs = [tokens[c:e - 1] for c, _, e in batch]
            total += sum_target_logprobs(model, inputs, [tokens[f:e] for _, f, e in batch]).sum().item()
            bar.update(len(batch))
    count = len(tokens) - 1
    return PerplexityScore(perplexity=math.exp(-total / count), nll=-total / count, num_tokens=count, window=window, stride=stride)
