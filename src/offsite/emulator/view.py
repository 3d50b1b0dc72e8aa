"""Running a base model as one of its emulators for a while, without building or copying anything.

Every position gets a tied copy of its source block, so the base model's weights are used as they are. A
frozen copy of an adapter block equals that block before fine-tuning, so a tied one computes the same here.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from transformers import PreTrainedModel

from ..models import get_blocks
from ..models.block_swap import swapped_blocks
from .build import tied_copy
from .layer_map import LayerMap


@contextlib.contextmanager
def emulator_view(model: PreTrainedModel, layer_map: LayerMap) -> Iterator[PreTrainedModel]:
    """Within the block, ``model`` is the emulator of ``layer_map``; afterwards it is the base model again."""
    blocks = get_blocks(model)
    if len(blocks) != layer_map.num_layers:
        raise ValueError(f"layer map is for {layer_map.num_layers} layers, model has {len(blocks)}")
    sources = layer_map.emulator_sources
    with swapped_blocks(model, [tied_copy(blocks[s]) for s in sources], sources):
        yield model
