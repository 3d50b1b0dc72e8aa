"""Offsite bundles: what a model owner ships to a data owner.

A bundle directory holds

- ``manifest.json``: format version, strategy, layer map, adapter layers, clustering, similarity settings,
  the base model's name and fingerprint, sizes and versions;
- ``adapter.safetensors``: the trainable adapter blocks (see :mod:`offsite.emulator.adapter`);
- ``emulator.safetensors``: every other kept block once (``layers.{i}.*``) plus embeddings, final norm and
  head under the model's own names; removed blocks are absent;
- ``config.json`` (the base model's) and the tokenizer files.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import get_blocks, layout_of, set_blocks
from ..models.fingerprint import fingerprint
from ..paths import atomic_path, read_json, write_json
from .adapter import apply_adapter, block_state, load_adapter, read_safetensors, save_adapter
from .build import build_emulator
from .layer_map import LayerMap

BUNDLE_FORMAT = "offsite-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ADAPTER_FILE = "adapter.safetensors"
EMULATOR_FILE = "emulator.safetensors"


@dataclass
class Bundle:
    """A loaded bundle: the emulator (a transformers model with shared blocks tied), its tokenizer and manifest."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    manifest: dict[str, Any]
    layer_map: LayerMap

    @property
    def base_fingerprint(self) -> str:
        return self.manifest["base_model"]["fingerprint"]


def versions() -> dict[str, str]:
    """Versions of the packages that shape the files we write."""
    return {name: importlib.metadata.version(name) for name in ("offsite", "torch", "transformers", "safetensors")}


def _non_block_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """Embeddings, final norm, head and anything else outside the blocks; tied tensors stored once."""
    prefix = layout_of(model).blocks + "."
    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith(prefix) or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.detach().contiguous().clone()
    return state


def _file_sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}


def save_bundle(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    layer_map: LayerMap,
    out: str | os.PathLike,
    details: dict[str, Any],
    frozen_blocks_from: PreTrainedModel | None = None,
) -> dict[str, Any]:
    """Write the bundle of ``layer_map`` for the (unmodified) base ``model`` to ``out``; return its manifest.

    ``details`` (strategy, keep, clustering, similarity settings, base model name) go into the manifest.
    ``frozen_blocks_from``, an emulator of ``layer_map`` whose frozen blocks were trained (distilled), supplies
    those blocks instead of the base model; everything else still comes from the base.
    The directory appears only when complete.
    """
    if len(get_blocks(model)) != layer_map.num_layers:
        raise OffsiteError(f"layer map is for {layer_map.num_layers} layers but the model has {len(get_blocks(model))}")
    base_fingerprint = fingerprint(model)
    frozen = layer_map.frozen_layers
    if frozen_blocks_from is None:
        frozen_state = block_state(model, frozen, frozen)
    else:
        sources = layer_map.emulator_sources
        frozen_state = block_state(frozen_blocks_from, frozen, [sources.index(layer) for layer in frozen])
    emulator_state = {**_non_block_state(model), **frozen_state}
    adapter_state = block_state(model, layer_map.adapter_layers, layer_map.adapter_layers)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_file(emulator_state, str(tmp / EMULATOR_FILE), metadata={"format": BUNDLE_FORMAT})
        save_adapter(tmp / ADAPTER_FILE, adapter_state, base_fingerprint)
        model.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        emulator_parameters = sum(t.numel() for t in emulator_state.values()) + sum(
            t.numel() for t in adapter_state.values()
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": FORMAT_VERSION,
            **details,
            "layer_map": layer_map.to_json(),
            "layer_map_text": layer_map.describe(),
            "emulator_depth": len(layer_map.emulator_sources),
            "base_model": {
                **details.get("base_model", {}),
                "fingerprint": base_fingerprint,
                "architecture": type(model).__name__,
                "num_layers": layer_map.num_layers,
                "num_parameters": sum(p.numel() for p in model.parameters()),
            },
            "bundle_parameters": emulator_parameters,
            "adapter_parameters": sum(t.numel() for t in adapter_state.values()),
            "versions": versions(),
        }
        manifest["files"] = _file_sizes(tmp)
        write_json(tmp / MANIFEST, manifest)
    return manifest


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the bundle at ``path``, checked for format and version."""
    path = Path(path)
    if not path.is_dir():
        raise OffsiteError(f"bundle not found: {path} is not a directory")
    manifest = read_json(path / MANIFEST, "bundle manifest")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise OffsiteError(f"{path} is not an offsite bundle (manifest format is {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise OffsiteError(
            f"bundle {path} has format version {manifest.get('format_version')}; this offsite reads {FORMAT_VERSION}"
        )
    return manifest


def _to_model_names(model: PreTrainedModel, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = layout_of(model).blocks + "."
    return {(prefix + k.removeprefix("layers.") if k.startswith("layers.") else k): v for k, v in tensors.items()}


def load_bundle(path: str | os.PathLike, adapter: str | os.PathLike | None = None) -> Bundle:
    """Load the emulator of a bundle, optionally with a fine-tuned ``adapter`` file in place of the shipped one."""
    path = Path(path)
    manifest = read_manifest(path)
    layer_map = LayerMap.from_json(manifest["layer_map"])
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise OffsiteError(f"bundle {path} has a missing or corrupt config or tokenizer ({exc})") from None
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    emulator_tensors, _ = read_safetensors(path / EMULATOR_FILE, "emulator weights")
    adapter_tensors, _ = load_adapter(path / ADAPTER_FILE)
    state = _to_model_names(model, {**emulator_tensors, **adapter_tensors})
    missing, unexpected = model.load_state_dict(state, strict=False)
    prefix = layout_of(model).blocks + "."
    kept = set(layer_map.kept_layers)
    absent_blocks = [k for k in missing if k.startswith(prefix) and int(k[len(prefix):].split(".")[0]) in kept]
    if unexpected or absent_blocks:
        raise OffsiteError(f"bundle {path} does not match its config: tensors {(unexpected or absent_blocks)[:3]}")
    model.tie_weights()
    build_emulator(model, layer_map)
    if adapter is not None:
        tensors, metadata = load_adapter(adapter)
        if metadata.get("base_fingerprint") != manifest["base_model"]["fingerprint"]:
            raise OffsiteError(f"adapter {adapter} was made for another base model than bundle {path}")
        apply_adapter(model, tensors, dict(zip(layer_map.adapter_layers, layer_map.adapter_positions)))
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return Bundle(model.eval(), tokenizer, manifest, layer_map)


def load_emulator(path: str | os.PathLike) -> PreTrainedModel:
    """The emulator of the bundle at ``path`` as an ordinary transformers model (shared positions tied)."""
    return load_bundle(path).model


def export_bundle(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the bundle's emulator as a plain directory that ``AutoModelForCausalLM.from_pretrained`` loads.

    Plain transformers cannot tie arbitrary layers, so each shared position gets its own copy on disk.
    """
    bundle = load_bundle(path)
    model = bundle.model
    sources = bundle.layer_map.emulator_sources
    set_blocks(model, [copy.deepcopy(block) for block in get_blocks(model)], list(range(len(sources))))
    out = Path(out)
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        bundle.tokenizer.save_pretrained(tmp)
    return out
