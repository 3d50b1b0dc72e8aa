"""One evaluation run: several multiple-choice tasks and text files scored with the same model object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data import MultipleChoiceExample
from .multiple_choice import score_choices
from .perplexity import text_perplexity
from .scores import METRICS, ChoiceScores, PerplexityScore, TaskScores


@dataclass(frozen=True)
class EvalConfig:
    """How to batch the work: ``batch_size`` (prompt, choice) sequences per forward pass; ``text_batch_size``
    text windows per forward pass (they are long); ``window``/``stride`` of text perplexity (None: see
    :func:`text_perplexity`)."""

    batch_size: int = 32
    text_batch_size: int = 4
    window: int | None = None
    stride: int | None = None


@dataclass(frozen=True)
class EvalReport:
    """Scores per task name and per text name; ``examples`` holds each task's per-example scores."""

    tasks: dict[str, TaskScores] = field(default_factory=dict)
    texts: dict[str, PerplexityScore] = field(default_factory=dict)
    examples: dict[str, list[ChoiceScores]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "tasks": {name: s.to_dict() for name, s in self.tasks.items()},
            "texts": {name: s.to_dict() for name, s in self.texts.items()},
        }

    def task_rows(self, metrics: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
        """One row per task for :func:`offsite.report.table.format_table`, in percent: the metrics ``metrics[task]``
        lists (all of them for a task it does not name), in columns for every metric any task shows."""
        def pct(value: float | None) -> str | None:
            return None if value is None else f"{100 * value:.2f}"

        shown = {name: tuple((metrics or {}).get(name, METRICS)) for name in self.tasks}
        columns = [m for m in METRICS if any(m in listed for listed in shown.values())]
        rows = []
        for name, scores in self.tasks.items():
            row: dict = {"task": name, "n": scores.n}
            for metric in columns:
                listed = metric in shown[name]
                row[metric] = pct(getattr(scores, metric)) if listed else None
                row[f"± {metric}"] = pct(getattr(scores, f"{metric}_stderr")) if listed else None
            rows.append({**row, "answer ppl": f"{scores.perplexity:.3f}"})
        return rows

    def text_rows(self) -> list[dict]:
        return [
            {"text": name, "tokens": s.num_tokens, "perplexity": f"{s.perplexity:.3f}", "window": s.window, "stride": s.stride}
            for name, s in self.texts.items()
        ]


def run_evaluation(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Mapping[str, Sequence[MultipleChoiceExample]] | None = None,
    texts: Mapping[str, str] | None = None,
    config: EvalConfig = EvalConfig(),
    progress: bool = True,
) -> EvalReport:
    """Score ``model`` on each task's examples (acc, acc_norm, exact_match, answer perplexity) and each text
    (perplexity)."""
    examples = {
        name: score_choices(model, tokenizer, task_examples, batch_size=config.batch_size, progress=progress)
        for name, task_examples in (tasks or {}).items()
    }
    return EvalReport(
        tasks={name: TaskScores.from_choice_scores(scores) for name, scores in examples.items()},
        examples=examples,
        texts={
            name: text_perplexity(model, tokenizer, text, window=config.window, stride=config.stride,
                                  batch_size=config.text_batch_size, progress=progress)
            for name, text in (texts or {}).items()
        },
    )
