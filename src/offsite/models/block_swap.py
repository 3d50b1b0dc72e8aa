"""Running a model for a while with other blocks in place of its own (an emulator's, or all but one)."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

from torch import nn

from .layout import get_blocks, set_blocks


@contextlib.contextmanager
def swapped_blocks(model: nn.Module, blocks: Sequence[nn.Module], sources: Sequence[int]) -> Iterator[nn.Module]:
    """Within the block, ``model`` runs with ``blocks`` (``sources[i]``: original index of ``blocks[i]``, as in
    :func:`offsite.models.set_blocks`); afterwards its own blocks, depth, ``layer_types`` and every block's
    ``layer_idx`` are back, even after an exception."""
    original = list(get_blocks(model))
    config = model.config
    depth, layer_types = config.num_hidden_layers, getattr(config, "layer_types", None)
    set_blocks(model, blocks, sources)
    try:
        yield model
    finally:
        config.num_hidden_layers = depth
        if layer_types is not None:
            config.layer_types = layer_types
        set_blocks(model, original, range(len(original)))
