"""Figures of loss landscapes (a ``landscape.json`` record): the curve along a line, and the plane through three
points as a filled contour and as a 3-D surface, with the given points marked and labelled by their coordinates."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .figures import save_figure

METRIC_LABELS = {"loss": "loss (answer tokens)", "acc": "accuracy"}
POINT_COLOURS = ("black", "#d62728", "#1f77b4")


def _scores(record: dict[str, Any]) -> dict[tuple[float, ...], dict[str, float]]:
    return {tuple(e["coordinates"]): e for e in record["evaluations"]}


def _point_label(point: dict[str, Any]) -> str:
    return f"{point['label']} ({','.join(f'{c:g}' for c in point['coordinates'])})"


def _metrics(record: dict[str, Any]) -> list[str]:
    return [m for m in METRIC_LABELS if m in record["evaluations"][0]]


def save_line_plot(curves: dict[str, dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss (and accuracy, for multiple-choice data) along each line landscape in ``curves`` (name -> record),
    with each line's given points marked at x = 0 and x = 1."""
    metrics = _metrics(next(iter(curves.values())))
    figure = Figure(figsize=(4.6 * len(metrics), 3.6))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for index, (name, record) in enumerate(curves.items()):
        scores = _scores(record)
        xs = sorted(c[0] for c in scores)
        for ax, metric in zip(axes, metrics):
            line, = ax.plot(xs, [scores[(x,)][metric] for x in xs], marker=".", label=name)
            for point in record["points"]:
                value = scores[tuple(point["coordinates"])][metric]
                ax.plot(point["coordinates"][0], value, "o", color=line.get_color(), markersize=7)
                ax.annotate(_point_label(point), (point["coordinates"][0], value), textcoords="offset points",
                            xytext=(4, 6 + 10 * index), fontsize=7)
    for ax, metric in zip(axes, metrics):
        ax.axvspan(0, 1, color="0.93", zorder=0)
        ax.set(xlabel="x   (θ = θ0 + x·(θ1 − θ0))", ylabel=METRIC_LABELS[metric])
        ax.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def _grid(record: dict[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Meshes of a, b and the metric over the plane's grid (NaN where a grid point is missing)."""
    axis = np.array(record["axis"])
    scores = _scores(record)
    a, b = np.meshgrid(axis, axis)
    values = np.array([[scores.get((x, y), {}).get(metric, np.nan) for x in axis] for y in axis])
    return a, b, values


def _mark_points(ax, record: dict[str, Any]) -> None:
    """Each given point on a contour, labelled with its coordinates."""
    for point, colour in zip(record["points"], POINT_COLOURS):
        a, b = point["coordinates"]
        ax.plot(a, b, "o", color=colour, markeredgecolor="white", markersize=8)
        ax.annotate(_point_label(point), (a, b), textcoords="offset points", xytext=(6, 6), fontsize=8,
                    color=colour, fontweight="bold")


def _mark_points_3d(ax, record: dict[str, Any]) -> None:
    """Each given point on a surface, at its loss, labelled with its coordinates."""
    scores = _scores(record)
    for point, colour in zip(record["points"], POINT_COLOURS):
        a, b = point["coordinates"]
        loss = scores[(a, b)]["loss"]
        ax.scatter([a], [b], [loss], color=colour, s=40, depthshade=False)
        ax.text(a, b, loss, "  " + _point_label(point), fontsize=8, color=colour)


def save_contour(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Filled contours of the loss (log-spaced levels) and accuracy over a plane landscape, points marked."""
    metrics = _metrics(record)
    figure = Figure(figsize=(5.2 * len(metrics), 4.4))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        a, b, values = _grid(record, metric)
        if metric == "loss":
            low, high = np.nanmin(values), np.nanmax(values)
            filled = ax.contourf(a, b, values, levels=np.geomspace(low, high, 21), norm=LogNorm(low, high),
                                 cmap="viridis")
        else:
            filled = ax.contourf(a, b, values, levels=20, cmap="magma")
        figure.colorbar(filled, ax=ax, label=METRIC_LABELS[metric])
        _mark_points(ax, record)
        ax.set(xlabel="a  (towards θ1)", ylabel="b  (towards θ2)", aspect="equal",
               title=f"{METRIC_LABELS[metric]}: θ0 + a·(θ1 − θ0) + b·(θ2 − θ0)")
        ax.title.set_fontsize(9)
    figure.tight_layout()
    save_figure(figure, path)


def save_surface(record: dict[str, Any], path: str | os.PathLike) -> None:
    """The loss over a plane landscape as a 3-D surface, the given points marked at their loss."""
    a, b, values = _grid(record, "loss")
    figure = Figure(figsize=(6.4, 5.2))
    ax = figure.add_subplot(projection="3d")
    ax.plot_surface(a, b, values, cmap="viridis", alpha=0.8, linewidth=0.2, edgecolor="0.4")
    _mark_points_3d(ax, record)
    ax.set(xlabel="a  (towards θ1)", ylabel="b  (towards θ2)", zlabel=METRIC_LABELS["loss"])
    ax.view_init(elev=30, azim=-130)
    figure.tight_layout()
    save_figure(figure, path)
