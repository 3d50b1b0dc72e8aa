"""The whole method on the embedded model, as one HTML report (``make demo``, ``offsite demo``).

Stages: layer similarity (CKA map and clusters) -> emulators of the same size with the same adapter, one per
strategy of :class:`DemoSettings` (optionally distilled), each measured against the full model -> each adapter
fine-tuned on its emulator and plugged in -> the five rows -> ``report.html``, whose reading is computed from the
numbers and their standard errors. Every stage leaves its files behind, so a second run reuses them and takes
seconds.
"""

from __future__ import annotations

import html
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .emulator import LayerMap
from .emulator.create import SimilaritySource
from .evaluate.fidelity import FidelityConfig
from .experiment import (
    DistillSettings,
    Emulator,
    EvalSettings,
    Experiment,
    ExperimentConfig,
    TaskSummary,
    TrainSettings,
    reading,
    run_experiment,
    table_markdown,
)
from .experiment.cells import EMULATOR_ZS
from .experiment.table import choice_markdown
from .paths import claim_directory, read_json
from .report.html import image_tag, markdown_table_html, table_html, write_report
from .train.metrics import read_metrics


@dataclass(frozen=True)
class DemoSettings:
    """The emulator-size study's setting (uniform at keep 16, plain and distilled; see README) at sizes chosen so
    the first run takes about 10 minutes on a 2-core CPU. ``strategies`` (as
    on the command line, e.g. ``crash:cluster=all:fill=repeat-all:tie=higher``), ``keep`` and ``distill`` choose the
    emulators shown; ``fidelity_limit`` validation questions (and as many samples of text) measure each against
    the full model."""

    model: str = "smollm2-135m"
    task: str = "arc_easy"
    strategies: tuple[str, ...] = ("uniform",)
    keep: int = 16
    distill: bool | tuple[bool, ...] = (False, True)
    distill_steps: int = 30
    adapter: tuple[int, int] = (2, 2)
    similarity_limit: int = 128
    train_limit: int = 512
    select_limit: int = 60
    eval_split: str = "test"
    eval_limit: int = 300
    fidelity_limit: int = 60
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8
    seed: int = 0

    def experiment(self, similarity_file: Path) -> ExperimentConfig:
        return ExperimentConfig(
            model=self.model,
            tasks=(self.task,),
            strategies=self.strategies,
            keep=self.keep,
            distill=self.distill,
            distillation=DistillSettings(steps=self.distill_steps, block_size=256, held_out=16, eval_every=15),
            adapter=self.adapter,
            seeds=(self.seed,),
            similarity=SimilaritySource(task=self.task, split="train", limit=self.similarity_limit),
            similarity_file=str(similarity_file),
            train=TrainSettings(split="train", limit=self.train_limit, select_split="validation",
                                select_limit=self.select_limit, epochs=self.epochs, lr=self.lr,
                                batch_size=self.batch_size),
            eval=EvalSettings(split=self.eval_split, limit=self.eval_limit),
            fidelity=FidelityConfig(task=self.task, split="validation", limit=self.fidelity_limit,
                                    text_limit=self.fidelity_limit),
        )


def _analysis(settings: DemoSettings, source: SimilaritySource, out: Path, log: Callable[[str], None]) -> dict:
    """CKA map and clusters of the base model on the same samples the CRaSh emulator is built from."""
    similarity = out / "similarity.json"
    if not similarity.is_file():
        from .models import load_model
        from .similarity import analyze_similarity, write_similarity

        model, tokenizer = load_model(settings.model)
        texts, origin = source.texts()
        result = analyze_similarity(model, tokenizer, texts, settings.keep, source.hidden_state_config(),
                                    settings.model, origin)
        write_similarity(result, out)
    else:
        log("   (reused)")
    return read_json(similarity, "similarity file")


def fidelity_rows(summary: TaskSummary) -> list[list[Any]]:
    """Per emulator (and the full model first): parameters, held-out perplexity and zero-shot accuracy, as measured
    when its bundle was built (after distillation for a distilled one)."""
    rows = []
    for e in summary.emulators:
        fidelity = e.fidelity or {}
        if not rows and "full" in fidelity:
            rows.append(["full model", "100.0", *_figures(fidelity["full"])])
        rows.append([e.label, "–" if e.parameter_share is None else f"{e.parameter_share:.1f}",
                     *_figures(fidelity.get("emulator", {}), fidelity.get("perplexity_ratio"))])
    return rows


def _figures(figures: dict[str, Any], ratio: float | None = None) -> list[str]:
    perplexity = "–" if "perplexity" not in figures else f"{figures['perplexity']:,.1f}" + (
        f" ({ratio:,.1f}×)" if ratio is not None else "")
    accuracy = "–" if "acc" not in figures else f"{100 * figures['acc']:.1f}"
    return [perplexity, accuracy]


