"""The validation score a run selects its adapter by, computed on the model being trained (for an emulator run, the
emulator: the data owner never has the full model). Each process scores its share; the results are combined."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..evaluate.forward import eval_mode, model_device, sum_target_logprobs
from ..evaluate.multiple_choice import score_choices
from ..evaluate.scores import TaskScores
from .data import DataSplit

LOWER_IS_BETTER = {"loss"}


def validate(
    accelerator: Accelerator, model: nn.Module, tokenizer: PreTrainedTokenizerBase, split: DataSplit, batch_size: int
) -> dict[str, float]:
    """``loss``: mean negative log-likelihood per target token; for multiple-choice data also ``acc`` and
    ``acc_norm`` (as lm-evaluation-harness scores them, whose gold-answer perplexity gives the loss)."""
    rank, world = accelerator.process_index, accelerator.num_processes
    if split.examples is not None:
        mine = split.examples[rank::world]
        scores = score_choices(model, tokenizer, mine, batch_size=batch_size, progress=False) if mine else []
        task = TaskScores.from_choice_scores(gather_object(scores))
        return {"loss": math.log(task.perplexity), "acc": task.acc, "acc_norm": task.acc_norm}
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
    """Whether ``score`` beats ``best`` (None: nothing yet) on ``metric``."""
    if best is None:
        return True
    return score < best if metric in LOWER_IS_BETTER else score > best
