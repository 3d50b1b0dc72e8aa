"""The fidelity table: strategies and their variants at several sizes against the full model (``offsite fidelity``).

Every cell (one strategy at one ``keep``) is planned from the calibration samples and measured on the held-out
samples while the base model runs as that emulator; nothing is written but one small JSON file per cell under
``cells/``, so a stopped run continues where it stopped, and a run asking for other strategies or sizes (or for
distillation) in the same directory measures only the cells it lacks. The full model is measured once. Calibration samples
and held-out samples are disjoint by default (a task's train split; a fixed text and the validation split). With
``distillation``, each emulator is also written as a bundle under ``bundles/``, distilled against the full model
(as ``offsite distill`` does, with the held-out task's questions left out of the corpus) and measured again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..emulator import load_bundle, save_bundle
from ..emulator.create import EmulatorConfig, plan_emulator, strategy_inputs
from ..emulator.layer_map import LayerMap
from ..emulator.strategies import AdapterSpec, SimilaritySource, StrategySpec
from ..emulator.summary import is_bundle
from ..emulator.view import emulator_view
from ..errors import OffsiteError
from ..evaluate.fidelity import FidelityConfig, held_out, model_figures
from ..models import load_model
from ..paths import atomic_path, claim_directory, read_json, write_json
from ..train.distill import distill
from .config import DistillSettings

# Every strategy, and the variants of CRaSh the authors' code has, besides ours.
DEFAULT_STRATEGIES = (
    "uniform",
    "crash",
    "crash-noshare",
    "crash:fill=repeat-all:tie=higher",
    "crash:cluster=all:fill=repeat-all:tie=higher",
    "crash-noshare:cluster=all",
    "crash:fill=cluster",
    "importance",
    "importance:metric=influence",
    "importance:metric=angular",
    "crash-search",
)
CONFIG_FILE = "config.json"  # the settings every cell of the directory was measured with
# What every cell depends on. The strategies and sizes may change from run to run (the table shows those asked
# for, and cells measured before are reused); distillation settings, once given, hold for every distilled cell.
MEASURED_WITH = ("model", "adapter", "similarity", "similarity_file", "fidelity")
# Manifest details too bulky for a cell (the inputs are the same for every cell).
BULKY = ("cka", "importance", "similarity", "strategy_spec")


@dataclass(frozen=True)
class FidelityTableConfig:
    """Strategies (each may name its own adapter) at each of ``keeps``; calibration samples, or CKA and importance
    from a ``similarity_file`` of ``offsite analyze``; held-out samples; ``distillation`` (None: none) adds each
    emulator distilled."""

    model: str = "smollm2-135m"
    strategies: tuple[StrategySpec, ...] = tuple(StrategySpec.parse(s) for s in DEFAULT_STRATEGIES)
    keeps: tuple[int, ...] = (6, 11, 16)
    adapter: AdapterSpec = AdapterSpec()
    similarity: SimilaritySource = field(default_factory=SimilaritySource)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    similarity_file: str | None = None
    distillation: DistillSettings | None = None

    def __post_init__(self) -> None:
        titles = [spec.title for spec in self.strategies]
        repeated = sorted({title for title in titles if titles.count(title) > 1})
        if repeated:
            raise OffsiteError(f"strategy {repeated[0]!r} is listed twice")
        if not self.strategies or not self.keeps:
            raise OffsiteError("the table needs at least one strategy and one keep")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategies"] = [spec.to_config() for spec in self.strategies]
        data["adapter"] = self.adapter.to_config()
        return json.loads(json.dumps(data))


class FidelityTable:
    """The cell files of one table directory, and how each missing one is measured."""

    def __init__(self, config: FidelityTableConfig, out: str | os.PathLike, log: Callable[[str], None] = print):
        self.config, self.out, self.log = config, claim_directory(out), log
        write_json(self.out / CONFIG_FILE, self._settings())
        self._base = self._inputs = self._samples = None

    def _settings(self) -> dict[str, Any]:
        """The directory's measurement settings with this run's added; refused where they differ from the saved."""
        current = self.config.to_json()
        settings = {key: current[key] for key in (*MEASURED_WITH, "distillation")}
        path = self.out / CONFIG_FILE
        if not path.is_file():
            return settings
        saved = read_json(path, "fidelity table config", MEASURED_WITH)
        differing = [key for key in MEASURED_WITH if saved[key] != settings[key]]
        if saved.get("distillation") is not None:
            if settings["distillation"] is None:
                settings["distillation"] = saved["distillation"]
            elif saved["distillation"] != settings["distillation"]:
                differing.append("distillation")
        if differing:
            raise OffsiteError(f"{self.out} holds a fidelity table measured with other settings "
                               f"({', '.join(differing)}); choose another --out")
        return settings

    def base(self):
        if self._base is None:
            self._base = load_model(self.config.model)
            self._inputs = strategy_inputs(*self._base, self.config.similarity, self.config.similarity_file)
            self._samples = held_out(self.config.fidelity)
        return self._base

    def cell(self, name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.out / "cells" / f"{name}.json"
        if not path.is_file():
            self.log(f"== {name}")
            write_json(path, measure())
        return read_json(path, "fidelity cell")

    def full(self) -> dict[str, Any]:
        def measure() -> dict[str, Any]:
            model, tokenizer = self.base()
            return {"figures": model_figures(model, tokenizer, self._samples, self.config.fidelity.batch_size),
                    "held_out": self._samples.description}

        return self.cell("full", measure)

    def emulator(self, spec: StrategySpec, keep: int) -> dict[str, Any]:
        def measure() -> dict[str, Any]:
            model, tokenizer = self.base()
            plan = plan_emulator(model, tokenizer, EmulatorConfig(spec, keep, self.config.adapter), self._inputs)
            with emulator_view(model, plan.layer_map) as emulator:
                figures = model_figures(emulator, tokenizer, self._samples, self.config.fidelity.batch_size)
            self.log(f"   {plan.layer_map.describe()}")
            return {"strategy": spec.title, "keep": keep, "layer_map": plan.layer_map.to_json(),
                    "layer_map_text": plan.layer_map.describe(), "emulator_depth": len(plan.layer_map.emulator_sources),
                    "figures": figures, "details": {k: v for k, v in plan.details.items() if k not in BULKY},
                    "calibration": plan.details.get("similarity")}

        return self.cell(f"{spec.slug}-keep{keep}", measure)

    def distilled(self, spec: StrategySpec, keep: int, plain_cell: dict[str, Any]) -> dict[str, Any]:
        """The emulator of ``plain_cell`` (its :meth:`emulator` cell: the layer map is taken from it, not planned
        again) written as a bundle, distilled, and measured on the held-out samples."""
        name = f"{spec.slug}-keep{keep}-distilled"

        def measure() -> dict[str, Any]:
            model, tokenizer = self.base()
            plain, out = self.out / "bundles" / f"{spec.slug}-keep{keep}", self.out / "bundles" / name
            if not is_bundle(plain):
                save_bundle(model, tokenizer, LayerMap.from_json(plain_cell["layer_map"]), plain,
                            {**plain_cell["details"], "base_model": {"name": self.config.model}})
            settings = self.config.distillation.distill_config(str(plain), str(out), self.config.model,
                                                                (self.config.fidelity.task,))
            if not distill(settings, teacher=model).completed:
                raise OffsiteError(f"the distillation of {plain} stopped early; run the table again to resume")
            bundle = load_bundle(out)
            figures = model_figures(bundle.model, bundle.tokenizer, self._samples, self.config.fidelity.batch_size)
            record = bundle.manifest["distillation"]
            return {"strategy": spec.title, "keep": keep, "distilled": True, "figures": figures,
                    "distillation": {key: record[key] for key in ("steps", "selected_step", "held_out_perplexity",
                                                                  "seconds_per_step", "corpus")}}

        return self.cell(name, measure)


def _cell_text(figures: dict[str, Any]) -> str:
    parts = []
    if "perplexity" in figures:
        parts.append(f"{figures['perplexity']:,.0f}" if figures["perplexity"] >= 100 else f"{figures['perplexity']:.1f}")
    if "acc" in figures:
        parts.append(f"{100 * figures['acc']:.1f}")
    return " / ".join(parts)


def table_markdown(config: FidelityTableConfig, full: dict[str, Any], cells: dict[tuple[str, int, bool], dict]) -> str:
    """Strategies (then each distilled, with ``distillation``) as rows, keeps as columns, each cell "perplexity /
    accuracy %", settings stated below; ``cells`` by (strategy, keep, distilled)."""
    header = ["strategy", *(f"keep {keep}" for keep in config.keeps)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append("| full model | " + " | ".join(_cell_text(full["figures"]) for _ in config.keeps) + " |")
    for spec in config.strategies:
        for distilled in (False, True) if config.distillation else (False,):
            row = [_cell_text(cells[(spec.title, keep, distilled)]["figures"]) for keep in config.keeps]
            lines.append(f"| `{spec.title}`{' distilled' if distilled else ''} | " + " | ".join(row) + " |")
    held = full["held_out"]
    if "text_file" in held:
        text = f"the first {held['text_chars']:,} characters of {held['text_file']}"
    else:
        text = held.get("text", "no text")
    source = config.similarity
    notes = [
        f"Model {config.model}; adapter {config.adapter.describe()}; keep = blocks kept besides the adapter.",
        f"Each cell: perplexity of {text} / zero-shot accuracy (acc, %) on {held['questions']} {held['task']} "
        f"{held['split']} questions.",
        f"Calibration samples (similarity, importance, search): {source.limit} {source.task} {source.split} samples "
        f"(prompt + gold answer; {source.pooling} pooling, first {source.skip_first} token(s) skipped; loss-based "
        f"measures on the first {source.loss_limit}).",
    ]
    if config.distillation is not None:
        d = config.distillation
        notes.append(f"Distilled: {d.steps} steps of {d.batch_size} blocks of {d.block_size} tokens of "
                     f"{', '.join(d.corpus)} (lr {d.lr:g}; the step with the lowest perplexity on {d.held_out} "
                     "held-out blocks kept), against the full model.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def run_fidelity_table(
    config: FidelityTableConfig, out: str | os.PathLike, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every missing cell and write ``table.md`` and ``results.json`` into ``out``."""
    table = FidelityTable(config, out, log)
    full = table.full()
    cells = {(spec.title, keep, False): table.emulator(spec, keep) for spec in config.strategies for keep in config.keeps}
    if config.distillation is not None:
        cells.update({(spec.title, keep, True): table.distilled(spec, keep, cells[(spec.title, keep, False)])
                      for spec in config.strategies for keep in config.keeps})
    markdown = table_markdown(config, full, cells)
    with atomic_path(Path(out) / "table.md") as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    results = {"config": config.to_json(), "full": full, "cells": list(cells.values())}
    write_json(Path(out) / "results.json", results)
    return {"table": markdown, **results}
