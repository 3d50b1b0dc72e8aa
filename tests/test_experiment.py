"""The five-row experiment end to end on a tiny saved model and a small JSONL task, and its config errors."""

from __future__ import annotations

import json
import math
import random
import shutil

import numpy as np
import pytest
import yaml

from offsite import OffsiteError
from offsite.cli import main
from offsite.experiment import Experiment, experiment_from_dict, load_experiment_config, run_experiment
from offsite.experiment import Cell, Emulator, EmulatorSummary, Estimate, Part, TaskSummary, artifacts, measure_part
from offsite.experiment import reading, runner
from offsite.experiment.artifacts import choose_run
from offsite.experiment.estimates import Sample, difference, gain_share, over_seeds, paired_difference

from experiment_support import config_for, make_experiment_root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_experiment_root(tmp_path_factory.mktemp("experiment"))


WORDS = "the a cat dog sun owl sees eats finds likes red small big old".split()


@pytest.fixture(scope="module")
def study(setup, tmp_path_factory):
    """A small study: uniform at two sizes, plain and distilled, two seeds, both merges; cells in their own
    results directory, heavy files under out/."""
    root = tmp_path_factory.mktemp("study")
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(40)))
    config = config_for(setup, strategies=["uniform"], keep=[1, 2], distill=[False, True], seeds=[0, 1],
                        merge=["average", "select"], results_dir=str(root / "results"),
                        distillation={"corpus": [str(corpus)], "steps": 2, "batch_size": 2, "block_size": 16,
                                      "held_out": 2, "eval_every": 1})
    lines: list[str] = []
    result = run_experiment(config, root / "out", log=lines.append)
    return config, root, result, lines


def test_the_study_has_every_cell_of_its_axes_each_in_a_file(study):
    config, root, result, _ = study
    expected = {("Full ZS", None, None, None, None)} | {("Full FT", None, None, None, seed) for seed in (0, 1)}
    for keep in (1, 2):
        for distilled in (False, True):
            expected.add(("Emulator ZS", "uniform", keep, distilled, None))
            expected |= {(row, "uniform", keep, distilled, seed) for row in ("Emulator FT", "Plug-in") for seed in (0, 1)}
            expected |= {(f"Plug-in ({m} merge)", "uniform", keep, distilled, None) for m in ("average", "select")}
    records = result["records"]
    assert {(r["row"], r["strategy"], r["keep"], r["distilled"], r["seed"]) for r in records} == expected
    assert len(records) == len(expected) == 31
    files = sorted((root / "results" / "cells" / "task").glob("*.json"))
    assert len(files) == 31 and (root / "results" / "cells" / "task" / "uniform-keep2-distilled-plug-in-seed1.json") in files
    assert not (root / "out" / "cells").exists() and (root / "out" / "runs").is_dir()
    for name in ("chart.png", "emulators.png"):
        assert (root / "results" / name).read_bytes().startswith(b"\x89PNG") and (root / "results" / name).stat().st_size > 20000
    assert "choosing an emulator" in (root / "results" / "table.md").read_text()


def test_emulator_cells_record_size_fidelity_and_distillation(study):
    _, root, result, _ = study
    zero_shot = {(r["keep"], r["distilled"]): r["emulator"] for r in result["records"] if r["row"] == "Emulator ZS"}
    manifest = json.loads((root / "out" / "bundles" / "uniform-keep1" / "manifest.json").read_text())
    plain, distilled, bigger = zero_shot[(1, False)], zero_shot[(1, True)], zero_shot[(2, False)]
    assert plain["parameter_share"] == manifest["bundle_parameters"] / manifest["base_model"]["num_parameters"]
    assert plain["parameter_share"] == distilled["parameter_share"] < bigger["parameter_share"] < 1
    assert plain["fidelity"] == manifest["fidelity"] and "distillation" not in plain
    # The distilled emulator's figures are its own, measured after distillation, against the same full model.
    assert distilled["fidelity"]["full"] == plain["fidelity"]["full"]
    assert distilled["fidelity"]["emulator"]["perplexity"] != plain["fidelity"]["emulator"]["perplexity"]
    assert distilled["distillation"]["steps"] == 2
    merged = next(r for r in result["records"] if r["row"] == "Plug-in (select merge)" and r["keep"] == 2)
    assert merged["merge"]["seeds"] == [0, 1] and merged["merge"]["method"] == "select"


