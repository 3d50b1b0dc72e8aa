"""What a bundle holds, in a few lines for a person (``offsite info BUNDLE``): strategy, layer map, sizes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .bundle import MANIFEST
from .layer_map import LayerMap


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a bundle directory (it has a manifest), as opposed to a model."""
    return (Path(path) / MANIFEST).is_file()


def bundle_summary(path: str | os.PathLike, manifest: dict[str, Any]) -> dict[str, Any]:
    """The strategy, layer map, depth, blocks and sizes of the bundle at ``path``, from its (checked) manifest."""
    layer_map = LayerMap.from_json(manifest["layer_map"])
    base = manifest["base_model"]
    spec = manifest.get("strategy_spec") or {}
    return {
        "bundle": str(path),
        "base model": f"{base.get('name')} ({base.get('architecture')}, {base['num_layers']} layers)",
        "strategy": spec.get("text") or manifest.get("strategy"),
        "keep": manifest.get("keep"),
        "layer map": layer_map.describe(),
        "legend": "position: source block; * adapter (trainable), c frozen copy of an adapter block, · removed; "
        "layers from 0",
        "emulator depth": len(layer_map.emulator_sources),
        "distinct blocks": f"{len(layer_map.kept_layers)} ({len(layer_map.adapter_layers)} adapter: "
        f"{','.join(map(str, layer_map.adapter_layers))})",
        "parameters": f"{manifest['bundle_parameters']:,} of {base['num_parameters']:,} "
        f"({manifest['bundle_parameters'] / base['num_parameters']:.1%}); adapter {manifest['adapter_parameters']:,}",
        "size on disk": f"{sum(manifest['files'].values()) / 2**20:.1f} MB",
    }
