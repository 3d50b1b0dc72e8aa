"""Offsite bundles: what a model owner ships to a data owner.

A bundle directory holds

- ``manifest.json``: format version, strategy, layer map, adapter layers, clustering, similarity settings,
  the base model's name and fingerprint, sizes and versions;
- ``adapter.safetensors``: the trainable adapter blocks (see :mod:`offsite.emulator.adapter`);
- ``emulator.safetensors``: every other kept block once (``layers.{i}.*``), the pretrained weights of each
  adapter block that also fills other positions as a frozen copy (``copies.{i}.*``), plus embeddings, final
  norm and head under the model's own names; removed blocks are absent;
- ``config.json`` (the base model's) and the tokenizer files.

Loading trusts nothing in the folder: the manifest is checked (:mod:`offsite.emulator.manifest`), every file it
lists must have its recorded size and SHA-256, the weights are safetensors only (never pickle) and must be exactly
the tensors the layer map implies, with the model's shapes and dtypes and finite values, and no code from the
folder is ever run. The emulator is built lean: parameters start on the meta device (no memory, no random
initialisation), removed blocks are never materialised, and each tensor is read from disk once.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import LAYOUTS, get_blocks, layout_of, set_blocks
from ..models.fingerprint import fingerprint
from ..paths import atomic_path, check_output, read_json, sha256_of, write_json
from .adapter import apply_adapter, block_state, check_tensor, load_adapter, read_safetensors, save_adapter
from .build import build_emulator
from .layer_map import LayerMap
from .manifest import ADAPTER_FILE, BUNDLE_FORMAT, EMULATOR_FILE, FORMAT_VERSION, check_manifest

MANIFEST = "manifest.json"
COPY_PREFIX = "copies."  # frozen pretrained copies of adapter blocks, in the emulator file


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


def _copy_state(model: PreTrainedModel, layer_map: LayerMap) -> dict[str, torch.Tensor]:
    """The pretrained tensors of the adapter blocks that fill other positions as frozen copies (``copies.{i}.*``)."""
    copied = layer_map.copied_layers
    return {COPY_PREFIX + k.removeprefix("layers."): v for k, v in block_state(model, copied, copied).items()}


def _file_records(directory: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Size and SHA-256 of every file in ``directory``, by name."""
    files = [p for p in sorted(directory.iterdir()) if p.is_file()]
    return {p.name: p.stat().st_size for p in files}, {p.name: sha256_of(p) for p in files}


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
    The directory appears only when complete (see :func:`offsite.paths.atomic_path` for what it may replace).
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
    emulator_state = {**_non_block_state(model), **frozen_state, **_copy_state(model, layer_map)}
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
        manifest["files"], manifest["sha256"] = _file_records(tmp)
        write_json(tmp / MANIFEST, manifest)
    return manifest


def _checked_manifest(path: Path) -> tuple[dict[str, Any], LayerMap]:
    if not path.is_dir():
        raise OffsiteError(f"bundle not found: {path} is not a directory")
    manifest = read_json(path / MANIFEST, "bundle manifest")
    return manifest, check_manifest(manifest, f"bundle manifest {path / MANIFEST}")


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the bundle at ``path``, checked (keys, types, format version, layer map, file names)."""
    return _checked_manifest(Path(path))[0]


def _check_files(path: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is a regular file in the folder with the recorded size (and SHA-256)."""
    folder = path.resolve()
    for name, size in manifest["files"].items():
        file = path / name
        if not file.is_file() or file.resolve().parent != folder:
            raise OffsiteError(f"bundle {path} lacks {name}, which its manifest lists (or it is a link out of the folder)")
        actual = file.stat().st_size
        if actual != size:
            raise OffsiteError(f"bundle {path}: {name} is {actual} bytes but the manifest says {size} "
                               "(truncated, corrupt or altered)")
        digest = manifest.get("sha256", {}).get(name)
        if digest is not None and sha256_of(file) != digest:
            raise OffsiteError(f"bundle {path}: {name} does not match the SHA-256 in its manifest "
                               "(corrupt or altered)")


def _config_and_tokenizer(path: Path, num_layers: int) -> tuple[Any, PreTrainedTokenizerBase]:
    """The bundle's config and tokenizer, read as data only (``trust_remote_code`` stays off)."""
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OffsiteError(f"bundle {path} has a missing or corrupt config or tokenizer ({reason})") from None
    if config.model_type not in LAYOUTS:
        raise OffsiteError(f"bundle {path} is for architecture {config.model_type!r}, which offsite does not support")
    if getattr(config, "num_hidden_layers", None) != num_layers:
        raise OffsiteError(f"bundle {path}: config.json has {getattr(config, 'num_hidden_layers', None)} layers "
                           f"but the manifest {num_layers}")
    return config, tokenizer


