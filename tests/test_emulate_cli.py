"""``offsite emulate`` and ``offsite export`` end to end on a tiny saved model, and their one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from offsite.cli import main
from offsite.data import load_examples
from offsite.emulator import load_bundle
from offsite.evaluate import evaluate_multiple_choice, text_perplexity
from offsite.evaluate.fidelity import fidelity_warning
from offsite.models import load_model
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
                 "--task", str(task_file), "--limit", "12", "--no-fidelity", "--out", str(bundle)])
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


def test_fidelity_in_the_manifest_equals_a_direct_evaluation(saved_model, task_file, tmp_path, capsys):
    bundle = tmp_path / "uniform"
    text_file = tmp_path / "held_out.txt"
    text_file.write_text("Held-out text, never seen when the emulator was built. " * 20)
    code = main(["emulate", str(saved_model), "--strategy", "uniform", "--keep", "3", "--adapter", "1,1",
                 "--fidelity-task", str(task_file), "--fidelity-limit", "9", "--fidelity-text-file", str(text_file),
                 "--fidelity-text-chars", "500", "--out", str(bundle)])
    assert code == 0
    assert "fidelity on held-out samples" in capsys.readouterr().out
    fidelity = json.loads((bundle / "manifest.json").read_text())["fidelity"]
    text = text_file.read_text()[:500]
    examples = load_examples(str(task_file), "validation", 9)
    for name, (model, tokenizer) in (("emulator", (lambda b: (b.model, b.tokenizer))(load_bundle(bundle))),
                                     ("full", load_model(str(saved_model)))):
        perplexity = text_perplexity(model, tokenizer, text, progress=False)
        scores = evaluate_multiple_choice(model, tokenizer, examples, progress=False)
        figures = fidelity[name]
        assert figures["perplexity"] == pytest.approx(perplexity.perplexity, rel=1e-6)
        assert figures["num_tokens"] == perplexity.num_tokens == 500
        assert (figures["acc"], figures["acc_norm"], figures["n"]) == (scores.acc, scores.acc_norm, 9)
    assert fidelity["perplexity_ratio"] == pytest.approx(fidelity["emulator"]["perplexity"] / fidelity["full"]["perplexity"])
    assert fidelity["held_out"]["text_chars"] == 500 and fidelity["held_out"]["questions"] == 9
    # offsite info shows the layer map, the sizes and these figures.
    assert main(["info", str(bundle)]) == 0
    printed = capsys.readouterr().out
    assert "layer map: 0* 1 · 3 · · 6 7*" in printed and "emulator depth: 5" in printed
    assert f"{fidelity['full']['perplexity']:,.1f}" in printed and "acc % (9 questions)" in printed
    assert main(["info", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fidelity"] == fidelity


def test_a_broken_emulator_is_said_in_one_line():
    fidelity = {"full": {"perplexity": 25.0}, "emulator": {"perplexity": 16100.0}, "perplexity_ratio": 644.0,
                "warn_ratio": 10.0}
    warning = fidelity_warning(fidelity)
    assert "\n" not in warning and "16,100" in warning and "644x" in warning and "more than 10x" in warning
    assert fidelity_warning({**fidelity, "perplexity_ratio": 9.9}) is None


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
