"""Turning a base model into an emulator in memory: select blocks by the layer map, tie shared positions."""

from __future__ import annotations

import copy

from torch import nn
from transformers import PreTrainedModel

from ..models import get_blocks, set_blocks
from .layer_map import LayerMap


def tied_copy(module: nn.Module) -> nn.Module:
    """A new module object whose parameters and buffers are the very tensors of ``module`` (tied, stored once).

    Plain attributes (such as an attention's ``layer_idx``) are copied, so each copy can have its own. So is every
    table a module keeps (parameters, buffers, forward/backward/state-dict hooks): a hook registered on one
    position fires at that position only.
    """
    clone = copy.copy(module)
    for name, value in vars(module).items():
        if isinstance(value, (dict, set)):
            clone.__dict__[name] = copy.copy(value)
    clone._modules = {name: tied_copy(child) for name, child in module._modules.items()}
    return clone


def build_emulator(model: PreTrainedModel, layer_map: LayerMap) -> PreTrainedModel:
    """Rebuild ``model`` in place as the emulator of ``layer_map`` and return it.

    The first position a block fills gets the block itself; every further position gets a tied copy. A frozen
    copy of an adapter block is an untied deep copy (made before any training changes the adapter), and further
    copies of the same block are tied to that copy. Removed blocks are dropped (and freed once nothing else
    refers to them).
    """
    if len(get_blocks(model)) != layer_map.num_layers:
        raise ValueError(f"layer map is for {layer_map.num_layers} layers, model has {len(get_blocks(model))}")
    original = list(get_blocks(model))
    placed: dict[tuple[int, bool], nn.Module] = {}
    blocks = []
    for source, frozen_copy in zip(layer_map.emulator_sources, layer_map.emulator_copies):
        first = placed.get((source, frozen_copy))
        if first is None:
            first = placed[(source, frozen_copy)] = copy.deepcopy(original[source]) if frozen_copy else original[source]
            blocks.append(first)
        else:
            blocks.append(tied_copy(first))
    set_blocks(model, blocks, layer_map.emulator_sources)
    return model
