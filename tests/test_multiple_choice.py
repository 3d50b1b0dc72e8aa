"""Multiple-choice scoring against an independent computation: one unpadded forward of prompt + choice per choice."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
from lm_eval.api.metrics import mean_stderr as harness_mean_stderr

from offsite.data import MultipleChoiceExample
from offsite.data.encoding import encode_pair
from offsite.errors import OffsiteError
from offsite.evaluate import (
    ChoiceScores,
    TaskScores,
    evaluate_multiple_choice,
    mean_stderr,
    score_choices,
    supports_prompt_reuse,
)
from offsite.models import get_blocks
from offsite.models.tiny import tiny_model

# Prompts longer than the tiny models' sliding window (16), one-character choices (a single continuation token),
# choices of different lengths (so that acc and acc_norm disagree), a prompt ending in a newline, an empty prompt,
# partial scoring (the choice in the context, a shared ending scored) and several correct answers.
EXAMPLES = [
    MultipleChoiceExample("Question: What colour is the sky on a clear summer day?\nAnswer:", ("blue", "green and yellow", "r"), 0),
    MultipleChoiceExample("Hi", ("x", "a much longer answer than the other"), 1),
    MultipleChoiceExample("The cat sat on the", ("mat", "moon", "m", "roof of the house"), 3),
    MultipleChoiceExample("Question: Which is a fruit?\nAnswer:\n", ("apple", "a car"), 0),
    MultipleChoiceExample("Goal: boil water.\nSolution:", ("put the pot on the stove", "freeze it"), 0),
    MultipleChoiceExample("", ("first words", "x"), 0),
    MultipleChoiceExample("Sarah was a better surgeon than Maria so ", ("Sarah", "Maria"), 1, ending="got the easy cases."),
    MultipleChoiceExample("Question: Name a colour.\nAnswer:", ("red", "green", "blue"), 0, golds=(0, 2)),
]


def naive_scores(model, tokenizer, example: MultipleChoiceExample) -> list[tuple[float, bool]]:
    """Each choice scored alone: the full sequence through the model without padding, log-probs summed by hand, and
    whether every continuation token is the argmax."""
    max_length = model.config.max_position_embeddings if hasattr(model.config, "max_position_embeddings") else None
    scores = []
    for index in range(len(example.choices)):
        context, continuation = encode_pair(tokenizer, *example.request(index))
        tokens = context + continuation
        if max_length is not None:
            tokens = tokens[-(max_length + 1):]  # the harness's left truncation
        with torch.no_grad():
            logits = model(torch.tensor([tokens[:-1]]), use_cache=False).logits[0]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        start = len(tokens) - 1 - len(continuation)
        total = sum(logprobs[start + k, token].item() for k, token in enumerate(continuation))
        greedy = all(logits[start + k].argmax().item() == token for k, token in enumerate(continuation))
        scores.append((total, greedy))
    return scores


def naive_loglikelihoods(model, tokenizer, example: MultipleChoiceExample) -> list[float]:
    return [total for total, _ in naive_scores(model, tokenizer, example)]


def greedy_text(model, tokenizer, prompt: str, steps: int) -> str:
    """The model's greedy continuation of ``prompt``, ``steps`` characters of the tiny tokenizer."""
    ids = tokenizer.encode(prompt)
    for _ in range(steps):
        with torch.no_grad():
            ids.append(model(torch.tensor([ids])).logits[0, -1].argmax().item())
    assert all(i < 256 for i in ids), "the greedy tokens must be plain characters"
    return tokenizer.decode(ids[-steps:])


@pytest.mark.parametrize("reuse_prompt", [None, False])
def test_loglikelihoods_equal_separate_per_choice_forwards(architecture, tokenizer, reuse_prompt):
    model = tiny_model(architecture, num_layers=3)
    assert supports_prompt_reuse(model)
    # A batch size of 5 splits the examples into several batches of different prompt lengths.
    scores = score_choices(model, tokenizer, EXAMPLES, batch_size=5, reuse_prompt=reuse_prompt, progress=False)
    for example, score in zip(EXAMPLES, scores):
        naive = naive_scores(model, tokenizer, example)
        assert score.loglikelihoods == pytest.approx([total for total, _ in naive], abs=1e-4)
        assert score.greedy == tuple(greedy for _, greedy in naive)
        assert score.num_tokens == tuple(len(encode_pair(tokenizer, *example.request(i))[1])
                                         for i in range(len(example.choices)))


@pytest.mark.parametrize("reuse_prompt", [None, False])
def test_the_greedy_continuation_is_recognised_on_both_paths(tokenizer, reuse_prompt):
    model = tiny_model("llama", num_layers=2, seed=1)
    prompt = "Question: Which word comes next?\nAnswer:"
    greedy = greedy_text(model, tokenizer, prompt, steps=3)
    # No delimiter: the choice is exactly the greedy continuation; its one-token prefix too; a changed last one not.
    example = MultipleChoiceExample(prompt, (greedy, greedy[:1], greedy[:2] + chr(ord(greedy[2]) ^ 1)), 0, delimiter="")
    [score] = score_choices(model, tokenizer, [example], reuse_prompt=reuse_prompt, progress=False)
    assert score.greedy == (True, True, False)
    assert score.exact_match == 1.0


