"""``offsite finetune`` killed (SIGKILL) at random points, several times, then run again, ends with exactly the
adapter (and metrics log) of a run never interrupted, and leaves no temporary behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from finetune_support import make_bundle, write_choices

from offsite.cli import main
from offsite.emulator import load_adapter

KILLS = 3


def command(bundle: Path, data: Path, out: Path) -> list[str]:
    return ["finetune", str(bundle), "--task", str(data), "--out", str(out), "--epochs", "3", "--batch-size", "2",
            "--lr", "1e-2", "--max-length", "32", "--select", "loss", "--eval-every", "4", "--save-every", "1",
            "--log-every", "1", "--no-progress"]


def progress_stamp(run: Path) -> tuple[int, int] | None:
    """Changes whenever the run logs a line or rewrites its log (None before it has one)."""
    try:
        stat = (run / "metrics.jsonl").stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def test_finetune_killed_at_random_points_then_rerun_ends_with_the_uninterrupted_adapter(tmp_path, capsys):
    bundle, data = make_bundle(tmp_path), write_choices(tmp_path / "data.jsonl", 10)
    assert main(command(bundle, data, tmp_path / "whole")) == 0
    run = tmp_path / "killed"
    rng = random.Random(7)
    killed = 0
    for _ in range(KILLS):
        before = progress_stamp(run)
        process = subprocess.Popen([sys.executable, "-m", "offsite", *command(bundle, data, run)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while progress_stamp(run) == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))  # somewhere in training, evaluation or a checkpoint write
        process.send_signal(signal.SIGKILL)
        killed += process.wait() == -signal.SIGKILL and not (run / "manifest.json").exists()
    assert killed >= 2  # most kills land before the run ends
    capsys.readouterr()
    assert main(command(bundle, data, run)) == 0
    # Equal tensors and header; not equal bytes: safetensors may order the header's metadata differently.
    (killed_tensors, killed_meta), (whole_tensors, whole_meta) = (load_adapter(r / "adapter.safetensors")
                                                                  for r in (run, tmp_path / "whole"))
    assert killed_meta == whole_meta and killed_tensors.keys() == whole_tensors.keys()
    assert all(torch.equal(killed_tensors[k], whole_tensors[k]) for k in whole_tensors)
    assert (run / "metrics.jsonl").read_text() == (tmp_path / "whole" / "metrics.jsonl").read_text()
    assert not (run / "checkpoint").exists()
    assert [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []
    assert sorted(os.listdir(run)) == sorted(os.listdir(tmp_path / "whole"))
