"""The strategy interface: what a strategy is asked for, what it returns, and the registry of strategies by name.

A strategy is one module in this package that calls :func:`register` with a :class:`Strategy`: a name, a
one-line summary, a frozen dataclass of its options (whose defaults are its default behaviour) and a
``build(inputs, request, options)`` function. ``inputs`` (:class:`~.inputs.StrategyInputs`) hands out, on
request, layer similarity, layer importance and calibration batches; ``request`` says the depth, the adapter
and how many further blocks to keep. ``build`` returns the layer map and details for the bundle's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping

from ...errors import OffsiteError
from ..layer_map import LayerMap, validate_adapter_layers
from .inputs import StrategyInputs


@dataclass(frozen=True)
class Request:
    """An emulator of a ``num_layers``-block model with ``adapter`` trainable and ``keep`` further blocks kept."""

    num_layers: int
    adapter: tuple[int, ...]
    keep: int

    @property
    def candidates(self) -> tuple[int, ...]:
        """The non-adapter layers, among which the kept blocks are chosen."""
        return tuple(layer for layer in range(self.num_layers) if layer not in self.adapter)


def make_request(
    num_layers: int, adapter: Iterable[int], keep: int | None, kept: tuple[int, ...] | None = None
) -> Request:
    """Check a request before any costly work; ``kept`` (explicit kept layers) implies ``keep`` when it is None."""
    adapter = validate_adapter_layers(list(adapter), num_layers)
    candidates = [layer for layer in range(num_layers) if layer not in adapter]
    if kept is not None:
        outside = [layer for layer in kept if layer not in candidates]
        if outside:
            raise OffsiteError(f"kept layer {outside[0]} is not a non-adapter layer of this {num_layers}-layer model")
        if len(set(kept)) != len(kept):
            raise OffsiteError(f"kept layers repeat an index: {','.join(map(str, kept))}")
        if keep is not None and keep != len(kept):
            raise OffsiteError(f"--keep {keep} disagrees with the {len(kept)} explicit kept layers")
        keep = len(kept)
    if keep is None:
        raise OffsiteError("say how many blocks to keep (--keep) or which (kept layers)")
    if not 1 <= keep <= len(candidates):
        raise OffsiteError(
            f"--keep {keep} is not possible: choose 1..{len(candidates)} (the non-adapter layers of this model)"
        )
    return Request(num_layers, adapter, keep)


@dataclass(frozen=True)
class StrategyResult:
    """A strategy's answer: the layer map, and details (JSON types) for the bundle's manifest."""

    layer_map: LayerMap
    details: dict[str, Any]


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    options: type
    build: Callable[[StrategyInputs, Request, Any], StrategyResult]

    def parse_options(self, values: Mapping[str, Any]) -> Any:
        """The options object for ``values`` (option name -> value); unknown names are one clear error."""
        known = [f.name for f in fields(self.options)]
        unknown = [key for key in values if key not in known]
        if unknown:
            choices = ", ".join(known) or "none"
            raise OffsiteError(f"strategy {self.name} has no option {unknown[0]!r}; its options: {choices}")
        return self.options(**values)


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to :data:`STRATEGIES` under its name."""
    if strategy.name in STRATEGIES:
        raise ValueError(f"strategy {strategy.name!r} is registered twice")
    STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise OffsiteError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def layers_option(name: str, value: Any) -> tuple[int, ...] | None:
    """An option that lists layers: None, ``"1,2,3"`` or a list of integers."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(int(part) for part in parts if not isinstance(part, str) or part.strip())
    except (TypeError, ValueError):
        raise OffsiteError(f"option {name} takes comma-separated layer indices, got {value!r}") from None


def choice_option(name: str, value: Any, choices: Iterable[str]) -> str:
    """An option with a fixed set of values."""
    choices = tuple(choices)
    if value not in choices:
        raise OffsiteError(f"option {name}={value} is not one of: {', '.join(choices)}")
    return value