def test_the_summary_pairs_seeds_and_shares_the_gain(study):
    config, _, result, _ = study
    records = result["records"]

    def acc(row, keep=None, distilled=None, seed=None):
        return next(100 * r["scores"]["acc"] for r in records if r["row"] == row and r["keep"] == keep
                    and r["distilled"] == distilled and r["seed"] == seed)

    summary = result["summaries"][0]
    e = next(e for e in summary.emulators if e.emulator.keep == 2 and e.emulator.distilled)
    gaps = [acc("Plug-in", 2, True, s) - acc("Emulator FT", 2, True, s) for s in (0, 1)]
    assert e.gap.mean == pytest.approx(sum(gaps) / 2)
    full_ft = (acc("Full FT", seed=0) + acc("Full FT", seed=1)) / 2
    plug_in = (acc("Plug-in", 2, True, 0) + acc("Plug-in", 2, True, 1)) / 2
    assert summary.gain.mean == pytest.approx(full_ft - acc("Full ZS"))
    if summary.gain.mean > summary.gain.se:
        assert e.gain_share.mean == pytest.approx(100 * (plug_in - acc("Full ZS")) / (full_ft - acc("Full ZS")))
    else:  # a share of a gain within its standard error says nothing, and none is given
        assert e.gain_share is None and e.merged_gain_share == {"average": None, "select": None}
    assert e.merged["average"].mean == acc("Plug-in (average merge)", 2, True)


def test_a_stopped_study_continues_on_a_fresh_machine_from_its_cell_files(study, monkeypatch):
    config, root, result, _ = study
    shutil.rmtree(root / "out")  # the heavy files are gone: only the results directory is left

    def refuse(*args, **kwargs):
        raise AssertionError("a reused cell loaded or computed something")

    for module, name in [(runner, "load_model"), (runner, "load_bundle"), (runner, "evaluate_multiple_choice"),
                         (artifacts, "finetune"), (artifacts, "distill"), (artifacts, "emulate")]:
        monkeypatch.setattr(module, name, refuse)
    lines: list[str] = []
    again = run_experiment(config, root / "fresh-out", log=lines.append)
    assert lines == [] and again["records"] == result["records"]
    # A cell measured with other settings is refused, not overwritten.
    changed = config_for_dict(config, eval={"split": "test", "limit": 5, "batch_size": 8})
    with pytest.raises(OffsiteError, match="measured with other settings"):
        run_experiment(changed, root / "other-out", log=lines.append)


def test_the_metric_defaults_to_each_tasks_harness_metric(setup):
    config = config_for(setup, tasks=["arc_easy", "web_questions"], metric=None)
    assert [config.metric_for(t) for t in config.tasks] == ["acc", "exact_match"]  # WebQuestions' acc is always 1
    cell = Cell("web_questions", "Plug-in", Emulator("uniform", 2), 0)
    assert config.cell_identity(cell)["metric"] == "exact_match"
    assert config_for(setup, metric="acc_norm").metric_for("web_questions") == "acc_norm"
    with pytest.raises(OffsiteError, match="metric must be one of acc, acc_norm, exact_match"):
        config_for(setup, metric="f1")


def test_parts_deal_emulator_groups_in_a_snake_and_together_hold_every_cell_once():
    owners = [[k for k in (1, 2, 3) if Part(k, 3).holds(group)] for group in range(8)]
    assert owners == [[1], [2], [3], [3], [2], [1], [1], [2]]
    assert Part(1, 3).holds(None) and not Part(2, 3).holds(None)
    assert Part.parse(" 2 / 3 ") == Part(2, 3) and str(Part(2, 3)) == "2/3"
    for text in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(OffsiteError, match="a part is K/N"):
            Part.parse(text)


def test_parts_measured_apart_make_the_table_without_loading_anything(setup, tmp_path, monkeypatch):
    config = config_for(setup, keep=[1, 2], results_dir=str(tmp_path / "results"))
    first = measure_part(config, tmp_path / "out1", Part(1, 2), log=lambda line: None)
    assert not (tmp_path / "results" / "table.md").exists()  # a part writes no table
    # Tables of the cells measured so far: part 2's cells are missing, and nothing is measured for them.
    partial = run_experiment(config, tmp_path / "out1", log=lambda line: None, measure=False)
    assert partial["records"] == first and len(partial["missing"]) == 6
    assert {cell.emulator.strategy for cell in partial["missing"]} == {"uniform", "crash"}
    assert partial["table"].startswith("**Partial: 8 of 14 cells measured so far**")
    second = measure_part(config, tmp_path / "out2", Part(2, 2), log=lambda line: None)
    # Groups in order: uniform keep 1, uniform keep 2, crash keep 1, crash keep 2; dealt 1, 2, 2, 1.
    assert {(r["strategy"], r["keep"]) for r in first} == {(None, None), ("uniform", 1), ("crash", 2)}
    assert {(r["strategy"], r["keep"]) for r in second} == {("uniform", 2), ("crash", 1)}

    def refuse(*args, **kwargs):
        raise AssertionError("a part's cell was measured again")

    for module, name in [(runner, "load_model"), (runner, "evaluate_multiple_choice"), (artifacts, "finetune")]:
        monkeypatch.setattr(module, name, refuse)
    whole = run_experiment(config, tmp_path / "out3", log=lambda line: None)
    assert sorted(whole["records"], key=json.dumps) == sorted(first + second, key=json.dumps)
    assert len(whole["records"]) == 2 + 4 * 3 and not whole["missing"] and "Partial" not in whole["table"]


