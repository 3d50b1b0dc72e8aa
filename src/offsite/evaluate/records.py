"""Per-example evaluation records as JSONL, so that two runs can be compared example by example.

A record names its example twice: ``doc_id``, its position in the split (the harness's ``doc_id``), and
``prompt_id``, a hash of the exact texts scored, which differs whenever the prompt or a choice does.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Sequence

from ..data import MultipleChoiceExample
from ..errors import OffsiteError
from ..paths import atomic_path
from .scores import ChoiceScores


def prompt_id(example: MultipleChoiceExample) -> str:
    """The first 16 hex digits of the SHA-256 of every ``(context, continuation)`` request of ``example``."""
    requests = [example.request(i) for i in range(len(example.choices))]
    return hashlib.sha256(json.dumps(requests).encode("utf-8")).hexdigest()[:16]


def example_records(task: str, examples: Sequence[MultipleChoiceExample], scores: Sequence[ChoiceScores]) -> list[dict]:
    """One record per example: ids, every choice's log-likelihood and greediness, the predictions, the gold."""
    if len(examples) != len(scores):
        raise OffsiteError(f"{task}: {len(examples)} examples but {len(scores)} scores")
    return [
        {
            "task": task,
            "doc_id": index,
            "prompt_id": prompt_id(example),
            "loglikelihoods": list(score.loglikelihoods),
            "greedy": list(score.greedy),
            "num_tokens": list(score.num_tokens),
            "prediction": score.prediction,
            "prediction_norm": score.prediction_norm,
            "gold": list(score.correct) if score.golds else score.gold,
            "acc": score.acc,
            "acc_norm": score.acc_norm,
            "exact_match": score.exact_match,
        }
        for index, (example, score) in enumerate(zip(examples, scores))
    ]


def write_records(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write ``records`` as JSON lines, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
