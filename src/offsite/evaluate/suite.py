"""One evaluation run: several multiple-choice tasks and text files scored with the same model object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data import MultipleChoiceExample
from .multiple_choice import evaluate_multiple_choice
from .perplexity import text_perplexity
from .scores import PerplexityScore, TaskScores


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
    """Scores per task name and per text name."""

    tasks: dict[str, TaskScores] = field(default_factory=dict)
    texts: dict[str, PerplexityScore] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "tasks": {name: s.to_dict() for name, s in self.tasks.items()},
            "texts": {name: s.to_dict() for name, s in self.texts.items()},
        }

    def task_rows(self) -> list[dict]:
        """One row per task for :func:`offsite.report.table.format_table`, in percent."""
        def pct(value: float | None) -> str | None:
            return None if value is None else f"{100 * value:.2f}"

        return [
            {"task": name, "n": s.n, "acc": pct(s.acc), "± acc": pct(s.acc_stderr), "acc_norm": pct(s.acc_norm),
             "± acc_norm": pct(s.acc_norm_stderr), "answer ppl": f"{s.perplexity:.3f}"}
            for name, s in self.tasks.items()
        ]

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
    """Score ``model`` on each task's examples (acc, acc_norm, answer perplexity) and each text (perplexity)."""
    return EvalReport(
        tasks={
            name: evaluate_multiple_choice(model, tokenizer, examples, batch_size=config.batch_size, progress=progress)
            for name, examples in (tasks or {}).items()
        },
        texts={
            name: text_perplexity(model, tokenizer, text, window=config.window, stride=config.stride,
                                  batch_size=config.text_batch_size, progress=progress)
            for name, text in (texts or {}).items()
        },
    )
