"""Logit lens and tuned lens: what each layer would predict if the model stopped there (the paper's Figure 3).

Row ``i`` of a lens grid is block i's output at each position, put through an optional translator (tuned lens),
the final norm and the LM head; position ``t`` predicts token ``t + 1``. Block L-1 through the norm and head is
exactly the model's output. Works on any model whose blocks, norm and head :mod:`offsite.models` can find,
an emulator included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import final_norm, head_logits
from .hidden_states import block_outputs, encode_texts, pad_batch

if TYPE_CHECKING:
    from .tuned_lens import TunedLens

LENS_KINDS = ("logit", "tuned")


def lens_logits(model: nn.Module, hidden: torch.Tensor, layer: int, tuned: TunedLens | None = None) -> torch.Tensor:
    """Vocabulary logits read from block ``layer``'s output ``hidden`` (…×d), through ``tuned``'s translator if given."""
    if tuned is not None:
        hidden = tuned(hidden, layer)
    return head_logits(model, final_norm(model)(hidden))


def kl_to_final(final_logprobs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(final ‖ layer) per position (…), in nats, from the final log-probabilities and a layer's logits (…×V)."""
    return (final_logprobs.exp() * (final_logprobs - torch.log_softmax(logits.float(), dim=-1))).sum(dim=-1)


def display_token(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """A token as readable text: decoded, with control characters escaped (``\\n``) so that a grid cell stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in tokenizer.decode([token_id]))


@dataclass(frozen=True)
class LensGrid:
    """Per layer (rows, 0..L-1) and position (columns): the top-1 token, its probability, and KL to the final layer."""

    model: str
    kind: str
    text: str
    input_tokens: list[str]
    top_ids: np.ndarray
    top_tokens: list[list[str]]
    probabilities: np.ndarray
    kl_to_final: np.ndarray

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "kind": self.kind,
            "text": self.text,
            "layers": "row i is block i's output (numbered from 0, the first block) through "
            + ("its tuned translator, " if self.kind == "tuned" else "")
            + "the final norm and the LM head; column t predicts token t+1",
            "input_tokens": self.input_tokens,
            "top_tokens": self.top_tokens,
            "top_ids": self.top_ids.tolist(),
            "probabilities": self.probabilities.round(6).tolist(),
            "kl_to_final": self.kl_to_final.round(6).tolist(),
        }


@torch.no_grad()
def lens_grid(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    tuned: TunedLens | None = None,
    model_name: str = "model",
    max_length: int = 64,
) -> LensGrid:
    """The logit lens (``tuned`` None) or tuned lens grid of ``text`` (truncated to ``max_length`` tokens)."""
    if not text.strip():
        raise OffsiteError("the lens needs a non-empty text")
    ids = encode_texts(tokenizer, [text], max_length)[0]
    hiddens, final = block_outputs(model, *pad_batch([ids], tokenizer.pad_token_id))
    if tuned is not None:
        tuned.check_matches(model)
    final_logprobs = torch.log_softmax(final[0].float(), dim=-1)
    tops, probabilities, kls = [], [], []
    for layer, hidden in enumerate(hiddens):
        logits = lens_logits(model, hidden[0], layer, tuned)
        top = torch.softmax(logits.float(), dim=-1).max(dim=-1)
        tops.append(top.indices.cpu().numpy())
        probabilities.append(top.values.cpu().numpy())
        kls.append(float(kl_to_final(final_logprobs, logits).mean()))
    top_ids = np.stack(tops)
    return LensGrid(
        model=model_name,
        kind="logit" if tuned is None else "tuned",
        text=text,
        input_tokens=[display_token(tokenizer, i) for i in ids],
        top_ids=top_ids,
        top_tokens=[[display_token(tokenizer, int(i)) for i in row] for row in top_ids],
        probabilities=np.stack(probabilities).astype(np.float64),
        kl_to_final=np.array(kls),
    )
