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
    """One example's scores: the summed log-probability of each choice's continuation tokens given its context.

    ``num_tokens`` counts each continuation's tokens; ``choice_lengths`` are the divisors of ``acc_norm`` (the
    length in characters of the harness's choice string, :meth:`MultipleChoiceExample.norm_length`); ``greedy``
    says whether each continuation is the model's greedy continuation (every token the most likely one);
    ``golds`` lists every correct index where several are (empty: ``(gold,)``).
    """

    loglikelihoods: tuple[float, ...]
    num_tokens: tuple[int, ...]
    choice_lengths: tuple[int, ...]
    gold: int
    greedy: tuple[bool, ...]
    golds: tuple[int, ...] = ()

    @property
    def correct(self) -> tuple[int, ...]:
        return self.golds or (self.gold,)

    @property
    def prediction(self) -> int:
        """The choice ``acc`` picks: the highest summed log-probability."""
        return _argmax(self.loglikelihoods)

    @property
    def prediction_norm(self) -> int:
        """The choice ``acc_norm`` picks: the highest log-probability per character of the choice's text."""
        # The harness divides by len(choice) with numpy, so an empty choice gives -inf/nan; guard with max(1, ...).
        return _argmax([ll / max(1, n) for ll, n in zip(self.loglikelihoods, self.choice_lengths)])

    @property
    def acc(self) -> float:
        return float(self.prediction in self.correct)

    @property
    def acc_norm(self) -> float:
        return float(self.prediction_norm in self.correct)

    @property
    def exact_match(self) -> float:
        """1 when a correct choice is the model's greedy continuation (the harness's multiple-choice ``exact_match``)."""
        return float(any(self.greedy[i] for i in self.correct))


METRICS = ("acc", "acc_norm", "exact_match")


@dataclass(frozen=True)
class TaskScores:
    """Zero-shot multiple-choice metrics over ``n`` examples, each with the harness's standard error.

    ``perplexity`` is the token-level perplexity of the gold answers' continuations given their contexts
    (exp of the mean negative log-likelihood per answer token), the quantity answer-only fine-tuning minimises.
    Standard errors are None when ``n`` < 2. Every metric is computed for every task; a task's registry entry
    says which of them the harness reports for it (``exact_match`` for WebQuestions, where every choice is correct
    and ``acc`` says nothing).
    """

    acc: float
    acc_stderr: float | None
    acc_norm: float
    acc_norm_stderr: float | None
    exact_match: float
    exact_match_stderr: float | None
    perplexity: float
    n: int

    @classmethod
    def from_choice_scores(cls, scores: Sequence[ChoiceScores]) -> TaskScores:
        """Aggregate per-example scores."""
        if not scores:
            raise OffsiteError("cannot score an empty list of examples")
        metrics: dict[str, float | None] = {}
        for metric in METRICS:
            values = [getattr(s, metric) for s in scores]
            metrics[metric] = sum(values) / len(values)
            metrics[f"{metric}_stderr"] = mean_stderr(values)
        gold_ll = sum(s.loglikelihoods[s.gold] for s in scores)
        gold_tokens = sum(s.num_tokens[s.gold] for s in scores)
        return cls(
            **metrics,
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