def test_the_cli_writes_the_tables_from_the_cells_and_refuses_bad_parts(study, tmp_path, capsys, monkeypatch):
    config, _, result, _ = study
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.to_json()))

    def refuse(*args, **kwargs):
        raise AssertionError("--tables-only loaded or computed something")

    for module, name in [(runner, "load_model"), (runner, "evaluate_multiple_choice"), (artifacts, "finetune")]:
        monkeypatch.setattr(module, name, refuse)
    command = ["experiment", str(path), "--out", str(tmp_path / "exp")]
    assert main([*command, "--tables-only"]) == 0
    printed = capsys.readouterr().out
    assert result["table"] in printed and "not measured yet" not in printed
    for extra, message in ((["--part", "1/2", "--tables-only"], "give one of them"),
                           (["--part", "3/2"], "a part is K/N with 1 <= K <= N (e.g. 1/2), got '3/2'")):
        assert main([*command, *extra]) == 2 and message in capsys.readouterr().err
    assert main(["experiment", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "x")]) == 2
    assert f"experiment config not found: {tmp_path / 'none.yaml'}" in capsys.readouterr().err


def config_for_dict(config, **overrides):
    return experiment_from_dict({**config.to_json(), **overrides})


def test_the_learning_rate_is_chosen_by_validation_score(tmp_path):
    def run(name, select, score, step=4):
        out = tmp_path / name
        out.mkdir()
        (out / "manifest.json").write_text(json.dumps({"select": select, "best": {"score": score}, "steps": 8,
                                                       "selected_step": step, "selection_warning": None}))
        return out

    runs = {1e-4: run("a", "acc", 0.25), 3e-4: run("b", "acc", 0.5, 8), 1e-3: run("c", "acc", 0.5)}
    chosen, record = choose_run(runs)
    assert chosen == runs[3e-4] and record["lr"] == 3e-4 and record["selected_step"] == 8  # a tie: the first
    assert [c["validation_score"] for c in record["candidates"]] == [0.25, 0.5, 0.5]
    losses = {1e-4: run("d", "loss", 2.0), 3e-4: run("e", "loss", 1.5)}
    assert choose_run(losses)[1]["lr"] == 3e-4  # lower loss wins


def test_an_lr_list_trains_each_and_keeps_the_best_on_validation(setup, tmp_path):
    config = config_for(setup, strategies=["uniform"], train={
        "split": "train", "limit": 8, "select_split": "validation", "select_limit": 4, "epochs": 1,
        "batch_size": 4, "lr": ["1e-6", 0.05]})
    assert config.train.lrs == (1e-6, 0.05)
    experiment = Experiment(config, tmp_path / "exp", log=lambda line: None)
    cell = next(c for c in experiment.cells() if c.row == "Plug-in")
    record = experiment.result(cell)
    runs = tmp_path / "exp" / "runs" / "task" / "seed0" / "uniform-keep2"
    scores = {lr: json.loads((runs / f"lr{lr:g}" / "manifest.json").read_text())["best"]["score"] for lr in (1e-6, 0.05)}
    best = max(scores.values())
    assert record["training"]["lr"] == next(lr for lr, score in scores.items() if score == best)
    assert record["training"]["candidates"] == [
        {"lr": lr, "selected_step": 2, "validation_score": scores[lr]} for lr in (1e-6, 0.05)]


def test_plug_in_cells_leave_the_base_model_unchanged(setup, tmp_path):
    experiment = Experiment(config_for(setup, strategies=["uniform"]), tmp_path / "exp", log=lambda line: None)
    model, _ = experiment.base()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cell = next(c for c in experiment.cells() if c.row == "Plug-in")
    experiment.result(cell)
    assert all((before[k] == v).all() for k, v in model.state_dict().items())


