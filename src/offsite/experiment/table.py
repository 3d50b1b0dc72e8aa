"""The experiment's results as tables: the paper's Table 1 (rows of the protocol per emulator, tasks as columns) and
the emulator-choice table (per task and emulator: size, fidelity, scores, share of the Full-FT gain, privacy gap)."""

from __future__ import annotations

import statistics
from typing import Sequence

from ..data import get_task
from .cells import EMULATOR_FT, EMULATOR_ZS, FULL_FT, FULL_ZS, PLUG_IN, Emulator, merged_row
from .config import ExperimentConfig
from .estimates import format_estimate
from .summary import GAP, TaskSummary, gain_is_resolved


def _rows(config: ExperimentConfig) -> list[tuple[str, Emulator | None]]:
    rows: list[tuple[str, Emulator | None]] = [(FULL_ZS, None), (FULL_FT, None)]
    for emulator in config.emulators:
        rows += [(EMULATOR_ZS, emulator), (EMULATOR_FT, emulator), (PLUG_IN, emulator)]
        rows += [(merged_row(method), emulator) for method in config.merge]
        rows.append((GAP, emulator))
    return rows


def _settings_notes(config: ExperimentConfig) -> list[str]:
    train, evaluation = config.train, config.eval
    adapter = config.default_adapter.describe()
    own = [f"{spec.title}: {spec.adapter.describe()}" for spec in config.strategies if spec.adapter is not None]
    adapter += f" ({'; '.join(own)})" if own else ""
    lrs = ", ".join(f"{lr:g}" for lr in train.lrs)
    metrics = "/".join(dict.fromkeys(config.metric_for(task) for task in config.tasks))
    notes = [
        f"{metrics} (%) on {evaluation.split} split ({evaluation.limit or 'all'} examples per task), "
        f"model {config.model}, seeds {list(config.seeds)}; ± one standard error (the seeds' standard error of the "
        "mean and the test questions' binomial standard error combined; binomial only with one seed).",
        f"Adapter: {adapter}; emulators keep {', '.join(map(str, config.keep))} further blocks. "
        f"Full FT trains {'the same adapter layers' if config.full_ft == 'adapter' else 'every weight'} "
        "on the full model.",
        f"Fine-tuning: {train.limit or 'all'} {train.split} examples, {train.epochs} epoch(s), "
        f"lr {lrs}{' (the best on validation kept)' if len(train.lrs) > 1 else ''}, batch {train.batch_size}; "
        f"the best step chosen on {train.select_limit or 'all'} {train.select_split} examples by the emulator's own "
        f"{metrics}" + (f", every {train.eval_every} steps." if train.eval_every else ", after each epoch."),
    ]
    if True in config.distill:
        d = config.distillation
        notes.append(f"Distilled emulators: {d.steps} steps of {d.batch_size} blocks of {d.block_size} tokens of "
                     f"{', '.join(d.corpus)} (lr {d.lr:g}, the step with the lowest held-out perplexity kept).")
    if config.merge:
        notes.append(f"Merged plug-ins: the adapters of all {len(config.seeds)} seeds merged by "
                     f"{' and '.join(config.merge)} (offsite merge).")
    return notes


def table_markdown(summaries: Sequence[TaskSummary], config: ExperimentConfig) -> str:
    """Table 1 as Markdown, with the settings stated below it."""
    header = ["Setting", "Emulator", *(get_task(s.task).name for s in summaries), "Avg"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for setting, emulator in _rows(config):
        signed = setting == GAP
        estimates = [s.row(setting, emulator) for s in summaries]
        present = [e.mean for e in estimates if e is not None]
        average = statistics.fmean(present) if present and len(present) == len(estimates) else None
        cells = [format_estimate(e, signed) for e in estimates]
        cells.append("–" if average is None else f"{average:+.1f}" if signed else f"{average:.1f}")
        lines.append("| " + " | ".join([setting, config.label(emulator) if emulator else "–", *cells]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in _settings_notes(config)) + "\n"


def _number(value: float) -> str:
    """One decimal below 100, none above (a perplexity of millions needs no decimals)."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _fidelity_text(fidelity: dict | None) -> str:
    if not fidelity or fidelity.get("perplexity_ratio") is None:
        return "–"
    return f"{_number(fidelity['emulator']['perplexity'])} ({_number(fidelity['perplexity_ratio'])}×)"


def choice_markdown(summary: TaskSummary, config: ExperimentConfig) -> str:
    """Per emulator of one task: what a model owner weighs to choose one."""
    header = ["Emulator", "Parameters (% of full)", "Perplexity (× full)", "Emulator ZS", "Emulator FT", "Plug-in",
              "Share of Full-FT gain (%)", "Privacy gap", *(f"{m} merge: share of gain (%)" for m in config.merge)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in summary.emulators:
        share = "–" if e.parameter_share is None else f"{e.parameter_share:.1f}"
        cells = [e.label, share, _fidelity_text(e.fidelity), format_estimate(e.zero_shot), format_estimate(e.fine_tuned),
                 format_estimate(e.plug_in), format_estimate(e.gain_share), format_estimate(e.gap, signed=True),
                 *(format_estimate(e.merged_gain_share.get(m)) for m in config.merge)]
        lines.append("| " + " | ".join(cells) + " |")
    fidelity = next((e.fidelity for e in summary.emulators if e.fidelity), None)
    full = (f"full model perplexity {fidelity['full']['perplexity']:,.1f} on {_held_out_text(fidelity['held_out'])}"
            if fidelity and "perplexity" in fidelity.get("full", {}) else "")
    notes = [f"{get_task(summary.task).name}: Full ZS {format_estimate(summary.full_zero_shot)}, Full FT "
             f"{format_estimate(summary.full_fine_tuned)}, gain {format_estimate(summary.gain, signed=True)} points"
             + ("." if gain_is_resolved(summary.gain) else
                " (not resolved: within its standard error, so no share of it is given).")]
    notes += [full] if full else []
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _held_out_text(held_out: dict) -> str:
    if "text_file" in held_out:
        return f"the first {held_out['text_chars']:,} characters of {held_out['text_file']}"
    return held_out.get("text", "held-out text")
