"""Pooling a batch of token-level hidden states to one float64 vector per sample.

Batches are right-padded; ``attention_mask`` marks the real tokens. ``skip_first`` leaves each sample's first
tokens out of pooling, because attention-sink tokens carry activations large enough to swamp a mean.
"""

from __future__ import annotations

import torch

from ..errors import OffsiteError

POOLINGS = ("mean", "last", "weighted", "max")


def check_pooling(method: str) -> str:
    """Return ``method`` if it is a known pooling; otherwise raise a clear error."""
    if method not in POOLINGS:
        raise OffsiteError(f"unknown pooling {method!r}; choose one of: {', '.join(POOLINGS)}")
    return method


def pooling_mask(attention_mask: torch.Tensor, skip_first: int = 0) -> torch.Tensor:
    """The boolean B×T mask of the tokens that are pooled: real tokens from position ``skip_first`` on."""
    if skip_first < 0:
        raise OffsiteError(f"skip_first must be 0 or more, got {skip_first}")
    mask = attention_mask.bool().clone()
    mask[:, :skip_first] = False
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise OffsiteError(
            f"skip_first={skip_first} leaves no token to pool in {len(empty)} sample(s) of this batch "
            f"(the shortest has {int(attention_mask.sum(dim=1).min())} token(s))"
        )
    return mask


def pool(hidden: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Pool ``hidden`` (B×T×d) over the tokens where ``mask`` (B×T, from :func:`pooling_mask`) is true.

    ``mean``: mean over the masked tokens. ``last``: the last masked token. ``weighted``: mean with weights
    1, 2, …, T' over the masked tokens in order (later tokens have seen more context). ``max``: elementwise max.
    The result is float64 (B×d), whatever the model's dtype.
    """
    check_pooling(method)
    hidden = hidden.to(torch.float64)
    weights = mask.to(torch.float64)
    if method == "max":
        return hidden.masked_fill(~mask.unsqueeze(-1), -torch.inf).amax(dim=1)
    if method == "last":
        # Right padding: the last masked token is at the largest masked position.
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = positions.masked_fill(~mask, -1).amax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if method == "weighted":
        weights = weights.cumsum(dim=1) * weights
    return torch.einsum("bt,btd->bd", weights, hidden) / weights.sum(dim=1, keepdim=True)
