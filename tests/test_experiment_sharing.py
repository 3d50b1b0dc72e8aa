"""Several processes measuring one experiment directory: locks that a dead process drops, cells that another
process holds are done last, and two processes given the same --out measure every cell exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from offsite.experiment import runner
from offsite.experiment.locks import Busy, Locks

from experiment_support import config_for, make_experiment_root

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from offsite.experiment.locks import Busy, Locks
    try:
        with Locks(Path(sys.argv[1])).hold(sys.argv[2]):
            print("held", flush=True)
            time.sleep(float(sys.argv[3]))
    except Busy:
        print("busy", flush=True)
""")


def hold_elsewhere(out: Path, name: str, seconds: float = 600) -> tuple[str, subprocess.Popen]:
    """Another process taking the lock ``name`` of ``out`` and keeping it ``seconds`` (or until it is killed): what
    it said ("held" or "busy"), and the process."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), name, str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    return holder.stdout.readline().strip(), holder


def test_a_lock_held_elsewhere_is_busy_until_its_process_is_killed(tmp_path):
    said, holder = hold_elsewhere(tmp_path, "bundles/uniform-keep2")
    assert said == "held"
    locks = Locks(tmp_path)
    with pytest.raises(Busy, match="bundles/uniform-keep2"):
        with locks.hold("bundles/uniform-keep2"):
            pass
    with locks.hold("bundles/crash-keep2"):  # another name is free
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with locks.hold("bundles/uniform-keep2"):  # the killed process left no lock behind
        with locks.hold("bundles/uniform-keep2"):  # and this process may take its own lock again
            pass


def test_a_lock_is_free_for_other_processes_once_its_body_ends(tmp_path):
    locks = Locks(tmp_path)
    with locks.hold("runs/x"):
        said, holder = hold_elsewhere(tmp_path, "runs/x", seconds=0)
        assert said == "busy" and holder.wait() == 0
    said, holder = hold_elsewhere(tmp_path, "runs/x", seconds=0)
    assert said == "held" and holder.wait() == 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_experiment_root(tmp_path_factory.mktemp("sharing"))


def test_a_cell_another_process_holds_is_measured_after_the_others(setup, tmp_path, monkeypatch):
    lines: list[str] = []
    experiment = runner.Experiment(config_for(setup, strategies=["uniform"]), tmp_path / "out", log=lines.append)
    held = experiment.cells()[1]  # Full FT, seed 0
    said, holder = hold_elsewhere(tmp_path / "out", str(experiment.cell_file(held).relative_to(experiment.results)))
    assert said == "held"
    polls = []

    def release_after_a_poll(seconds):  # the other process ends without writing the cell
        polls.append(seconds)
        holder.kill()
        holder.wait()

    monkeypatch.setattr(runner.time, "sleep", release_after_a_poll)
    records = experiment.run()
    assert [r["row"] for r in records] == [c.row for c in experiment.cells()]  # in the cells' order
    scored = [line for line in lines if line.startswith("== score")]
    assert scored[-1].startswith("== score: Full FT") and len(scored) == len(records)  # measured last, once
    assert len(polls) == 1 and any(line.startswith("== later: cells/") and "full-ft-seed0" in line for line in lines)


def test_two_processes_with_one_out_measure_every_cell_once(setup, tmp_path):
    train = {"split": "train", "limit": 8, "select_split": "validation", "select_limit": 4, "epochs": 1,
             "batch_size": 4, "lr": [1e-3, 3e-3]}
    config = config_for(setup, keep=[1, 2], seeds=[0, 1], merge=["average"], train=train)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.to_json()))
    command = [sys.executable, "-m", "offsite", "experiment", str(path), "--out", str(tmp_path / "out")]
    processes = []
    for _ in range(2):
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env={**os.environ, "OMP_NUM_THREADS": "1"}))
        time.sleep(0.5)
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    lines = [line for stdout, _ in outputs for line in stdout.splitlines()]
    scored = [line for line in lines if line.startswith("== score")]
    cells = sorted((tmp_path / "out" / "cells").rglob("*.json"))
    # Full ZS and Full FT per seed; per emulator (uniform and crash, keep 1 and 2): ZS, FT and plug-in per seed, merge.
    assert len(cells) == 1 + 2 + 4 * (1 + 2 * 2 + 1) and len(scored) == len(set(scored)) == len(cells)
    trained = [line for line in lines if line.startswith("== fine-tune")]
    # Every run (per seed and learning rate) trained once, by one process or the other.
    assert len(trained) == len(set(trained)) == (2 + 4 * 2) * 2
    tables = [stdout[stdout.index("| Setting"):stdout.index("\nwrote ")] for stdout, _ in outputs]
    assert tables[0] == tables[1]
