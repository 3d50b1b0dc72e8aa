"""Figures of the five-row experiment: the protocol's scores per strategy, and training curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from .figures import save_figure

EMULATOR_ROWS = ("Emulator ZS", "Emulator FT", "Plug-in")
COLOURS = {"Emulator ZS": "#9ecae1", "Emulator FT": "#3182bd", "Plug-in": "#e6550d"}


def save_protocol_chart(rows: Sequence[dict[str, Any]], tasks: Sequence[str], strategies: Sequence[str],
                        metric: str, path: str | os.PathLike) -> None:
    """One panel per task: for each strategy, bars for Emulator ZS, Emulator FT and Plug-in; the full model's
    zero-shot and fine-tuned scores as horizontal lines."""
    figure = Figure(figsize=(3.2 + 2.2 * len(strategies) * len(tasks), 3.6))
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    lookup = {(r["setting"], r["strategy"]): r["cells"] for r in rows}
    width = 0.8 / len(EMULATOR_ROWS)
    for ax, task in zip(axes, tasks):
        x = np.arange(len(strategies))
        for i, row in enumerate(EMULATOR_ROWS):
            values = [(lookup[(row, s)][task] or (np.nan, None))[0] for s in strategies]
            bars = ax.bar(x + (i - 1) * width, values, width, label=row, color=COLOURS[row])
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        for row, style in (("Full ZS", ":"), ("Full FT", "--")):
            cell = lookup[(row, "–")][task]
            if cell is not None:
                ax.axhline(cell[0], color="black", linestyle=style, linewidth=1, label=f"{row} {cell[0]:.1f}")
        ax.set_xticks(x, strategies)
        ax.set_title(Path(task).stem)
        ax.set_ylabel(f"{metric} (%)")
        ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)


def save_training_curves(curves: dict[str, Sequence[dict[str, Any]]], path: str | os.PathLike) -> None:
    """Training loss per step (left) and the emulator's selection score per evaluation (right), one line per run."""
    figure = Figure(figsize=(9, 3.4))
    loss_ax, score_ax = figure.subplots(1, 2)
    for name, records in curves.items():
        train = [r for r in records if "loss" in r]
        evals = [r for r in records if any(k.startswith("eval_") for k in r)]
        if train:
            loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=name)
        key = next((k for k in ("eval_acc", "eval_acc_norm", "eval_loss") if evals and k in evals[0]), None)
        if key:
            score_ax.plot([r["step"] for r in evals], [r[key] for r in evals], marker="o",
                          label=f"{name} ({key.removeprefix('eval_')})")
    loss_ax.set(xlabel="optimizer step", ylabel="training loss (answer tokens)", title="training loss")
    score_ax.set(xlabel="optimizer step", ylabel="selection score", title="emulator's own validation score")
    for ax in (loss_ax, score_ax):
        ax.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
