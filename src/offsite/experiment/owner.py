"""The model owner's step, checked: plan an emulator, measure it against the full model on held-out samples,
and write the bundle with those figures in its manifest (``offsite emulate``)."""

from __future__ import annotations

import os
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..emulator.create import EmulatorConfig, plan_emulator, write_bundle
from ..emulator.layer_map import LayerMap
from ..evaluate.fidelity import FidelityConfig, emulator_fidelity, held_out


def emulate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: EmulatorConfig,
    out: str | os.PathLike,
    model_name: str,
    similarity_file: str | os.PathLike | None = None,
    fidelity: FidelityConfig | None = FidelityConfig(),
    progress: bool = True,
) -> tuple[LayerMap, dict[str, Any]]:
    """Build the emulator of ``config``, measure its fidelity (unless ``fidelity`` is None) and write its bundle
    to ``out``; return the layer map and the manifest (``manifest["fidelity"]``: see
    :func:`offsite.evaluate.fidelity.emulator_fidelity`)."""
    samples = held_out(fidelity) if fidelity is not None else None  # a bad sample source fails before the work
    plan = plan_emulator(model, tokenizer, config, similarity_file=similarity_file)
    extra = {}
    if fidelity is not None:
        extra["fidelity"] = emulator_fidelity(model, tokenizer, plan.layer_map, fidelity, samples=samples,
                                              progress=progress)
    return plan.layer_map, write_bundle(model, tokenizer, plan, out, model_name, extra)
