"""A strategy as a user names it: name, options and (optionally) its own adapter, from a string or a mapping.

On the command line: ``NAME[:KEY=VALUE]...``, e.g. ``crash:cluster=all:fill=repeat-all:tie=higher`` or
``uniform:adapter_layers=0,1,22,23:kept=2,5,7,10,13,16,18,21``. In YAML: the same string, or a mapping
``{name: crash, fill: repeat-all, tie: higher, adapter_layers: [0, 5, 18, 23], label: CRaSh (authors)}``.
Besides the strategy's own options, ``adapter`` (FIRST,LAST), ``adapter_layers`` (explicit indices) and
``label`` (the name in tables and directories) are understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import OffsiteError
from ..layer_map import adapter_from_pads, validate_adapter_layers
from .base import Strategy, get_strategy, layers_option

DEFAULT_PADS = (2, 2)


@dataclass(frozen=True)
class AdapterSpec:
    """The trainable blocks: the first and last ``pads`` blocks (default 2, 2), or explicit ``layers``."""

    pads: tuple[int, int] | None = None
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.pads is not None and self.layers is not None:
            raise OffsiteError("give the adapter as FIRST,LAST pads or as explicit layers, not both")
        pads = layers_option("adapter", self.pads)
        if pads is not None and len(pads) != 2:
            raise OffsiteError(f"adapter takes FIRST,LAST (e.g. 2,2), got {self.pads!r}")
        object.__setattr__(self, "pads", pads)
        object.__setattr__(self, "layers", layers_option("adapter_layers", self.layers))

    def resolve(self, num_layers: int) -> tuple[int, ...]:
        """The sorted adapter layer indices in a ``num_layers``-block model."""
        if self.layers is not None:
            return validate_adapter_layers(list(self.layers), num_layers)
        return adapter_from_pads(*(self.pads or DEFAULT_PADS), num_layers)

    def to_config(self) -> dict[str, list[int]]:
        if self.layers is not None:
            return {"adapter_layers": list(self.layers)}
        return {"adapter": list(self.pads or DEFAULT_PADS)}

    def describe(self) -> str:
        if self.layers is not None:
            return "layers " + ",".join(map(str, self.layers))
        first, last = self.pads or DEFAULT_PADS
        return f"first {first} + last {last} blocks"


SPEC_KEYS = ("adapter", "adapter_layers", "label")


def _text_value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


@dataclass(frozen=True)
class StrategySpec:
    """A strategy's ``name``, its ``options`` as (name, value) pairs, its own ``adapter`` (None: the default of
    the command or experiment) and a ``label`` for tables (default: its text)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    adapter: AdapterSpec | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        raw = {key.replace("-", "_"): value for key, value in dict(self.options).items()}
        settings = self.strategy.parse_options(raw)
        # Keep the options as parsed (a list of layers given as text or as a list compares equal).
        object.__setattr__(self, "options", tuple((key, getattr(settings, key)) for key in raw))

    @property
    def strategy(self) -> Strategy:
        return get_strategy(self.name)

    def settings(self) -> Any:
        """The strategy's options object."""
        return self.strategy.parse_options(dict(self.options))

    @property
    def text(self) -> str:
        """The spec as it would be written on the command line."""
        parts = [self.name, *(f"{key}={_text_value(value)}" for key, value in self.options)]
        if self.adapter is not None:
            parts += [f"{key}={_text_value(value)}" for key, value in self.adapter.to_config().items()]
        return ":".join(parts)

    @property
    def title(self) -> str:
        """The name in tables: the label, or the text."""
        return self.label or self.text

    @property
    def slug(self) -> str:
        """A directory name: the title with anything but letters, digits, ``.``, ``_`` and ``-`` replaced."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.title.replace("=", "-")).strip("_")

    def to_config(self) -> str | dict[str, Any]:
        """The plain name where nothing else is set, else a mapping (the YAML form)."""
        if not self.options and self.adapter is None and self.label is None:
            return self.name
        config: dict[str, Any] = {"name": self.name}
        config.update({key: list(v) if isinstance(v, tuple) else v for key, v in self.options})
        config.update(self.adapter.to_config() if self.adapter else {})
        return {**config, **({"label": self.label} if self.label else {})}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "label": self.label,
                "options": {key: list(v) if isinstance(v, tuple) else v for key, v in self.options},
                "adapter": self.adapter.to_config() if self.adapter else None}

    @classmethod
    def parse(cls, text: str) -> "StrategySpec":
        """From ``NAME[:KEY=VALUE]...``."""
        name, *parts = text.strip().split(":")
        values = {}
        for part in parts:
            key, equals, value = part.partition("=")
            if not equals or not key.strip():
                raise OffsiteError(f"strategy option {part!r} in {text!r} is not KEY=VALUE")
            values[key.strip()] = value.strip()
        return cls.from_values(name.strip(), values)

    @classmethod
    def from_config(cls, value: str | Mapping[str, Any]) -> "StrategySpec":
        """From a YAML entry: a string (as on the command line) or a mapping with ``name``."""
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, Mapping) or "name" not in value:
            raise OffsiteError(f"a strategy is a name, NAME:KEY=VALUE..., or a mapping with 'name'; got {value!r}")
        values = dict(value)
        return cls.from_values(str(values.pop("name")), values)

    @classmethod
    def from_values(cls, name: str, values: Mapping[str, Any]) -> "StrategySpec":
        values = {key.replace("-", "_"): value for key, value in values.items()}
        adapter = None
        if "adapter" in values or "adapter_layers" in values:
            adapter = AdapterSpec(values.get("adapter"), values.get("adapter_layers"))
        options = tuple((key, value) for key, value in values.items() if key not in SPEC_KEYS)
        label = values.get("label")
        return cls(name, options, adapter, None if label is None else str(label))
