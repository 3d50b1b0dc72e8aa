"""The validation score a run selects its adapter by, computed on the model being trained (for an emulator run, the
emulator: the data owner never has the full model). Each process scores its share; the results are combined."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..evaluate.forward import eval_mode, model_device, sum_target_logprobs
from ..evaluate.multiple_choice import score_choices
from ..evaluate.scores import TaskScores
from .data import DataSplit

LOWER_IS_BETTER = {"loss", "perplexity"}


def validate(
    accelerator: Accelerator, model: nn.Module, tokenizer: PreTrainedTokenizerBase, split: DataSplit, batch_size: int
) -> dict[str, float]:
    """``loss``: mean negative log-likelihood per target token; for multiple-choice data also ``acc``, ``acc_norm``
    and ``exact_match`` (as lm-evaluation-harness scores them, whose gold-answer perplexity gives the loss)."""
    rank, world = accelerator.process_index, accelerator.num_processes
    if split.examples is not None:
        mine = split.examples[rank::world]
        scores = score_choices(model, tokenizer, mine, batch_size=batch_size, progress=False) if mine else []
        task = TaskScores.from_choice_scores(gather_object(scores))
        return {"loss": math.log(task.perplexity), "acc": task.acc, "acc_norm": task.acc_norm,
                "exact_match": task.exact_match}
    mine = split.pairs[rank::world]
    totals = torch.zeros(2, dtype=torch.float64, device=model_device(model))
    with eval_mode(model):
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            logprobs = sum_target_logprobs(model, [(c + t)[:-1] for c, t in batch], [t for _, t in batch])
            totals[0] -= logprobs.sum().double()
            totals[1] += sum(len(t) for _, t in batch)
    total, count = accelerator.reduce(totals, "sum").tolist()
    return {"loss": total / count}


def is_better(metric: str, score: float, best: float | None) -> bool:
    """Whether ``score`` beats ``best`` (None: nothing yet) on ``metric``; any number beats NaN."""
    if best is None or (math.isnan(best) and not math.isnan(score)):
        return True
    return score < best if metric in LOWER_IS_BETTER else score > best


@dataclass
class Selection:
    """Which evaluation a run keeps: the trained step with the best ``metric``. The untrained start (step 0) is
    evaluated too, for comparison, but is a candidate only with ``include_init``: otherwise a run whose score never
    improves would silently hand back what it started from. Records are ``{"step", "metric", "score", ...scores}``.
    """

    metric: str
    include_init: bool = False
    initial: dict[str, Any] | None = None
    best: dict[str, Any] | None = None

    def offer(self, step: int, scores: dict[str, float]) -> bool:
        """Consider the evaluation of ``step``; True when it becomes the one kept (the caller keeps its weights)."""
        record = {"metric": self.metric, "score": scores[self.metric], "step": step, **scores}
        if step == 0:
            self.initial = record
            if not self.include_init:
                return False
        if is_better(self.metric, record["score"], self.best["score"] if self.best else None):
            self.best = record
            return True
        return False

    def warning(self) -> str | None:
        """One line when the kept trained step scores worse than the untrained start, else None."""
        best, initial = self.best, self.initial
        if best is None or initial is None or best["step"] == 0 or not is_better(self.metric, initial["score"], best["score"]):
            return None
        return (f"the best trained step ({best['step']}: {self.metric} {best['score']:.4f}) is worse than the untrained "
                f"start (step 0: {initial['score']:.4f}); keeping step {best['step']} (--select-include-init would keep "
                "step 0)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Selection":
        return cls(**data)
