"""A run stopped mid-epoch and started again with the same command ends with the same adapter as one never stopped."""

from __future__ import annotations

import pytest
import torch
from finetune_support import make_bundle, quick_config, write_choices

from offsite import OffsiteError
from offsite.emulator import load_adapter
from offsite.train import finetune

SETTINGS = dict(epochs=2, batch_size=2, grad_accum=2, warmup=0.3, eval_every=2, save_every=2, select="loss")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return make_bundle(root), write_choices(root / "d.jsonl", 10), root


@pytest.mark.parametrize("method", ["weights", "lora"])
def test_interrupted_run_resumes_to_the_same_adapter(setup, tmp_path, method):
    bundle, data, _ = setup
    whole = finetune(quick_config(bundle, data, tmp_path / "whole", method=method, **SETTINGS), progress=False)
    assert whole.manifest["steps"] == 6  # 3 steps per epoch: 10 sequences, 2 per micro-batch, 2 micro-batches
    # Stop after step 5, in the second epoch: the checkpoint is from step 4, so step 5 runs again.
    stopped = finetune(quick_config(bundle, data, tmp_path / "cut", method=method, stop_after_steps=5, **SETTINGS),
                       progress=False)
    assert not stopped.completed and stopped.step == 5
    assert not (tmp_path / "cut" / "adapter.safetensors").exists()
    checkpoint = tmp_path / "cut" / "checkpoint"
    assert {p.suffix for p in checkpoint.iterdir()} == {".safetensors", ".json"}  # no pickle
    resumed = finetune(quick_config(bundle, data, tmp_path / "cut", method=method, **SETTINGS), progress=False)
    assert resumed.completed and not checkpoint.exists()

    a, _ = load_adapter(tmp_path / "whole" / "adapter.safetensors")
    b, _ = load_adapter(tmp_path / "cut" / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.manifest["best"] == whole.manifest["best"] and resumed.manifest["best"]["step"] > 0
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "whole" / "metrics.jsonl").read_text()


def test_resume_refuses_other_settings_and_a_finished_run_is_not_redone(setup, tmp_path, capsys):
    bundle, data, _ = setup
    finetune(quick_config(bundle, data, tmp_path / "run", stop_after_steps=2, **SETTINGS), progress=False)
    changed = {**SETTINGS, "lr": 5e-3}
    with pytest.raises(OffsiteError, match=r"other settings \(settings\.lr: 0\.01 -> 0\.005\)"):
        finetune(quick_config(bundle, data, tmp_path / "run", **changed), progress=False)
    first = finetune(quick_config(bundle, data, tmp_path / "run", **SETTINGS), progress=False)
    adapter = (tmp_path / "run" / "adapter.safetensors").read_bytes()
    capsys.readouterr()
    again = finetune(quick_config(bundle, data, tmp_path / "run", **SETTINGS), progress=False)
    assert "already holds this finished run" in capsys.readouterr().out
    assert again.manifest == first.manifest and again.model is None
    assert (tmp_path / "run" / "adapter.safetensors").read_bytes() == adapter
    with pytest.raises(OffsiteError, match="other settings"):
        finetune(quick_config(bundle, data, tmp_path / "run", **changed), progress=False)
