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
LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}


def _scores(record: dict[str, Any]) -> dict[tuple[float, ...], dict[str, float]]:
    return {tuple(e["coordinates"]): e for e in record["evaluations"]}


def _point_label(point: dict[str, Any]) -> str:
    return f"{point['label']} ({','.join(f'{c:g}' for c in point['coordinates'])})"


def _metrics(record: dict[str, Any]) -> list[str]:
    return [m for m in METRIC_LABELS if m in record["evaluations"][0]]


def save_line_plot(curves: dict[str, dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss (and accuracy, for multiple-choice data) along each line landscape in ``curves`` (name -> record),
    with each line's given points marked at x = 0 and x = 1 (a point the lines share is labelled once)."""
    metrics = _metrics(next(iter(curves.values())))
    figure = Figure(figsize=(4.6 * len(metrics), 3.6))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    labelled: set[tuple[str, str]] = set()
    for name, record in curves.items():
        scores = _scores(record)
        xs = sorted(c[0] for c in scores)
        for ax, metric in zip(axes, metrics):
            line, = ax.plot(xs, [scores[(x,)][metric] for x in xs], marker=".", label=name)
            for point in record["points"]:
                x, value = point["coordinates"][0], scores[tuple(point["coordinates"])][metric]
                ax.plot(x, value, "o", color=line.get_color(), markersize=7)
                if (metric, _point_label(point)) not in labelled:
                    labelled.add((metric, _point_label(point)))
                    ax.annotate(_point_label(point), (x, value), textcoords="offset points", xytext=(4, 6),
                                fontsize=7, color=line.get_color(), bbox=LABEL_BOX)
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


def _axis_labels(record: dict[str, Any]) -> tuple[str, str]:
    first, second = (point["label"] for point in record["points"][1:])
    return f"a  (towards {first})", f"b  (towards {second})"


def _mark_points(ax, record: dict[str, Any]) -> None:
    """Each given point on a contour, labelled with its coordinates."""
    for point, colour in zip(record["points"], POINT_COLOURS):
        a, b = point["coordinates"]
        ax.plot(a, b, "o", color=colour, markeredgecolor="white", markersize=8)
        ax.annotate(_point_label(point), (a, b), textcoords="offset points", xytext=(6, 6), fontsize=8,
                    color=colour, fontweight="bold", bbox=LABEL_BOX)


def _mark_points_3d(ax, record: dict[str, Any]) -> None:
    """Each given point on a surface, at its loss, labelled with its coordinates and loss."""
    scores = _scores(record)
    for point, colour in zip(record["points"], POINT_COLOURS):
        a, b = point["coordinates"]
        loss = scores[(a, b)]["loss"]
        ax.scatter([a], [b], [loss], color=colour, edgecolor="white", s=60, depthshade=False, zorder=10)
        ax.text(a, b, loss, f"  {_point_label(point)}: {loss:.2f}", fontsize=8, color=colour, fontweight="bold",
                zorder=11, bbox=LABEL_BOX)


def save_contour(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Filled contours of the loss (log-spaced levels) and accuracy over a plane landscape, points marked."""
    metrics = _metrics(record)
    figure = Figure(figsize=(5.2 * len(metrics), 4.6))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    xlabel, ylabel = _axis_labels(record)
    for ax, metric in zip(axes, metrics):
        a, b, values = _grid(record, metric)
        if metric == "loss":
            low, high = np.nanmin(values), np.nanmax(values)
            levels = np.geomspace(low, high, 21)
            filled = ax.contourf(a, b, values, levels=levels, norm=LogNorm(low, high), cmap="viridis")
            figure.colorbar(filled, ax=ax, label=METRIC_LABELS[metric], ticks=levels[::4], format="%.2f")
        else:
            filled = ax.contourf(a, b, values, levels=20, cmap="magma")
            figure.colorbar(filled, ax=ax, label=METRIC_LABELS[metric], format="%.2f")
        _mark_points(ax, record)
        ax.set(xlabel=xlabel, ylabel=ylabel, aspect="equal", title=METRIC_LABELS[metric])
    figure.suptitle("θ = θ0 + a·(θ1 − θ0) + b·(θ2 − θ0)", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def save_surface(record: dict[str, Any], path: str | os.PathLike) -> None:
    """The loss over a plane landscape as a 3-D surface, the given points marked at their loss."""
    a, b, values = _grid(record, "loss")
    figure = Figure(figsize=(6.8, 5.6))
    # Drawn in call order, so that the points stay in front of the surface.
    ax = figure.add_subplot(projection="3d", computed_zorder=False)
    ax.plot_surface(a, b, values, cmap="viridis", alpha=0.75, linewidth=0.3, edgecolor="0.35")
    _mark_points_3d(ax, record)
    xlabel, ylabel = _axis_labels(record)
    ax.set(xlabel=xlabel, ylabel=ylabel, zlabel=METRIC_LABELS["loss"], title="θ0 + a·(θ1 − θ0) + b·(θ2 − θ0)")
    ax.view_init(elev=28, azim=-60)
    figure.tight_layout()
    save_figure(figure, path)
