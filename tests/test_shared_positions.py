"""Positions that share one block (CRaSh's sharing) keep their own hooks, so the lens reads each position's own
output; checked against a manual forward through the mapped blocks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from offsite.emulator import build_emulator
from offsite.emulator.layer_map import LayerMap
from offsite.models import get_blocks, layout_of
from offsite.models.tiny import tiny_model
from offsite.similarity import lens_grid

TEXT = "Shared blocks, separate positions."
# Block 2 fills positions 1-3 (tied); block 4 is removed; adapter 0 and 5.
CRASH_MAP = LayerMap((0, 2, 2, 2, None, 5), (0, 5))


def first_positions(base, sources: list[int], depth: int):
    """A plain transformers model made of untied copies of the blocks ``sources[:depth]``, nothing shared."""
    config = copy.deepcopy(base.config)
    config.num_hidden_layers = depth
    model = AutoModelForCausalLM.from_config(config).eval()
    prefix = layout_of(base).blocks + "."
    state = {k: v for k, v in base.state_dict().items() if not k.startswith(prefix)}
    for position, source in enumerate(sources[:depth]):
        state.update({f"{prefix}{position}.{k}": v for k, v in get_blocks(base)[source].state_dict().items()})
    model.load_state_dict(state)
    return model


def test_a_hook_on_one_shared_position_fires_there_only():
    emulator = build_emulator(tiny_model("llama", num_layers=6), CRASH_MAP)
    blocks = get_blocks(emulator)
    fired = []
    for position in (1, 2, 3):
        blocks[position].register_forward_hook(lambda module, args, output, p=position: fired.append(p))
    with torch.no_grad():
        emulator(torch.tensor([[5, 6, 7]]))
    assert fired == [1, 2, 3]
    assert blocks[1].mlp.up_proj.weight is blocks[3].mlp.up_proj.weight  # still tied


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_logit_lens_rows_of_a_crash_emulator_equal_a_manual_forward(architecture, tokenizer):
    base = tiny_model(architecture, num_layers=6)
    sources = list(CRASH_MAP.emulator_sources)
    # Row p of the lens is block p's output through the final norm and head: the output of the first p+1 positions.
    expected = []
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    for depth in range(1, len(sources) + 1):
        with torch.no_grad():
            expected.append(torch.softmax(first_positions(base, sources, depth)(ids).logits[0], dim=-1))
    grid = lens_grid(build_emulator(base, CRASH_MAP), tokenizer, TEXT)
    assert grid.top_ids.shape == (len(sources), ids.shape[1])
    for row, probabilities in enumerate(expected):
        np.testing.assert_array_equal(grid.top_ids[row], probabilities.argmax(-1).numpy())
        np.testing.assert_allclose(grid.probabilities[row], probabilities.max(-1).values.numpy(), atol=1e-5)
    assert not np.allclose(grid.probabilities[1], grid.probabilities[3])  # shared positions differ
