"""The same fine-tuning code under ``accelerate launch`` with 2 processes (DDP over gloo, on the CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from finetune_support import make_bundle, quick_config, write_choices
from safetensors.torch import load_file

from offsite.emulator import load_adapter

# Each process fine-tunes, then saves the adapter blocks it ends with, so the test can compare the processes.
SCRIPT = """
import json, sys
from accelerate import PartialState
from safetensors.torch import save_file
from offsite.emulator import block_state, load_bundle
from offsite.train import FinetuneConfig, finetune

config = FinetuneConfig(**json.loads(sys.argv[1]))
result = finetune(config, progress=False)
layer_map = load_bundle(config.source).layer_map
tensors = block_state(result.model, layer_map.adapter_layers, layer_map.adapter_positions)
save_file(tensors, f"{config.out}/process{PartialState().process_index}.safetensors")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_run_ends_with_one_adapter_shared_by_both(tmp_path):
    bundle = make_bundle(tmp_path)
    config = quick_config(bundle, write_choices(tmp_path / "d.jsonl"), tmp_path / "run", epochs=1, batch_size=2,
                          select="loss")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    launcher = Path(sys.executable).parent / "accelerate"
    # accelerate's --cpu launcher starts a single process (several need MPI); torchrun-style launching with
    # ACCELERATE_USE_CPU gives several CPU processes over gloo.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               str(script), json.dumps(asdict(config))]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["num_processes"] == 2 and manifest["steps"] == 3  # 12 sequences, 2 per process per step
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3]  # one writer: every step logged once
    adapter, _ = load_adapter(run / "adapter.safetensors")
    first, second = load_file(run / "process0.safetensors"), load_file(run / "process1.safetensors")
    assert first.keys() == second.keys() == adapter.keys()
    assert all(torch.equal(first[k], second[k]) and torch.equal(first[k], adapter[k]) for k in adapter)
    original, _ = load_adapter(bundle / "adapter.safetensors")
    assert any(not torch.equal(adapter[k], original[k]) for k in adapter)
    assert sorted(p.name for p in run.iterdir()) == [
        ".offsite.json", "adapter.safetensors", "manifest.json", "metrics.jsonl", "process0.safetensors",
        "process1.safetensors",
    ]  # .offsite.json: the record of what offsite wrote here (offsite.paths)
