"""Loss landscapes on a tiny model: the given points land at their own coordinates with the loss of the model
itself, the line's ends are its end points, the base model's weights come back bit for bit, a stopped grid
continues, and wrong input is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from finetune_support import write_choices

from offsite.cli import main
from offsite.emulator import plug_into, save_adapter
from offsite.emulator.adapter import block_state
from offsite.errors import OffsiteError
from offsite.experiment import experiment_from_dict, run_experiment
from offsite.landscape import LandscapeConfig, compute_landscape
from offsite.models import load_model
from offsite.models.fingerprint import fingerprint
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train import FinetuneConfig, finetune
from offsite.train.data import load_split
from offsite.train.validation import validate


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    """A base model; a "full FT" model directory (the base with blocks 0 and 3 and the final norm changed); a
    fine-tuning run of blocks 0 and 3 on the base; an adapter file for blocks 0 and 3; and a small task."""
    root = tmp_path_factory.mktemp("landscape")
    base = tiny_model("llama", 4)
    base.save_pretrained(root / "base")
    tiny_tokenizer().save_pretrained(root / "base")
    task = write_choices(root / "task.jsonl")
    generator = torch.Generator().manual_seed(1)
    full = tiny_model("llama", 4)
    with torch.no_grad():
        for name, parameter in full.named_parameters():
            if name.startswith(("model.layers.0.", "model.layers.3.", "model.norm")):
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    full.save_pretrained(root / "full")
    tiny_tokenizer().save_pretrained(root / "full")
    finetune(FinetuneConfig(source=str(root / "base"), full=True, adapter=(1, 1), task=str(task), out=str(root / "run"),
                            epochs=2, lr=2e-2, batch_size=4, max_length=32, select="loss"), progress=False)
    adapter = block_state(full, [0, 3], [0, 3])
    adapter = {k: v + 0.5 * torch.randn(v.shape, generator=generator) for k, v in adapter.items()}
    save_adapter(root / "adapter.safetensors", adapter, fingerprint(base))
    return root, task


def config(root, task, points, **overrides) -> LandscapeConfig:
    settings = dict(base=str(root / "base"), points=tuple(points), task=str(task), limit=None, batch_size=8,
                    max_length=32)
    return LandscapeConfig(**{**settings, **overrides})


def direct_scores(model, tokenizer, task) -> dict[str, float]:
    """The validation scores of ``model`` itself, computed as fine-tuning computes them."""
    return validate(Accelerator(), model, tokenizer, load_split(str(task), "validation", None, tokenizer, 32), 8)


def scores_at(record, coordinates) -> dict[str, float]:
    return next({k: v for k, v in e.items() if k != "coordinates"}
                for e in record["evaluations"] if tuple(e["coordinates"]) == coordinates)


def quiet(line: str) -> None:
    pass


def test_each_point_lands_at_its_coordinates_with_its_own_loss(points, tmp_path):
    root, task = points
    model, tokenizer = load_model(str(root / "base"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = config(root, task, ["base", root / "full", root / "run"], grid=3, range=(0.0, 1.0))
    record = compute_landscape(model, tokenizer, settings, tmp_path / "plane", progress=False, log=quiet)

    # After the grid every weight is the base's again, bit for bit.
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert record["complete"] and len(record["evaluations"]) == 9
    assert [p["coordinates"] for p in record["points"]] == [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    assert [p["kind"] for p in record["points"]] == ["base", "model", "adapter"]
    changed = record["interpolated"]["tensors"]
    assert "model.norm.weight" in changed and "model.embed_tokens.weight" not in changed
    assert {n.split(".")[2] for n in changed if n.startswith("model.layers.")} == {"0", "3"}
    assert record["interpolated"]["parameters"] == sum(before[n].numel() for n in changed)

    assert scores_at(record, (0.0, 0.0)) == direct_scores(model, tokenizer, task)
    full, _ = load_model(str(root / "full"))
    assert scores_at(record, (1.0, 0.0)) == direct_scores(full, tokenizer, task)
    plugged, _ = load_model(str(root / "base"))
    plug_into(plugged, root / "run")
    assert scores_at(record, (0.0, 1.0)) == direct_scores(plugged, tokenizer, task)
    assert scores_at(record, (1.0, 0.0))["loss"] != scores_at(record, (0.0, 0.0))["loss"]

    # An inner grid point against weights combined independently: θ0 + 0.5·(θ1 − θ0) + 0.5·(θ2 − θ0).
    mixed, _ = load_model(str(root / "base"))
    with torch.no_grad():
        own = dict(mixed.named_parameters())
        for name, parameter in full.named_parameters():
            plugged_value = dict(plugged.named_parameters())[name]
            own[name].copy_(0.5 * parameter + 0.5 * plugged_value)
    assert scores_at(record, (0.5, 0.5))["loss"] == pytest.approx(direct_scores(mixed, tokenizer, task)["loss"],
                                                                  rel=1e-5)
    for name in ("contour.png", "surface.png", "landscape.json"):
        assert (tmp_path / "plane" / name).stat().st_size > 0


def test_line_ends_are_the_end_points_and_the_cli_draws_it(points, tmp_path, capsys):
    root, task = points
    out = tmp_path / "line"
    assert main(["landscape", str(root / "base"), "--points", f"{root / 'full'},{root / 'adapter.safetensors'}",
                 "--task", str(task), "--limit", "12", "--batch-size", "8", "--out", str(out),
                 "--labels", "Full FT,plug-in"]) == 0
    printed = capsys.readouterr().out
    assert "Full FT" in printed and "plug-in" in printed and "wrote" in printed
    record = json.loads((out / "landscape.json").read_text())
    assert [e["coordinates"][0] for e in record["evaluations"]][:2] == [0.0, 1.0]
    assert len(record["evaluations"]) == 13 and record["axis"][0] == -0.25 and record["axis"][-1] == 1.25
    tokenizer = tiny_tokenizer()
    full, _ = load_model(str(root / "full"))
    assert scores_at(record, (0.0,)) == direct_scores(full, tokenizer, task)
    plugged, _ = load_model(str(root / "base"))
    plug_into(plugged, root / "adapter.safetensors")
    assert scores_at(record, (1.0,)) == direct_scores(plugged, tokenizer, task)
    assert (out / "line.png").stat().st_size > 0


def test_a_stopped_grid_continues_and_keeps_what_it_has(points, tmp_path):
    root, task = points
    model, tokenizer = load_model(str(root / "base"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = config(root, task, [root / "full", root / "run"], grid=4, range=(-1.0, 0.5))
    first = compute_landscape(model, tokenizer, settings, tmp_path, progress=False, stop_after=3, log=quiet)
    assert not first["complete"] and len(first["evaluations"]) == 3 and not (tmp_path / "line.png").exists()
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    saved = json.loads((tmp_path / "landscape.json").read_text())
    assert saved["evaluations"] == first["evaluations"]

    done = compute_landscape(model, tokenizer, settings, tmp_path, progress=False, log=quiet)
    assert done["complete"] and len(done["evaluations"]) == 5  # -1, -0.5, 0, 0.5 and the end point x=1
    assert done["evaluations"][:3] == first["evaluations"]
    assert (tmp_path / "line.png").stat().st_size > 0
    # Computed from scratch, the same values.
    fresh = compute_landscape(model, tokenizer, settings, tmp_path / "fresh", progress=False, log=quiet)
    assert fresh["evaluations"] == done["evaluations"]

    # Another grid on the same points and data keeps the grid points it shares.
    coarser = config(root, task, [root / "full", root / "run"], grid=2, range=(-1.0, 0.5))
    kept = compute_landscape(model, tokenizer, coarser, tmp_path, progress=False, stop_after=0, log=quiet)
    assert kept["complete"] and kept["evaluations"] == done["evaluations"]
    # Other data is refused rather than mixed in.
    with pytest.raises(OffsiteError, match="holds a landscape with other settings"):
        compute_landscape(model, tokenizer, config(root, task, [root / "full", root / "run"], limit=5), tmp_path,
                          progress=False, log=quiet)


@pytest.mark.parametrize(
    "points, message",
    [
        (["base", "base"], "hold the same weights"),
        (["base", "nowhere"], "is not a model directory, a plugged-in model, a finished fine-tuning run"),
        (["base", "run", "full", "base"], "give 2 points"),
    ],
)
def test_bad_points_are_refused_in_one_line(points, message, capsys, tmp_path, monkeypatch):
    root = tmp_path
    monkeypatch.chdir(root)
    tiny_model("llama", 2).save_pretrained(root / "base")
    tiny_tokenizer().save_pretrained(root / "base")
    write_choices(root / "task.jsonl")
    assert main(["landscape", "base", "--points", ",".join(points), "--task", "task.jsonl",
                 "--out", "out"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_an_experiment_draws_the_landscapes_of_its_runs(tmp_path):
    tiny_model("llama", 4).save_pretrained(tmp_path / "model")
    tiny_tokenizer().save_pretrained(tmp_path / "model")
    task = str(write_choices(tmp_path / "task.jsonl"))
    settings = {
        "model": str(tmp_path / "model"), "tasks": [task], "strategies": ["uniform"], "keep": 1, "adapter": [1, 1],
        "similarity": {"task": task, "split": "train", "limit": 8},
        "train": {"split": "train", "limit": 8, "select_split": "validation", "select_limit": 4, "batch_size": 4,
                  "lr": 1e-2},
        "eval": {"split": "test", "limit": 4, "batch_size": 8},
    }
    run_experiment(experiment_from_dict(settings), tmp_path / "exp", log=quiet)
    # Landscapes asked for later, of the runs already there: the directory accepts the config.
    landscape = {"limit": 4, "line_grid": 3, "plane_grid": 2, "plane_range": [0, 1]}
    config = experiment_from_dict({**settings, "landscape": landscape})
    lines: list[str] = []
    run_experiment(config, tmp_path / "exp", log=lines.append)
    assert not any("fine-tune" in line for line in lines)
    assert sum(line.startswith("== landscape") for line in lines) == 2
    where = tmp_path / "exp" / "landscapes" / "task" / "seed0"
    line = json.loads((where / "uniform-keep1" / "line" / "landscape.json").read_text())
    plane = json.loads((where / "uniform-keep1" / "plane" / "landscape.json").read_text())
    assert [p["label"] for p in plane["points"]] == ["Init", "Full FT", "uniform plug-in"]
    assert [p["kind"] for p in plane["points"]] == ["base", "adapter", "adapter"]
    # Full FT is x = 0 on the line and (1, 0) on the plane; the plug-in x = 1 and (0, 1).
    assert scores_at(line, (0.0,)) == scores_at(plane, (1.0, 0.0))
    assert scores_at(line, (1.0,)) == scores_at(plane, (0.0, 1.0))
    for figure in ("lines.png", "uniform-keep1/line/line.png", "uniform-keep1/plane/contour.png",
                   "uniform-keep1/plane/surface.png"):
        assert (where / figure).stat().st_size > 0
    lines.clear()
    run_experiment(config, tmp_path / "exp", log=lines.append)
    assert lines == []
    with pytest.raises(OffsiteError, match="the range must be LOW,HIGH"):
        experiment_from_dict({**settings, "landscape": {"plane_range": [1, 0]}})
