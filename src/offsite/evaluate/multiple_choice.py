"""Zero-shot multiple choice by log-likelihood, as lm-evaluation-harness scores it, with each prompt run once.

Every choice's ``(context, continuation)`` request is tokenised with :func:`offsite.data.encoding.encode_pair`, as
the harness's ``HFLM`` tokenises it. The fast path runs each distinct context once, keeps its KV cache, copies the
cache once per choice and scores all the choices' continuation tokens in one more forward pass; the fallback runs
context + continuation per choice, as the harness does. Both are batched, longest first, and give the same
log-likelihoods up to float rounding, and whether each continuation is the greedy one.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..data import MultipleChoiceExample
from ..data.encoding import encode_pair
from ..errors import OffsiteError
from ..models import get_blocks
from .forward import (
    eval_mode,
    forward,
    is_argmax,
    model_device,
    model_max_length,
    pad_rows,
    padded_positions,
    score_targets,
    token_logprobs,
)
from .scores import ChoiceScores, TaskScores

Pair = tuple[tuple[int, ...], tuple[int, ...]]  # (context ids, continuation ids)
Scored = tuple[float, bool]  # (log-likelihood, whether the continuation is the greedy one)


def supports_prompt_reuse(model: nn.Module) -> bool:
    """Whether ``model``'s KV cache can be reused across choices.

    The cache is indexed by each attention module's ``layer_idx``, so every block must be its own module whose
    ``layer_idx`` is its position. A module object placed at several positions (layer sharing by reference) would
    write its keys into one cache slot several times; such models take the per-choice path. Blocks that are
    distinct modules with tied parameters are fine.
    """
    try:
        blocks = list(get_blocks(model))
    except OffsiteError:
        return False
    if len({id(block) for block in blocks}) != len(blocks):
        return False
    for position, block in enumerate(blocks):
        indices = {m.layer_idx for m in block.modules() if hasattr(m, "layer_idx")}
        if indices != {position}:
            return False
    return True


def encode_choices(tokenizer: PreTrainedTokenizerBase, example: MultipleChoiceExample, max_length: int) -> list[Pair]:
    """Context and continuation ids of each choice; as in the harness, a context too long for the model loses its
    first tokens so that context + continuation fit in ``max_length`` + 1 tokens (the last one is only predicted)."""
    pairs = []
    for index in range(len(example.choices)):
        context, continuation = encode_pair(tokenizer, *example.request(index))
        if not continuation:
            raise OffsiteError(f"choice {index} of prompt {example.prompt[:40]!r} has no tokens to score")
        if len(continuation) > max_length:
            raise OffsiteError(f"choice {index} of prompt {example.prompt[:40]!r} is longer than the model's {max_length} tokens")
        keep = max_length + 1 - len(continuation)
        pairs.append((tuple(context[-keep:]), tuple(continuation)))
    return pairs


def _batches(items: Sequence[int], sizes: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Consecutive runs of ``items`` whose ``sizes`` add up to at most ``batch_size`` (at least one item each)."""
    batch: list[int] = []
    total = 0
    for item, size in zip(items, sizes):
        if batch and total + size > batch_size:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch


def _padding_order(encoded: list[list[Pair]]) -> list[int]:
    """Example indices, longest first by whichever part dominates the work, so that batches waste little on padding.

    A batch pads its prompts to its longest prompt and its choices to its longest continuation, and one order
    cannot line up both: sort by prompt length where prompts hold more tokens than the continuations (ARC, SciQ),
    else by continuation length (PIQA, HellaSwag).
    """
    prompts = [max(len(c) for c, _ in pairs) for pairs in encoded]
    continuations = [max(len(t) for _, t in pairs) for pairs in encoded]
    prompt_first = sum(prompts) >= sum(len(t) for pairs in encoded for _, t in pairs)
    if prompt_first:
        return sorted(range(len(encoded)), key=lambda i: (-prompts[i], -continuations[i]))
    return sorted(range(len(encoded)), key=lambda i: (-continuations[i], -prompts[i]))


