"""The layer map of an emulator: for each of the base model's L positions, which original block fills it.

A position holds its own block (kept, or an adapter block), a shared kept block (tied weights), a frozen
untied pretrained copy of an adapter block (the CRaSh authors' "repeat-all"), or nothing (removed). Which
blocks a strategy keeps and how it fills the rest is in :mod:`offsite.emulator.strategies`.

Adapter layers are trainable and always sit at their own positions; elsewhere an adapter block can only
appear as a frozen copy, never tied to the trainable block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import OffsiteError


@dataclass(frozen=True)
class LayerMap:
    """``sources[p]`` is the original block at position ``p`` (None: removed); ``adapter_layers`` are trainable.

    ``copies`` are the positions filled by a frozen, untied copy of an adapter block's pretrained weights
    (copies of one adapter block are tied to each other, never to the trainable block).
    """

    sources: tuple[int | None, ...]
    adapter_layers: tuple[int, ...]
    copies: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for position in self.copies:
            if not 0 <= position < len(self.sources) or self.sources[position] not in self.adapter_layers:
                raise OffsiteError(f"layer map position {position} is marked as a copy but holds no adapter block")
            if self.sources[position] == position:
                raise OffsiteError(f"layer map position {position} holds adapter block {position} itself, not a copy")
        for layer in self.adapter_layers:
            if not 0 <= layer < len(self.sources) or self.sources[layer] != layer:
                raise OffsiteError(f"adapter layer {layer} must sit at its own position in the layer map")
        for position, source in enumerate(self.sources):
            if source in self.adapter_layers and source != position and position not in self.copies:
                raise OffsiteError(f"adapter block {source} fills position {position}: only a frozen copy may")

    @property
    def num_layers(self) -> int:
        """Depth of the base model."""
        return len(self.sources)

    @property
    def emulator_sources(self) -> tuple[int, ...]:
        """The original block at each position of the emulator, in order (its depth is the length)."""
        return tuple(s for s in self.sources if s is not None)

    @property
    def emulator_copies(self) -> tuple[bool, ...]:
        """For each position of the emulator, whether it holds a frozen copy of an adapter block."""
        return tuple(p in self.copies for p, s in enumerate(self.sources) if s is not None)

    @property
    def kept_layers(self) -> tuple[int, ...]:
        """Distinct original blocks the emulator holds, adapter included."""
        return tuple(sorted(set(self.emulator_sources)))

    @property
    def frozen_layers(self) -> tuple[int, ...]:
        """Kept blocks that are not part of the adapter (shipped frozen in the emulator)."""
        return tuple(s for s in self.kept_layers if s not in self.adapter_layers)

    @property
    def copied_layers(self) -> tuple[int, ...]:
        """Adapter blocks that also appear as frozen copies (shipped once more, frozen, in the emulator)."""
        return tuple(sorted({self.sources[p] for p in self.copies}))

    @property
    def first_copy_positions(self) -> dict[int, int]:
        """For each copied adapter block, the emulator position of its first frozen copy (the others are tied to it)."""
        positions: dict[int, int] = {}
        for position, (source, copy) in enumerate(zip(self.emulator_sources, self.emulator_copies)):
            if copy:
                positions.setdefault(source, position)
        return positions

    @property
    def adapter_positions(self) -> tuple[int, ...]:
        """Positions in the emulator's block list that hold the trainable adapter blocks, in adapter order."""
        positions = {s: i for i, (s, copy) in enumerate(zip(self.emulator_sources, self.emulator_copies)) if not copy}
        return tuple(positions[a] for a in self.adapter_layers)

    def describe(self) -> str:
        """One line: each position's source block; ``*`` marks adapter blocks, ``c`` frozen copies of them,
        ``·`` removed positions."""
        def cell(position: int, source: int | None) -> str:
            if source is None:
                return "·"
            if position in self.copies:
                return f"{source}c"
            return f"{source}*" if source in self.adapter_layers else str(source)

        return " ".join(cell(p, s) for p, s in enumerate(self.sources))

    def to_json(self) -> dict:
        return {"sources": list(self.sources), "adapter_layers": list(self.adapter_layers), "copies": list(self.copies)}

    @classmethod
    def from_json(cls, data: dict) -> "LayerMap":
        """A layer map from its JSON form (``copies`` may be absent: bundles written before it existed)."""
        validate_adapter_layers(list(data["adapter_layers"]), len(data["sources"]))
        return cls(tuple(data["sources"]), tuple(data["adapter_layers"]), tuple(data.get("copies", ())))


def adapter_from_pads(first: int, last: int, num_layers: int) -> tuple[int, ...]:
    """The first ``first`` and last ``last`` blocks (Offsite-Tuning's default adapter is ``2, 2``)."""
    if first < 0 or last < 0 or first + last == 0:
        raise OffsiteError(f"adapter pads must be non-negative and not both zero, got {first},{last}")
    if first + last >= num_layers:
        raise OffsiteError(f"adapter {first},{last} leaves no layer to emulate in a {num_layers}-layer model")
    return tuple(range(first)) + tuple(range(num_layers - last, num_layers))


def validate_adapter_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Check explicit adapter indices: in range, no repeats, not every layer; returned sorted."""
    for layer in layers:
        if not 0 <= layer < num_layers:
            raise OffsiteError(f"adapter layer {layer} is out of range: this model has layers 0..{num_layers - 1}")
    if len(set(layers)) != len(layers):
        raise OffsiteError(f"adapter layers overlap (an index repeats): {','.join(map(str, layers))}")
    if not layers:
        raise OffsiteError("the adapter needs at least one layer")
    if len(layers) >= num_layers:
        raise OffsiteError("the adapter cannot hold every layer: nothing would be emulated")
    return tuple(sorted(layers))
