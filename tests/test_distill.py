"""Distilling an emulator on tiny models: what it pulls where, that it helps, ties, the bundle it writes, resuming."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from offsite import OffsiteError
from offsite.cli import main
from offsite.data.corpus import CorpusConfig
from offsite.emulator import LayerMap, adapter_from_pads, build_layer_map, load_bundle, save_bundle
from offsite.evaluate.perplexity import text_perplexity
from offsite.models import get_blocks
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train.distill import (
    DistillConfig,
    DistillationObjective,
    distill,
    match_points,
    normalised_mse,
    work_dir,
)

DEPTH = 8
WORDS = "the a cat dog sun owl sees eats finds likes red small big old".split()


def sentences(count: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 8))) + "." for _ in range(count))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny llama saved as a model directory (the teacher), and a text file to distil on."""
    root = tmp_path_factory.mktemp("distill")
    tiny_model("llama", DEPTH).save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    text = root / "text.txt"
    text.write_text("\n\n".join(sentences(6, seed) for seed in range(40)))
    return root, text


def bundle_of(root, layer_map: LayerMap, name: str):
    out = root / name
    if not out.exists():
        model_dir = str(root / "model")
        save_bundle(tiny_model("llama", DEPTH), tiny_tokenizer(), layer_map, out,
                    {"strategy": name, "base_model": {"name": model_dir}})
    return out


UNIFORM = build_layer_map("uniform", DEPTH, adapter_from_pads(1, 1, DEPTH), 3)[0]  # 0* 1 · · 4 · 6 7*
SHARED = LayerMap((0, 1, 1, 3, 3, 3, None, 7), (0, 7))  # crash-like: 1 and 3 fill two and three positions


def config(bundle, text, out, **overrides) -> DistillConfig:
    settings = dict(bundle=str(bundle), out=str(out), corpus=CorpusConfig((str(text),), (), 32), steps=16,
                    batch_size=4, lr=3e-3, eval_every=4, held_out=4, eval_batch_size=4, save_every=1000, log_every=4)
    return DistillConfig(**{**settings, **overrides})


def test_the_student_is_pulled_where_the_top_adapter_begins(base):
    assert match_points(UNIFORM) == (7, 4) and match_points(SHARED) == (7, 6)
    bottom_only = LayerMap((0, 1, None, 3, None, 5, 6, 7), (0, 1))
    assert match_points(bottom_only) == (8, 6)  # no top adapter: the final hidden states
    assert match_points(LayerMap((0, 1, None, 3, None, 5, 6, 7), (0, 6, 7))) == (6, 4)
    # The loss equals the normalised error between the inputs of block 7 in each model, caught by hooks.
    root, _ = base
    emulator = load_bundle(bundle_of(root, SHARED, "shared")).model
    teacher = tiny_model("llama", DEPTH)
    caught = {}
    hooks = [get_blocks(emulator)[6].register_forward_pre_hook(lambda m, a, k: caught.update(s=k.get("hidden_states", a and a[0])), with_kwargs=True),
             get_blocks(teacher)[7].register_forward_pre_hook(lambda m, a, k: caught.update(t=k.get("hidden_states", a and a[0])), with_kwargs=True)]
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        out = DistillationObjective(emulator, teacher, SHARED, 1.0, 30.0)(ids)
    for hook in hooks:
        hook.remove()
    rms = caught["t"].pow(2).mean(-1, keepdim=True).sqrt()
    assert torch.allclose(out.hidden_loss, ((caught["t"] - caught["s"]) / rms).pow(2).mean())
    assert torch.allclose(out.loss, out.lm_loss + 30 * out.hidden_loss)
    assert normalised_mse(caught["t"], caught["t"]) == 0


def test_distillation_lowers_the_hidden_state_loss_and_held_out_perplexity(base, tmp_path):
    root, text = base
    source = bundle_of(root, UNIFORM, "uniform")
    result = distill(config(source, text, tmp_path / "kd"), progress=False)
    record = result.manifest["distillation"]
    assert record["held_out_hidden_loss"]["after"] < 0.8 * record["held_out_hidden_loss"]["before"]
    assert record["held_out_perplexity"]["after"] < record["held_out_perplexity"]["before"]
    assert record["selected_step"] > 0 and record["steps"] == 16 and record["selection_warning"] is None
    # Independently: the distilled emulator's perplexity on unseen text is lower than the original's.
    unseen = sentences(30, seed=999)
    tokenizer = tiny_tokenizer()
    before = text_perplexity(load_bundle(source).model, tokenizer, unseen, window=64, progress=False).perplexity
    after = text_perplexity(load_bundle(tmp_path / "kd").model, tokenizer, unseen, window=64, progress=False).perplexity
    assert after < before
    # Only the frozen non-adapter blocks changed; the adapter, embeddings and head are the base model's.
    original, distilled = load_bundle(source).model.state_dict(), load_bundle(tmp_path / "kd").model.state_dict()
    changed = {name.split(".")[2] for name in original if not torch.equal(original[name], distilled[name])}
    assert changed == {"1", "2", "3"}  # positions of layers 1, 4, 6 (the emulator is 0* 1 4 6 7*)
    assert result.manifest["layer_map"] == load_bundle(source).manifest["layer_map"]
    assert not work_dir(tmp_path / "kd").exists()


