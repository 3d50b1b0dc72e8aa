"""Task data: the registry of multiple-choice tasks, bundled and hub loaders, local JSONL and text files."""

from .examples import MultipleChoiceExample
from .files import load_jsonl_examples, load_text
from .tasks import TASKS, Task, get_task, harness_metric, load_examples, task_table

__all__ = [
    "TASKS",
    "MultipleChoiceExample",
    "Task",
    "get_task",
    "harness_metric",
    "load_examples",
    "load_jsonl_examples",
    "load_text",
    "task_table",
]