def _skeleton(config: Any) -> PreTrainedModel:
    """The model of ``config`` with every parameter on the meta device (no memory, no random initialisation);
    buffers computed from the config (such as rotary frequencies) are real. Tied weights are tied."""
    dtype = getattr(config, "dtype", None)
    dtype = dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.tie_weights()
    return model


def _expected_tensors(model: PreTrainedModel, layer_map: LayerMap) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """What the emulator file and the adapter file must hold, by their names on disk, as (meta) tensors of the
    right shape and dtype: the non-block tensors (a tied one once, under its first name) and the frozen blocks;
    the adapter blocks."""
    prefix = layout_of(model).blocks + "."
    seen: set[int] = set()
    outside = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if not name.startswith(prefix) and id(tensor) not in seen:
            seen.add(id(tensor))
            outside[name] = tensor
    blocks = get_blocks(model)

    def layers(indices: tuple[int, ...], prefix: str = "layers.") -> dict[str, torch.Tensor]:
        return {f"{prefix}{i}.{name}": t for i in indices for name, t in blocks[i].state_dict(keep_vars=True).items()}

    emulator = {**outside, **layers(layer_map.frozen_layers), **layers(layer_map.copied_layers, COPY_PREFIX)}
    return emulator, layers(layer_map.adapter_layers)


def _check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    """Exactly the ``expected`` names, each with its shape and dtype and finite values."""
    missing = sorted(expected.keys() - tensors.keys())
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise OffsiteError(f"{what} lacks tensor {missing[0]}{more}, which the layer map and config imply")
    unexpected = sorted(tensors.keys() - expected.keys())
    if unexpected:
        raise OffsiteError(f"{what} holds tensor {unexpected[0]}, which the layer map and config do not imply")
    for name, tensor in tensors.items():
        check_tensor(name, tensor, expected[name], what)


def _lean_emulator(path: Path, config: Any, layer_map: LayerMap) -> PreTrainedModel:
    """The emulator with only its kept blocks in memory, each tensor read once and used in place."""
    model = _skeleton(config)
    expected_emulator, expected_adapter = _expected_tensors(model, layer_map)
    emulator_tensors, _ = read_safetensors(path / EMULATOR_FILE, f"bundle {path}: emulator weights")
    _check_tensors(emulator_tensors, expected_emulator, f"bundle {path}: {EMULATOR_FILE}")
    adapter_tensors, _ = load_adapter(path / ADAPTER_FILE)
    _check_tensors(adapter_tensors, expected_adapter, f"bundle {path}: {ADAPTER_FILE}")
    copies = {"layers." + k.removeprefix(COPY_PREFIX): emulator_tensors.pop(k)
              for k in [k for k in emulator_tensors if k.startswith(COPY_PREFIX)]}
    prefix = layout_of(model).blocks + "."
    state = {(prefix + k.removeprefix("layers.") if k.startswith("layers.") else k): v
             for k, v in {**emulator_tensors, **adapter_tensors}.items()}
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    build_emulator(model, layer_map)
    apply_adapter(model, copies, layer_map.first_copy_positions)  # in place: further copies stay tied to the first
    empty = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if empty:
        raise OffsiteError(f"bundle {path} gives no weights for {empty[0]}")
    return model


def load_bundle(path: str | os.PathLike, adapter: str | os.PathLike | None = None) -> Bundle:
    """Load the emulator of a bundle, optionally with a fine-tuned ``adapter`` file in place of the shipped one.

    Everything is checked first (see the module's docstring); a bundle that fails a check is refused whole.
    """
    path = Path(path)
    manifest, layer_map = _checked_manifest(path)
    _check_files(path, manifest)
    config, tokenizer = _config_and_tokenizer(path, layer_map.num_layers)
    model = _lean_emulator(path, config, layer_map)
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

    Plain transformers cannot tie arbitrary layers, so each shared position gets its own copy on disk. ``out`` may
    not be the bundle or hold it (see :func:`offsite.paths.atomic_path` for the rest).
    """
    check_output(out, [path])
    bundle = load_bundle(path)
    model = bundle.model
    sources = bundle.layer_map.emulator_sources
    set_blocks(model, [copy.deepcopy(block) for block in get_blocks(model)], list(range(len(sources))))
    out = Path(out)
    with atomic_path(out, inputs=[path]) as tmp:
        model.save_pretrained(tmp)
        bundle.tokenizer.save_pretrained(tmp)
    return out
