"""A run's metrics log (``metrics.jsonl``): one JSON object per logged step or evaluation, each with its ``step``.
A resumed run keeps the lines up to its checkpoint, so the log reads as if the run had never stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..paths import atomic_path


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics log, in order (none when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prepare_metrics(path: Path, resume_step: int | None) -> None:
    """Keep the records a resumed run already logged up to ``resume_step``; a fresh run (None) starts a new log."""
    if not path.is_file():
        return
    if resume_step is None:
        path.unlink()
        return
    kept = [record for record in read_metrics(path) if record["step"] <= resume_step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(record) + "\n" for record in kept))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Add one record to the log."""
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
