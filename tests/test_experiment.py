"""The five-row experiment end to end on a tiny saved model and a small JSONL task, and its config errors."""

from __future__ import annotations

import json

import pytest

from offsite import OffsiteError
from offsite.experiment import Experiment, experiment_from_dict, load_experiment_config, run_experiment
from offsite.experiment.table import GAP
from offsite.models.tiny import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    tiny_model("llama", num_layers=6).save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    rows = [{"prompt": f"Q{i}: pick", "choices": ["aa", "bb", "cc"], "gold": i % 3} for i in range(16)]
    (root / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def config_for(root, **overrides):
    task = str(root / "task.jsonl")
    data = {
        "model": str(root / "model"), "tasks": [task], "strategies": ["uniform", "crash"], "keep": 2,
        "adapter": [1, 1], "seeds": [0],
        "similarity": {"task": task, "split": "train", "limit": 16},
        "train": {"split": "train", "limit": 8, "select_split": "validation", "select_limit": 4, "epochs": 1,
                  "batch_size": 4, "lr": 1e-3},
        "eval": {"split": "test", "limit": 6, "batch_size": 8},
        **overrides,
    }
    return experiment_from_dict(data)


def test_experiment_fills_every_row_and_reuses_cells(setup, tmp_path):
    config = config_for(setup)
    result = run_experiment(config, tmp_path / "exp", log=lambda line: None)
    task = config.tasks[0]
    settings = [(r["setting"], r["strategy"]) for r in result["rows"]]
    assert settings[:2] == [("Full ZS", "–"), ("Full FT", "–")]
    assert ("Plug-in", "crash") in settings and (GAP, "uniform") in settings
    for row in result["rows"]:
        assert row["cells"][task] is not None
    by_row = {(r["setting"], r["strategy"]): r["cells"][task][0] for r in result["rows"]}
    assert by_row[(GAP, "crash")] == pytest.approx(by_row[("Plug-in", "crash")] - by_row[("Emulator FT", "crash")])
    assert all(r["n"] == 6 for r in result["records"])
    assert (tmp_path / "exp" / "chart.png").stat().st_size > 0
    assert "| Full ZS |" in (tmp_path / "exp" / "table.md").read_text()
    # A second run finds every cell and computes nothing.
    lines = []
    run_experiment(config, tmp_path / "exp", log=lines.append)
    assert lines == []


def test_plug_in_cells_leave_the_base_model_unchanged(setup, tmp_path):
    experiment = Experiment(config_for(setup, strategies=["uniform"]), tmp_path / "exp", log=lambda line: None)
    model, _ = experiment.base()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cell = next(c for c in experiment.cells() if c.row == "Plug-in")
    experiment.score(cell)
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
            experiment.score(cell)
    task_dir = tmp_path / "exp" / "bundles" / "task"
    own = json.loads((task_dir / "uniform_own_adapter" / "manifest.json").read_text())
    assert own["layer_map"]["sources"] == [0, None, 2, 3, None, 5]
    assert own["strategy_spec"]["label"] == "uniform (own adapter)"
    crash = json.loads((task_dir / "crash-noshare_cluster-all" / "manifest.json").read_text())
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
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(OffsiteError, match=message):
        load_experiment_config(path)