def test_acc_and_acc_norm_equal_an_independent_computation(tokenizer):
    model = tiny_model("llama", num_layers=2, seed=3)
    lls = [naive_loglikelihoods(model, tokenizer, example) for example in EXAMPLES]
    pred = [max(range(len(ll)), key=ll.__getitem__) for ll in lls]
    # acc_norm divides by the harness's choice string: under partial scoring, the whole context.
    divisors = [[len(e.request(i)[0] if e.ending else e.choices[i]) for i in range(len(e.choices))] for e in EXAMPLES]
    pred_norm = [max(range(len(ll)), key=lambda i: ll[i] / d[i]) for ll, d in zip(lls, divisors)]
    assert pred != pred_norm  # the data tells the two metrics apart
    correct = [float(p in (e.golds or [e.gold])) for p, e in zip(pred, EXAMPLES)]
    correct_norm = [float(p in (e.golds or [e.gold])) for p, e in zip(pred_norm, EXAMPLES)]
    gold_tokens = sum(len(encode_pair(tokenizer, *e.request(e.gold))[1]) for e in EXAMPLES)

    scores = evaluate_multiple_choice(model, tokenizer, EXAMPLES, batch_size=4, progress=False)

    n = len(EXAMPLES)
    assert scores.n == n
    assert scores.acc == pytest.approx(sum(correct) / n)
    assert scores.acc_norm == pytest.approx(sum(correct_norm) / n)
    assert scores.acc_stderr == pytest.approx(statistics.stdev(correct) / n**0.5)
    assert scores.acc_norm_stderr == pytest.approx(statistics.stdev(correct_norm) / n**0.5)
    gold_ll = sum(ll[e.gold] for ll, e in zip(lls, EXAMPLES))
    assert scores.perplexity == pytest.approx(torch.tensor(-gold_ll / gold_tokens).exp().item(), rel=1e-4)


def test_stderr_is_the_harness_mean_stderr():
    values = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert mean_stderr(values) == pytest.approx(harness_mean_stderr(values))
    assert mean_stderr([1.0]) is None


def test_ties_pick_the_first_choice_as_numpy_argmax_does():
    scores = ChoiceScores(loglikelihoods=(-2.0, -1.0, -1.0), num_tokens=(1, 1, 1), choice_lengths=(1, 2, 2), gold=2,
                          greedy=(False, False, False))
    assert scores.prediction == 1
    assert scores.prediction_norm == 1  # -0.5 for both 1 and 2
    assert TaskScores.from_choice_scores([scores]).acc == 0.0


def test_a_block_object_at_two_positions_takes_the_per_choice_path(tokenizer):
    model = tiny_model("llama", num_layers=3)
    blocks = get_blocks(model)
    blocks[2] = blocks[1]  # sharing by reference: one cache slot would be written twice
    assert not supports_prompt_reuse(model)
    with pytest.raises(OffsiteError, match="KV cache cannot be reused across choices"):
        score_choices(model, tokenizer, EXAMPLES[:1], reuse_prompt=True, progress=False)
    scores = score_choices(model, tokenizer, EXAMPLES[:2], progress=False)
    for example, score in zip(EXAMPLES, scores):
        assert score.loglikelihoods == pytest.approx(naive_loglikelihoods(model, tokenizer, example), abs=1e-4)


def test_a_copied_block_with_a_stale_cache_index_is_detected():
    model = tiny_model("llama", num_layers=3)
    get_blocks(model)[2] = copy.deepcopy(get_blocks(model)[1])  # still says layer_idx 1
    assert not supports_prompt_reuse(model)


def test_prompt_longer_than_the_model_is_truncated_from_the_left(tokenizer):
    model = tiny_model("gpt2", num_layers=2)  # 256 positions, one token per character
    example = MultipleChoiceExample("word " * 70 + "end", ("yes", "no"), 0)
    for reuse_prompt in (None, False):
        scores = score_choices(model, tokenizer, [example], reuse_prompt=reuse_prompt, progress=False)
        assert scores[0].loglikelihoods == pytest.approx(naive_loglikelihoods(model, tokenizer, example), abs=1e-4)


def test_train_mode_is_restored(tokenizer):
    model = tiny_model("llama", num_layers=2).train()
    score_choices(model, tokenizer, EXAMPLES[:1], progress=False)
    assert model.training


def test_bad_arguments_raise_clear_errors(tokenizer):
    model = tiny_model("llama", num_layers=1)
    with pytest.raises(OffsiteError, match="batch size"):
        score_choices(model, tokenizer, EXAMPLES, batch_size=0, progress=False)
    with pytest.raises(OffsiteError, match="no examples"):
        score_choices(model, tokenizer, [], progress=False)