def test_other_settings_in_the_same_directory_are_refused(setup, tmp_path):
    Experiment(config_for(setup), tmp_path / "exp", log=lambda line: None)
    with pytest.raises(OffsiteError, match="other settings"):
        Experiment(config_for(setup, keep=3), tmp_path / "exp", log=lambda line: None)


def test_strategies_with_their_own_options_and_adapter_per_task_similarity(setup, tmp_path):
    strategies = [{"name": "uniform", "label": "uniform (own adapter)", "adapter_layers": [0, 5], "kept": [2, 3]},
                  "crash-noshare:cluster=all"]
    config = config_for(setup, strategies=strategies, similarity_per_task=True)
    assert config.titles == ("uniform (own adapter)", "crash-noshare:cluster=all")
    experiment = Experiment(config, tmp_path / "exp", log=lambda line: None)
    for cell in experiment.cells():
        if cell.row == "Emulator ZS":
            experiment.result(cell)
    task_dir = tmp_path / "exp" / "bundles" / "task"
    own = json.loads((task_dir / "uniform_own_adapter-keep2" / "manifest.json").read_text())
    assert own["layer_map"]["sources"] == [0, None, 2, 3, None, 5]
    assert own["strategy_spec"]["label"] == "uniform (own adapter)"
    crash = json.loads((task_dir / "crash-noshare_cluster-all-keep2" / "manifest.json").read_text())
    assert crash["layer_map"]["adapter_layers"] == [0, 5] and crash["similarity"]["task"] == config.tasks[0]
    saved = json.loads((tmp_path / "exp" / "config.json").read_text())
    assert saved["strategies"][1] == {"name": "crash-noshare", "cluster": "all"}
    assert experiment_from_dict(saved).strategies == config.strategies


