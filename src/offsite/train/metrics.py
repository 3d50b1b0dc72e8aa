"""A run's metrics log (``metrics.jsonl``): one JSON object per logged step or evaluation, each with its ``step``.
A resumed run keeps the lines up to its checkpoint, so the log reads as if the run had never stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import OffsiteError
from ..paths import atomic_path, refuse_foreign


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics log, in order (none when it does not exist).

    A last line cut short (the process was killed while writing it: no newline ends it) is left out, so a resumed
    run continues from the last complete step; any other line that is not a JSON object with a ``step`` is an error.
    """
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise OffsiteError(f"metrics log {path} is not UTF-8 text: it is corrupt") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise OffsiteError(f"metrics log {path}, line {number}, is not JSON: the log is corrupt") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int) or isinstance(record["step"], bool):
            raise OffsiteError(f"metrics log {path}, line {number}, is not a record with a step: the log is corrupt")
        records.append(record)
    return records


def prepare_metrics(path: Path, resume_step: int | None) -> None:
    """Keep the records a resumed run already logged up to ``resume_step``; a fresh run (None) starts a new log."""
    if not path.is_file():
        return
    refuse_foreign(path)  # a user's file of that name, in a run directory written with --force
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