def test_shared_positions_stay_tied_and_the_bundle_round_trips(base, tmp_path):
    root, text = base
    result = distill(config(bundle_of(root, SHARED, "shared"), text, tmp_path / "kd"), progress=False)
    loaded = load_bundle(tmp_path / "kd")
    for model in (result.model, loaded.model):
        blocks = get_blocks(model)
        for a, b in ((1, 2), (3, 4), (3, 5)):
            for (name, p), q in zip(blocks[a].named_parameters(), blocks[b].parameters()):
                assert p.data_ptr() == q.data_ptr(), name
    original = load_bundle(bundle_of(root, SHARED, "shared")).model
    assert not torch.equal(get_blocks(original)[2].mlp.up_proj.weight, get_blocks(loaded.model)[2].mlp.up_proj.weight)
    ids = torch.randint(0, 256, (2, 20))
    with torch.no_grad():
        assert torch.allclose(result.model(ids).logits, loaded.model(ids).logits, atol=1e-6)
    assert loaded.manifest["distillation"]["pulled_at"] == {"teacher_hidden_state": 7, "student_hidden_state": 6}


def test_a_stopped_distillation_resumes_to_the_same_bundle(base, tmp_path, capsys):
    root, text = base
    source = bundle_of(root, UNIFORM, "uniform")
    whole = distill(config(source, text, tmp_path / "whole", save_every=4), progress=False)
    stopped = distill(config(source, text, tmp_path / "cut", save_every=4, stop_after_steps=10), progress=False)
    assert not stopped.completed and stopped.step == 10 and not (tmp_path / "cut").exists()
    resumed = distill(config(source, text, tmp_path / "cut", save_every=4), progress=False)
    assert resumed.completed and not work_dir(tmp_path / "cut").exists()
    a, b = whole.model.state_dict(), load_bundle(tmp_path / "cut").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    keep = ("best", "initial", "final", "metrics")
    assert {k: resumed.manifest["distillation"][k] for k in keep} == {k: whole.manifest["distillation"][k] for k in keep}
    capsys.readouterr()
    again = distill(config(source, text, tmp_path / "cut", save_every=4), progress=False)
    assert "already holds this distilled bundle" in capsys.readouterr().out and again.model is None
    with pytest.raises(OffsiteError, match=r"other settings \(settings\.lr: 0\.003 -> 0\.001\)"):
        distill(config(source, text, tmp_path / "cut", save_every=4, lr=1e-3), progress=False)


def test_a_teacher_the_caller_holds_distils_as_the_named_one_and_another_is_refused(base, tmp_path):
    root, text = base
    source = bundle_of(root, UNIFORM, "uniform")
    named = distill(config(source, text, tmp_path / "named", steps=4), progress=False)
    held = AutoModelForCausalLM.from_pretrained(root / "model")
    given = distill(config(source, text, tmp_path / "given", steps=4), progress=False, teacher=held)
    a, b = named.model.state_dict(), given.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(p.requires_grad for p in held.parameters()) and not held.training
    with pytest.raises(OffsiteError, match="is not the model this bundle was made from"):
        distill(config(source, text, tmp_path / "other", steps=4), progress=False, teacher=tiny_model("llama", DEPTH, seed=1))


def test_cli_distills_and_refuses_another_teacher(base, tmp_path, capsys):
    root, text = base
    source = bundle_of(root, UNIFORM, "uniform")
    code = main(["distill", str(source), "--out", str(tmp_path / "kd"), "--text", str(text), "--exclude-task",
                 "--block-size", "32", "--steps", "4", "--eval-every", "2", "--held-out", "4", "--no-progress"])
    output = capsys.readouterr().out
    assert code == 0 and "held-out perplexity" in output and f"wrote {tmp_path / 'kd'}" in output
    manifest = json.loads((tmp_path / "kd" / "manifest.json").read_text())
    assert manifest["distillation"]["identity"]["settings"]["corpus"]["sources"] == [str(text)]
    other = tmp_path / "other"
    tiny_model("llama", DEPTH, seed=1).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    assert main(["distill", str(source), "--out", str(tmp_path / "x"), "--model", str(other), "--text", str(text)]) == 2
    assert "is not the model this bundle was made from" in capsys.readouterr().err
    assert main(["distill", str(source), "--out", str(tmp_path / "x"), "--text", str(text), "--steps", "0"]) == 2
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err
