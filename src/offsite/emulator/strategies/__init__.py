"""Emulator strategies: which blocks an emulator keeps and what fills the other positions.

Every module of this package that defines a strategy registers it (:func:`~.base.register`) when imported,
and all of them are imported here, so adding a strategy means adding one module. The interface is in
:mod:`.base`, what strategies draw on in :mod:`.inputs`, how users name them in :mod:`.spec`.
"""

import importlib
import pkgutil

from .base import STRATEGIES, Request, Strategy, StrategyResult, get_strategy, make_request, register
from .inputs import SIMILARITY_PRESETS, Calibration, SimilaritySource, StrategyInputs
from .planning import build_layer_map, plan_layer_map
from .spec import AdapterSpec, StrategySpec

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "SIMILARITY_PRESETS",
    "STRATEGIES",
    "AdapterSpec",
    "Calibration",
    "Request",
    "SimilaritySource",
    "Strategy",
    "StrategyInputs",
    "StrategyResult",
    "StrategySpec",
    "build_layer_map",
    "get_strategy",
    "make_request",
    "plan_layer_map",
    "register",
]