def _score_reusing_prompts(
    model: nn.Module, encoded: list[list[Pair]], batch_size: int, advance: Callable[[int], object]
) -> list[list[Scored]]:
    """Log-likelihood and greediness per example and choice, running each distinct context once per batch."""
    device = model_device(model)
    scores: list[list[Scored]] = [[(0.0, False)] * len(pairs) for pairs in encoded]
    order = _padding_order(encoded)
    for batch in _batches(order, [len(encoded[i]) for i in order], batch_size):
        prompts: dict[tuple[int, ...], int] = {}
        rows = []  # (example, choice, prompt row, continuation)
        for i in batch:
            for j, (context, continuation) in enumerate(encoded[i]):
                rows.append((i, j, prompts.setdefault(context, len(prompts)), continuation))

        ids, prompt_mask = pad_rows(list(prompts), "left", device)
        prefill = forward(model, ids, prompt_mask, padded_positions(prompt_mask), keep=1, use_cache=True)
        # The prompt's last position predicts every choice's first token.
        source = torch.tensor([r for _, _, r, _ in rows], device=device)
        first = torch.tensor([t[0] for _, _, _, t in rows], device=device)
        totals = token_logprobs(prefill.logits[source, -1], first)
        greedy = is_argmax(prefill.logits[source, -1], first)

        longer = [k for k, (_, _, _, t) in enumerate(rows) if len(t) > 1]
        if longer:
            cache = prefill.past_key_values
            cache.reorder_cache(source[longer])  # one copy of the prompt's keys and values per choice
            ids, mask = pad_rows([rows[k][3][:-1] for k in longer], "right", device)
            targets, _ = pad_rows([rows[k][3][1:] for k in longer], "right", device)
            prompt_lengths = prompt_mask.sum(1)[source[longer]]
            # Padding repeats the row's last position, which stays within the model's range.
            positions = prompt_lengths[:, None] + padded_positions(mask)
            logits = forward(model, ids, torch.cat([prompt_mask[source[longer]], mask], 1), positions, cache=cache).logits
            scored = mask.bool()
            totals[longer] += torch.where(scored, token_logprobs(logits, targets), 0.0).sum(1)
            greedy[longer] &= (is_argmax(logits, targets) | ~scored).all(1)

        for (i, j, _, _), total, top in zip(rows, totals.tolist(), greedy.tolist()):
            scores[i][j] = (total, top)
        advance(len(batch))
    return scores


def _score_each_choice(
    model: nn.Module, encoded: list[list[Pair]], batch_size: int, advance: Callable[[int], object]
) -> list[list[Scored]]:
    """Log-likelihood and greediness per example and choice, running context + continuation for every choice (the
    harness's way)."""
    scores: list[list[Scored]] = [[(0.0, False)] * len(pairs) for pairs in encoded]
    requests = [(i, j, c, t) for i, pairs in enumerate(encoded) for j, (c, t) in enumerate(pairs)]
    requests.sort(key=lambda r: -(len(r[2]) + len(r[3])))
    for start in range(0, len(requests), batch_size):
        batch = requests[start:start + batch_size]
        # The last continuation token is only predicted, never fed.
        totals, greedy = score_targets(model, [(c + t)[:-1] for _, _, c, t in batch], [t for _, _, _, t in batch])
        for (i, j, _, _), total, top in zip(batch, totals.tolist(), greedy.tolist()):
            scores[i][j] = (total, top)
        # Count whole examples, as the prompt-reusing path does.
        advance(sum(1 for i, j, _, _ in batch if j == len(encoded[i]) - 1))
    return scores


def score_choices(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[MultipleChoiceExample],
    *,
    batch_size: int = 32,
    reuse_prompt: bool | None = None,
    progress: bool = True,
) -> list[ChoiceScores]:
    """Each example's summed log-probability of every choice's continuation given its context, and whether it is
    the greedy continuation.

    ``batch_size`` counts (prompt, choice) sequences per forward pass, as the harness's batch size does; an
    example's choices are never split across batches on the prompt-reusing path. ``reuse_prompt``: None picks
    the prompt-reusing path when :func:`supports_prompt_reuse`, False forces the per-choice path. ``model`` may
    be in train mode; it is restored afterwards.
    """
    if batch_size < 1:
        raise OffsiteError(f"batch size must be at least 1, got {batch_size}")
    if not examples:
        raise OffsiteError("no examples to score")
    reusable = supports_prompt_reuse(model)
    if reuse_prompt and not reusable:
        raise OffsiteError("this model's KV cache cannot be reused across choices (see supports_prompt_reuse)")
    max_length = model_max_length(model)
    encoded = [encode_choices(tokenizer, example, max_length) for example in examples]
    score = _score_reusing_prompts if (reusable if reuse_prompt is None else reuse_prompt) else _score_each_choice
    with tqdm(total=len(examples), desc="scoring choices", unit="ex", disable=not progress) as bar, eval_mode(model):
        scored = score(model, encoded, batch_size, bar.update)
    return [
        ChoiceScores(
            loglikelihoods=tuple(ll for ll, _ in results),
            num_tokens=tuple(len(t) for _, t in pairs),
            choice_lengths=tuple(example.norm_length(i) for i in range(len(example.choices))),
            gold=example.gold,
            greedy=tuple(top for _, top in results),
            golds=example.golds,
        )
        for example, pairs, results in zip(examples, encoded, scored)
    ]


def evaluate_multiple_choice(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[MultipleChoiceExample],
    *,
    batch_size: int = 32,
    reuse_prompt: bool | None = None,
    progress: bool = True,
) -> TaskScores:
    """``acc``, ``acc_norm``, ``exact_match``, their standard errors and the gold answers' perplexity over ``examples``."""
    scores = score_choices(model, tokenizer, examples, batch_size=batch_size, reuse_prompt=reuse_prompt, progress=progress)
    return TaskScores.from_choice_scores(scores)
