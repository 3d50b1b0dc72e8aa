"""Local data files: JSONL multiple-choice examples and plain text for language modelling."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import OffsiteError
from .examples import MultipleChoiceExample


def _read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """The JSON object on each non-empty line, with its line number; anything else is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise OffsiteError(f"data file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise OffsiteError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON lines") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OffsiteError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise OffsiteError(f"{path}:{number}: not valid JSON (nested too deeply)") from None
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
        prompt, choices, gold = row["prompt"], row["choices"], row["gold"]
        if not isinstance(prompt, str):
            raise OffsiteError(f"{path}:{number}: prompt must be a string")
        if not isinstance(choices, list) or not all(isinstance(choice, str) for choice in choices):
            raise OffsiteError(f"{path}:{number}: choices must be a list of strings")
        if not isinstance(gold, int) or isinstance(gold, bool):
            raise OffsiteError(f"{path}:{number}: gold must be the integer index of the correct choice")
        try:
            examples.append(MultipleChoiceExample(prompt, tuple(choices), gold))
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
