"""Tokenising a prompt and its continuation the way lm-evaluation-harness does, shared by training and evaluation."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt`` and of ``continuation`` such that their concatenation tokenises ``prompt + continuation``.

    As in the harness, trailing spaces move from the prompt to the continuation, the whole string is tokenised
    once and split where the prompt's own tokens end (so merges across the boundary are not double counted),
    and no special tokens are added. An empty prompt becomes the BOS token (EOS where there is none), as in the
    harness, so the first token has a context.
    """
    stripped = prompt.rstrip(" ")
    continuation = prompt[len(stripped):] + continuation
    if not stripped:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [prefix], tokenizer(continuation, add_special_tokens=False)["input_ids"]
    whole = tokenizer(stripped + continuation, add_special_tokens=False)["input_ids"]
    context_length = len(tokenizer(stripped, add_special_tokens=False)["input_ids"])
    return whole[:context_length], whole[context_length:]
