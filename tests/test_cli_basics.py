"""The CLI as a user runs it: JSON output and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def offsite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offsite", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.real
def test_info_reports_the_embedded_model():
    result = offsite("info", "smollm2-135m", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["num_layers"] == 30 and info["hidden_size"] == 576
    assert round(info["num_parameters"] / 1e6) == 135


def test_tasks_json_reports_split_sizes():
    result = offsite("tasks", "--json")
    assert result.returncode == 0, result.stderr
    tasks = {row["name"]: row for row in json.loads(result.stdout)}
    assert tasks["arc_easy"]["splits"] == {"train": 2251, "validation": 570, "test": 2376}
    assert tasks["race"]["splits"]["test"] is None


def test_models_lists_the_aliases():
    result = offsite("models", "--json")
    assert result.returncode == 0
    assert {row["name"] for row in json.loads(result.stdout)} >= {"smollm2-135m", "gemma3-270m"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "no-such-model"], "unknown model 'no-such-model'"),
        (["info", "/no/such/dir"], "model path not found"),
        (["info", "missing-file.gguf"], "GGUF file not found"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message):
    result = offsite(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("offsite: error:") and message in lines[-1]


SHARED_TRAINING_ARGS = ["--lr", "0.002", "--batch-size", "3", "--grad-accum", "2", "--warmup", "0.25",
                        "--weight-decay", "0.01", "--max-grad-norm", "0.5", "--seed", "7", "--eval-every", "5",
                        "--eval-batch-size", "6", "--select-include-init", "--save-every", "9", "--log-every", "4",
                        "--mixed-precision", "bf16", "--stop-after-steps", "3"]
SHARED_TRAINING_VALUES = {"lr": 0.002, "batch_size": 3, "grad_accum": 2, "warmup": 0.25, "weight_decay": 0.01,
                          "max_grad_norm": 0.5, "seed": 7, "eval_every": 5, "eval_batch_size": 6,
                          "select_include_init": True, "save_every": 9, "log_every": 4, "mixed_precision": "bf16",
                          "stop_after_steps": 3, "out": "o"}


def _training_case(command: str):
    """(arguments, config class, the values its run function adds, the command's own options' expected values)."""
    from offsite.data.corpus import CorpusConfig
    from offsite.train import FinetuneConfig
    from offsite.train.distill import DistillConfig

    if command == "finetune":
        return (["finetune", "b", "--task", "t.jsonl", "--epochs", "2"], FinetuneConfig, {},
                {"source": "b", "task": "t.jsonl", "epochs": 2})
    return (["distill", "b", "--steps", "11", "--kd-weight", "2"], DistillConfig, {"corpus": CorpusConfig()},
            {"bundle": "b", "steps": 11, "kd_weight": 2.0})


@pytest.mark.parametrize("command", ["finetune", "distill"])
def test_training_commands_pass_every_shared_option_to_their_config(command):
    """The options finetune and distill share (offsite.cli.training) reach the run's config under their names."""
    from offsite.cli import build_parser
    from offsite.cli.training import config_from_args

    argv, config_class, values, own = _training_case(command)
    config = config_from_args(config_class, build_parser().parse_args([*argv, "--out", "o", *SHARED_TRAINING_ARGS]),
                              **values)
    assert {name: getattr(config, name) for name in SHARED_TRAINING_VALUES} == SHARED_TRAINING_VALUES
    assert {name: getattr(config, name) for name in own} == own
