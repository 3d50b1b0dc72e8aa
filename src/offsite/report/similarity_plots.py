"""Figures of the layer-similarity analysis: CKA heatmaps, adjacent-layer CKA, and lens grids.

Built on matplotlib's object API (``Figure``, rendered by Agg), so no display and no global pyplot state.
Every file is written atomically. Layers are numbered from 0 (the first block).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from .figures import save_figure

Clusters = Sequence[Sequence[int]]


def _layer_ticks(count: int) -> np.ndarray:
    """Tick positions 0..count-1, thinned to at most about 16 labels."""
    return np.arange(0, count, max(1, int(np.ceil(count / 16))))


def _boundaries(clusters: Clusters) -> list[float]:
    """Positions between clusters, half-way between the last layer of one and the first of the next."""
    return [cluster[0] - 0.5 for cluster in clusters[1:]]


def draw_cka_heatmap(ax: Axes, cka: np.ndarray, clusters: Clusters, title: str):
    """Draw ``cka`` (L×L, in [0, 1]) with each cluster outlined on the diagonal; return the image for a colour bar."""
    image = ax.imshow(cka, vmin=0.0, vmax=1.0, cmap="magma", origin="lower", interpolation="nearest")
    for cluster in clusters:
        start, size = cluster[0] - 0.5, len(cluster)
        ax.add_patch(Rectangle((start, start), size, size, fill=False, edgecolor="cyan", linewidth=1.5))
    for boundary in _boundaries(clusters):
        ax.axhline(boundary, color="cyan", linewidth=0.5, alpha=0.5)
        ax.axvline(boundary, color="cyan", linewidth=0.5, alpha=0.5)
    ticks = _layer_ticks(cka.shape[0])
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("layer")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    return image


def draw_importance(ax: Axes, cosine_measures: Mapping[str, Sequence[float]], drop_one: Sequence[float] | None,
                    full_perplexity: float | None) -> None:
    """Per layer: the cosine measures (left axis) and drop-one perplexity (right axis, log scale), with the full
    model's perplexity as a dotted line."""
    for name, values in cosine_measures.items():
        ax.plot(np.arange(len(values)), values, marker="o", markersize=3, label=name)
    ax.set_ylabel("1 − cos, arccos/π")
    ax.set_xlabel("layer")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if drop_one is not None:
        right = ax.twinx()
        right.plot(np.arange(len(drop_one)), drop_one, color="tab:red", marker="s", markersize=3,
                   label="drop-one perplexity")
        if full_perplexity is not None:
            right.axhline(full_perplexity, color="tab:red", linestyle=":", linewidth=1, label="full model")
        right.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:,.0f}")
        right.yaxis.set_major_formatter(plain)
        # Within one decade there is no major tick to label: label the minor ones instead.
        narrow = max(drop_one) < 10 * min(drop_one)
        right.yaxis.set_minor_formatter(plain if narrow else NullFormatter())
        right.set_ylabel("perplexity", color="tab:red")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4, frameon=False)


def save_cka_heatmap(
    path: str | os.PathLike,
    cka: np.ndarray,
    clusters: Clusters,
    title: str,
    cosine_measures: Mapping[str, Sequence[float]] | None = None,
    drop_one: Sequence[float] | None = None,
    full_perplexity: float | None = None,
) -> None:
    """One CKA heatmap with its clusters outlined, as a PNG; with ``cosine_measures`` (name -> value per layer),
    the layers' importance is drawn under it on the same layer axis (see :func:`draw_importance`)."""
    if cosine_measures is None:
        figure = Figure(figsize=(6.2, 5.2))
        ax = figure.add_subplot()
        image = draw_cka_heatmap(ax, cka, clusters, title)
        figure.colorbar(image, ax=ax, label="linear CKA")
        save_figure(figure, path)
        return
    figure = Figure(figsize=(6.2, 8.0))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1.5]})
    image = draw_cka_heatmap(top, cka, clusters, title)
    top.set_aspect("auto")  # square cells would narrow the heatmap and break the shared layer axis
    top.set_xlabel("")
    draw_importance(bottom, cosine_measures, drop_one, full_perplexity)
    # The colour bar sits in an inset so that both panels keep the same width (one layer axis).
    figure.colorbar(image, cax=top.inset_axes([1.03, 0.0, 0.035, 1.0]), label="linear CKA")
    save_figure(figure, path)


def save_cka_comparison(path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray, Clusters]]) -> None:
    """Several models' CKA heatmaps side by side (the paper's Figure 2); ``panels`` are (title, cka, clusters)."""
    figure = Figure(figsize=(4.6 * len(panels) + 0.8, 4.6))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, (title, cka, clusters) in zip(axes, panels):
        image = draw_cka_heatmap(ax, cka, clusters, title)
    figure.colorbar(image, ax=list(axes), label="linear CKA", shrink=0.85)
    save_figure(figure, path)


def save_adjacent_plot(path: str | os.PathLike, adjacent: np.ndarray, clusters: Clusters, title: str) -> None:
    """CKA(i, i+1) against i, with the cluster boundaries as vertical lines, as a PNG."""
    figure = Figure(figsize=(6.4, 3.6))
    ax = figure.add_subplot()
    layers = np.arange(len(adjacent))
    ax.plot(layers, adjacent, marker="o", markersize=3)
    for boundary in _boundaries(clusters):
        # A boundary between layers b-1 and b sits on the point i = b-1 of the adjacent curve.
        ax.axvline(boundary - 0.5, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_xticks(_layer_ticks(len(adjacent) + 1))
    ax.set_xlabel("layer i (CKA between layers i and i+1; dashed: cluster boundaries)")
    ax.set_ylabel("linear CKA")
    ax.set_ylim(min(0.0, float(np.min(adjacent, initial=0.0))), 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    save_figure(figure, path)


def save_lens_grid(
    path: str | os.PathLike,
    input_tokens: Sequence[str],
    top_tokens: Sequence[Sequence[str]],
    probabilities: np.ndarray,
    title: str,
) -> None:
    """Layers (rows, 0 at the bottom) × positions: each cell shows the top-1 token, coloured by its probability."""
    num_rows, num_positions = probabilities.shape
    figure = Figure(figsize=(1.1 * num_positions + 2.5, 0.28 * num_rows + 1.8))
    ax = figure.add_subplot()
    image = ax.imshow(probabilities, vmin=0.0, vmax=1.0, cmap="Blues", origin="lower", aspect="auto")
    for row in range(num_rows):
        for column in range(num_positions):
            colour = "white" if probabilities[row, column] > 0.6 else "black"
            ax.text(column, row, top_tokens[row][column][:10], ha="center", va="center", fontsize=6.5, color=colour)
    ax.set_xticks(np.arange(num_positions))
    ax.set_xticklabels(input_tokens, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(_layer_ticks(num_rows))
    ax.set_xlabel("input token (each cell predicts the next one)")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, label="top-1 probability")
    save_figure(figure, path)
