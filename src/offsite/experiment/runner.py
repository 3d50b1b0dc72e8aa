"""Run the five-row protocol: for each task, strategy and seed, build, fine-tune, plug in and score.

Every cell (a bundle, a fine-tuning run, a score) is a file under the experiment directory, written when
it is done; a stopped experiment run again with the same config skips the cells it finds.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data import get_task, load_examples
from ..emulator import load_bundle, plugged_in
from ..emulator.create import EmulatorConfig, create_bundle
from ..errors import OffsiteError
from ..evaluate import evaluate_multiple_choice
from ..landscape import LandscapeConfig, compute_landscape, finished_landscape
from ..models import load_model
from ..paths import atomic_path, claim_directory, read_json, write_json
from ..train import FinetuneConfig, finetune
from .config import ExperimentConfig

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Cell:
    """One score: a row of the table for one task, strategy (None for the full-model rows) and seed."""

    task: str
    row: str
    strategy: str | None
    seed: int | None

    @property
    def name(self) -> str:
        parts = [self.strategy or "full", self.row.lower().replace(" ", "-").replace("full-", "")]
        return "-".join(parts + ([f"seed{self.seed}"] if self.seed is not None else []))


class Experiment:
    """The files of one experiment directory, and how each missing one is made."""

    def __init__(self, config: ExperimentConfig, out: str | os.PathLike, log: Callable[[str], None] = print):
        self.config = config
        self.out = Path(out)
        self.log = log
        self._base: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None
        self._check_directory()

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

    def bundle_dir(self, strategy: str, task: str) -> Path:
        """The bundle of ``strategy`` (a title, see :attr:`ExperimentConfig.titles`) for ``task``: one per strategy,
        or one per strategy and task where each task has its own similarity."""
        slug = self.config.spec(strategy).slug
        return self.out / "bundles" / get_task(task).name / slug if self.config.similarity_per_task else \
            self.out / "bundles" / slug

    def run_dir(self, task: str, seed: int, strategy: str | None) -> Path:
        name = self.config.spec(strategy).slug if strategy else "full"
        return self.out / "runs" / get_task(task).name / f"seed{seed}" / name

    def score_file(self, cell: Cell) -> Path:
        return self.out / "scores" / get_task(cell.task).name / f"{cell.name}.json"

    def ensure_bundle(self, strategy: str, task: str) -> Path:
        path = self.bundle_dir(strategy, task)
        if not (path / "manifest.json").is_file():
            self.log(f"== emulator: {strategy} (keep {self.config.keep})")
            model, tokenizer = self.base()
            emulator = EmulatorConfig(self.config.spec(strategy), self.config.keep, self.config.default_adapter,
                                      self.config.similarity_for(task))
            layer_map, _ = create_bundle(model, tokenizer, emulator, path, self.config.model,
                                         self.config.similarity_file)
            self.log(f"   layer map: {layer_map.describe()}")
        return path

    def ensure_run(self, task: str, seed: int, strategy: str | None) -> Path:
        """Fine-tune the adapter of ``strategy`` on its emulator (None: on the full model) unless already done."""
        out = self.run_dir(task, seed, strategy)
        train = self.config.train
        if strategy is None:
            layers = {"all_weights": True} if self.config.full_ft == "all" else {
                "bundle": str(self.ensure_bundle(self.config.titles[0], task))
            }
            source = {"source": self.config.model, "full": True, **layers}
        else:
            source = {"source": str(self.ensure_bundle(strategy, task))}
        settings = FinetuneConfig(
            task=task, out=str(out), train_split=train.split, eval_split=train.select_split, limit=train.limit,
            eval_limit=train.select_limit, epochs=train.epochs, lr=train.lr, batch_size=train.batch_size,
            warmup=train.warmup, eval_every=train.eval_every, seed=seed, select=self.config.metric, **source,
        )
        # The directory's config.json already pins these settings, so a finished run is taken as it is.
        if not (out / "manifest.json").is_file():
            self.log(f"== fine-tune: {strategy or 'full model'} on {task} (seed {seed})")
            finetune(settings)
        return out

    def examples(self, task: str):
        return load_examples(task, self.config.eval.split, self.config.eval.limit)

    def score(self, cell: Cell) -> dict[str, Any]:
        path = self.score_file(cell)
        if path.is_file():
            return read_json(path, "score")
        with self._model_for(cell) as (model, tokenizer):
            self.log(f"== score: {cell.row}{f' ({cell.strategy})' if cell.strategy else ''} on {cell.task}"
                     f"{f' seed {cell.seed}' if cell.seed is not None else ''}")
            scores = evaluate_multiple_choice(model, tokenizer, self.examples(cell.task),
                                              batch_size=self.config.eval.batch_size).to_dict()
        write_json(path, scores)
        return scores

    @contextlib.contextmanager
    def _model_for(self, cell: Cell) -> Iterator[tuple[PreTrainedModel, PreTrainedTokenizerBase]]:
        if cell.row == "Full ZS":
            yield self.base()
        elif cell.row in ("Emulator ZS", "Emulator FT"):
            bundle = self.ensure_bundle(cell.strategy, cell.task)
            run = self.ensure_run(cell.task, cell.seed, cell.strategy) if cell.row == "Emulator FT" else None
            loaded = load_bundle(bundle, adapter=run / "adapter.safetensors" if run else None)
            yield loaded.model, loaded.tokenizer
        elif cell.row == "Full FT" and self.config.full_ft == "all":
            yield load_model(str(self.ensure_run(cell.task, cell.seed, None) / "model"))
        else:
            run = self.ensure_run(cell.task, cell.seed, cell.strategy)
            model, tokenizer = self.base()
            # Plug in place; the base model's own weights come back for the next cell.
            with plugged_in(model, run):
                yield model, tokenizer

    def landscape_dir(self, task: str, seed: int) -> Path:
        return self.out / "landscapes" / get_task(task).name / f"seed{seed}"

    def ensure_landscape(self, config: LandscapeConfig, out: Path) -> dict[str, Any]:
        """The landscape ``config`` in ``out``, computed unless it is there already, finished, with these settings."""
        record = finished_landscape(out, config)
        if record is None:
            self.log(f"== landscape: {' → '.join(config.labels)} on {config.task}")
            model, tokenizer = self.base()
            record = compute_landscape(model, tokenizer, config, out, log=lambda line: self.log("   " + line))
        return record

    def landscapes(self) -> None:
        """The landscapes the config asks for, per task, seed and strategy (see :class:`LandscapeSettings`), and per
        task and seed ``lines.png``: every strategy's line from Full FT to its plug-in in one figure."""
        from ..report.landscape_plots import save_line_plot

        for task in self.config.tasks:
            for seed in self.config.seeds:
                full = str(self.ensure_run(task, seed, None))
                lines = {}
                for strategy in self.config.titles:
                    run = str(self.ensure_run(task, seed, strategy))
                    configs = self.config.landscape.landscapes(self.config.model, task, full, run, strategy,
                                                               self.config.eval.batch_size)
                    records = {kind: self.ensure_landscape(config, self.landscape_dir(task, seed) / self.config.spec(strategy).slug / kind)
                               for kind, config in configs.items()}
                    if "line" in records:
                        lines[f"Full FT → {strategy} plug-in"] = records["line"]
                if lines:
                    save_line_plot(lines, self.landscape_dir(task, seed) / "lines.png")

    def cells(self) -> list[Cell]:
        cells = []
        for task in self.config.tasks:
            cells.append(Cell(task, "Full ZS", None, None))
            cells += [Cell(task, "Full FT", None, seed) for seed in self.config.seeds]
            for strategy in self.config.titles:
                cells.append(Cell(task, "Emulator ZS", strategy, None))
                for seed in self.config.seeds:
                    cells += [Cell(task, "Emulator FT", strategy, seed), Cell(task, "Plug-in", strategy, seed)]
        return cells

    def run(self) -> list[dict[str, Any]]:
        """Every cell's scores, computing the missing ones; one record per cell."""
        records = []
        for cell in self.cells():
            scores = self.score(cell)
            records.append({"task": cell.task, "row": cell.row, "strategy": cell.strategy, "seed": cell.seed,
                            **scores})
        return records


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, log: Callable[[str], None] = print) -> dict:
    """Run (or continue) the experiment and write ``results.json``, ``table.md`` and ``chart.png`` into ``out``, and
    ``landscapes/`` when the config asks for them."""
    from ..report.experiment_plots import save_protocol_chart
    from .table import summarize, table_markdown

    experiment = Experiment(config, out, log)
    records = experiment.run()
    rows = summarize(records, config)
    out = Path(out)
    table = table_markdown(rows, config)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table, encoding="utf-8")
    results = {"config": config.to_json(), "cells": records, "table": [
        {**r, "cells": {t: None if c is None else {"mean": c[0], "std": c[1]} for t, c in r["cells"].items()}}
        for r in rows
    ]}
    write_json(out / "results.json", results)
    save_protocol_chart(rows, config.tasks, config.titles, config.metric, out / "chart.png")
    if config.landscape is not None:
        experiment.landscapes()
    return {"table": table, "rows": rows, "records": records}
