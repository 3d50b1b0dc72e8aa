"""Batched forward passes shared by multiple-choice scoring and perplexity.

Rows are left-padded so that every row ends at the last position: the positions to score are then the last k
of every row, and the LM head only runs on those (``logits_to_keep``). Position ids are passed explicitly so
that padding does not shift them; models whose forward takes no position ids (BLOOM) derive positions from
the attention mask.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator, Sequence

import torch
from torch import nn

DEFAULT_MAX_LENGTH = 2048  # for models whose config sets no limit (ALiBi models such as BLOOM)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def model_max_length(model: nn.Module) -> int:
    """The longest sequence ``model`` takes, from its config (the attributes in the order the harness reads them)."""
    config = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode without gradients for the duration; the caller's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def pad_rows(rows: Sequence[Sequence[int]], side: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows padded to one length on ``side`` ("left" or "right"): ``(input_ids, attention_mask)``."""
    length = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(length - len(row), length) if side == "left" else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


def forward(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    keep: int | None = None,
    cache: Any = None,
    use_cache: bool = False,
) -> Any:
    """Run ``model`` and return its output; ``output.logits`` covers only the last ``keep`` positions when given.

    ``cache`` continues from a KV cache of earlier tokens; ``use_cache`` returns one in ``output.past_key_values``.
    """
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    kwargs["use_cache"] = use_cache or cache is not None
    if cache is not None:
        kwargs["past_key_values"] = cache
    if _accepts(model, "position_ids"):
        kwargs["position_ids"] = position_ids
    if keep is not None and _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = keep
    output = model(**kwargs)
    if keep is not None and output.logits.shape[1] != keep:
        output.logits = output.logits[:, -keep:]
    return output


def padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting from 0 at each row's first real token; left padding gets 0, right padding repeats
    the last position."""
    return (attention_mask.cumsum(1) - 1).clamp(min=0)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability, in float32, of each ``targets[..., t]`` under ``logits[..., t, :]``."""
    return logits.float().log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def is_argmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether each ``targets[..., t]`` is the most likely token under ``logits[..., t, :]`` (greedy decoding's pick;
    on a tie, the first maximum, as ``argmax`` picks it)."""
    return logits.argmax(-1) == targets


def score_targets(
    model: nn.Module, inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the summed log-probability of ``targets[i]``, the tokens that follow ``inputs[i]``'s last
    ``len(targets[i])`` tokens (the last input token predicts the last target), and whether every target token is
    the greedy one, in one left-padded forward pass."""
    device = model_device(model)
    ids, mask = pad_rows(inputs, "left", device)
    keep = max(len(t) for t in targets)
    target_ids, scored = pad_rows(targets, "left", device)
    target_ids, scored = target_ids[:, -keep:], scored[:, -keep:].bool()
    logits = forward(model, ids, mask, padded_positions(mask), keep=keep).logits
    sums = torch.where(scored, token_logprobs(logits, target_ids), 0.0).sum(1)
    return sums, (is_argmax(logits, target_ids) | ~scored).all(1)


def sum_target_logprobs(model: nn.Module, inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """Per row, the summed log-probability of ``targets[i]`` (see :func:`score_targets`)."""
    return score_targets(model, inputs, targets)[0]
