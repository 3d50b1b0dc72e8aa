"""Agreement with lm-evaluation-harness on the real model: its own task pipeline (ConfigurableTask, HFLM, metrics,
aggregation) pointed at the same local examples, compared per example and in aggregate."""

from __future__ import annotations

import json

import lm_eval
import pytest
from lm_eval.api.task import ConfigurableTask
from lm_eval.models.huggingface import HFLM

from offsite.data import load_examples
from offsite.evaluate import TaskScores, score_choices

LIMIT = 20  # per task, to keep the test fast on a CPU; benchmarks/bench_eval.py compares larger sets
BATCH_SIZE = 32


def harness_samples(model, tokenizer, examples, name: str, tmp_path) -> tuple[dict, list[dict]]:
    """The harness's aggregate results and per-document samples (by doc id) for ``examples``."""
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": e.prompt, "choices": list(e.choices), "gold": e.gold}) + "\n"
                            for e in examples))
    # The prompts already carry the harness's task template, so the harness's task passes them through as they are.
    task = ConfigurableTask(config={
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(tmp_path / "datasets")},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
    })
    results = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE), tasks=[task], log_samples=True,
        verbosity="ERROR",
    )
    samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
    return results["results"][name], samples


@pytest.mark.real
@pytest.mark.parametrize("task", ["arc_easy", "piqa"])
def test_acc_and_acc_norm_agree_with_the_harness_per_example(smollm2, task, tmp_path):
    model, tokenizer = smollm2
    examples = load_examples(task, "validation", LIMIT)

    ours = score_choices(model, tokenizer, examples, batch_size=BATCH_SIZE, progress=False)
    aggregate, samples = harness_samples(model, tokenizer, examples, task, tmp_path)

    assert len(samples) == len(ours)
    for sample, score in zip(samples, ours):
        theirs = [ll for ll, _ in sample["filtered_resps"]]
        assert score.loglikelihoods == pytest.approx(theirs, abs=2e-3)
        assert float(score.prediction == score.gold) == sample["acc"]
        assert float(score.prediction_norm == score.gold) == sample["acc_norm"]
    scores = TaskScores.from_choice_scores(ours)
    assert scores.acc == pytest.approx(aggregate["acc,none"], abs=1e-9)
    assert scores.acc_norm == pytest.approx(aggregate["acc_norm,none"], abs=1e-9)
    assert scores.acc_stderr == pytest.approx(aggregate["acc_stderr,none"], abs=1e-9)
    assert scores.acc_norm_stderr == pytest.approx(aggregate["acc_norm_stderr,none"], abs=1e-9)
