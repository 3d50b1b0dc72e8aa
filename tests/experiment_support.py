"""Shared helpers of the experiment tests: a tiny saved model with a small JSONL task, and a quick config on it."""

from __future__ import annotations

import json
from pathlib import Path

from offsite.experiment import ExperimentConfig, experiment_from_dict
from offsite.models.tiny import tiny_model, tiny_tokenizer


def make_experiment_root(root: Path) -> Path:
    """``root/model`` (a tiny random Llama of 6 blocks, seed 0) and ``root/task.jsonl`` (16 three-choice questions)."""
    tiny_model("llama", num_layers=6).save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    rows = [{"prompt": f"Q{i}: pick", "choices": ["aa", "bb", "cc"], "gold": i % 3} for i in range(16)]
    (root / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def config_for(root: Path, **overrides) -> ExperimentConfig:
    """A small experiment on ``root``'s model and task (uniform and crash keeping 2, adapter 1,1, one seed)."""
    task = str(root / "task.jsonl")
    data = {
        "model": str(root / "model"), "tasks": [task], "strategies": ["uniform", "crash"], "keep": 2,
        "adapter": [1, 1], "seeds": [0],
        "similarity": {"task": task, "split": "train", "limit": 16},
        "train": {"split": "train", "limit": 8, "select_split": "validation", "select_limit": 4, "epochs": 1,
                  "batch_size": 4, "lr": 1e-3},
        "eval": {"split": "test", "limit": 6, "batch_size": 8},
        "fidelity": {"limit": 4, "text_limit": 4},
        **overrides,
    }
    return experiment_from_dict(data)
