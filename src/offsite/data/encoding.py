"""Tokenising a context and its continuation exactly as lm-evaluation-harness's ``HFLM`` does, shared by training
and evaluation.

The harness's rules (``TemplateLM.loglikelihood``, ``_encode_pair``, ``HFLM.tok_encode``):

- all trailing whitespace of the context (spaces, newlines, tabs) moves to the front of the continuation;
- the context's tokens are the context's own encoding; the continuation's are what follows that many tokens in
  the encoding of context + continuation (so a merge across the boundary is never counted twice);
- texts are encoded with the tokenizer's own special-token setting (a tokenizer that adds BOS adds it), except
  a text that already starts with the prefix token's text;
- an empty context becomes the prefix token (BOS, else EOS), and the continuation is encoded without special
  tokens; when the continuation itself starts with that token, its first token is the context instead.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from ..errors import OffsiteError


def prefix_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token an empty context is scored from: BOS, else EOS (the harness's ``prefix_token_id``)."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise OffsiteError("the tokenizer has neither a BOS nor an EOS token to score an empty prompt from")
    return token


def _tok_encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """``HFLM.tok_encode``: the tokenizer's default special tokens, none for a text that starts with the prefix's text."""
    starts_with_prefix = text.startswith(tokenizer.decode(prefix_token_id(tokenizer)))
    return tokenizer.encode(text, add_special_tokens=not starts_with_prefix)


def _from_prefix(tokenizer: PreTrainedTokenizerBase, continuation: str) -> tuple[list[int], list[int]]:
    tokens = tokenizer.encode(continuation, add_special_tokens=False)
    prefix = prefix_token_id(tokenizer)
    if tokens and tokens[0] == prefix:
        return tokens[:1], tokens[1:]
    return [prefix], tokens


def encode_pair(tokenizer: PreTrainedTokenizerBase, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``context`` and of ``continuation`` as the harness's ``HFLM`` tokenises the pair.

    A context of whitespace only, which the harness cannot score with a tokenizer that adds no BOS (its context
    would have no tokens), is scored like an empty one, its whitespace leading the continuation.
    """
    if not context:
        return _from_prefix(tokenizer, continuation)
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    context_ids = _tok_encode(tokenizer, stripped)
    if not context_ids:
        return _from_prefix(tokenizer, continuation)
    whole = _tok_encode(tokenizer, stripped + continuation)
    return context_ids, whole[len(context_ids):]
