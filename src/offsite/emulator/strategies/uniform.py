"""``uniform`` (Offsite-Tuning): keep blocks at an even stride among the non-adapter layers; no sharing.

Kept: ``k`` of the ``n`` non-adapter layers at indices ``round(i * (n-1)/(k-1))``, rounded with Python's
``round`` as in the Offsite-Tuning code (``k = 1`` keeps the first), or the explicit ``kept`` layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .base import Request, Strategy, StrategyResult, layers_option, register
from .fill import fill_layer_map
from .inputs import StrategyInputs


@dataclass(frozen=True)
class UniformOptions:
    kept: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kept", layers_option("kept", self.kept))


def stride_keep(candidates: Sequence[int], keep: int) -> tuple[int, ...]:
    """Offsite-Tuning's stride rule: ``keep`` of ``candidates`` at indices ``round(i * (n-1)/(keep-1))``."""
    if keep == 1:
        return (candidates[0],)
    stride = (len(candidates) - 1) / (keep - 1)
    return tuple(candidates[round(i * stride)] for i in range(keep))


def build(inputs: StrategyInputs, request: Request, options: UniformOptions) -> StrategyResult:
    kept = options.kept or stride_keep(request.candidates, request.keep)
    return StrategyResult(fill_layer_map(request, kept), {"kept_layers": sorted(kept)})


register(Strategy("uniform", "Offsite-Tuning: keep blocks at an even stride; removed positions stay empty",
                  UniformOptions, build))
