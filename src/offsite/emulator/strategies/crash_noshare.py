"""``crash-noshare``: CRaSh's clusters and representatives, removed positions left empty (the paper's ablation)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Request, Strategy, StrategyResult, choice_option, layers_option, register
from .crash import CLUSTER_OVER, CrashOptions
from .crash import build as build_crash
from .inputs import StrategyInputs


@dataclass(frozen=True)
class CrashNoShareOptions:
    cluster: str = "non-adapter"
    kept: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        choice_option("cluster", self.cluster, CLUSTER_OVER)
        object.__setattr__(self, "kept", layers_option("kept", self.kept))


def build(inputs: StrategyInputs, request: Request, options: CrashNoShareOptions) -> StrategyResult:
    return build_crash(inputs, request, CrashOptions(cluster=options.cluster, fill="none", kept=options.kept))


register(Strategy("crash-noshare", "CRaSh's representatives without sharing: removed positions stay empty",
                  CrashNoShareOptions, build))
