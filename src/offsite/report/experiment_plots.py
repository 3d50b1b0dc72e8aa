"""Figures of an experiment: the protocol's scores per emulator, the chart for choosing an emulator, and training
curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from .figures import save_figure

# The emulator's rows of the protocol, and their keys in a summary's JSON form.
EMULATOR_ROWS = {"Emulator ZS": "zero_shot", "Emulator FT": "fine_tuned", "Plug-in": "plug_in"}
COLOURS = {"Emulator ZS": "#9ecae1", "Emulator FT": "#3182bd", "Plug-in": "#e6550d"}
Summary = dict[str, Any]  # a task's summary as offsite.experiment.summary.TaskSummary.to_json() writes it


def _values(estimates: Sequence[dict[str, Any] | None]) -> tuple[list[float], list[float]]:
    """Means and standard errors (NaN and 0 where missing), for bars and error bars."""
    means = [np.nan if e is None else e["mean"] for e in estimates]
    errors = [0.0 if e is None or e["se"] is None else e["se"] for e in estimates]
    return means, errors


def _full_model_lines(ax: Any, summary: Summary) -> None:
    for key, name, style in (("full_zero_shot", "Full ZS", ":"), ("full_fine_tuned", "Full FT", "--")):
        if summary[key] is not None:
            mean = summary[key]["mean"]
            ax.axhline(mean, color="black", linestyle=style, linewidth=1, label=f"{name} {mean:.1f}")


def save_protocol_chart(summaries: Sequence[Summary], path: str | os.PathLike) -> None:
    """One panel per task: for each emulator, bars for Emulator ZS, Emulator FT and Plug-in with their standard
    errors; the full model's zero-shot and fine-tuned scores as horizontal lines."""
    count = max(len(s["emulators"]) for s in summaries)
    figure = Figure(figsize=(3.2 + 1.3 * count * len(summaries), 4.0))
    axes = figure.subplots(1, len(summaries), squeeze=False)[0]
    width = 0.8 / len(EMULATOR_ROWS)
    for ax, summary in zip(axes, summaries):
        emulators = summary["emulators"]
        x = np.arange(len(emulators))
        for i, (row, key) in enumerate(EMULATOR_ROWS.items()):
            means, errors = _values([e[key] for e in emulators])
            bars = ax.bar(x + (i - 1) * width, means, width, yerr=errors, capsize=2, label=row, color=COLOURS[row])
            ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        _full_model_lines(ax, summary)
        ax.set_xticks(x, [e["label"] for e in emulators], rotation=30, ha="right", fontsize=7)
        ax.set_title(Path(summary["task"]).stem)
        ax.set_ylabel(f"{summary['metric']} (%)")
        ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)


DODGE = 0.15  # points of the x axis between neighbouring lines, so that equal sizes do not hide each other


def _strategy_lines(ax: Any, emulators: Sequence[dict[str, Any]], key: str) -> None:
    """One line per strategy and distillation (colour: strategy; dashed: distilled) through its sizes: x the
    bundle's share of the full model's parameters (each line moved sideways by a little, see :data:`DODGE`), y the
    estimate ``key`` with its standard error as error bars."""
    strategies = list(dict.fromkeys(e["strategy"] for e in emulators))
    lines = [(strategy, distilled) for strategy in strategies for distilled in (False, True)]
    for index, (strategy, distilled) in enumerate(lines):
        points = sorted((e for e in emulators if e["strategy"] == strategy and e["distilled"] == distilled
                         and e["parameter_share"] is not None and e[key] is not None),
                        key=lambda e: e["parameter_share"])
        if points:
            means, errors = _values([e[key] for e in points])
            shift = DODGE * (index - (len(lines) - 1) / 2)
            ax.errorbar([e["parameter_share"] + shift for e in points], means, yerr=errors,
                        color=f"C{strategies.index(strategy)}", linestyle="--" if distilled else "-",
                        marker="s" if distilled else "o", capsize=3, label=strategy + (" (distilled)" if distilled else ""))


def save_emulator_choice_chart(summaries: Sequence[Summary], path: str | os.PathLike) -> None:
    """What a model owner reads to choose an emulator, one row of two panels per task, against the bundle's share of
    the full model's parameters: (a) the emulator's zero-shot score, (b) the plug-in's share of the Full-FT gain,
    (Plug-in − Full ZS) / (Full FT − Full ZS). Error bars: one standard error (see offsite.experiment.estimates)."""
    figure = Figure(figsize=(11, 4.0 * len(summaries)))
    axes = figure.subplots(len(summaries), 2, squeeze=False)
    for (score_ax, gain_ax), summary in zip(axes, summaries):
        task = Path(summary["task"]).stem
        _strategy_lines(score_ax, summary["emulators"], "zero_shot")
        _full_model_lines(score_ax, summary)
        score_ax.set(xlabel="bundle parameters (% of the full model)", ylabel=f"{summary['metric']} (%)",
                     title=f"(a) {task}: the emulator alone, zero-shot\n(full model: dotted zero-shot, dashed fine-tuned)")
        _strategy_lines(gain_ax, summary["emulators"], "gain_share")
        if not gain_ax.get_legend_handles_labels()[0]:
            gain_ax.text(0.5, 0.75, "no share given: the Full-FT gain\nis not larger than its standard error",
                         transform=gain_ax.transAxes, ha="center", va="center", fontsize=9, color="grey")
        for level, style in ((0, ":"), (50, "-."), (100, "--")):
            gain_ax.axhline(level, color="grey", linestyle=style, linewidth=0.8)
        gain = summary["gain"]
        stated = "" if gain is None else f"\n(Full FT − Full ZS: {gain['mean']:+.1f}" + (
            f" ± {gain['se']:.1f} points)" if gain["se"] is not None else " points)")
        gain_ax.set(xlabel="bundle parameters (% of the full model)", ylabel="share of the Full-FT gain (%)",
                    title=f"(b) {task}: the plug-in's share of the Full-FT gain{stated}")
        for ax in (score_ax, gain_ax):
            if ax.get_legend_handles_labels()[0]:  # no line where no share of a gain could be computed
                ax.legend(fontsize=7)
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
