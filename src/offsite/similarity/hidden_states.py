"""Hidden states of every block, pooled per sample, collected batch by batch.

"Block i's output" is what transformer block i returns, read with a forward hook: the residual stream
*before* the final norm for every block, the last one included. (``output_hidden_states=True`` would not
do: for most transformers models its last entry already has the final norm applied.) The embedding output
is the input of block 0. Applying :func:`offsite.models.final_norm` and :func:`offsite.models.head_logits` to
block L-1's output gives the model's logits exactly.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..data import MultipleChoiceExample
from ..errors import OffsiteError
from ..models import get_blocks, num_layers
from .pooling import check_pooling, pool, pooling_mask


@dataclass(frozen=True)
class HiddenStateConfig:
    """How to turn samples into one vector per sample and layer.

    ``skip_first`` leaves the first tokens of each sample out of pooling (the attention sink); each sample
    is truncated to ``max_length`` tokens; ``batch_size`` samples go through the model at once. ``bos``
    puts the tokenizer's BOS token before each sample (the CRaSh authors' samples start with it).
    """

    pooling: str = "mean"
    skip_first: int = 1
    batch_size: int = 8
    max_length: int = 512
    bos: bool = False

    def __post_init__(self) -> None:
        check_pooling(self.pooling)
        if self.skip_first < 0:
            raise OffsiteError(f"skip_first must be 0 or more, got {self.skip_first}")
        if self.batch_size < 1:
            raise OffsiteError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_length <= self.skip_first:
            raise OffsiteError(f"max_length ({self.max_length}) must exceed skip_first ({self.skip_first})")


@dataclass(frozen=True)
class PooledHiddenStates:
    """Pooled float64 hidden states: ``layers[i]`` (N×d) is block i's output, ``embedding`` (N×d) block 0's input."""

    embedding: np.ndarray
    layers: np.ndarray
    num_tokens: int
    config: HiddenStateConfig

    @property
    def num_samples(self) -> int:
        return self.layers.shape[1]

    @property
    def num_layers(self) -> int:
        return self.layers.shape[0]


def example_texts(examples: Sequence[MultipleChoiceExample]) -> list[str]:
    """One text per example: the prompt followed by the gold choice, as it is scored in evaluation."""
    return [example.prompt + example.continuation(example.gold) for example in examples]


def text_samples(text: str, limit: int | None = None) -> list[str]:
    """The samples of a plain text: one per non-empty line (a paragraph), at most ``limit`` of them."""
    samples = [line.strip() for line in text.splitlines() if line.strip()]
    if not samples:
        raise OffsiteError("the text has no non-empty line to use as a sample")
    return samples[:limit] if limit is not None else samples


def start_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token a text starts from: BOS, or EOS where there is no BOS (as the harness scores text)."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise OffsiteError("the tokenizer has neither a BOS nor an EOS token to start a text with")
    return start


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, bos: bool = False
) -> list[list[int]]:
    """Token ids of each text, without special tokens (as evaluation sees them) unless ``bos`` puts the start
    token (:func:`start_token`) first, truncated to ``max_length``."""
    if not texts:
        raise OffsiteError("no samples to run through the model")
    prefix = [start_token(tokenizer)] if bos else []
    ids = [(prefix + tokenizer(text, add_special_tokens=False)["input_ids"])[:max_length] for text in texts]
    empty = [i for i, sample in enumerate(ids) if not sample]
    if empty:
        raise OffsiteError(f"sample {empty[0]} has no tokens (empty text)")
    return ids


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` (B×T) for a batch of token id lists."""
    width = max(len(sample) for sample in ids)
    input_ids = torch.full((len(ids), width), pad_id if pad_id is not None else 0, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, sample in enumerate(ids):
        input_ids[row, : len(sample)] = torch.tensor(sample, dtype=torch.long)
        attention_mask[row, : len(sample)] = 1
    return input_ids, attention_mask


@contextlib.contextmanager
def capture_block_outputs(model: nn.Module, callback: Callable[[int | None, torch.Tensor], None]) -> Iterator[None]:
    """Within the block, every forward pass of ``model`` calls ``callback(layer, hidden)`` (hidden: B×T×d).

    ``layer`` is None for the embedding output (block 0's input), then 0..L-1 for each block's output, in order.
    """
    blocks = get_blocks(model)

    def embedding_hook(module, args, kwargs):
        callback(None, args[0] if args else kwargs["hidden_states"])

    def block_hook(layer: int):
        def hook(module, args, output):
            callback(layer, output[0] if isinstance(output, tuple) else output)

        return hook

    handles = [blocks[0].register_forward_pre_hook(embedding_hook, with_kwargs=True)]
    handles += [block.register_forward_hook(block_hook(i)) for i, block in enumerate(blocks)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def forward(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits: bool = True):
    """One forward pass without a KV cache; with ``logits=False`` only the last position's logits are computed.

    Skipping the LM head on all other positions saves a large share of the time of a small model.
    """
    device = next(model.parameters()).device
    kwargs = dict(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False)
    if not logits and "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = 1
    return model(**kwargs)


@torch.no_grad()
def block_outputs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every block's full output (a list of L tensors, B×T×d) and the model's logits (B×T×V) for one batch."""
    outputs: dict[int, torch.Tensor] = {}

    def keep(layer: int | None, hidden: torch.Tensor) -> None:
        if layer is not None:
            outputs[layer] = hidden

    with capture_block_outputs(model, keep):
        logits = forward(model, input_ids, attention_mask).logits
    return [outputs[i] for i in range(num_layers(model))], logits


BlockCallback = Callable[[int | None, torch.Tensor, torch.Tensor, list[int]], None]


@torch.no_grad()
def run_block_outputs(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    config: HiddenStateConfig,
    callback: BlockCallback,
    progress: bool = True,
    desc: str = "hidden states",
) -> int:
    """Run ``texts`` through ``model`` in batches of similar length; return the number of pooled tokens.

    For every batch, ``callback(layer, hidden, mask, rows)`` sees the embedding output (``layer`` None) and then
    each block's output (B×T×d) as soon as the block has run, with the batch's pooling mask (B×T, see
    :func:`pooling_mask`) and the indices in ``texts`` of its rows.
    """
    ids = encode_texts(tokenizer, texts, config.max_length, config.bos)
    too_short = [i for i, sample in enumerate(ids) if len(sample) <= config.skip_first]
    if too_short:
        i = too_short[0]
        raise OffsiteError(
            f"sample {i} has only {len(ids[i])} token(s), so skip_first={config.skip_first} leaves none to pool"
        )
    rows: list[int] = []
    mask = torch.empty(0)

    def relay(layer: int | None, hidden: torch.Tensor) -> None:
        callback(layer, hidden, mask.to(hidden.device), rows)

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    num_tokens = 0
    with capture_block_outputs(model, relay), tqdm(total=len(ids), unit="sample", desc=desc, disable=not progress) as bar:
        for start in range(0, len(ids), config.batch_size):
            rows = order[start : start + config.batch_size]
            input_ids, attention_mask = pad_batch([ids[i] for i in rows], tokenizer.pad_token_id)
            mask = pooling_mask(attention_mask, config.skip_first)
            num_tokens += int(mask.sum())
            forward(model, input_ids, attention_mask, logits=False)
            bar.update(len(rows))
    return num_tokens


def collect_hidden_states(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    config: HiddenStateConfig = HiddenStateConfig(),
    progress: bool = True,
) -> PooledHiddenStates:
    """Run ``texts`` through ``model`` in batches and pool every block's output per sample (float64).

    Each block's output is pooled as soon as the block has run, so at most one block's full hidden states
    of one batch are held at a time. Samples are batched by length to waste little on padding; the result
    keeps the order of ``texts``.
    """
    pooled: list[np.ndarray | None] = [None] * (num_layers(model) + 1)  # the embedding output, then each block

    def store(layer: int | None, hidden: torch.Tensor, mask: torch.Tensor, rows: list[int]) -> None:
        slot = 0 if layer is None else layer + 1
        vectors = pool(hidden, mask, config.pooling).cpu().numpy()
        if pooled[slot] is None:
            pooled[slot] = np.empty((len(texts), vectors.shape[1]), dtype=np.float64)
        pooled[slot][rows] = vectors

    num_tokens = run_block_outputs(model, tokenizer, texts, config, store, progress)
    if any(p is None for p in pooled):
        raise OffsiteError("the model did not run all its blocks; cannot collect every block's output")
    return PooledHiddenStates(pooled[0], np.stack(pooled[1:]), num_tokens, config)
