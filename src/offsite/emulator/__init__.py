"""Emulators: the layer map of each strategy, building, adapters, bundles on disk and plug-in."""

from .adapter import apply_adapter, block_state, load_adapter, save_adapter
from .build import build_emulator, tied_copy
from .bundle import Bundle, export_bundle, load_bundle, load_emulator, read_manifest, save_bundle
from .layer_map import LayerMap, adapter_from_pads, validate_adapter_layers
from .plugin import adapter_path, plug_into, plugged_in, plugin
from .strategies import STRATEGIES, AdapterSpec, StrategySpec, build_layer_map

__all__ = [
    "STRATEGIES",
    "AdapterSpec",
    "Bundle",
    "LayerMap",
    "StrategySpec",
    "adapter_from_pads",
    "adapter_path",
    "apply_adapter",
    "block_state",
    "build_emulator",
    "build_layer_map",
    "export_bundle",
    "load_adapter",
    "load_bundle",
    "load_emulator",
    "plug_into",
    "plugged_in",
    "plugin",
    "read_manifest",
    "save_adapter",
    "save_bundle",
    "tied_copy",
    "validate_adapter_layers",
]
