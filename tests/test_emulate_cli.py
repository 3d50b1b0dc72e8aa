"""``offsite emulate`` and ``offsite export`` end to end on a tiny saved model, and their one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from offsite.cli import main
from offsite.emulator import load_bundle
from offsite.models.tiny import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny-llama"
    tiny_model("llama", num_layers=8).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "facts.jsonl"
    rows = [{"prompt": f"Fact {i}: the sky is", "choices": ["blue", "green", "red"], "gold": i % 3} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_emulate_crash_writes_a_bundle_that_loads_and_exports(saved_model, task_file, tmp_path, capsys):
    bundle = tmp_path / "crash"
    code = main(["emulate", str(saved_model), "--strategy", "crash", "--keep", "2", "--adapter", "1,1",
                 "--task", str(task_file), "--limit", "12", "--out", str(bundle)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "layer map" in printed and "0*" in printed and "7*" in printed
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["strategy"] == "crash" and len(manifest["clustering"]["clusters"]) == 2
    assert manifest["similarity"]["num_samples"] == 12 and len(manifest["cka"]) == 8
    assert manifest["emulator_depth"] == 8
    assert main(["export", str(bundle), "--out", str(tmp_path / "plain")]) == 0
    ids = torch.tensor([[72, 105, 33, 32, 116, 104, 101, 114, 101]])
    with torch.no_grad():
        expected = load_bundle(bundle).model(ids).logits
        exported = AutoModelForCausalLM.from_pretrained(tmp_path / "plain")(ids).logits
    assert torch.allclose(expected, exported, atol=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategy", "uniform", "--keep", "2", "--adapter-layers", "0,9"], "adapter layer 9 is out of range"),
        (["--strategy", "uniform", "--keep", "2", "--adapter-layers", "0,3,3"], "overlap"),
        (["--strategy", "uniform", "--keep", "7"], "--keep 7 is not possible"),
        (["--strategy", "crash", "--keep", "2", "--task", "nope"], "unknown task 'nope'"),
        (["--strategy", "crash", "--keep", "2", "--similarity", "missing.json"], "similarity file not found"),
        (["--strategy", "random", "--keep", "2"], "unknown strategy 'random'; choose one of: crash,"),
        (["--strategy", "crash:fill", "--keep", "2"], "strategy option 'fill' in 'crash:fill' is not KEY=VALUE"),
        (["--strategy", "uniform", "--keep", "3", "--kept-layers", "2,3"], "--keep 3 disagrees"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_bundle(saved_model, tmp_path, capsys, extra, message):
    out = tmp_path / "bundle"
    assert main(["emulate", str(saved_model), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("offsite: error:") and message in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []
