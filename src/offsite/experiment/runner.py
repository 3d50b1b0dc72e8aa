"""Run the protocol: for each task, emulator (strategy × size × distilled or not) and seed, build, distil, fine-tune,
plug in and score.

Two directories. The experiment directory (``--out``) holds the heavy files (:mod:`.artifacts`: bundles, runs,
merged adapters) and the landscapes. The results directory (``results_dir``, default the experiment directory)
holds one small JSON file per cell under ``cells/``: the scores with their standard errors, what they came from
(the bundle's share of the full model and its fidelity, the learning rate and step chosen) and the settings they
were measured with. A cell whose file is there is taken as it is, without loading anything; a missing one rebuilds
the heavy files it needs. So an experiment stopped on one machine continues on another from its results directory.

Work is shared two ways. Processes of one machine given the same ``--out`` share it cell by cell: each takes the
next cell, bundle or run that no other is making (:mod:`.locks`), so two processes on two cores keep both busy to
the end. Processes on several machines (or with their own ``--out``) take a :class:`Part` each.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data import get_task, load_examples
from ..emulator import load_bundle, plugged_in
from ..errors import OffsiteError
from ..evaluate import evaluate_multiple_choice
from ..evaluate.fidelity import held_out, model_figures
from ..landscape import LandscapeConfig, compute_landscape, finished_landscape
from ..models import load_model
from ..paths import atomic_path, claim_directory, read_json, write_json
from ..train.loop import ADAPTER_FILE, MODEL_DIR
from .artifacts import Artifacts
from .cells import EMULATOR_FT, EMULATOR_ZS, FULL_FT, FULL_ZS, PLUG_IN, Cell, Part, merged_row
from .config import ExperimentConfig
from .locks import Busy

CONFIG_FILE = "config.json"
BUSY_POLL_SECONDS = 5.0  # how often a process whose remaining cells are all another process's looks again
Loaded = tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]  # a model to score, and what to record


def emulator_record(manifest: dict[str, Any], figures: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an Emulator ZS cell records of its bundle: sizes, layer map, fidelity and distillation. ``figures``
    (the emulator's own, measured after distillation) replace the emulator's figures in the manifest's fidelity."""
    base = manifest["base_model"]
    fidelity = manifest.get("fidelity")
    if figures is not None and fidelity is not None:
        ratio = figures["perplexity"] / fidelity["full"]["perplexity"] if "perplexity" in figures else None
        fidelity = {**fidelity, "emulator": figures, "perplexity_ratio": ratio}
    record = {"bundle_parameters": manifest["bundle_parameters"], "full_parameters": base["num_parameters"],
              "parameter_share": manifest["bundle_parameters"] / base["num_parameters"],
              "adapter_parameters": manifest["adapter_parameters"], "layer_map": manifest["layer_map"],
              "fidelity": fidelity}
    distillation = manifest.get("distillation")
    if distillation is not None:
        record["distillation"] = {key: distillation[key] for key in (
            "steps", "selected_step", "held_out_perplexity", "held_out_hidden_loss", "seconds_per_step", "corpus")}
    return record


