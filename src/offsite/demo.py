"""The whole method on the embedded model, as one HTML report (``make demo``, ``offsite demo``).

Stages: layer similarity (CKA map and clusters) -> uniform and CRaSh emulators of the same size with the
same adapter -> each adapter fine-tuned on its emulator and plugged in -> the five rows for both strategies
-> ``report.html``. Every stage leaves its files behind, so a second run reuses them and takes seconds.
"""

from __future__ import annotations

import html
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .emulator import LayerMap, read_manifest
from .emulator.create import SimilaritySource
from .experiment import EvalSettings, Experiment, ExperimentConfig, TrainSettings, run_experiment
from .experiment.table import GAP
from .paths import claim_directory, read_json
from .train.metrics import read_metrics
from .report.html import image_tag, markdown_table_html, table_html, write_report


@dataclass(frozen=True)
class DemoSettings:
    """Sizes chosen so the first run takes well under 15 minutes on a 2-core CPU (see README)."""

    model: str = "smollm2-135m"
    task: str = "arc_easy"
    keep: int = 6
    adapter: tuple[int, int] = (2, 2)
    similarity_limit: int = 128
    train_limit: int = 384
    select_limit: int = 60
    eval_split: str = "test"
    eval_limit: int = 200
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8
    seed: int = 0

    def experiment(self, similarity_file: Path) -> ExperimentConfig:
        return ExperimentConfig(
            model=self.model,
            tasks=(self.task,),
            strategies=("uniform", "crash"),
            keep=self.keep,
            adapter=self.adapter,
            seeds=(self.seed,),
            similarity=SimilaritySource(task=self.task, split="train", limit=self.similarity_limit),
            similarity_file=str(similarity_file),
            train=TrainSettings(split="train", limit=self.train_limit, select_split="validation",
                                select_limit=self.select_limit, epochs=self.epochs, lr=self.lr,
                                batch_size=self.batch_size),
            eval=EvalSettings(split=self.eval_split, limit=self.eval_limit),
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


def reading(rows: list[dict[str, Any]], task: str) -> str:
    """A few plain sentences on what the table shows, computed from it."""
    value = {(r["setting"], r["strategy"]): (r["cells"][task] or (float("nan"), None))[0] for r in rows}
    full_zs, full_ft = value[("Full ZS", "–")], value[("Full FT", "–")]
    best = max(("uniform", "crash"), key=lambda s: value[("Plug-in", s)])
    other = "uniform" if best == "crash" else "crash"
    sentences = [
        f"The full model scores {full_zs:.1f} zero-shot and {full_ft:.1f} after fine-tuning its adapter layers "
        "directly (the upper bound).",
        f"Fine-tuned on its emulator and plugged back in, the {best} adapter scores {value[('Plug-in', best)]:.1f} "
        f"against {value[('Plug-in', other)]:.1f} for {other}.",
    ]
    for strategy in ("uniform", "crash"):
        gap = value[(GAP, strategy)]
        sentences.append(
            f"The {strategy} emulator alone reaches {value[('Emulator FT', strategy)]:.1f} after fine-tuning, "
            f"{gap:+.1f} points from its plug-in: "
            + ("the emulator stays clearly worse than the full model, which protects the owner."
               if gap > 2 else "the emulator is nearly as good as the full model here, so it protects little.")
        )
    sentences.append("These are small runs on a 135M-parameter model with a few hundred training examples; "
                     "differences of a few points are within the standard errors in the JSON.")
    return " ".join(sentences)


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
    stage(2, "emulators, fine-tuning, plug-in and the five rows (uniform and crash)")
    result = run_experiment(config, out / "experiment", log=lambda line: log("   " + line))
    stage(3, "figures")
    experiment_dir = out / "experiment"
    experiment = Experiment(config, experiment_dir, log)
    maps = {s: LayerMap.from_json(read_manifest(experiment.bundle_dir(s, settings.task))["layer_map"])
            for s in config.titles}
    save_layer_maps(maps, out / "layer_maps.png")
    curves = {}
    for strategy in (*config.titles, None):
        metrics = experiment.run_dir(config.tasks[0], settings.seed, strategy) / "metrics.jsonl"
        curves[strategy or "full model"] = read_metrics(metrics)
    save_training_curves(curves, out / "training_curves.png")
    stage(4, "report")
    timings.append(("end", time.perf_counter()))
    report = write_report(out / "report.html", f"offsite demo: CRaSh vs uniform emulators of {settings.model}",
                          _sections(settings, similarity, maps, result, out, timings))
    log(f"report: {report.resolve()}")
    return report


def _sections(settings, similarity, maps, result, out: Path, timings) -> list[tuple[str, str]]:
    clusters = similarity["clusters"]
    cluster_rows = [[i, f"{c[0]}–{c[-1]}" if len(c) > 1 else c[0], len(c), r]
                    for i, (c, r) in enumerate(zip(clusters, similarity["representatives"]))]
    map_rows = [[name, m.describe(), len(m.emulator_sources), len(m.kept_layers)] for name, m in maps.items()]
    durations = [[name, f"{end - start:.0f} s"] for (name, start), (_, end) in zip(timings, timings[1:])]
    return [
        ("What this shows", f"<p>{html.escape(reading(result['rows'], settings.task))}</p>"),
        ("Results: the five rows of the protocol", markdown_table_html(result["table"])
         + image_tag(out / "experiment" / "chart.png", "scores per strategy")),
        ("Layer similarity (linear CKA between block outputs)",
         f"<p class='note'>{similarity['num_samples']} {settings.task} train questions (prompt + gold answer), "
         f"mean pooling with the first token left out; layers numbered from 0.</p>"
         + image_tag(out / "analysis" / "cka.png", "CKA heatmap")
         + table_html(["cluster", "layers", "size", "representative"], cluster_rows)),
        ("Layer maps", image_tag(out / "layer_maps.png", "layer maps")
         + table_html(["strategy", "position: source (* adapter, · removed)", "depth", "distinct blocks"], map_rows)),
        ("Training curves", image_tag(out / "training_curves.png", "training curves")),
        ("Settings and timings", "<pre>" + html.escape(json.dumps(asdict(settings), indent=2)) + "</pre>"
         + table_html(["stage", "wall time (this run)"], durations)
         + "<p class='note'>For the full experiment on a larger model with a GPU, see the README.</p>"),
    ]
