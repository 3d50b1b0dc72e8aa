"""Result records of evaluation and the metrics computed from them, defined as lm-evaluation-harness defines them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from ..errors import OffsiteError


def _argmax(values: Sequence[float]) -> int:
    # The first of equal maxima, as numpy's argmax (the harness's) picks it.
    return max(range(len(values)), key=lambda i: (values[i], -i))


def mean_stderr(values: Sequence[float]) -> float | None:
    """Sample standard deviation over sqrt(n), the harness's ``mean_stderr``; None for fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


@dataclass(frozen=True)
class ChoiceScores:
    """One example's scores: the summed log-probability of each choice's continuation tokens given the prompt.

    ``num_tokens`` counts each continuation's tokens; ``choice_lengths`` are the characters of each choice's text
    without the leading space (the divisor of ``acc_norm``).
    """

    loglikelihoods: tuple[float, ...]
    num_tokens: tuple[int, ...]
    choice_lengths: tuple[int, ...]
    gold: int

    @property
    def prediction(self) -> int:
        """The choice ``acc`` picks: the highest summed log-probability."""
        return _argmax(self.loglikelihoods)

    @property
    def prediction_norm(self) -> int:
        """The choice ``acc_norm`` picks: the highest log-probability per character of the choice's text."""
        # The harness divides by len(choice) with numpy, so an empty choice gives -inf/nan; guard with max(1, ...).
        return _argmax([ll / max(1, n) for ll, n in zip(self.loglikelihoods, self.choice_lengths)])


@dataclass(frozen=True)
class TaskScores:
    """Zero-shot multiple-choice metrics over ``n`` examples.

    ``perplexity`` is the token-level perplexity of the gold answers' continuations given their prompts
    (exp of the mean negative log-likelihood per answer token), the quantity answer-only fine-tuning minimises.
    Standard errors are None when ``n`` < 2.
    """

    acc: float
    acc_stderr: float | None
    acc_norm: float
    acc_norm_stderr: float | None
    perplexity: float
    n: int

    @classmethod
    def from_choice_scores(cls, scores: Sequence[ChoiceScores]) -> TaskScores:
        """Aggregate per-example scores."""
        if not scores:
            raise OffsiteError("cannot score an empty list of examples")
        correct = [float(s.prediction == s.gold) for s in scores]
        correct_norm = [float(s.prediction_norm == s.gold) for s in scores]
        gold_ll = sum(s.loglikelihoods[s.gold] for s in scores)
        gold_tokens = sum(s.num_tokens[s.gold] for s in scores)
        return cls(
            acc=sum(correct) / len(scores),
            acc_stderr=mean_stderr(correct),
            acc_norm=sum(correct_norm) / len(scores),
            acc_norm_stderr=mean_stderr(correct_norm),
            perplexity=math.exp(-gold_ll / gold_tokens),
            n=len(scores),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PerplexityScore:
    """Token-level perplexity of a text: exp of the mean negative log-likelihood over ``num_tokens`` scored tokens.

    Every token is scored once, with up to ``window`` - 1 tokens of context; windows advance by ``stride`` tokens.
    """

    perplexity: float
    nll: float
    num_tokens: int
    window: int
    stride: int

    def to_dict(self) -> dict:
        return asdict(self)
