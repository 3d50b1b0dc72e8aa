"""``offsite eval`` and ``offsite lens`` on a bundle's emulator, with and without a fine-tuned adapter."""

from __future__ import annotations

import json

import torch

from offsite.cli import main
from offsite.emulator import build_layer_map, load_bundle, save_adapter, save_bundle
from offsite.emulator.adapter import block_state
from offsite.evaluate import evaluate_multiple_choice
from offsite.evaluate.targets import load_target
from offsite.models.fingerprint import fingerprint
from offsite.models.tiny import tiny_model, tiny_tokenizer


def test_bundle_target_with_adapter_scores_the_emulator(tmp_path, capsys):
    base, tokenizer = tiny_model("llama", num_layers=6), tiny_tokenizer()
    layer_map, _ = build_layer_map("uniform", 6, (0, 5), 2)
    save_bundle(base, tokenizer, layer_map, tmp_path / "bundle", {"strategy": "uniform"})
    # A "fine-tuned" adapter: the adapter blocks of another random model, signed for this base.
    other = tiny_model("llama", num_layers=6, seed=7)
    save_adapter(tmp_path / "run" / "adapter.safetensors", block_state(other, (0, 5), (0, 5)), fingerprint(base))
    rows = [{"prompt": f"Q{i}:", "choices": ["ab", "cd"], "gold": i % 2} for i in range(6)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    emulator, _ = load_target(str(tmp_path / "bundle"), tmp_path / "run")
    expected = load_bundle(tmp_path / "bundle", adapter=tmp_path / "run" / "adapter.safetensors").model
    assert all(torch.equal(a, b) for a, b in zip(emulator.state_dict().values(), expected.state_dict().values()))
    assert main(["eval", str(tmp_path / "bundle"), "--adapter", str(tmp_path / "run"), "--tasks",
                 str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "scores.json")]) == 0
    from offsite.data import load_examples

    acc = evaluate_multiple_choice(expected, tokenizer, load_examples(str(tmp_path / "t.jsonl")), progress=False).acc
    assert json.loads((tmp_path / "scores.json").read_text())["tasks"][str(tmp_path / "t.jsonl")]["acc"] == acc
    assert main(["lens", str(tmp_path / "bundle"), "--text", "Hello there", "--out", str(tmp_path / "lens")]) == 0
    assert (tmp_path / "lens" / "lens.png").stat().st_size > 0
    capsys.readouterr()


def test_adapter_for_another_model_is_refused(tmp_path, capsys):
    base, tokenizer = tiny_model("llama", num_layers=6), tiny_tokenizer()
    layer_map, _ = build_layer_map("uniform", 6, (0, 5), 2)
    save_bundle(base, tokenizer, layer_map, tmp_path / "bundle", {"strategy": "uniform"})
    other = tiny_model("llama", num_layers=6, seed=7)
    save_adapter(tmp_path / "a.safetensors", block_state(other, (0, 5), (0, 5)), fingerprint(other))
    (tmp_path / "t.jsonl").write_text('{"prompt": "Q", "choices": ["a", "b"], "gold": 0}\n')
    assert main(["eval", str(tmp_path / "bundle"), "--adapter", str(tmp_path / "a.safetensors"),
                 "--tasks", str(tmp_path / "t.jsonl")]) == 2
    assert "made for another base model" in capsys.readouterr().err
