"""``importance``: keep the ``keep`` non-adapter blocks that matter most; removed positions stay empty.

``metric``: ``drop-one`` (default; the perplexity of the calibration samples with the block removed),
``influence`` (1 − cos of the block's input and output) or ``angular`` (arccos of that cosine / π); see
:mod:`offsite.similarity.importance`. Ties go to the lower layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...similarity.importance import METRICS
from .base import Request, Strategy, StrategyResult, choice_option, register
from .fill import fill_layer_map
from .inputs import StrategyInputs


@dataclass(frozen=True)
class ImportanceOptions:
    metric: str = "drop-one"

    def __post_init__(self) -> None:
        choice_option("metric", self.metric, METRICS)


def build(inputs: StrategyInputs, request: Request, options: ImportanceOptions) -> StrategyResult:
    scores = inputs.importance(drop_one=options.metric == "drop-one").scores(options.metric)
    ranked = sorted(request.candidates, key=lambda layer: (-scores[layer], layer))
    kept = sorted(ranked[: request.keep])
    return StrategyResult(fill_layer_map(request, kept), {"kept_layers": kept, "metric": options.metric})


register(Strategy("importance", "keep the most important blocks (drop-one perplexity, block influence or angular "
                  "distance); removed positions stay empty", ImportanceOptions, build))
