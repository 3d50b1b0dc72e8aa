"""A model's language-model loss on calibration samples: the mean negative log-likelihood per token.

Each sample starts from the start token (:func:`offsite.similarity.hidden_states.start_token`), so its first
token is predicted too; padding is never scored. Drop-one importance and the training-free emulator search
compare models by this one number on the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .hidden_states import encode_texts, forward, pad_batch


@dataclass(frozen=True)
class TokenBatches:
    """Right-padded ``(input_ids, attention_mask)`` batches of samples, and how many tokens they score."""

    batches: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    num_tokens: int

    @property
    def num_samples(self) -> int:
        return sum(len(ids) for ids, _ in self.batches)


def token_batches(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int = 512, batch_size: int = 8
) -> TokenBatches:
    """The samples as batches of similar length, each sample the start token + its tokens (``max_length`` in all)."""
    ids = encode_texts(tokenizer, texts, max_length, bos=True)
    order = sorted(ids, key=len, reverse=True)
    batches = tuple(
        pad_batch(order[start : start + batch_size], tokenizer.pad_token_id)
        for start in range(0, len(order), batch_size)
    )
    return TokenBatches(batches, sum(len(sample) - 1 for sample in ids))


@torch.inference_mode()
def mean_token_nll(model: nn.Module, batches: TokenBatches) -> float:
    """Mean negative log-likelihood (nats) per scored token of ``model`` on ``batches``."""
    total = 0.0
    for input_ids, attention_mask in batches.batches:
        logits = forward(model, input_ids, attention_mask).logits[:, :-1].float().cpu()
        logprobs = logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        total -= float(logprobs[attention_mask[:, 1:].bool()].sum())
    return total / batches.num_tokens


def perplexity(nll: float) -> float:
    """exp(nll), or inf where that overflows."""
    return math.exp(nll) if nll < 700 else math.inf