def run_demo(out: str | os.PathLike, settings: DemoSettings = DemoSettings(),
             log: Callable[[str], None] = print) -> Path:
    """Run every stage of the demo (reusing finished ones) and write ``out/report.html``; return its path."""
    from .report.experiment_plots import save_training_curves
    from .report.layer_map_plot import save_layer_maps

    out = claim_directory(out)
    timings: list[tuple[str, float]] = []

    def stage(number: int, name: str) -> None:
        timings.append((name, time.perf_counter()))
        log(f"[{number}/4] {name}")

    stage(1, f"layer similarity of {settings.model} on {settings.similarity_limit} {settings.task} train questions")
    config = settings.experiment(out / "analysis" / "similarity.json")
    similarity = _analysis(settings, config.similarity, out / "analysis", log)
    stage(2, f"emulators ({', '.join(config.titles)}), fine-tuning, plug-in and the five rows")
    result = run_experiment(config, out / "experiment", log=lambda line: log("   " + line))
    stage(3, "figures")
    experiment = Experiment(config, out / "experiment", log)
    maps = {config.label(Emulator.of_record(record)): LayerMap.from_json(record["emulator"]["layer_map"])
            for record in result["records"] if record["row"] == EMULATOR_ZS}
    save_layer_maps(maps, out / "layer_maps.png")
    curves = {}
    for emulator in (*config.emulators, None):
        run = experiment.artifacts.run_dir(settings.task, settings.seed, emulator, settings.lr)
        curves[config.label(emulator) if emulator else "full model"] = read_metrics(run / "metrics.jsonl")
    save_training_curves(curves, out / "training_curves.png")
    stage(4, "report")
    timings.append(("end", time.perf_counter()))
    title = f"offsite demo: {' vs '.join(config.titles)} emulators of {settings.model}"
    report = write_report(out / "report.html", title,
                          _sections(settings, config, similarity, maps, result, out, timings))
    log(f"report: {report.resolve()}")
    return report


def _sections(settings, config, similarity, maps, result, out: Path, timings) -> list[tuple[str, str]]:
    summary = result["summaries"][0]
    results_dir = result["results_dir"]
    clusters = similarity["clusters"]
    cluster_rows = [[i, f"{c[0]}–{c[-1]}" if len(c) > 1 else c[0], len(c), r]
                    for i, (c, r) in enumerate(zip(clusters, similarity["representatives"]))]
    map_rows = [[name, m.describe(), len(m.emulator_sources), len(m.kept_layers)] for name, m in maps.items()]
    durations = [[name, f"{end - start:.0f} s"] for (name, start), (_, end) in zip(timings, timings[1:])]
    sentences = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in reading(summary))
    return [
        ("What this shows", f"<ul>{sentences}</ul><p class='note'>Each number ± one standard error. A difference is "
         "called resolved only when it exceeds its standard error; nothing is claimed of one that does not.</p>"),
        ("Results: the five rows of the protocol", markdown_table_html(table_markdown(result["summaries"], config))
         + image_tag(results_dir / "chart.png", "scores per strategy")),
        ("Choosing an emulator", markdown_table_html(choice_markdown(summary, config))
         + image_tag(results_dir / "emulators.png", "emulator choice")),
        ("Fidelity: each emulator against the full model, before fine-tuning",
         table_html(["model", "parameters (% of full)", "perplexity (× full)", "zero-shot acc (%)"],
                    fidelity_rows(summary))
         + f"<p class='note'>On {settings.fidelity_limit} {settings.task} validation questions and the text of "
         f"{settings.fidelity_limit} validation samples (prompt + gold answer), as each bundle's manifest records "
         "them (a distilled emulator: measured after distillation).</p>"),
        ("Layer similarity (linear CKA between block outputs)",
         f"<p class='note'>{similarity['num_samples']} {settings.task} train questions (prompt + gold answer), "
         f"mean pooling with the first token left out; layers numbered from 0.</p>"
         + image_tag(out / "analysis" / "cka.png", "CKA heatmap")
         + table_html(["cluster", "layers", "size", "representative"], cluster_rows)),
        ("Layer maps", image_tag(out / "layer_maps.png", "layer maps")
         + table_html(["emulator", "position: source (* adapter, · removed)", "depth", "distinct blocks"], map_rows)),
        ("Training curves", image_tag(out / "training_curves.png", "training curves")),
        ("Settings and timings", "<pre>" + html.escape(json.dumps(asdict(settings), indent=2)) + "</pre>"
         + table_html(["stage", "wall time (this run)"], durations)
         + "<p class='note'>For the emulator-size study and the full experiment, see the README.</p>"),
    ]
