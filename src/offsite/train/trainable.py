"""What a run trains: the model it starts from (an emulator or the full model), which of its weights learn,
and how the learned adapter blocks are read back out as plain block tensors (LoRA merged in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from ..emulator import adapter_from_pads, block_state, load_bundle, read_manifest, validate_adapter_layers
from ..emulator.layer_map import LayerMap
from ..errors import OffsiteError
from ..models import get_blocks, layout_of, load_model, num_layers
from ..models.fingerprint import fingerprint
from .config import FinetuneConfig

DEFAULT_ADAPTER = (2, 2)


@dataclass
class Target:
    """The model a run trains. ``layers`` are the adapter's original layer indices and ``positions`` where they sit
    in ``model``'s block list (the same in the full model); both are empty when every weight trains."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    base_fingerprint: str
    description: dict[str, Any]


def build_target(config: FinetuneConfig) -> Target:
    """Load the emulator of the bundle ``config.source`` or, with ``config.full``, the model ``config.source``."""
    if not config.full:
        bundle = load_bundle(config.source)
        layer_map = bundle.layer_map
        return Target(
            bundle.model,
            bundle.tokenizer,
            layer_map.adapter_layers,
            layer_map.adapter_positions,
            bundle.base_fingerprint,
            {
                "mode": "emulator",
                "bundle": config.source,
                "strategy": bundle.manifest.get("strategy"),
                "layer_map": layer_map.describe(),
                "base_model": bundle.manifest["base_model"].get("name"),
            },
        )
    model, tokenizer = load_model(config.source)
    base_fingerprint = fingerprint(model)
    depth = num_layers(model)
    if config.all_weights:
        layers: tuple[int, ...] = ()
    elif config.bundle is not None:
        manifest = read_manifest(config.bundle)
        if manifest["base_model"]["fingerprint"] != base_fingerprint:
            raise OffsiteError(f"bundle {config.bundle} was made from another model than {config.source}")
        layers = LayerMap.from_json(manifest["layer_map"]).adapter_layers
    elif config.adapter_layers is not None:
        layers = validate_adapter_layers(list(config.adapter_layers), depth)
    else:
        layers = adapter_from_pads(*(config.adapter or DEFAULT_ADAPTER), depth)
    return Target(
        model,
        tokenizer,
        layers,
        layers,
        base_fingerprint,
        {"mode": "full", "model": config.source, "bundle": config.bundle, "num_layers": depth},
    )


def _linear_names(model: nn.Module, positions: tuple[int, ...]) -> list[str]:
    prefix = layout_of(model).blocks
    return [
        f"{prefix}.{position}.{name}"
        for position in positions
        for name, module in get_blocks(model)[position].named_modules()
        if isinstance(module, (nn.Linear, Conv1D))
    ]


def add_lora(model: nn.Module, positions: tuple[int, ...], rank: int, alpha: float) -> None:
    """Put LoRA (peft) on every linear layer of the blocks at ``positions``; nothing else changes."""
    from peft import LoraConfig, inject_adapter_in_model

    names = _linear_names(model, positions)
    # GPT-2's Conv1D stores weights transposed; peft needs to be told.
    fan_in_fan_out = any(isinstance(m, Conv1D) for n, m in model.named_modules() if n in names)
    inject_adapter_in_model(
        LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=names, fan_in_fan_out=fan_in_fan_out),
        model,
    )


def set_trainable(target: Target, config: FinetuneConfig) -> dict[str, nn.Parameter]:
    """Freeze everything but what ``config.method`` trains and return those parameters by name.

    ``weights``: every weight of the adapter blocks (every weight of the model with ``all_weights``);
    ``lora``: LoRA matrices added to the adapter blocks' linear layers; ``bitfit``: the adapter blocks' biases.
    """
    model = target.model
    if config.method == "lora":
        add_lora(model, target.positions, config.lora_rank, config.lora_alpha)
    prefix = layout_of(model).blocks
    adapter_prefixes = tuple(f"{prefix}.{p}." for p in target.positions)

    def trains(name: str) -> bool:
        if config.all_weights:
            return True
        if not name.startswith(adapter_prefixes):
            return False
        if config.method == "lora":
            return ".lora_" in name
        if config.method == "bitfit":
            return name.endswith("bias")
        return True

    trainable = {}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trains(name))
        if parameter.requires_grad:
            trainable[name] = parameter
    if not trainable:
        raise OffsiteError(
            f"nothing to train: the adapter blocks of this {model.config.model_type} model have no biases for BitFit"
            if config.method == "bitfit"
            else "nothing to train"
        )
    return trainable


def adapter_tensors(target: Target) -> dict[str, torch.Tensor]:
    """The adapter blocks as plain ``layers.{i}.{name}`` tensors, with any LoRA update merged into its weight."""
    from peft.tuners.lora import LoraLayer

    tensors = {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in block_state(target.model, target.layers, target.positions).items()
        if ".lora_" not in name
    }
    blocks = get_blocks(target.model)
    with torch.no_grad():
        for layer, position in zip(target.layers, target.positions):
            for name, module in blocks[position].named_modules():
                if isinstance(module, LoraLayer):
                    key = f"layers.{layer}.{name}.weight"
                    tensors[key] += module.get_delta_weight("default").to(tensors[key].dtype)
    return tensors
