"""Scores with their standard errors: one score over seeds, a difference of two, and a share of a gain.

A score measured on a fixed set of test questions varies for two reasons: the fine-tuning's randomness (seeds) and
which questions were drawn (the binomial standard error of each measured accuracy). A mean over seeds carries both,
combined in quadrature: the standard error of the mean across seeds (where there are two or more) and the mean of
the per-seed binomial standard errors (the same questions for every seed, so that part does not shrink with more
seeds). With one seed only the binomial part is left. Two scores of different models on the same questions are
treated as independent, which overstates the standard error of their difference: a difference said to exceed its
standard error does so at least as clearly as stated.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Estimate:
    """A mean over ``seeds`` seeds (0: a score without a seed, such as zero-shot) with its standard error (None where
    nothing gives one)."""

    mean: float
    se: float | None
    seeds: int = 1

    @property
    def resolved(self) -> bool:
        """Whether the estimate differs from zero by more than its standard error."""
        return self.se is not None and abs(self.mean) > self.se

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Sample:
    """One measured score: its value, its binomial standard error, and the seed of the run it came from."""

    value: float
    se: float | None
    seed: int | None = None


def _quadrature(*parts: float | None) -> float | None:
    present = [p for p in parts if p is not None]
    return math.sqrt(sum(p * p for p in present)) if present else None


def over_seeds(samples: Sequence[Sample]) -> Estimate | None:
    """The mean of ``samples`` (one per seed) with the standard error described in the module docstring."""
    if not samples:
        return None
    values = [s.value for s in samples]
    spread = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    binomial = statistics.fmean(s.se for s in samples) if all(s.se is not None for s in samples) else None
    seeds = len({s.seed for s in samples if s.seed is not None})
    return Estimate(statistics.fmean(values), _quadrature(spread, binomial), seeds)


def paired_difference(a: Sequence[Sample], b: Sequence[Sample]) -> Estimate | None:
    """``a − b`` seed by seed (a ``b`` of one sample without a seed, such as zero-shot, is subtracted from each ``a``),
    then :func:`over_seeds`; None when they share no seed."""
    if len(b) == 1 and b[0].seed is None:
        pairs = [(x, b[0]) for x in a]
    else:
        by_seed = {s.seed: s for s in b}
        pairs = [(x, by_seed[x.seed]) for x in a if x.seed in by_seed]
    differences = [Sample(x.value - y.value, None if x.se is None or y.se is None else _quadrature(x.se, y.se), x.seed)
                   for x, y in pairs]
    return over_seeds(differences)


def difference(a: Estimate | None, b: Estimate | None) -> Estimate | None:
    """``a − b`` of two independent estimates (e.g. two emulators' plug-ins); None where either is missing."""
    if a is None or b is None:
        return None
    se = None if a.se is None or b.se is None else _quadrature(a.se, b.se)
    return Estimate(a.mean - b.mean, se, min(a.seeds, b.seeds))


def gain_share(score: Estimate, zero_shot: Estimate, fine_tuned: Estimate) -> Estimate | None:
    """``(score − zero_shot) / (fine_tuned − zero_shot)`` in percent: how much of the full model's fine-tuning gain
    ``score`` recovers. Its standard error by the delta method, with ``zero_shot`` shared by numerator and
    denominator; None when the gain is exactly zero."""
    gain = fine_tuned.mean - zero_shot.mean
    if gain == 0:
        return None
    share = (score.mean - zero_shot.mean) / gain
    se = None
    if None not in (score.se, zero_shot.se, fine_tuned.se):
        shared = zero_shot.se ** 2
        variance = (score.se ** 2 + shared - 2 * share * shared + share ** 2 * (fine_tuned.se ** 2 + shared)) / gain ** 2
        se = 100 * math.sqrt(max(variance, 0.0))
    return Estimate(100 * share, se, min(score.seeds, fine_tuned.seeds))


def format_estimate(estimate: Estimate | None, signed: bool = False) -> str:
    """``mean ± se`` with one decimal (``–`` for a missing estimate, no ``±`` without a standard error)."""
    if estimate is None:
        return "–"
    text = f"{estimate.mean:+.1f}" if signed else f"{estimate.mean:.1f}"
    return text + (f" ± {estimate.se:.1f}" if estimate.se is not None else "")
