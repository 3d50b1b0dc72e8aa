"""Local data files: JSONL multiple-choice examples and plain text for language modelling."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import OffsiteError
from .examples import MultipleChoiceExample


def _read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    path = Path(path)
    if not path.is_file():
        raise OffsiteError(f"data file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise OffsiteError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise OffsiteError(f"{path}:{number}: expected a JSON object")
            rows.append((number, row))
    if not rows:
        raise OffsiteError(f"data file is empty: {path}")
    return rows


def load_jsonl_examples(path: str | Path) -> list[MultipleChoiceExample]:
    """Multiple-choice examples from a JSONL file of ``{"prompt": str, "choices": [str], "gold": int}`` lines."""
    examples = []
    for number, row in _read_jsonl(path):
        missing = {"prompt", "choices", "gold"} - row.keys()
        if missing:
            raise OffsiteError(f"{path}:{number}: missing key(s) {', '.join(sorted(missing))}")
        try:
            examples.append(MultipleChoiceExample(str(row["prompt"]), tuple(map(str, row["choices"])), int(row["gold"])))
        except OffsiteError as exc:
            raise OffsiteError(f"{path}:{number}: {exc}") from None
    return examples


def load_text(path: str | Path) -> str:
    """The contents of a plain-text file, for perplexity and language-model fine-tuning."""
    path = Path(path)
    if not path.is_file():
        raise OffsiteError(f"text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OffsiteError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise OffsiteError(f"text file is empty: {path}")
    return text
