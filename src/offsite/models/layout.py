"""The one place that knows where each architecture keeps its transformer blocks, final norm, LM head and embeddings.

Layers are numbered from 0 (the first transformer block) to L-1 everywhere in offsite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn
from transformers import PretrainedConfig

from ..errors import OffsiteError


@dataclass(frozen=True)
class Layout:
    """Dotted attribute paths inside a ``*ForCausalLM`` model."""

    blocks: str
    final_norm: str
    lm_head: str
    embeddings: tuple[str, ...]


_LLAMA_LIKE = Layout("model.layers", "model.norm", "lm_head", ("model.embed_tokens",))

LAYOUTS: dict[str, Layout] = {
    "gpt2": Layout("transformer.h", "transformer.ln_f", "lm_head", ("transformer.wte", "transformer.wpe")),
    "opt": Layout(
        "model.decoder.layers",
        "model.decoder.final_layer_norm",
        "lm_head",
        ("model.decoder.embed_tokens", "model.decoder.embed_positions"),
    ),
    "gpt_neox": Layout("gpt_neox.layers", "gpt_neox.final_layer_norm", "lm_head", ("gpt_neox.embed_in",)),
    "bloom": Layout(
        "transformer.h",
        "transformer.ln_f",
        "lm_head",
        ("transformer.word_embeddings", "transformer.word_embeddings_layernorm"),
    ),
    "falcon": Layout("transformer.h", "transformer.ln_f", "lm_head", ("transformer.word_embeddings",)),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "mixtral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen2_moe": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "olmo2": _LLAMA_LIKE,
    "phi": Layout("model.layers", "model.final_layernorm", "lm_head", ("model.embed_tokens",)),
    "phi3": _LLAMA_LIKE,
}


def _sliced_layer_types(config: PretrainedConfig, sources: Sequence[int]) -> dict[str, Any]:
    """Each position keeps its source block's attention type (sliding window or global)."""
    return {"layer_types": [config.layer_types[s] for s in sources]}


def _is_sparse(config: PretrainedConfig, layer: int) -> bool:
    """Whether Qwen-MoE builds block ``layer`` with a mixture of experts (as its decoder layer decides)."""
    every_step = (layer + 1) % config.decoder_sparse_step == 0
    return layer not in config.mlp_only_layers and config.num_experts > 0 and every_step


def _listed_dense_layers(config: PretrainedConfig, sources: Sequence[int]) -> dict[str, Any]:
    """Qwen-MoE derives each block's kind from its index; list the dense positions so a reloaded model
    builds every block as the block that moved there."""
    return {
        "mlp_only_layers": [p for p, s in enumerate(sources) if not _is_sparse(config, s)],
        "decoder_sparse_step": 1,
    }


# Config attributes that describe layers by index, and how they follow the blocks to new positions.
PER_LAYER_CONFIG: dict[str, Callable[[PretrainedConfig, Sequence[int]], dict[str, Any]]] = {
    "layer_types": _sliced_layer_types,
    "mlp_only_layers": _listed_dense_layers,
}


def per_layer_config(config: PretrainedConfig, sources: Sequence[int]) -> dict[str, Any]:
    """The config attributes that describe layers by index, rewritten for a model whose block ``i`` is the
    original block ``sources[i]``."""
    return {
        key: value
        for attribute, follow in PER_LAYER_CONFIG.items()
        if getattr(config, attribute, None) is not None
        for key, value in follow(config, sources).items()
    }


def layout_of(model: nn.Module) -> Layout:
    """The layout of ``model``, or an :class:`OffsiteError` naming the supported architectures."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LAYOUTS:
        raise OffsiteError(
            f"unsupported architecture {model_type!r}; supported: {', '.join(sorted(LAYOUTS))}"
        )
    return LAYOUTS[model_type]


def get_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted ``path``."""
    module = model
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _set_module(model: nn.Module, path: str, value: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(get_module(model, parent_path) if parent_path else model, name, value)


def get_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of ``model``, in order."""
    return get_module(model, layout_of(model).blocks)


def num_layers(model: nn.Module) -> int:
    """How many transformer blocks ``model`` has."""
    return len(get_blocks(model))


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied after the last block (what a logit lens applies before the head)."""
    return get_module(model, layout_of(model).final_norm)


def lm_head(model: nn.Module) -> nn.Module:
    """The output projection to vocabulary logits."""
    return get_module(model, layout_of(model).lm_head)


def head_logits(model: nn.Module, normed: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits from the final norm's output: the LM head, then the final soft-capping of the logits
    that some architectures apply (Gemma-2: ``cap * tanh(logits / cap)``)."""
    logits = lm_head(model)(normed)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return logits if cap is None else cap * torch.tanh(logits / cap)


def check_layer_index(model: nn.Module, index: int) -> int:
    """Return ``index`` if it names a block of ``model``; otherwise raise a clear error."""
    n = num_layers(model)
    if not 0 <= index < n:
        raise OffsiteError(f"layer index {index} is out of range: this model has layers 0..{n - 1}")
    return index


def set_blocks(model: nn.Module, blocks: Sequence[nn.Module], sources: Sequence[int]) -> None:
    """Replace the block list of ``model`` by ``blocks``; ``sources[i]`` is the original index of ``blocks[i]``.

    Updates everything that depends on the depth: ``config.num_hidden_layers``, the per-layer config of
    :data:`PER_LAYER_CONFIG` (so a Gemma block keeps its sliding/global attention and a Qwen-MoE block stays
    sparse or dense when the config is saved and reloaded), and each position's ``layer_idx`` (the KV cache
    slot). Each position must be a distinct module object, because ``layer_idx`` is per position; share
    weights between positions with tied copies, not the same object.
    """
    if len(blocks) != len(sources):
        raise ValueError("blocks and sources must have the same length")
    place_blocks(model, blocks)
    config = model.config
    for key, value in per_layer_config(config, sources).items():
        setattr(config, key, value)
    config.num_hidden_layers = len(blocks)


def place_blocks(model: nn.Module, blocks: Sequence[nn.Module]) -> None:
    """Make ``blocks`` the block list of ``model``, each position's ``layer_idx`` set to it; the config is left as
    it is (:func:`set_blocks` rewrites it too)."""
    if len({id(b) for b in blocks}) != len(blocks):
        raise ValueError("each position needs its own module object (use a tied copy to share weights)")
    for position, block in enumerate(blocks):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    _set_module(model, layout_of(model).blocks, nn.ModuleList(blocks))
