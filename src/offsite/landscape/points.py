"""The points a landscape passes through, each as the parameters it gives the base model, by name.

A point is the base model itself (``base``), a model directory (a plugged-in model is one), or a finished
fine-tuning run: its adapter plugged into the base, or for a run that trained every weight, its model. An adapter
file plugs in as a run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import PreTrainedModel

from ..emulator import plugged_in
from ..errors import OffsiteError
from ..models import get_blocks, load_model
from ..paths import read_json
from ..train.loop import MANIFEST, RUN_FORMAT

BASE_POINT = "base"
BASE_LABEL = "Init"


@dataclass(frozen=True)
class Point:
    """One given point: what the user named (``spec``), how it was read (``kind``), its label in the figures, and
    the parameters it sets (by name in the base model; none for the base itself)."""

    spec: str
    kind: str
    label: str
    tensors: dict[str, torch.Tensor]


def locate(spec: str) -> tuple[str, Path | None]:
    """The kind of point ``spec`` names (``base``, ``model`` or ``adapter``) and the path to read it from."""
    if spec == BASE_POINT:
        return "base", None
    path = Path(spec)
    if (path / "config.json").is_file():
        return "model", path
    if (path / MANIFEST).is_file():
        manifest = read_json(path / MANIFEST, "run manifest", ())
        outputs = manifest.get("outputs")
        if manifest.get("format") == RUN_FORMAT and isinstance(outputs, dict) and {"model", "adapter"} & set(outputs):
            return ("model", path / outputs["model"]) if "model" in outputs else ("adapter", path / outputs["adapter"])
    if path.is_file() and path.suffix == ".safetensors":
        return "adapter", path
    raise OffsiteError(f"point {spec!r} is not a model directory, a plugged-in model, a finished fine-tuning run or "
                       f"an adapter file (nor {BASE_POINT!r}, the base model)")


def _base_tensors(model: PreTrainedModel, path: Path | None, base_name: str) -> dict[str, torch.Tensor]:
    return {}


def _model_tensors(model: PreTrainedModel, path: Path, base_name: str) -> dict[str, torch.Tensor]:
    """The parameters of the model at ``path`` that differ from ``model``'s (which must have the same ones)."""
    other, _ = load_model(str(path))
    own = dict(model.named_parameters())
    theirs = dict(other.named_parameters())
    if own.keys() != theirs.keys():
        extra = sorted(own.keys() ^ theirs.keys())
        raise OffsiteError(f"{path} is not the same architecture as {base_name} (parameter {extra[0]} is in only one)")
    for name, tensor in theirs.items():
        if (tensor.shape, tensor.dtype) != (own[name].shape, own[name].dtype):
            raise OffsiteError(f"{path}: parameter {name} is {tuple(tensor.shape)} {tensor.dtype}, in {base_name} "
                               f"{tuple(own[name].shape)} {own[name].dtype}")
    return {name: tensor.detach() for name, tensor in theirs.items() if not torch.equal(tensor, own[name])}


def _adapter_tensors(model: PreTrainedModel, path: Path, base_name: str) -> dict[str, torch.Tensor]:
    """The parameters of the blocks the adapter at ``path`` replaces, as they are with it plugged into ``model``."""
    with plugged_in(model, path, base_name) as layers:
        blocks = get_blocks(model)
        replaced = {id(p) for layer in layers for p in blocks[layer].parameters()}
        return {name: p.detach().clone() for name, p in model.named_parameters() if id(p) in replaced}


READERS: dict[str, Callable[[PreTrainedModel, Path | None, str], dict[str, torch.Tensor]]] = {
    "base": _base_tensors,
    "model": _model_tensors,
    "adapter": _adapter_tensors,
}


def resolve_point(spec: str, model: PreTrainedModel, base_name: str, label: str | None = None) -> Point:
    """Read the point ``spec`` against the base ``model`` (left as it was). The label defaults to ``Init`` for the
    base and to the last part of the path otherwise."""
    kind, path = locate(spec)
    tensors = READERS[kind](model, path, base_name)
    return Point(spec, kind, label or (BASE_LABEL if kind == "base" else Path(spec).name), tensors)


def differing_parameters(model: PreTrainedModel, points: list[Point]) -> list[str]:
    """The names of the parameters some point sets to a value other than ``model``'s, in the model's order."""
    return [
        name for name, parameter in model.named_parameters()
        if any(name in point.tensors and not torch.equal(point.tensors[name], parameter) for point in points)
    ]
