"""The tuned lens: one learned affine translator per layer, trained so each layer's prediction matches the final one.

Translator i maps block i's output h to h + A_i h + b_i (A_i, b_i start at zero, so an untrained tuned lens is
the logit lens). Block L-1 has none: through the final norm and head it already is the model's output. Training
minimises, per layer, KL(final distribution ‖ the layer's distribution) over every real token, with the model
frozen. Translators are stored as safetensors (``translators.{i}.weight``/``.bias``) with their shape in the metadata.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import final_norm, lm_head, num_layers
from ..paths import atomic_path
from .hidden_states import block_outputs, encode_texts, pad_batch
from .lens import kl_to_final, lens_logits

_FORMAT = "offsite-tuned-lens"


class TunedLens(nn.Module):
    """Affine translators for blocks 0..L-2 of a model with L blocks of width ``hidden_size``."""

    def __init__(self, num_layers: int, hidden_size: int) -> None:
        super().__init__()
        if num_layers < 2:
            raise OffsiteError("a tuned lens needs a model with at least 2 layers")
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.translators = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_layers - 1))
        for translator in self.translators:
            nn.init.zeros_(translator.weight)
            nn.init.zeros_(translator.bias)

    @classmethod
    def for_model(cls, model: nn.Module) -> TunedLens:
        """An untrained (identity) tuned lens shaped for ``model``, on its device."""
        lens = cls(num_layers(model), model.config.hidden_size)
        return lens.to(next(model.parameters()).device)

    def forward(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        if layer == self.num_layers - 1:
            return hidden
        return hidden + self.translators[layer](hidden.to(self.translators[layer].weight.dtype))

    def check_matches(self, model: nn.Module) -> None:
        """Raise a clear error unless this lens was made for a model of ``model``'s depth and width."""
        shape = (num_layers(model), model.config.hidden_size)
        if shape != (self.num_layers, self.hidden_size):
            raise OffsiteError(
                f"the tuned lens is for {self.num_layers} layers of width {self.hidden_size}, "
                f"but the model has {shape[0]} layers of width {shape[1]}"
            )

    def save(self, path: str | os.PathLike, model_name: str = "") -> None:
        """Write the translators to a safetensors file, atomically."""
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        metadata = {
            "format": _FORMAT,
            "num_layers": str(self.num_layers),
            "hidden_size": str(self.hidden_size),
            "model": model_name,
            "layers": "translators.i maps block i's output (numbered from 0); block L-1 has none",
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TunedLens:
        """Read translators written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise OffsiteError(f"tuned lens file not found: {path}")
        try:
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError) as exc:
            raise OffsiteError(f"{path} is not a readable safetensors file ({exc})") from None
        if metadata.get("format") != _FORMAT:
            raise OffsiteError(f"{path} is not a tuned lens written by offsite")
        try:
            lens = cls(int(metadata["num_layers"]), int(metadata["hidden_size"]))
            lens.load_state_dict(tensors)
        except (KeyError, ValueError, RuntimeError):
            raise OffsiteError(f"{path} is a corrupt tuned lens (its tensors do not match its metadata)") from None
        return lens


@dataclass(frozen=True)
class TunedLensConfig:
    """Training: ``steps`` Adam steps on batches of ``batch_size`` samples truncated to ``max_length`` tokens."""

    steps: int = 100
    batch_size: int = 4
    max_length: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.max_length < 1 or not self.lr > 0:
            raise OffsiteError("tuned lens steps, batch size and max length must be at least 1 and lr positive")


@contextlib.contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """Parameters of ``modules`` need no gradient within the block (the model stays untouched by training)."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def train_tuned_lens(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    config: TunedLensConfig = TunedLensConfig(),
    progress: bool = True,
) -> tuple[TunedLens, list[float]]:
    """Train a tuned lens for ``model`` on ``texts``; return it and the mean KL over layers at each step.

    Layers are back-propagated one at a time, so only one layer's vocabulary-sized logits are held at once.
    """
    ids = encode_texts(tokenizer, texts, config.max_length)
    lens = TunedLens.for_model(model)
    optimizer = torch.optim.Adam(lens.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    history = []
    with _frozen(final_norm(model), lm_head(model)), tqdm(
        range(config.steps), desc="tuned lens", unit="step", disable=not progress
    ) as steps:
        for _ in steps:
            if len(order) < config.batch_size:
                order += rng.permutation(len(ids)).tolist()  # a new epoch, reshuffled
            batch, order = order[: config.batch_size], order[config.batch_size :]
            input_ids, attention_mask = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
            hiddens, final = block_outputs(model, input_ids, attention_mask)
            real = attention_mask.bool().to(final.device)
            final_logprobs = torch.log_softmax(final[real].float(), dim=-1)
            optimizer.zero_grad()
            total = 0.0
            for layer in range(lens.num_layers - 1):
                loss = kl_to_final(final_logprobs, lens_logits(model, hiddens[layer][real], layer, lens)).mean()
                (loss / (lens.num_layers - 1)).backward()
                total += loss.item()
            optimizer.step()
            history.append(total / (lens.num_layers - 1))
            steps.set_postfix(kl=f"{history[-1]:.3f}")
    return lens, history
