"""Plug-in: the adapter goes into the full model and nothing else changes; wrong adapters are refused in one line."""

from __future__ import annotations

import pytest
import torch
from finetune_support import quick_config, write_choices
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from offsite.cli import main
from offsite.emulator import adapter_from_pads, build_layer_map, load_adapter, plugin, save_adapter, save_bundle
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train import finetune


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A base model directory, a crash bundle of it (shared layers), and a run fine-tuned on that bundle."""
    root = tmp_path_factory.mktemp("plugin")
    base = tiny_model("llama", 8)
    base.save_pretrained(root / "base")
    tiny_tokenizer().save_pretrained(root / "base")
    similarity = torch.rand(8, 8, generator=torch.Generator().manual_seed(0)).numpy()
    layer_map = build_layer_map("crash", 8, adapter_from_pads(2, 1, 8), 2, similarity)[0]
    save_bundle(base, tiny_tokenizer(), layer_map, root / "bundle", {"strategy": "crash"})
    finetune(quick_config(root / "bundle", write_choices(root / "d.jsonl"), root / "run", epochs=1, select="loss"), progress=False)
    return root, layer_map.adapter_layers


def test_plugin_changes_only_the_adapter_blocks(trained, tmp_path):
    root, layers = trained
    out = plugin(str(root / "base"), root / "run", tmp_path / "plugged")
    plugged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(root / "base")
    adapter, _ = load_adapter(root / "run" / "adapter.safetensors")
    base_state, plugged_state = base.state_dict(), plugged.state_dict()
    assert base_state.keys() == plugged_state.keys()
    for name, tensor in plugged_state.items():
        parts = name.split(".")
        if name.startswith("model.layers.") and int(parts[2]) in layers:
            assert torch.equal(tensor, adapter[f"layers.{parts[2]}." + ".".join(parts[3:])])
        else:
            assert torch.equal(tensor, base_state[name]), name
    assert any(not torch.equal(plugged_state[f"model.layers.{i}.mlp.up_proj.weight"],
                               base_state[f"model.layers.{i}.mlp.up_proj.weight"]) for i in layers)


def _refusal(capsys, model, adapter, out) -> str:
    capsys.readouterr()  # drop earlier output (save_pretrained progress bars)
    assert main(["plugin", str(model), str(adapter), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    return err


def test_plugin_refuses_mismatched_or_corrupted_adapters(trained, tmp_path, capsys):
    root, layers = trained
    tensors, metadata = load_adapter(root / "run" / "adapter.safetensors")
    fingerprint = metadata["base_fingerprint"]
    out = tmp_path / "out"

    other = tmp_path / "other"
    tiny_model("llama", 8, seed=1).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    assert "made for another model" in _refusal(capsys, other, root / "run", out)

    def variant(name: str, changed: dict) -> object:
        path = tmp_path / f"{name}.safetensors"
        save_adapter(path, changed, fingerprint)
        return _refusal(capsys, root / "base", path, out)

    key = f"layers.{layers[0]}.mlp.up_proj.weight"
    assert "non-finite" in variant("nan", {**tensors, key: torch.full_like(tensors[key], float("nan"))})
    assert "shape" in variant("shape", {**tensors, key: tensors[key][:-1]})
    assert "dtype" in variant("dtype", {**tensors, key: tensors[key].half()})
    renamed = {k.replace("mlp.up_proj", "mlp.upper"): v for k, v in tensors.items()}
    assert "missing tensor" in variant("names", renamed)
    assert "layers 0..7" in variant("range", {k.replace(f"layers.{layers[0]}.", "layers.12."): v for k, v in tensors.items()})

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes((root / "run" / "adapter.safetensors").read_bytes()[:100])
    assert "corrupt" in _refusal(capsys, root / "base", corrupt, out)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    assert "not an offsite adapter" in _refusal(capsys, root / "base", plain, out)


def test_plugin_cli_writes_a_loadable_model(trained, tmp_path, capsys):
    root, _ = trained
    assert main(["plugin", str(root / "base"), str(root / "run"), "--out", str(tmp_path / "p")]) == 0
    assert f"wrote {tmp_path / 'p'}" in capsys.readouterr().out
    written = AutoModelForCausalLM.from_pretrained(tmp_path / "p").state_dict()
    # The same model as the library's plug-in, which the test above checks tensor by tensor.
    expected = AutoModelForCausalLM.from_pretrained(plugin(str(root / "base"), root / "run", tmp_path / "lib")).state_dict()
    assert written.keys() == expected.keys() and all(torch.equal(written[k], expected[k]) for k in written)
    base = AutoModelForCausalLM.from_pretrained(root / "base").state_dict()
    assert not all(torch.equal(written[k], base[k]) for k in written)