class Experiment:
    """The cells of one experiment, where their files are, and how each missing one is measured."""

    def __init__(self, config: ExperimentConfig, out: str | os.PathLike, log: Callable[[str], None] = print):
        self.config = config
        self.out = Path(out)
        self.results = Path(config.results_dir) if config.results_dir else self.out
        self.log = log
        self._base: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None
        self._check_directory()
        claim_directory(self.results)
        self.artifacts = Artifacts(config, self.out, self.base, log)
        self._rows: dict[str, Callable[[Cell], contextlib.AbstractContextManager[Loaded]]] = {
            FULL_ZS: self._full_zero_shot, FULL_FT: self._full_fine_tuned, EMULATOR_ZS: self._emulator_zero_shot,
            EMULATOR_FT: self._emulator_fine_tuned, PLUG_IN: self._plug_in,
            **{merged_row(method): functools.partial(self._merged_plug_in, method) for method in config.merge},
        }

    def _check_directory(self) -> None:
        claim_directory(self.out)
        saved = self.out / CONFIG_FILE
        if saved.is_file():
            if read_json(saved, "experiment config") != self.config.identity():
                raise OffsiteError(f"{self.out} holds an experiment with other settings; choose another --out")
        else:
            write_json(saved, self.config.identity())

    def base(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self._base is None:
            self._base = load_model(self.config.model)
        return self._base

    def cell_file(self, cell: Cell) -> Path:
        name = self.config.emulator_name(cell.emulator) if cell.emulator else None
        return self.results / "cells" / get_task(cell.task).name / f"{cell.file_name(name)}.json"

    def cells(self, part: Part | None = None) -> list[Cell]:
        """Every cell (of ``part`` only, when given), in the order they are measured."""
        config, cells = self.config, []
        groups = list(dict.fromkeys((emulator.strategy, emulator.keep) for emulator in config.emulators))
        for task in config.tasks:
            if part is None or part.holds(None):
                cells.append(Cell(task, FULL_ZS))
                cells += [Cell(task, FULL_FT, None, seed) for seed in config.seeds]
            for emulator in config.emulators:
                if part is not None and not part.holds(groups.index((emulator.strategy, emulator.keep))):
                    continue
                cells.append(Cell(task, EMULATOR_ZS, emulator))
                for seed in config.seeds:
                    cells += [Cell(task, EMULATOR_FT, emulator, seed), Cell(task, PLUG_IN, emulator, seed)]
                cells += [Cell(task, merged_row(method), emulator) for method in config.merge]
        return cells

    def stored(self, cell: Cell) -> dict[str, Any] | None:
        """The record of ``cell`` from its file, None when it has not been measured. A file measured with other
        settings is refused."""
        path = self.cell_file(cell)
        if not path.is_file():
            return None
        record = read_json(path, "experiment cell")
        if not isinstance(record, dict) or record.get("identity") != self.config.cell_identity(cell):
            raise OffsiteError(f"{path} was measured with other settings than this config's; move it away or "
                               "set another results_dir")
        return record

    def result(self, cell: Cell) -> dict[str, Any]:
        """The record of ``cell``: read from its file, or measured and written (a file measured with other
        settings is refused, never overwritten)."""
        record = self.stored(cell)
        if record is not None:
            return record
        path, identity = self.cell_file(cell), self.config.cell_identity(cell)
        with self._rows[cell.row](cell) as (model, tokenizer, details):
            what = f" ({self.config.label(cell.emulator)})" if cell.emulator else ""
            self.log(f"== score: {cell.row}{what} on {cell.task}{f' seed {cell.seed}' if cell.seed is not None else ''}")
            scores = evaluate_multiple_choice(model, tokenizer, self.examples(cell.task),
                                              batch_size=self.config.eval.batch_size).to_dict()
        record = {**cell.key(), "scores": scores, **details, "identity": identity}
        write_json(path, record)
        return record

    def examples(self, task: str):
        return load_examples(task, self.config.eval.split, self.config.eval.limit)

    @contextlib.contextmanager
    def _plugged(self, run: Path, details: dict[str, Any]) -> Iterator[Loaded]:
        model, tokenizer = self.base()
        # Plug in place; the base model's own weights come back for the next cell.
        with plugged_in(model, run):
            yield model, tokenizer, details

    @contextlib.contextmanager
    def _full_zero_shot(self, cell: Cell) -> Iterator[Loaded]:
        yield (*self.base(), {})

    @contextlib.contextmanager
    def _full_fine_tuned(self, cell: Cell) -> Iterator[Loaded]:
        run, training = self.artifacts.ensure_run(cell.task, cell.seed, None)
        if self.config.full_ft == "all":
            yield (*load_model(os.fspath(run / MODEL_DIR)), {"training": training})
        else:
            with self._plugged(run, {"training": training}) as loaded:
                yield loaded

    @contextlib.contextmanager
    def _emulator_zero_shot(self, cell: Cell) -> Iterator[Loaded]:
        bundle = load_bundle(self.artifacts.ensure_bundle(cell.emulator, cell.task))
        figures = None
        if cell.emulator.distilled:  # the manifest's fidelity is the emulator's before distillation
            figures = model_figures(bundle.model, bundle.tokenizer, held_out(self.config.fidelity),
                                    self.config.fidelity.batch_size)
        yield bundle.model, bundle.tokenizer, {"emulator": emulator_record(bundle.manifest, figures)}

    @contextlib.contextmanager
    def _emulator_fine_tuned(self, cell: Cell) -> Iterator[Loaded]:
        run, training = self.artifacts.ensure_run(cell.task, cell.seed, cell.emulator)
        bundle = load_bundle(self.artifacts.ensure_bundle(cell.emulator, cell.task), adapter=run / ADAPTER_FILE)
        yield bundle.model, bundle.tokenizer, {"training": training}

    @contextlib.contextmanager
    def _plug_in(self, cell: Cell) -> Iterator[Loaded]:
        run, training = self.artifacts.ensure_run(cell.task, cell.seed, cell.emulator)
        with self._plugged(run, {"training": training}) as loaded:
            yield loaded

    @contextlib.contextmanager
    def _merged_plug_in(self, method: str, cell: Cell) -> Iterator[Loaded]:
        run, merge = self.artifacts.ensure_merged(cell.task, cell.emulator, method)
        with self._plugged(run, merge) as loaded:
            yield loaded

    def run(self, part: Part | None = None) -> list[dict[str, Any]]:
        """Every cell's record (of ``part`` only, when given), measuring the missing ones. A cell that another
        process is measuring, or whose bundle or run another process is making (see :mod:`.locks`), waits until
        the cells after it are done or taken."""
        cells = self.cells(part)
        records: dict[Cell, dict[str, Any]] = {}
        pending, announced = cells, set()
        while pending:
            waiting = []
            for cell in pending:
                name = str(self.cell_file(cell).relative_to(self.results))
                try:
                    with self.artifacts.locks.hold(name):
                        records[cell] = self.result(cell)
                except Busy as busy:
                    if cell not in announced:
                        what = "measuring it" if str(busy) == name else f"making {busy}"
                        self.log(f"== later: {name} (another process is {what} now)")
                        announced.add(cell)
                    waiting.append(cell)
            if len(waiting) == len(pending):
                time.sleep(BUSY_POLL_SECONDS)
            pending = waiting
        return [records[cell] for cell in cells]

    def landscape_dir(self, task: str, seed: int) -> Path:
        return self.out / "landscapes" / get_task(task).name / f"seed{seed}"

    def ensure_landscape(self, config: LandscapeConfig, out: Path) -> dict[str, Any]:
        """The landscape ``config`` in ``out``, computed unless it is there already, finished, with these settings."""
        record = finished_landscape(out, config)
        if record is None:
            with self.artifacts.locks.hold(str(out.relative_to(self.out))):
                self.log(f"== landscape: {' → '.join(config.labels)} on {config.task}")
                model, tokenizer = self.base()
                record = compute_landscape(model, tokenizer, config, out, log=lambda line: self.log("   " + line))
        return record

    def landscapes(self) -> None:
        """The landscapes the config asks for, per task, seed and emulator (see :class:`LandscapeSettings`), and per
        task and seed ``lines.png``: every emulator's line from Full FT to its plug-in in one figure."""
        from ..report.landscape_plots import save_line_plot

        config = self.config
        for task in config.tasks:
            for seed in config.seeds:
                full = str(self.artifacts.ensure_run(task, seed, None)[0])
                lines = {}
                for emulator in config.emulators:
                    run = str(self.artifacts.ensure_run(task, seed, emulator)[0])
                    label = config.label(emulator)
                    where = self.landscape_dir(task, seed) / config.emulator_name(emulator)
                    kinds = config.landscape.landscapes(config.model, task, full, run, label, config.eval.batch_size)
                    records = {}
                    for kind, landscape in kinds.items():
                        try:
                            records[kind] = self.ensure_landscape(landscape, where / kind)
                        except Busy:
                            self.log(f"== skipped: the landscape {where / kind} (another process is computing it)")
                    if "line" in records:
                        lines[f"Full FT → {label} plug-in"] = records["line"]
                if lines:
                    save_line_plot(lines, self.landscape_dir(task, seed) / "lines.png")


def measure_part(config: ExperimentConfig, out: str | os.PathLike, part: Part,
                 log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Measure only ``part``'s cells (see :class:`Part`) into the results directory and return their records; no
    table. Once every part is done (their ``cells/`` files gathered in one results directory), :func:`run_experiment`
    writes the tables from the files without loading anything."""
    return Experiment(config, out, log).run(part)


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, log: Callable[[str], None] = print,
                   measure: bool = True) -> dict:
    """Run (or continue) the experiment. Into its results directory: ``table.md`` (Table 1, the emulator-choice
    table per task and the reading), ``results.json``, ``chart.png`` (the protocol's rows) and ``emulators.png``
    (what a model owner reads to choose an emulator); ``landscapes/`` under ``out`` when the config asks. Without
    ``measure``, the tables and charts show the cells measured so far (a study still running) and nothing else is
    done; ``missing`` lists the others."""
    from ..report.experiment_plots import save_emulator_choice_chart, save_protocol_chart
    from .reading import reading
    from .summary import summarize
    from .table import choice_markdown, table_markdown

    experiment = Experiment(config, out, log)
    if measure:
        records, missing = experiment.run(), []
    else:
        stored = {cell: experiment.stored(cell) for cell in experiment.cells()}
        records = [record for record in stored.values() if record is not None]
        missing = [cell for cell, record in stored.items() if record is None]
    summaries = summarize(records, config)
    sections = [table_markdown(summaries, config)]
    if missing:
        sections.insert(0, f"**Partial: {len(records)} of {len(records) + len(missing)} cells measured so far**; "
                           "a blank is a cell not measured yet, and the reading covers only what is measured.\n")
    for summary in summaries:
        sections.append(f"## {get_task(summary.task).name}: choosing an emulator\n\n{choice_markdown(summary, config)}")
        sections.append("\n\n".join(reading(summary)) + "\n")
    table = "\n".join(sections)
    results = experiment.results
    with atomic_path(results / "table.md") as tmp:
        tmp.write_text(table, encoding="utf-8")
    plain = [summary.to_json() for summary in summaries]
    write_json(results / "results.json", {"config": config.to_json(), "cells": records, "summary": plain})
    save_protocol_chart(plain, results / "chart.png")
    save_emulator_choice_chart(plain, results / "emulators.png")
    if config.landscape is not None and measure:
        experiment.landscapes()
    return {"table": table, "summaries": summaries, "records": records, "results_dir": results, "missing": missing}
