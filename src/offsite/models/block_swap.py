"""Running a model for a while with other blocks in place of its own (an emulator's, or all but one)."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Sequence

from torch import nn
from transformers import PretrainedConfig

from .layout import get_blocks, per_layer_config, place_blocks, set_blocks


@contextlib.contextmanager
def swapped_blocks(model: nn.Module, blocks: Sequence[nn.Module], sources: Sequence[int]) -> Iterator[nn.Module]:
    """Within the block, ``model`` runs with ``blocks`` (``sources[i]``: original index of ``blocks[i]``, as in
    :func:`offsite.models.set_blocks`); afterwards its own blocks, every block's ``layer_idx`` and every config
    attribute :func:`set_blocks` rewrites (depth and the per-layer config, e.g. Gemma's ``layer_types`` or
    Qwen-MoE's ``mlp_only_layers``) are back as they were, even after an exception."""
    original = list(get_blocks(model))
    config = model.config
    rewritten = ["num_hidden_layers", *per_layer_config(config, sources)]
    saved = {key: copy.deepcopy(getattr(config, key)) for key in rewritten if hasattr(config, key)}
    set_blocks(model, blocks, sources)
    try:
        yield model
    finally:
        # The saved values themselves, not set_blocks' rewriting of them (Qwen-MoE's dense layers become a list).
        _restore(config, saved, rewritten)
        place_blocks(model, original)


def _restore(config: PretrainedConfig, saved: dict[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        if key in saved:
            setattr(config, key, copy.deepcopy(saved[key]))
        elif hasattr(config, key):
            delattr(config, key)
