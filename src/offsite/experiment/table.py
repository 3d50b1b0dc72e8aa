"""The experiment's results as the paper's Table 1: rows of the protocol per strategy, tasks as columns."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from ..data import get_task
from .config import ExperimentConfig

GAP = "Privacy gap (Plug-in − Emulator FT)"


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(records: Sequence[dict[str, Any]], config: ExperimentConfig) -> list[dict[str, Any]]:
    """One row per (setting, strategy): the metric in percent per task (mean over seeds, with std) and average."""
    metric = config.metric
    groups: list[tuple[str, str | None]] = [("Full ZS", None), ("Full FT", None)]
    for strategy in config.titles:
        groups += [("Emulator ZS", strategy), ("Emulator FT", strategy), ("Plug-in", strategy), (GAP, strategy)]

    def per_seed(row: str, strategy: str | None, task: str) -> list[float]:
        return [100 * r[metric] for r in records if r["row"] == row and r["strategy"] == strategy and r["task"] == task]

    rows = []
    for row, strategy in groups:
        cells = {}
        for task in config.tasks:
            if row == GAP:
                values = [p - e for p, e in zip(per_seed("Plug-in", strategy, task), per_seed("Emulator FT", strategy, task))]
            else:
                values = per_seed(row, strategy, task)
            cells[task] = _mean_std(values) if values else None
        present = [c[0] for c in cells.values() if c is not None]
        rows.append({"setting": row, "strategy": strategy or "–", "cells": cells,
                     "average": statistics.fmean(present) if len(present) == len(cells) else None})
    return rows


def _format(cell: tuple[float, float | None] | None, signed: bool) -> str:
    if cell is None:
        return "–"
    mean, std = cell
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return text + (f" ± {std:.1f}" if std is not None else "")


def table_markdown(rows: Sequence[dict[str, Any]], config: ExperimentConfig) -> str:
    """A Markdown table with the settings stated above it."""
    header = ["Setting", "Strategy", *(get_task(t).name for t in config.tasks), "Avg"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        signed = row["setting"] == GAP
        cells = [_format(row["cells"][t], signed) for t in config.tasks]
        average = "–" if row["average"] is None else (f"{row['average']:+.1f}" if signed else f"{row['average']:.1f}")
        lines.append("| " + " | ".join([row["setting"], row["strategy"], *cells, average]) + " |")
    train, evaluation = config.train, config.eval
    adapter = config.default_adapter.describe()
    own = [f"{spec.title}: {spec.adapter.describe()}" for spec in config.strategies if spec.adapter is not None]
    adapter += f" ({'; '.join(own)})" if own else ""
    notes = [
        f"{config.metric} (%) on {evaluation.split} split ({evaluation.limit or 'all'} examples per task), "
        f"model {config.model}, seeds {list(config.seeds)} (mean ± std where several).",
        f"Adapter: {adapter}; emulators keep {config.keep} further blocks. "
        f"Full FT trains {'the same adapter layers' if config.full_ft == 'adapter' else 'every weight'} "
        "on the full model.",
        f"Fine-tuning: {train.limit or 'all'} {train.split} examples, {train.epochs} epoch(s), lr {train.lr}, "
        f"batch {train.batch_size}; best adapter chosen on {train.select_limit or 'all'} {train.select_split} "
        "examples by the emulator's own score.",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
