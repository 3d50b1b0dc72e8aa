"""Training data: token sequences with the loss on answer tokens only, their batches, and each epoch's order.

Every sequence is a pair ``(context ids, target ids)``; the loss covers the target tokens only.

- multiple choice (a registered task or a ``{"prompt","choices","gold"}`` JSONL file): prompt + gold choice,
  tokenised as evaluation tokenises it (:func:`offsite.data.encoding.encode_pair`);
- completions (a ``{"prompt","completion"}`` JSONL file): prompt + completion + EOS, so the model learns to stop;
- plain text (any other file): the text's tokens in chunks of ``max_length``, every token but the first a target.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..data import MultipleChoiceExample, load_examples, load_text
from ..data.encoding import encode_pair
from ..data.files import _read_jsonl
from ..data.tasks import TASKS
from ..errors import OffsiteError

Pair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class DataSplit:
    """One split as training sees it: sequences, and for multiple-choice data the examples themselves."""

    kind: str
    pairs: list[Pair]
    examples: list[MultipleChoiceExample] | None


@dataclass(frozen=True)
class FinetuneData:
    """The training and evaluation splits of a run and a hash of both (tokens and examples)."""

    train: DataSplit
    eval: DataSplit
    sha256: str

    @property
    def multiple_choice(self) -> bool:
        return self.eval.examples is not None


def load_completions(path: str | Path) -> list[tuple[str, str]]:
    """``(prompt, completion)`` pairs from a JSONL file of ``{"prompt": str, "completion": str}`` lines."""
    pairs = []
    for number, row in _read_jsonl(path):
        missing = {"prompt", "completion"} - row.keys()
        if missing:
            raise OffsiteError(f"{path}:{number}: missing key(s) {', '.join(sorted(missing))}")
        pairs.append((str(row["prompt"]), str(row["completion"])))
    return pairs


def data_kind(source: str) -> str:
    """``multiple_choice``, ``completion`` or ``text``, from a task name or the file's contents."""
    path = Path(source)
    if source in TASKS:
        return "multiple_choice"
    if not path.is_file():
        raise OffsiteError(f"unknown task {source!r}: not a registered task ({', '.join(TASKS)}) nor a data file")
    if path.suffix == ".jsonl":
        return "completion" if "completion" in _read_jsonl(path)[0][1] else "multiple_choice"
    return "text"


def fit(pair: Pair, max_length: int) -> Pair:
    """Shorten a sequence to ``max_length`` tokens, dropping the context's first tokens (then the target's last)."""
    context, target = pair
    target = target[: max_length - 1]
    keep = max(1, max_length - len(target))
    return context[-keep:], target


def load_split(
    source: str, split: str, limit: int | None, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> DataSplit:
    """The sequences of ``source`` (a task name or a file; files have no splits, so ``split`` is ignored)."""
    kind = data_kind(source)
    examples = None
    if kind == "multiple_choice":
        examples = load_examples(source, split, limit)
        pairs = [encode_pair(tokenizer, e.prompt, e.continuation(e.gold)) for e in examples]
    elif kind == "completion":
        pairs = [
            (context, target + [tokenizer.eos_token_id])
            for context, target in (encode_pair(tokenizer, p, c) for p, c in load_completions(source)[:limit])
        ]
    else:
        tokens = tokenizer(load_text(source), add_special_tokens=False)["input_ids"]
        chunks = [tokens[i : i + max_length] for i in range(0, len(tokens), max_length)]
        pairs = [(chunk[:1], chunk[1:]) for chunk in chunks if len(chunk) > 1][:limit]
    pairs = [fit(pair, max_length) for pair in pairs if pair[1]]
    if not pairs:
        raise OffsiteError(f"{source} ({split}) gives no sequence with tokens to learn")
    return DataSplit(kind, pairs, examples)


def load_finetune_data(
    task: str,
    eval_task: str | None,
    train_split: str,
    eval_split: str,
    limit: int | None,
    eval_limit: int | None,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> FinetuneData:
    """The training split of ``task`` and the evaluation split of ``eval_task`` (default: ``task``)."""
    train = load_split(task, train_split, limit, tokenizer, max_length)
    evaluation = load_split(eval_task or task, eval_split, eval_limit, tokenizer, max_length)
    digest = hashlib.sha256()
    for split in (train, evaluation):
        digest.update(json.dumps(split.pairs).encode())
        digest.update(json.dumps([asdict(e) for e in split.examples or []]).encode())
    return FinetuneData(train, evaluation, digest.hexdigest())


def steps_per_epoch(num_sequences: int, batch_size: int, num_processes: int, grad_accum: int) -> int:
    """Optimizer steps in one pass over ``num_sequences`` (the last step may take fewer micro-batches)."""
    return math.ceil(math.ceil(num_sequences / (batch_size * num_processes)) / grad_accum)


def epoch_plan(
    num_sequences: int, seed: int, epoch: int, batch_size: int, num_processes: int, grad_accum: int
) -> list[list[list[list[int]]]]:
    """The order of one epoch, the same in every process and every rerun:
    ``plan[step][micro_batch][process]`` lists the sequence indices that process takes.

    Each epoch is a permutation drawn from ``(seed, epoch)``. Like accelerate's ``even_batches``, the last
    micro-batch is filled up with sequences from the start of the permutation so every process gets a full one.
    """
    order = np.random.default_rng([seed, epoch]).permutation(num_sequences).tolist()
    per_micro = batch_size * num_processes
    micro_batches = math.ceil(num_sequences / per_micro)
    order += (order * math.ceil(per_micro / num_sequences))[: micro_batches * per_micro - num_sequences]
    micro = [
        [order[(m * num_processes + r) * batch_size : (m * num_processes + r + 1) * batch_size] for r in range(num_processes)]
        for m in range(micro_batches)
    ]
    return [micro[s : s + grad_accum] for s in range(0, micro_batches, grad_accum)]


def step_batches(
    num_items: int, seed: int, batch_size: int, num_processes: int, grad_accum: int, rank: int,
    make: Callable[[list[int]], dict[str, torch.Tensor]],
) -> Callable[[int, int], list[dict[str, torch.Tensor]]]:
    """``batches(epoch, step)``: process ``rank``'s micro-batches of that optimizer step of :func:`epoch_plan`, each
    built by ``make`` from its item indices (one epoch's plan is kept at a time)."""
    plans: dict[int, list] = {}

    def batches(epoch: int, step: int) -> list[dict[str, torch.Tensor]]:
        if epoch not in plans:
            plans.clear()
            plans[epoch] = epoch_plan(num_items, seed, epoch, batch_size, num_processes, grad_accum)
        return [make(micro[rank]) for micro in plans[epoch][step]]

    return batches


def collate(pairs: Sequence[Pair], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on context tokens and padding)."""
    length = max(len(c) + len(t) for c, t in pairs)
    ids = torch.full((len(pairs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(pairs), length), dtype=torch.long)
    labels = torch.full((len(pairs), length), -100, dtype=torch.long)
    for row, (context, target) in enumerate(pairs):
        n = len(context) + len(target)
        ids[row, :n] = torch.tensor(context + target)
        mask[row, :n] = 1
        labels[row, len(context) : n] = torch.tensor(target)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