@pytest.mark.parametrize(
    "text, message",
    [
        ("strategies: [random]\n", "unknown strategy 'random'"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("train: {epochz: 2}\n", "unknown key 'train.epochz'"),
        ("tasks: [\n", "not valid YAML"),
        ("eval: {split: validation}\n", "selected on the split they are scored on"),
        ("strategies: [crash, crash]\n", "listed twice"),
        ("strategies: ['crash:fill=sideways']\n", "fill=sideways is not one of"),
        ("similarity: {preset: mine}\n", "unknown similarity preset 'mine'"),
        ("similarity_per_task: true\nsimilarity_file: s.json\n", "takes no similarity_file"),
        ("keep: [6, 6]\n", "keep must be a whole number or a list of different ones"),
        ("distill: [no, maybe]\n", "distill must be true or false"),
        ("merge: [average]\n", "give at least two seeds"),
        ("seeds: [0, 1]\nmerge: [median]\n", "unknown merge method 'median'"),
        ("train: {lr: [1.0e-4, 0]}\n", "train.lr must be a positive number"),
        ("distillation: {stepz: 3}\n", "unknown key 'distillation.stepz'"),
        ("fidelity: {limit: -1}\n", "fidelity sample counts must be 0 or more"),
        ("tasks: []\n", "at least one task, one strategy and one seed"),
        ("distillation: {lr: fast}\n", "a value has the wrong type"),
        ("similarity: {limit: abc}\n", "a value has the wrong type"),
        ("train: {epochs: x}\n", "a value has the wrong type"),
        ("train: {batch_size: 0}\n", "--batch-size must be at least 1, got 0"),
        ("eval: {batch_size: 0}\n", "eval.batch_size and eval.limit must be at least 1"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(OffsiteError, match=message):
        load_experiment_config(path)


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("train: {lr: [1e-4, 3E-4]}\ndistillation: {lr: 2.5e-5}\n")
    config = load_experiment_config(path)
    assert config.train.lrs == (1e-4, 3e-4) and config.distillation.lr == 2.5e-5


def test_a_mean_over_seeds_carries_the_seeds_spread_and_the_test_questions_error():
    samples = [Sample(50.0, 3.0, 0), Sample(54.0, 3.2, 1), Sample(52.5, 3.1, 2)]
    values = np.array([50.0, 54.0, 52.5])
    estimate = over_seeds(samples)
    expected = np.sqrt((values.std(ddof=1) / np.sqrt(3)) ** 2 + np.mean([3.0, 3.2, 3.1]) ** 2)
    assert estimate.mean == pytest.approx(values.mean()) and estimate.se == pytest.approx(expected)
    assert estimate.seeds == 3
    assert over_seeds([Sample(50.0, 3.0, 0)]) == Estimate(50.0, 3.0, 1)  # one seed: the binomial error alone
    # Seed by seed; a zero-shot score (no seed) is subtracted from every seed.
    gap = paired_difference([Sample(60.0, 3.0, 0), Sample(64.0, 4.0, 1)], [Sample(50.0, 4.0, 1), Sample(55.0, 3.0, 0)])
    assert gap.mean == pytest.approx(((60 - 55) + (64 - 50)) / 2)
    assert paired_difference([Sample(60.0, 3.0, 0)], [Sample(50.0, 4.0)]) == Estimate(10.0, 5.0, 1)


def test_the_share_of_the_gain_has_the_standard_error_a_simulation_gives():
    zero_shot, fine_tuned, plug_in = Estimate(40.0, 1.0, 0), Estimate(60.0, 1.5, 3), Estimate(50.0, 1.2, 3)
    share = gain_share(plug_in, zero_shot, fine_tuned)
    rng = np.random.default_rng(0)
    z, f, p = (rng.normal(e.mean, e.se, 400_000) for e in (zero_shot, fine_tuned, plug_in))
    simulated = 100 * (p - z) / (f - z)
    assert share.mean == pytest.approx(50.0)
    assert share.se == pytest.approx(simulated.std(), rel=0.05)
    assert gain_share(plug_in, zero_shot, Estimate(40.0, 1.0, 1)) is None  # no gain: no share of it


def summary_of(full_zs, full_ft, *emulators):
    gain = Estimate(full_ft.mean - full_zs.mean, math.hypot(full_zs.se, full_ft.se), full_ft.seeds)
    return TaskSummary("arc_easy", "acc", full_zs, full_ft, gain, tuple(emulators))


def emulator_of(label, zero_shot, fine_tuned, plug_in, full_zs, full_ft):
    strategy, _, keep = label.partition(" ")
    return EmulatorSummary(
        Emulator(strategy, int(keep or 6)), label, 40.0, None, zero_shot, fine_tuned, plug_in,
        difference(plug_in, fine_tuned), difference(full_ft, fine_tuned), gain_share(plug_in, full_zs, full_ft))


def test_the_reading_calls_a_difference_resolved_only_outside_its_standard_error():
    full_zs, full_ft = Estimate(40.0, 1.0, 0), Estimate(60.0, 1.0, 1)
    clear = emulator_of("crash", Estimate(26.0, 1.0, 0), Estimate(35.0, 1.0, 1), Estimate(55.0, 1.0, 1), full_zs, full_ft)
    close = emulator_of("uniform", Estimate(25.0, 1.0, 0), Estimate(54.0, 1.0, 1), Estimate(54.5, 1.0, 1), full_zs, full_ft)
    sentences = reading(summary_of(full_zs, full_ft, clear, close))
    text = " ".join(sentences)
    assert "a gain of +20.0 ± 1.4 points (resolved" in sentences[0]
    assert "75.0 ± 6.4 % of the Full-FT gain" in text  # (55 − 40) / (60 − 40), delta method by hand
    crash_gap = next(s for s in sentences if s.startswith("Privacy gap of crash"))
    uniform_gap = next(s for s in sentences if s.startswith("Privacy gap of uniform"))
    assert "+20.0 ± 1.4 points (resolved)" in crash_gap and "protects the owner's model" in crash_gap
    assert "+0.5 ± 1.4 points (not resolved)" in uniform_gap and "do not show that it protects" in uniform_gap
    assert "Plug-in of crash vs uniform: +0.5 ± 1.4 points (not resolved)." in sentences
    assert sentences[-1].startswith("Settings that recover at least 50 % of the Full-FT gain while its emulator alone "
                                    "stays at least 10 points below Full FT: crash recovers 75.0 ± 6.4 %")
    assert "both thresholds cleared by more than a standard error" in sentences[-1]


def test_the_reading_claims_nothing_when_the_full_model_gain_is_within_its_error():
    full_zs, full_ft = Estimate(51.0, 3.5, 0), Estimate(55.0, 3.5, 1)  # a gain of 4 ± 4.9 points
    e = emulator_of("crash", Estimate(23.0, 3.0, 0), Estimate(25.0, 3.1, 1), Estimate(52.0, 3.5, 1), full_zs, full_ft)
    sentences = reading(summary_of(full_zs, full_ft, e))
    assert "a gain of +4.0 ± 4.9 points (not resolved" in sentences[0]
    assert "% of the Full-FT gain" not in sentences[1] and "plug-in − Full ZS +1.0 ± 4.9 points, not resolved" in sentences[1]
    assert "(resolved)" in sentences[2] and "protects the owner's model" in sentences[2]  # 27 points: measurably worse
    assert sentences[-1] == ("The Full-FT gain is not resolved, so no setting can be said to recover at least 50 % of "
                             "the Full-FT gain while its emulator alone stays at least 10 points below Full FT.")
