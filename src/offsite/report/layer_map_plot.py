"""A picture of emulator layer maps: one row per strategy, one cell per position of the base model."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..emulator.layer_map import LayerMap
from .figures import save_figure


def save_layer_maps(maps: Mapping[str, LayerMap], path: str | os.PathLike) -> None:
    """Each position shows the number of the original block that fills it, coloured by that block; adapter
    positions are outlined in black, removed positions are left blank. Layers are numbered from 0."""
    depth = next(iter(maps.values())).num_layers
    figure = Figure(figsize=(max(6.0, 0.32 * depth + 1.5), 0.55 * len(maps) + 1.0))
    ax = figure.subplots()
    colours = colormaps["viridis"]
    for row, (name, layer_map) in enumerate(maps.items()):
        y = len(maps) - 1 - row
        for position, source in enumerate(layer_map.sources):
            if source is None:
                ax.add_patch(Rectangle((position, y), 1, 1, facecolor="white", edgecolor="#dddddd"))
                continue
            adapter = source in layer_map.adapter_layers
            ax.add_patch(Rectangle((position, y), 1, 1, facecolor=colours(source / max(1, depth - 1)),
                                   edgecolor="black" if adapter else "white", linewidth=2 if adapter else 0.5))
            ax.text(position + 0.5, y + 0.5, str(source), ha="center", va="center", fontsize=6,
                    color="white" if source / max(1, depth - 1) < 0.6 else "black")
    ax.set_xlim(0, depth)
    ax.set_ylim(0, len(maps))
    ax.set_yticks(np.arange(len(maps)) + 0.5, list(reversed(list(maps))))
    ax.set_xticks(np.arange(depth) + 0.5, [str(p) for p in range(depth)], fontsize=6)
    ax.set_xlabel("position in the base model (layers from 0); number = original block filling it; "
                  "outlined = adapter; blank = removed", fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    figure.tight_layout()
    save_figure(figure, path)
