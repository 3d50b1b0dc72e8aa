"""Adapter weights on disk: the trainable blocks, named by their original layer index, in safetensors.

Tensors are named ``layers.{i}.{name}``, where ``i`` is the block's index in the base model and ``name`` the
parameter's name inside the block, so the same file fits the emulator (at the adapter positions) and the full
model (at positions ``i``). The header's metadata names the base model's fingerprint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import OffsiteError
from ..models import get_blocks
from ..paths import atomic_path

ADAPTER_FORMAT = "offsite-adapter"


def block_state(model: nn.Module, layers: Sequence[int], positions: Sequence[int]) -> dict[str, torch.Tensor]:
    """The tensors of the blocks at ``positions`` of ``model``, named for original ``layers`` (contiguous copies)."""
    blocks = get_blocks(model)
    return {
        f"layers.{layer}.{name}": tensor.detach().contiguous().clone()
        for layer, position in zip(layers, positions)
        for name, tensor in blocks[position].state_dict().items()
    }


def save_adapter(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], base_fingerprint: str) -> None:
    """Write adapter tensors with the base model's fingerprint in the header, atomically."""
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata={"format": ADAPTER_FORMAT, "base_fingerprint": base_fingerprint})


def read_safetensors(path: str | os.PathLike, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a safetensors file, each read once into memory of its own (no memory map,
    so the file may change on disk while the tensors are in use); a missing or corrupt file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise OffsiteError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt", backend="pread") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise OffsiteError(f"{what} {path} is corrupt or not a safetensors file ({exc})") from None


def all_finite(tensor: torch.Tensor, chunk: int = 1 << 20) -> bool:
    """Whether a tensor holds no NaN or infinity (checked in chunks, so that no tensor-sized mask is allocated)."""
    if not tensor.is_floating_point():
        return True
    return all(bool(torch.isfinite(part).all()) for part in tensor.reshape(-1).split(chunk))


def check_tensor(name: str, source: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Refuse ``source`` unless it has the shape and dtype of ``expected`` and only finite values."""
    if source.shape != expected.shape:
        raise OffsiteError(
            f"{what} tensor {name} has shape {tuple(source.shape)}, the model expects {tuple(expected.shape)}"
        )
    if source.dtype != expected.dtype:
        raise OffsiteError(f"{what} tensor {name} has dtype {source.dtype}, the model expects {expected.dtype}")
    if not all_finite(source):
        raise OffsiteError(f"{what} tensor {name} holds non-finite values (NaN or inf)")


def load_adapter(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of an adapter file, checked to be an offsite adapter."""
    tensors, metadata = read_safetensors(path, "adapter file")
    if metadata.get("format") != ADAPTER_FORMAT:
        raise OffsiteError(f"{path} is not an offsite adapter (its header does not say format={ADAPTER_FORMAT})")
    return tensors, metadata


def adapter_layers_of(tensors: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """The original layer indices an adapter's tensors cover."""
    parts = [name.split(".") for name in tensors]
    if not all(len(p) > 2 and p[0] == "layers" and p[1].isdigit() for p in parts):
        raise OffsiteError("adapter tensor names must look like layers.<index>.<parameter>")
    return tuple(sorted({int(p[1]) for p in parts}))


def apply_adapter(model: nn.Module, tensors: Mapping[str, torch.Tensor], positions: Mapping[int, int]) -> None:
    """Copy adapter tensors into ``model``: original layer ``i`` goes to block position ``positions[i]``.

    Refuses, with one clear line, an adapter whose layers, tensor names, shapes or dtypes do not match the
    model's blocks, or that holds non-finite values. Nothing is written unless everything matches.
    """
    layers = adapter_layers_of(tensors)
    if set(layers) != set(positions):
        raise OffsiteError(
            f"adapter covers layers {list(layers)} but this model's adapter layers are {sorted(positions)}"
        )
    blocks = get_blocks(model)
    updates = []
    expected_names = set()
    for layer, position in positions.items():
        for name, target in blocks[position].state_dict().items():
            key = f"layers.{layer}.{name}"
            expected_names.add(key)
            if key not in tensors:
                raise OffsiteError(f"adapter is missing tensor {key}: it was made for another architecture")
            check_tensor(key, tensors[key], target, "adapter")
            updates.append((target, tensors[key]))
    unexpected = sorted(set(tensors) - expected_names)
    if unexpected:
        raise OffsiteError(f"adapter has tensors this model does not: {', '.join(unexpected[:3])}")
    with torch.no_grad():
        for target, source in updates:
            target.copy_(source)
