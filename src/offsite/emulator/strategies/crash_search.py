"""``crash-search`` (beyond the paper): per cluster, choose the kept block and whether to share it by the
emulator's own loss on the calibration samples, greedily and without training.

Start from CRaSh's clusters of the non-adapter layers (``keep`` of them), each keeping its middle member,
nothing shared (``crash-noshare``). Then, cluster by cluster from the first, try every member as the kept
block, shared into the cluster's removed positions or not, the other clusters as chosen so far, and keep the
choice whose emulator has the lowest mean token loss (a tie keeps the earlier choice).

Cost: one loss evaluation of the start, plus 2|c| − 1 for every cluster c of more than one layer, so at most
2n − keep + 1 for n non-adapter layers; each evaluation is one forward pass of an emulator over every
calibration batch (``details["search"]`` records the counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tqdm.auto import tqdm

from ...similarity.language_loss import mean_token_nll
from ..layer_map import LayerMap
from ..view import emulator_view
from .base import Request, Strategy, StrategyResult, register
from .crash import cluster_layers
from .inputs import StrategyInputs

Choice = tuple[int, bool]  # (kept block, shared into the cluster's removed positions)


@dataclass(frozen=True)
class CrashSearchOptions:
    """No options: the clusters are CRaSh's over the non-adapter layers; the loss decides the rest."""


def choice_map(request: Request, clusters: Sequence[Sequence[int]], choices: Sequence[Choice]) -> LayerMap:
    """The layer map of one kept block per cluster, shared into the cluster's other positions where chosen."""
    sources: list[int | None] = [layer if layer in request.adapter else None for layer in range(request.num_layers)]
    for cluster, (kept, shared) in zip(clusters, choices):
        for position in cluster:
            sources[position] = kept if position == kept or shared else None
    return LayerMap(tuple(sources), request.adapter)


def build(inputs: StrategyInputs, request: Request, options: CrashSearchOptions) -> StrategyResult:
    clustering, representatives = cluster_layers(inputs.similarity(), request, "non-adapter")
    clusters = clustering.clusters
    calibration = inputs.calibration()

    def loss(choices: Sequence[Choice]) -> float:
        with emulator_view(calibration.model, choice_map(request, clusters, choices)) as emulator:
            return mean_token_nll(emulator, calibration.batches)

    choices: list[Choice] = [(kept, False) for kept in representatives]
    total = 1 + sum(2 * len(c) - 1 for c in clusters if len(c) > 1)
    with tqdm(total=total, desc="crash-search", unit="emulator", disable=not inputs.progress) as bar:
        best = start = loss(choices)
        bar.update(1)
        for index, cluster in enumerate(clusters):
            if len(cluster) == 1:
                continue
            chosen = choices[index]
            for candidate in [(member, shared) for member in cluster for shared in (False, True)]:
                if candidate == choices[index]:
                    continue
                value = loss([*choices[:index], candidate, *choices[index + 1 :]])
                bar.update(1)
                if value < best:
                    best, chosen = value, candidate
            choices[index] = chosen
    search = {
        "choices": [{"cluster": list(c), "kept": k, "shared": s} for c, (k, s) in zip(clusters, choices)],
        "calibration_loss_start": start,
        "calibration_loss": best,
        "evaluations": total,
        "forward_passes": total * len(calibration.batches.batches),
        "calibration_tokens": calibration.batches.num_tokens,
    }
    layer_map = choice_map(request, clusters, choices)
    return StrategyResult(layer_map, {"clustering": clustering.to_json(), "kept_layers": sorted(k for k, _ in choices),
                                      "search": search})


register(Strategy("crash-search", "CRaSh's clusters; per cluster the kept block and whether to share it chosen "
                  "greedily by the emulator's loss on calibration samples", CrashSearchOptions, build))
