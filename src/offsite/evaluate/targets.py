"""What can be evaluated or inspected: a model (optionally with an adapter plugged in) or a bundle's emulator."""

from __future__ import annotations

import os
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..emulator import adapter_path, load_bundle, plug_into
from ..emulator.bundle import MANIFEST
from ..models import load_model


def load_target(
    target: str, adapter: str | os.PathLike | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A bundle directory gives its emulator (with ``adapter``, a run directory or adapter file, in place of the
    shipped one); anything else is loaded as a model, with ``adapter`` plugged in when given."""
    if (Path(target) / MANIFEST).is_file():
        bundle = load_bundle(target, adapter=adapter_path(adapter) if adapter is not None else None)
        return bundle.model, bundle.tokenizer
    model, tokenizer = load_model(target)
    if adapter is not None:
        plug_into(model, adapter, target)
    return model, tokenizer
