"""Merging adapters: the weighted average, parameter selection, refusing adapters that do not match, the run written."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM
from finetune_support import make_bundle, quick_config, write_choices

from offsite import OffsiteError
from offsite.cli import main
from offsite.emulator import load_adapter, load_bundle, plugin, save_adapter
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train import finetune
from offsite.train.merge import MergeConfig, merge_runs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny bundle, its base model as a directory, and three runs: the bundle's adapter plus different noise."""
    root = tmp_path_factory.mktemp("merge")
    bundle = make_bundle(root)
    tiny_model("llama", 6).save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    original, metadata = load_adapter(bundle / "adapter.safetensors")
    runs = []
    for seed in range(3):
        generator = torch.Generator().manual_seed(seed)
        tensors = {k: v + torch.randn(v.shape, generator=generator) for k, v in original.items()}
        run = root / f"run{seed}"
        run.mkdir()
        save_adapter(run / "adapter.safetensors", tensors, metadata["base_fingerprint"])
        runs.append(run)
    return root, bundle, runs


def adapter(run):
    return load_adapter(run / "adapter.safetensors")[0]


def test_average_is_the_weighted_mean(setup, tmp_path):
    _, _, runs = setup
    manifest = merge_runs(MergeConfig((str(runs[0]), str(runs[1])), str(tmp_path / "avg"), weights=(1.0, 3.0)))
    a, b, merged = adapter(runs[0]), adapter(runs[1]), adapter(tmp_path / "avg")
    assert merged.keys() == a.keys()
    assert all(merged[k].dtype == a[k].dtype and torch.allclose(merged[k], (a[k] + 3 * b[k]) / 4, atol=1e-6) for k in a)
    assert manifest["merge"]["weights"] == [0.25, 0.75] and manifest["mode"] == "merge"
    merge_runs(MergeConfig(tuple(map(str, runs)), str(tmp_path / "three")))
    three = adapter(tmp_path / "three")
    c = adapter(runs[2])
    assert all(torch.allclose(three[k], (a[k] + b[k] + c[k]) / 3, atol=1e-6) for k in a)


def test_select_takes_each_element_from_one_run_reproducibly(setup, tmp_path):
    _, _, runs = setup
    pair = (str(runs[0]), str(runs[1]))
    merge_runs(MergeConfig(pair, str(tmp_path / "s1"), method="select", seed=1))
    merge_runs(MergeConfig(pair, str(tmp_path / "s1again"), method="select", seed=1))
    merge_runs(MergeConfig(pair, str(tmp_path / "s2"), method="select", seed=2))
    a, b = adapter(runs[0]), adapter(runs[1])
    merged, again, other = adapter(tmp_path / "s1"), adapter(tmp_path / "s1again"), adapter(tmp_path / "s2")
    from_a = from_b = 0
    for k in a:
        is_a, is_b = merged[k] == a[k], merged[k] == b[k]
        assert torch.all(is_a | is_b), k  # every element is one run's element
        from_a += int(is_a.sum())
        from_b += int(is_b.sum())
        assert torch.equal(merged[k], again[k])
    assert 0.45 < from_a / (from_a + from_b) < 0.55  # equal weights: about half from each
    assert any(not torch.equal(merged[k], other[k]) for k in a)
    merge_runs(MergeConfig(pair, str(tmp_path / "w"), method="select", weights=(1.0, 0.0)))
    assert all(torch.equal(adapter(tmp_path / "w")[k], a[k]) for k in a)


def test_adapters_that_do_not_match_are_refused(setup, tmp_path):
    root, _, runs = setup
    a, metadata = load_adapter(runs[0] / "adapter.safetensors")
    (tmp_path / "other").mkdir()
    save_adapter(tmp_path / "other" / "adapter.safetensors", a, "0123456789abcdef")
    with pytest.raises(OffsiteError, match="for another base model"):
        merge_runs(MergeConfig((str(runs[0]), str(tmp_path / "other")), str(tmp_path / "x")))
    save_adapter(tmp_path / "fewer.safetensors", {k: v for k, v in a.items() if k.startswith("layers.0.")},
                 metadata["base_fingerprint"])
    with pytest.raises(OffsiteError, match=r"other layers or tensors .*layers \[0\] vs \[0, 5\]"):
        merge_runs(MergeConfig((str(runs[0]), str(tmp_path / "fewer.safetensors")), str(tmp_path / "x")))
    name = next(iter(a))
    save_adapter(tmp_path / "half.safetensors", {**a, name: a[name].half()}, metadata["base_fingerprint"])
    with pytest.raises(OffsiteError, match="torch.float16"):
        merge_runs(MergeConfig((str(runs[0]), str(tmp_path / "half.safetensors")), str(tmp_path / "x")))
    with pytest.raises(OffsiteError, match="at least two runs"):
        MergeConfig((str(runs[0]),), str(tmp_path / "x"))
    with pytest.raises(OffsiteError, match="2 weights for 3 runs"):
        MergeConfig(tuple(map(str, runs)), str(tmp_path / "x"), weights=(1.0, 2.0))
    assert not (tmp_path / "x").exists()


def test_a_merged_run_plugs_in_and_loads_into_the_emulator(setup, tmp_path, capsys):
    root, bundle, runs = setup
    code = main(["merge", str(runs[0]), str(runs[1]), "--method", "select", "--seed", "3", "--out", str(tmp_path / "m")])
    assert code == 0 and "merged 2 adapters (layers [0, 5]) by select" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert [r["run"] for r in manifest["merge"]["runs"]] == [str(runs[0]), str(runs[1])]
    merged = adapter(tmp_path / "m")
    emulator = load_bundle(bundle, adapter=tmp_path / "m" / "adapter.safetensors").model
    assert torch.equal(emulator.model.layers[0].mlp.up_proj.weight, merged["layers.0.mlp.up_proj.weight"])
    full = AutoModelForCausalLM.from_pretrained(plugin(str(root / "model"), tmp_path / "m", tmp_path / "plugged"))
    assert torch.equal(full.model.layers[5].mlp.up_proj.weight, merged["layers.5.mlp.up_proj.weight"])
    assert main(["merge", str(runs[0]), "--out", str(tmp_path / "y")]) == 2
    assert "at least two runs" in capsys.readouterr().err
    # A merged run is not a fine-tuning run to continue.
    data = write_choices(tmp_path / "d.jsonl")
    with pytest.raises(OffsiteError, match="holds a merged adapter, not a fine-tuning run to continue"):
        finetune(quick_config(bundle, data, tmp_path / "m"), progress=False)
