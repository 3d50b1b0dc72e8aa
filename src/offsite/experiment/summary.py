"""What an experiment found, per task: every row's score over seeds with its standard error, and per emulator what a
model owner weighs when choosing one: its share of the full model's parameters, its fidelity, its zero-shot score,
how much of the Full-FT gain its plug-in recovers, and the privacy gap (see :mod:`.estimates` for the errors)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from .cells import EMULATOR_FT, EMULATOR_ZS, FULL_FT, FULL_ZS, PLUG_IN, Emulator, merged_row
from .config import ExperimentConfig
from .estimates import Estimate, Sample, gain_share, over_seeds, paired_difference

GAP = "Privacy gap (Plug-in − Emulator FT)"


@dataclass(frozen=True)
class EmulatorSummary:
    """One emulator on one task. Scores in points of the metric (%); ``gap`` is Plug-in − Emulator FT and
    ``below_full_ft`` Full FT − Emulator FT, both seed by seed; ``gain_share`` is the plug-in's share (%) of the
    Full-FT gain (None unless that gain exceeds its standard error); ``merged`` the plug-ins of merged adapters by
    method, ``merged_gain_share`` their shares.
    ``parameter_share`` is the bundle's share (%) of the full model's parameters; ``fidelity`` the emulator's
    figures against the full model on held-out samples, as measured when it was built."""

    emulator: Emulator
    label: str
    parameter_share: float | None = None
    fidelity: dict[str, Any] | None = None
    zero_shot: Estimate | None = None
    fine_tuned: Estimate | None = None
    plug_in: Estimate | None = None
    gap: Estimate | None = None
    below_full_ft: Estimate | None = None
    gain_share: Estimate | None = None
    merged: dict[str, Estimate] = field(default_factory=dict)
    merged_gain_share: dict[str, Estimate | None] = field(default_factory=dict)

    def row(self, setting: str) -> Estimate | None:
        """The estimate of a row of the protocol table (``setting``: a row name or :data:`GAP`)."""
        rows = {EMULATOR_ZS: self.zero_shot, EMULATOR_FT: self.fine_tuned, PLUG_IN: self.plug_in, GAP: self.gap}
        rows.update({merged_row(method): estimate for method, estimate in self.merged.items()})
        return rows.get(setting)

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return value.to_json() if isinstance(value, Estimate) else value

        return {
            "strategy": self.emulator.strategy, "keep": self.emulator.keep, "distilled": self.emulator.distilled,
            "label": self.label, "parameter_share": self.parameter_share, "fidelity": self.fidelity,
            **{name: plain(getattr(self, name)) for name in
               ("zero_shot", "fine_tuned", "plug_in", "gap", "below_full_ft", "gain_share")},
            "merged": {m: plain(e) for m, e in self.merged.items()},
            "merged_gain_share": {m: plain(e) for m, e in self.merged_gain_share.items()},
        }


@dataclass(frozen=True)
class TaskSummary:
    """The full model's rows on one task, its fine-tuning gain (Full FT − Full ZS), and every emulator."""

    task: str
    metric: str
    full_zero_shot: Estimate | None
    full_fine_tuned: Estimate | None
    gain: Estimate | None
    emulators: tuple[EmulatorSummary, ...]

    def row(self, setting: str, emulator: Emulator | None) -> Estimate | None:
        if emulator is None:
            return {FULL_ZS: self.full_zero_shot, FULL_FT: self.full_fine_tuned}[setting]
        return next(e for e in self.emulators if e.emulator == emulator).row(setting)

    def to_json(self) -> dict[str, Any]:
        estimates = {"full_zero_shot": self.full_zero_shot, "full_fine_tuned": self.full_fine_tuned, "gain": self.gain}
        return {"task": self.task, "metric": self.metric,
                **{k: None if v is None else v.to_json() for k, v in estimates.items()},
                "emulators": [e.to_json() for e in self.emulators]}


def _bundle_figures(record: dict[str, Any] | None) -> tuple[float | None, dict[str, Any] | None]:
    """The parameter share (%) and fidelity of the Emulator ZS cell ``record``."""
    details = (record or {}).get("emulator")
    if not details:
        return None, None
    return 100 * details["parameter_share"], details.get("fidelity")


class _Samples:
    """The cells of one task as samples of ``metric`` (in points), by row, emulator and seed."""

    def __init__(self, records: Sequence[dict[str, Any]], task: str, metric: str) -> None:
        self.records = [r for r in records if r["task"] == task]
        self.metric = metric

    def __call__(self, row: str, emulator: Emulator | None) -> list[Sample]:
        samples = []
        for record in self.records:
            if record["row"] == row and Emulator.of_record(record) == emulator:
                scores = record["scores"]
                se = scores.get(f"{self.metric}_stderr")
                samples.append(Sample(100 * scores[self.metric], None if se is None else 100 * se, record["seed"]))
        return samples

    def record(self, row: str, emulator: Emulator) -> dict[str, Any] | None:
        return next((r for r in self.records if r["row"] == row and Emulator.of_record(r) == emulator), None)


def gain_is_resolved(gain: Estimate | None) -> bool:
    """Whether the full model's fine-tuning gain is a gain larger than its standard error."""
    return gain is not None and gain.resolved and gain.mean > 0


def _emulator_summary(config: ExperimentConfig, samples: _Samples, emulator: Emulator, full: TaskSummary,
                      full_ft: list[Sample]) -> EmulatorSummary:
    """``emulator``'s rows against the full model's (``full``: its estimates; ``full_ft``: its Full FT samples, to
    pair seed by seed)."""
    share, fidelity = _bundle_figures(samples.record(EMULATOR_ZS, emulator))
    plug_in, fine_tuned = samples(PLUG_IN, emulator), samples(EMULATOR_FT, emulator)

    def share_of_gain(estimate: Estimate | None) -> Estimate | None:
        # A share of a gain within its standard error (or of a loss) would say nothing: none is given.
        if estimate is None or not gain_is_resolved(full.gain):
            return None
        return gain_share(estimate, full.full_zero_shot, full.full_fine_tuned)

    merged = {m: over_seeds(samples(merged_row(m), emulator)) for m in config.merge}
    merged = {m: e for m, e in merged.items() if e is not None}
    return EmulatorSummary(
        emulator, config.label(emulator), share, fidelity,
        zero_shot=over_seeds(samples(EMULATOR_ZS, emulator)),
        fine_tuned=over_seeds(fine_tuned),
        plug_in=over_seeds(plug_in),
        gap=paired_difference(plug_in, fine_tuned),
        below_full_ft=paired_difference(full_ft, fine_tuned),
        gain_share=share_of_gain(over_seeds(plug_in)),
        merged=merged,
        merged_gain_share={m: share_of_gain(e) for m, e in merged.items()},
    )


def summarize(records: Sequence[dict[str, Any]], config: ExperimentConfig) -> list[TaskSummary]:
    """One :class:`TaskSummary` per task of ``config`` from the cell records (as the runner writes them)."""
    summaries = []
    for task in config.tasks:
        samples = _Samples(records, task, config.metric_for(task))
        full_zs, full_ft = samples(FULL_ZS, None), samples(FULL_FT, None)
        full = TaskSummary(task, config.metric_for(task), over_seeds(full_zs), over_seeds(full_ft),
                           paired_difference(full_ft, full_zs), ())
        emulators = tuple(_emulator_summary(config, samples, e, full, full_ft) for e in config.emulators)
        summaries.append(replace(full, emulators=emulators))
    return summaries
