"""Loading models by name, path or GGUF file, and per-architecture access to blocks, norm, head and embeddings."""

from .layout import (
    LAYOUTS,
    Layout,
    check_layer_index,
    final_norm,
    get_blocks,
    get_module,
    head_logits,
    layout_of,
    lm_head,
    num_layers,
    per_layer_config,
    set_blocks,
)
from .loading import ALIASES, DEFAULT_MODEL, alias_table, load_model, model_summary, resolve_local_path

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "LAYOUTS",
    "Layout",
    "alias_table",
    "check_layer_index",
    "final_norm",
    "get_blocks",
    "get_module",
    "head_logits",
    "layout_of",
    "lm_head",
    "load_model",
    "model_summary",
    "num_layers",
    "per_layer_config",
    "resolve_local_path",
    "set_blocks",
]
