"""How much each block matters: block influence, angular distance and drop-one perplexity.

For block i with input x and output y at a token (the residual stream before and after the block):

- block influence = 1 − cos(x, y), averaged over the pooled tokens (ShortGPT's measure);
- angular distance = arccos(cos(x, y)) / π, averaged likewise (Gromov et al.'s, for a single block);
- drop-one perplexity = the model's perplexity on the calibration samples with block i removed.

Higher means more important for all three. The cosine measures take one forward pass over the samples (the
tokens counted are those the hidden-state config pools); drop-one takes one more pass per block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import get_blocks, num_layers
from ..models.block_swap import swapped_blocks
from .hidden_states import HiddenStateConfig, run_block_outputs
from .language_loss import TokenBatches, mean_token_nll, perplexity, token_batches

# Metric name (as strategies and the CLI spell it) -> LayerImportance field.
METRICS = {"drop-one": "drop_one_perplexity", "influence": "block_influence", "angular": "angular_distance"}


@dataclass(frozen=True)
class LayerImportance:
    """Per block (0..L-1): ``block_influence``, ``angular_distance`` and, when measured, ``drop_one_perplexity``
    with the full model's ``perplexity`` on the same samples."""

    block_influence: np.ndarray
    angular_distance: np.ndarray
    drop_one_perplexity: np.ndarray | None
    perplexity: float | None
    num_samples: int
    num_tokens: int

    def scores(self, metric: str) -> np.ndarray:
        """The per-block importance under ``metric`` (one of :data:`METRICS`; higher: more important)."""
        if metric not in METRICS:
            raise OffsiteError(f"unknown importance metric {metric!r}; choose one of: {', '.join(METRICS)}")
        values = getattr(self, METRICS[metric])
        if values is None:
            raise OffsiteError(f"importance metric {metric!r} was not measured")
        return values

    def rows(self) -> list[dict[str, Any]]:
        """One row per block for a summary table."""
        rows = []
        for layer, (influence, angular) in enumerate(zip(self.block_influence, self.angular_distance)):
            row = {"layer": layer, "block influence": f"{influence:.4f}", "angular distance": f"{angular:.4f}"}
            if self.drop_one_perplexity is not None:
                row["drop-one ppl"] = f"{self.drop_one_perplexity[layer]:,.1f} (full {self.perplexity:,.1f})"
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        def listed(values: np.ndarray | None) -> list[float] | None:
            return None if values is None else [float(v) for v in values]

        return {
            "block_influence": listed(self.block_influence),
            "angular_distance": listed(self.angular_distance),
            "drop_one_perplexity": listed(self.drop_one_perplexity),
            "perplexity": self.perplexity,
            "num_samples": self.num_samples,
            "num_tokens": self.num_tokens,
            "definitions": "block influence 1 - mean cos(input, output); angular distance mean arccos(cos)/pi; "
            "drop-one perplexity: perplexity with that block removed",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LayerImportance":
        drop_one = data.get("drop_one_perplexity")
        return cls(
            np.asarray(data["block_influence"], dtype=np.float64),
            np.asarray(data["angular_distance"], dtype=np.float64),
            None if drop_one is None else np.asarray(drop_one, dtype=np.float64),
            data.get("perplexity"),
            int(data["num_samples"]),
            int(data["num_tokens"]),
        )


def block_cosines(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    config: HiddenStateConfig = HiddenStateConfig(),
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Block influence and angular distance of every block (float64), and the number of tokens averaged over."""
    sums = torch.zeros(2, num_layers(model), dtype=torch.float64)
    previous: torch.Tensor | None = None

    def accumulate(layer: int | None, hidden: torch.Tensor, mask: torch.Tensor, rows: list[int]) -> None:
        nonlocal previous
        if layer is not None:
            cos = torch.cosine_similarity(previous.double(), hidden.double(), dim=-1)[mask].clamp(-1.0, 1.0)
            sums[0, layer] += (1.0 - cos).sum().cpu()
            sums[1, layer] += (torch.arccos(cos) / math.pi).sum().cpu()
        previous = hidden

    tokens = run_block_outputs(model, tokenizer, texts, config, accumulate, progress, desc="block cosines")
    means = (sums / tokens).numpy()
    return means[0], means[1], tokens


def drop_one_perplexities(model: nn.Module, batches: TokenBatches, progress: bool = True) -> tuple[np.ndarray, float]:
    """Perplexity on ``batches`` with each block removed in turn, and with none removed."""
    blocks = list(get_blocks(model))
    full = perplexity(mean_token_nll(model, batches))
    values = []
    for layer in tqdm(range(len(blocks)), desc="drop-one perplexity", unit="block", disable=not progress):
        rest = [i for i in range(len(blocks)) if i != layer]
        with swapped_blocks(model, [blocks[i] for i in rest], rest):
            values.append(perplexity(mean_token_nll(model, batches)))
    return np.asarray(values, dtype=np.float64), full


def layer_importance(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    config: HiddenStateConfig = HiddenStateConfig(),
    drop_one: bool = True,
    progress: bool = True,
) -> LayerImportance:
    """Every block's importance on ``texts``; ``drop_one=False`` skips the L extra passes of drop-one perplexity."""
    influence, angular, tokens = block_cosines(model, tokenizer, texts, config, progress)
    dropped, full = None, None
    if drop_one:
        batches = token_batches(tokenizer, texts, config.max_length, config.batch_size)
        dropped, full = drop_one_perplexities(model, batches, progress)
    return LayerImportance(influence, angular, dropped, full, len(texts), tokens)
