"""Tokenisation of (context, continuation) requests against lm-evaluation-harness's own ``HFLM``: the token ids its
``loglikelihood`` hands to the model, for prompts that end in whitespace, empty prompts and BOS-adding tokenizers."""

from __future__ import annotations

import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from tokenizers import processors

from offsite.data.encoding import encode_pair, prefix_token_id
from offsite.models.tiny import tiny_model, tiny_tokenizer

REQUESTS = [
    ("Question: 1+1?\nAnswer:", " 2"),
    ("Question: 1+1?\nAnswer:\n", " 2"),  # a prompt that ends in a newline: the newline moves to the continuation
    ("Question: 1+1?\nAnswer:\n\n", "2"),
    ("Answer: ", "2"),
    ("tabs and spaces \t \n", " x y"),
    ("", "abc"),  # empty prompt: scored from the prefix token
    ("", "<s>abc"),  # ...unless the continuation starts with it
    ("<s>Question: why?\nAnswer:", " because"),  # already starts with BOS: no second one
    ("The cat sat on the", " mat"),
]


class HarnessTokens(HFLM):
    """The harness's ``HFLM`` up to the model call: returns the (context, continuation) ids it would score."""

    def _loglikelihood_tokens(self, requests, **kwargs):
        return [(context, continuation) for _, context, continuation in requests]


def harness_pairs(tokenizer, requests) -> list[tuple[list[int], list[int]]]:
    # The model only has to exist; the harness's tokenisation never runs it.
    lm = HarnessTokens(pretrained=tiny_model("llama", num_layers=1), tokenizer=tokenizer, batch_size=1)
    return lm.loglikelihood([Instance("loglikelihood", {}, request, 0) for request in requests], disable_tqdm=True)


def bos_tokenizer():
    """The tiny tokenizer, made to put BOS before every text it encodes with special tokens (as Llama's and Gemma's do)."""
    tokenizer = tiny_tokenizer()
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    assert tokenizer.encode("ab") == [tokenizer.bos_token_id, 97, 98]
    return tokenizer


@pytest.mark.parametrize("make_tokenizer", [tiny_tokenizer, bos_tokenizer], ids=["no-bos", "adds-bos"])
def test_pairs_equal_the_harness_tokenisation(make_tokenizer):
    tokenizer = make_tokenizer()
    ours = [tuple(encode_pair(tokenizer, *request)) for request in REQUESTS]
    assert ours == [tuple(pair) for pair in harness_pairs(tokenizer, REQUESTS)]


def test_trailing_whitespace_moves_to_the_continuation():
    tokenizer = tiny_tokenizer()
    context, continuation = encode_pair(tokenizer, "Answer:\n \t", "x")
    assert tokenizer.decode(context) == "Answer:" and tokenizer.decode(continuation) == "\n \tx"


def test_empty_and_whitespace_only_prompts_score_from_the_prefix_token():
    tokenizer = tiny_tokenizer()
    assert encode_pair(tokenizer, "", "ab") == ([prefix_token_id(tokenizer)], [97, 98])
    # The harness cannot score a whitespace-only context with this tokenizer (no context tokens); it is scored from
    # the prefix token, its whitespace leading the continuation.
    assert encode_pair(tokenizer, " \n", "ab") == ([prefix_token_id(tokenizer)], [32, 10, 97, 98])
    # With a BOS-adding tokenizer the harness can, and gives the same.
    bos = bos_tokenizer()
    assert encode_pair(bos, " \n", "ab") == tuple(harness_pairs(bos, [(" \n", "ab")])[0]) == ([257], [32, 10, 97, 98])


@pytest.mark.real
def test_real_tokenizer_merges_across_the_boundary_as_the_harness_does(smollm2):
    _, tokenizer = smollm2
    requests = REQUESTS + [
        ("Question: Which gas do plants absorb?\nAnswer:", " carbon dioxide"),
        ("Sarah was a much better surgeon than Maria so Maria", " always got the easier cases."),
        ("The man turned on the faucet therefore", "  water flowed from the spout."),
        ("Article: A.\n\nQuestion: Why?\nAnswer: Because.\n", "Next"),
    ]
    ours = [tuple(encode_pair(tokenizer, *request)) for request in requests]
    assert ours == [tuple(pair) for pair in harness_pairs(tokenizer, requests)]
    context, continuation = encode_pair(tokenizer, "Answer:\n\n", "x")
    assert tokenizer.decode(context) == "Answer:" and tokenizer.decode(continuation) == "\n\nx"
