"""Plug-in: the model owner writes a fine-tuned adapter into the full model; nothing else changes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from transformers import PreTrainedModel

from ..errors import OffsiteError
from ..models import load_model, num_layers
from ..models.fingerprint import fingerprint
from ..paths import atomic_path, check_output, write_json
from .adapter import adapter_layers_of, apply_adapter, block_state, load_adapter

PLUGIN_RECORD = "offsite_plugin.json"


def adapter_path(run: str | os.PathLike) -> Path:
    """The adapter file of a run directory (or ``run`` itself when it is a file)."""
    run = Path(run)
    if run.is_dir():
        if not (run / "adapter.safetensors").is_file() and (run / "model").is_dir():
            raise OffsiteError(f"{run} trained all weights; its model is {run / 'model'}, there is no adapter to plug in")
        return run / "adapter.safetensors"
    return run


def plug_into(base: PreTrainedModel, run: str | os.PathLike, name: str = "the base model") -> tuple[tuple[int, ...], str]:
    """Write the adapter of ``run`` into ``base`` in place; return its layers and the base's fingerprint. Refuses an adapter made for
    another model, or one whose layers, names, shapes or dtypes do not fit, or that holds non-finite values.
    """
    path = adapter_path(run)
    tensors, metadata = load_adapter(path)
    expected = fingerprint(base)
    if metadata.get("base_fingerprint") != expected:
        raise OffsiteError(
            f"adapter {path} was made for another model (fingerprint {metadata.get('base_fingerprint')}), "
            f"not {name} ({expected})"
        )
    layers = adapter_layers_of(tensors)
    depth = num_layers(base)
    if not all(0 <= layer < depth for layer in layers):
        raise OffsiteError(f"adapter covers layers {list(layers)} but {name} has layers 0..{depth - 1}")
    apply_adapter(base, tensors, {layer: layer for layer in layers})
    return layers, expected


@contextlib.contextmanager
def plugged_in(base: PreTrainedModel, run: str | os.PathLike, name: str = "the base model") -> Iterator[tuple[int, ...]]:
    """The adapter of ``run`` in ``base`` (as :func:`plug_into` puts it there) for the duration; yields its layers.
    Afterwards the base's own blocks are back."""
    depth = num_layers(base)
    # Layers out of range are refused by plug_into before anything is written; there is nothing to save of them.
    layers = [layer for layer in adapter_layers_of(load_adapter(adapter_path(run))[0]) if 0 <= layer < depth]
    original = block_state(base, layers, layers)
    plugged, _ = plug_into(base, run, name)
    try:
        yield plugged
    finally:
        apply_adapter(base, original, {layer: layer for layer in layers})


def plugin(model: str, run: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the full ``model`` with the adapter of ``run`` in its blocks to ``out``, a directory that
    ``AutoModelForCausalLM.from_pretrained`` loads (see :func:`plug_into` for what is refused); ``out`` appears
    only when complete, and never over the inputs (see :func:`offsite.paths.atomic_path`).
    """
    inputs = [path for path in (model, str(run)) if Path(path).exists()]
    out = check_output(out, inputs)
    base, tokenizer = load_model(model)
    layers, base_fingerprint = plug_into(base, run, model)
    with atomic_path(out, inputs=inputs) as tmp:
        base.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / PLUGIN_RECORD, {"model": model, "adapter": str(adapter_path(run)),
                                         "base_fingerprint": base_fingerprint, "adapter_layers": list(layers)})
    return out
