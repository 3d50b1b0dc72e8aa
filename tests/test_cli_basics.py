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
