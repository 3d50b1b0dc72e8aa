"""Logit lens and tuned lens on tiny random models; one check of the logit lens on the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offsite.errors import OffsiteError
from offsite.models.tiny import tiny_model
from offsite.similarity import TunedLens, TunedLensConfig, lens_grid, train_tuned_lens

TEXT = "The quick brown fox"
TRAIN = ["The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs.",
         "How vexingly quick daft zebras jump!", "Sphinx of black quartz, judge my vow."]


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "phi", "gemma3_text", "gemma2", "falcon_alibi", "mixtral"])
def test_logit_lens_last_layer_is_the_model_output(architecture, tokenizer):
    model = tiny_model(architecture, num_layers=4)
    grid = lens_grid(model, tokenizer, TEXT)
    positions = len(TEXT)
    assert grid.top_ids.shape == grid.probabilities.shape == (4, positions)
    assert len(grid.top_tokens) == 4 and len(grid.input_tokens) == positions
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([tokenizer(TEXT)["input_ids"]])).logits[0], dim=-1)
    np.testing.assert_array_equal(grid.top_ids[-1], probs.argmax(-1).numpy())
    np.testing.assert_allclose(grid.probabilities[-1], probs.max(-1).values.numpy(), atol=1e-5)
    assert grid.kl_to_final[-1] == pytest.approx(0.0, abs=1e-5)
    assert (grid.kl_to_final[:-1] > 1e-4).all()  # earlier layers predict something else
    assert ((grid.probabilities > 0) & (grid.probabilities <= 1)).all()
    data = grid.to_json()
    assert data["kind"] == "logit" and np.array(data["probabilities"]).shape == (4, positions)


def test_untrained_tuned_lens_is_the_logit_lens(tokenizer):
    model = tiny_model("llama", num_layers=3)
    logit, tuned = lens_grid(model, tokenizer, TEXT), lens_grid(model, tokenizer, TEXT, TunedLens.for_model(model))
    assert tuned.kind == "tuned"
    np.testing.assert_array_equal(logit.top_ids, tuned.top_ids)
    np.testing.assert_allclose(logit.probabilities, tuned.probabilities)


def test_training_brings_layers_closer_to_the_final_one_and_survives_a_round_trip(tokenizer, tmp_path):
    model = tiny_model("llama", num_layers=4, seed=2)
    before = {name: p.clone() for name, p in model.named_parameters()}
    lens, history = train_tuned_lens(model, tokenizer, TRAIN, TunedLensConfig(steps=40, batch_size=2, lr=1e-2),
                                     progress=False)
    assert len(history) == 40
    assert np.mean(history[-5:]) < 0.5 * history[0]
    for name, p in model.named_parameters():  # the model itself is never trained
        assert torch.equal(p, before[name]) and p.grad is None
    logit, tuned = lens_grid(model, tokenizer, TRAIN[0]), lens_grid(model, tokenizer, TRAIN[0], lens)
    assert tuned.kl_to_final[:-1].mean() < logit.kl_to_final[:-1].mean()
    assert tuned.kl_to_final[-1] == pytest.approx(0.0, abs=1e-5)

    path = tmp_path / "lens.safetensors"
    lens.save(path, "tiny")
    loaded = lens_grid(model, tokenizer, TRAIN[0], TunedLens.load(path))
    np.testing.assert_array_equal(loaded.top_ids, tuned.top_ids)
    np.testing.assert_allclose(loaded.probabilities, tuned.probabilities)


def test_tuned_lens_errors(tokenizer, tmp_path):
    model = tiny_model("llama", num_layers=3)
    with pytest.raises(OffsiteError, match="not found"):
        TunedLens.load(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(OffsiteError, match="not a readable safetensors file"):
        TunedLens.load(garbage)
    other = tmp_path / "other.safetensors"
    TunedLens(5, model.config.hidden_size).save(other)
    with pytest.raises(OffsiteError, match="for 5 layers of width 32, but the model has 3 layers"):
        lens_grid(model, tokenizer, TEXT, TunedLens.load(other))
    with pytest.raises(OffsiteError, match="non-empty text"):
        lens_grid(model, tokenizer, "  ")


@pytest.mark.real
def test_logit_lens_on_smollm2_names_paris(smollm2):
    model, tokenizer = smollm2
    grid = lens_grid(model, tokenizer, "The capital of France is")
    assert grid.top_tokens[-1][-1] == " Paris"
    assert grid.top_tokens[0][-1] != " Paris"  # the first layer has not got there yet
    assert grid.kl_to_final[0] > grid.kl_to_final[-2] > grid.kl_to_final[-1]
