"""What an experiment's numbers show, in plain sentences computed from them.

Every difference is stated with its standard error and called resolved only when it exceeds that error; a
difference within its error is said to be not resolved, and nothing is claimed of it. The emulator is said to
protect the owner's model only where the emulator alone (fine-tuned) is measurably worse than the plug-in.
"""

from __future__ import annotations

from .estimates import Estimate, difference, format_estimate
from .summary import EmulatorSummary, TaskSummary, gain_is_resolved

HALF_GAIN = 50.0  # % of the Full-FT gain a plug-in should recover ...
EMULATOR_MARGIN = 10.0  # ... while its emulator alone stays this many points below Full FT


def verdict(estimate: Estimate | None) -> str:
    """``resolved`` or ``not resolved``: whether ``estimate`` (a difference) exceeds its standard error."""
    return "resolved" if estimate is not None and estimate.resolved else "not resolved"


def _full_model(summary: TaskSummary) -> str:
    gain = summary.gain
    text = (f"The full model scores {format_estimate(summary.full_zero_shot)} zero-shot and "
            f"{format_estimate(summary.full_fine_tuned)} after fine-tuning, a gain of {format_estimate(gain, True)} "
            "points")
    if gain_is_resolved(gain):
        return text + " (resolved: larger than its standard error)."
    return text + (" (not resolved: within its standard error, so no share of that gain is given)."
                   if gain is None or not gain.resolved else " (resolved, but a loss: no share of it is given).")


def _plug_in(summary: TaskSummary, e: EmulatorSummary) -> str:
    gain_part = ""
    if gain_is_resolved(summary.gain) and e.gain_share is not None:
        gain_part = f", {format_estimate(e.gain_share)} % of the Full-FT gain"
    lift = difference(e.plug_in, summary.full_zero_shot)
    return (f"{e.label}: the emulator alone scores {format_estimate(e.zero_shot)} zero-shot and "
            f"{format_estimate(e.fine_tuned)} fine-tuned; the adapter plugged into the full model scores "
            f"{format_estimate(e.plug_in)}{gain_part} (plug-in − Full ZS {format_estimate(lift, True)} points, "
            f"{verdict(lift)}).")


def _privacy(e: EmulatorSummary) -> str:
    gap = e.gap
    text = f"Privacy gap of {e.label} (plug-in − emulator alone): {format_estimate(gap, True)} points"
    if gap is None or not gap.resolved:
        return text + (" (not resolved): these numbers do not show that the emulator alone is worse than the "
                       "plug-in, so they do not show that it protects the owner's model.")
    if gap.mean > 0:
        return text + (" (resolved): the emulator alone is measurably worse than the plug-in, so the bundle by "
                       "itself does not give the data owner the fine-tuned full model's score; to that extent it "
                       "protects the owner's model.")
    return text + " (resolved, negative): the emulator alone scores higher than the plug-in; it protects nothing."


def _comparisons(summary: TaskSummary) -> list[str]:
    """The best plug-in against every other emulator's, and each merged plug-in against its single-seed mean."""
    scored = [e for e in summary.emulators if e.plug_in is not None]
    sentences = []
    if len(scored) > 1:
        best = max(scored, key=lambda e: e.plug_in.mean)
        for other in scored:
            if other is not best:
                gap = difference(best.plug_in, other.plug_in)
                sentences.append(f"Plug-in of {best.label} vs {other.label}: {format_estimate(gap, True)} points "
                                 f"({verdict(gap)}).")
    for e in summary.emulators:
        for method, merged in e.merged.items():
            gain = difference(merged, e.plug_in)
            sentences.append(f"{e.label}: the adapter merged from every seed by {method} scores "
                             f"{format_estimate(merged)} plugged in, {format_estimate(gain, True)} points against the "
                             f"single-seed plug-ins' mean ({verdict(gain)}).")
    return sentences


def _clears(estimate: Estimate, threshold: float) -> bool:
    """Whether ``estimate`` is above ``threshold`` by more than its standard error."""
    return estimate.se is not None and estimate.mean - threshold > estimate.se


def recommendation(summary: TaskSummary) -> str:
    """Which emulator, if any, recovers at least half of the Full-FT gain while the emulator alone (fine-tuned)
    stays at least 10 points below Full FT."""
    goal = (f"at least {HALF_GAIN:g} % of the Full-FT gain while its emulator alone stays at least "
            f"{EMULATOR_MARGIN:g} points below Full FT")
    if not gain_is_resolved(summary.gain):
        return f"The Full-FT gain is not resolved, so no setting can be said to recover {goal}."
    meeting = [e for e in summary.emulators if e.gain_share is not None and e.below_full_ft is not None
               and e.gain_share.mean >= HALF_GAIN and e.below_full_ft.mean >= EMULATOR_MARGIN]
    if not meeting:
        shares = [e for e in summary.emulators if e.gain_share is not None]
        best = max(shares, key=lambda e: e.gain_share.mean, default=None)
        closest = f" The largest share is {best.label}'s, {format_estimate(best.gain_share)} %." if best else ""
        return f"No setting recovers {goal}.{closest}"
    parts = []
    for e in meeting:
        both = _clears(e.gain_share, HALF_GAIN) and _clears(e.below_full_ft, EMULATOR_MARGIN)
        parts.append(f"{e.label} recovers {format_estimate(e.gain_share)} % of the Full-FT gain while its emulator "
                     f"alone stays {format_estimate(e.below_full_ft)} points below Full FT ("
                     + ("both thresholds cleared by more than a standard error)" if both else
                        "not resolved: within a standard error of a threshold)"))
    return f"Settings that recover {goal}: " + "; ".join(parts) + "."


def reading(summary: TaskSummary) -> list[str]:
    """The sentences for one task, in order: the full model, each emulator's plug-in and privacy gap, the
    comparisons, and the recommendation."""
    sentences = [_full_model(summary)]
    for e in summary.emulators:
        if e.plug_in is not None:
            sentences += [_plug_in(summary, e), _privacy(e)]
    return sentences + _comparisons(summary) + [recommendation(summary)]
