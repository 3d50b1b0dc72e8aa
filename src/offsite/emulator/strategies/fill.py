"""Filling the removed positions of an emulator, so that it keeps more of the base model's depth.

- ``none``: removed positions stay empty (the emulator is shallower).
- ``repeat-non-trainable``: the nearest kept non-adapter block, tied (CRaSh's sharing; the authors'
  "repeat-non-trainable", which avoids adapter blocks where it can, and it always can here).
- ``repeat-all``: the nearest of the kept and the adapter blocks; an adapter block fills as a frozen,
  untied copy of its pretrained weights (the authors' "repeat-all", their interpolation scripts' "CRaSh").
- ``cluster``: only a kept (or adapter) block of the position's own cluster, the nearest; empty if none.

Ties between two equally near blocks go to the ``lower`` (earlier) or the ``higher`` one (the authors').
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..layer_map import LayerMap
from .base import Request

TIES = ("lower", "higher")


def nearest(position: int, layers: Sequence[int], tie: str) -> int:
    """The layer of ``layers`` nearest to ``position``; on a tie, the ``tie`` ("lower" or "higher") one."""
    sign = 1 if tie == "lower" else -1
    return min(layers, key=lambda layer: (abs(layer - position), sign * layer))


# A fill rule: (position, request, kept, tie, clusters) -> the block that fills it, or None.
Rule = Callable[[int, Request, Sequence[int], str, Sequence[Sequence[int]]], "int | None"]


def _own_cluster(position: int, request: Request, kept: Sequence[int], tie: str, clusters) -> int | None:
    cluster = next(c for c in clusters if position in c)
    members = [layer for layer in cluster if layer in kept or layer in request.adapter]
    return nearest(position, members, tie) if members else None


FILLS: dict[str, Rule] = {
    "none": lambda position, request, kept, tie, clusters: None,
    "repeat-non-trainable": lambda position, request, kept, tie, clusters: nearest(position, kept, tie),
    "repeat-all": lambda position, request, kept, tie, clusters: nearest(position, [*kept, *request.adapter], tie),
    "cluster": _own_cluster,
}


def fill_layer_map(
    request: Request,
    kept: Sequence[int],
    fill: str = "none",
    tie: str = "lower",
    clusters: Sequence[Sequence[int]] = (),
) -> LayerMap:
    """The layer map with the adapter and ``kept`` at their own positions and the rest filled by ``fill``.

    ``clusters`` (every layer in one of them) are needed by the ``cluster`` rule only.
    """
    sources: list[int | None] = []
    copies = []
    for position in range(request.num_layers):
        if position in request.adapter or position in kept:
            sources.append(position)
            continue
        source = FILLS[fill](position, request, kept, tie, clusters)
        sources.append(source)
        if source in request.adapter:
            copies.append(position)
    return LayerMap(tuple(sources), request.adapter, tuple(copies))
