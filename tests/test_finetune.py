"""Offsite fine-tuning on tiny models: the data, the epoch order, what trains, the loss going down, the baseline."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_support import make_bundle, quick_config, write_choices
from transformers import AutoModelForCausalLM

from offsite import OffsiteError
from offsite.cli import main
from offsite.data import load_examples
from offsite.emulator import load_adapter, load_bundle
from offsite.evaluate import evaluate_multiple_choice
from offsite.models import get_blocks
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.train import FinetuneConfig, finetune
from offsite.train.data import collate, epoch_plan, fit, load_split, steps_per_epoch
from offsite.train.validation import Selection


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def choices(tmp_path_factory):
    return write_choices(tmp_path_factory.mktemp("data") / "words.jsonl")


@pytest.mark.parametrize("n, batch, processes, accum", [(10, 3, 1, 1), (10, 2, 2, 2), (7, 4, 2, 1), (3, 4, 1, 3)])
def test_epoch_plan_covers_every_sequence_and_follows_the_seed(n, batch, processes, accum):
    plan = epoch_plan(n, 5, 0, batch, processes, accum)
    assert len(plan) == steps_per_epoch(n, batch, processes, accum)
    taken = [i for step in plan for micro in step for part in micro for i in part]
    assert set(taken) == set(range(n))
    assert all(len(part) == batch for step in plan for micro in step for part in micro)  # padded, never short
    assert len(taken) - n < batch * processes  # at most one micro-batch of repeats
    assert plan == epoch_plan(n, 5, 0, batch, processes, accum)
    if n > 3:
        assert epoch_plan(n, 5, 1, batch, processes, accum) != plan and epoch_plan(n, 6, 0, batch, processes, accum) != plan


def test_sequences_mask_the_prompt_and_keep_the_answer_when_cut():
    tokenizer = tiny_tokenizer()
    pairs = [([1, 2, 3], [4, 5]), ([6], [7])]
    batch = collate(pairs, pad_id=0, device=torch.device("cpu"))
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 4, 5], [-100, 7, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert fit(([1, 2, 3, 4], [5, 6]), 4) == ([3, 4], [5, 6])  # the context loses its first tokens
    split = load_split("arc_easy", "validation", 2, tokenizer, 512)
    example = split.examples[0]
    context, target = split.pairs[0]
    assert tokenizer.decode(context + target) == example.prompt + " " + example.choices[example.gold]
    assert tokenizer.decode(target) == " " + example.choices[example.gold]


def test_completion_and_text_files_train(tmp_path, bundle):
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(json.dumps({"prompt": f"{i}+1=", "completion": f" {i + 1}"}) + "\n" for i in range(6)))
    split = load_split(str(completions), "train", None, tiny_tokenizer(), 32)
    assert split.kind == "completion" and split.examples is None
    assert tiny_tokenizer().decode(split.pairs[0][1]) == " 1</s>"  # answer + EOS
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 4)
    shipped = load_adapter(bundle / "adapter.safetensors")[0]
    for data, kind in ((completions, "completion"), (text, "text")):
        result = finetune(quick_config(bundle, data, tmp_path / data.stem, epochs=1), progress=False)
        assert result.manifest["select"] == "loss" and result.manifest["data"]["kind"] == kind
        trained = load_adapter(tmp_path / data.stem / "adapter.safetensors")[0]
        assert any(not torch.equal(trained[k], shipped[k]) for k in shipped)  # the kept step is a trained one
    with pytest.raises(OffsiteError, match="needs multiple-choice"):
        finetune(quick_config(bundle, text, tmp_path / "acc", select="acc"), progress=False)


def test_exact_match_selects_and_agrees_with_the_evaluator(tmp_path, bundle, choices):
    result = finetune(quick_config(bundle, choices, tmp_path / "run", epochs=1, select="exact_match"), progress=False)
    assert result.manifest["select"] == "exact_match"
    first = next(json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
                 if "eval_exact_match" in line)
    assert first["step"] == 0  # the untrained emulator: score it independently
    emulator = load_bundle(bundle)
    expected = evaluate_multiple_choice(emulator.model, emulator.tokenizer, load_examples(str(choices), "validation"),
                                        progress=False).exact_match
    assert first["eval_exact_match"] == pytest.approx(expected)
    assert first["eval_exact_match"] != first["eval_acc"]  # so a swapped metric would not pass


def test_loss_goes_down_and_only_the_adapter_changes(tmp_path, bundle, choices):
    result = finetune(quick_config(bundle, choices, tmp_path / "run", epochs=4, select="loss"), progress=False)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [line["loss"] for line in lines if "loss" in line]
    evals = [line["eval_loss"] for line in lines if "eval_loss" in line]
    assert len(train) == result.manifest["steps"] == 12 and len(evals) == 5  # step 0 and each epoch
    # A random tiny model starts near ln(260) = 5.56 nats, with its head frozen it moves slowly but steadily.
    assert all(later < earlier for earlier, later in zip(evals, evals[1:]))
    assert train[-1] < train[0] - 0.2 and evals[-1] < evals[0] - 0.2
    assert result.manifest["best"]["score"] == min(evals)

    original, tuned = load_bundle(bundle), load_bundle(bundle, adapter=tmp_path / "run" / "adapter.safetensors")
    positions = set(original.layer_map.adapter_positions)
    for position, (before, after) in enumerate(zip(get_blocks(original.model), get_blocks(tuned.model))):
        same = all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
        assert same == (position not in positions)
    for name in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
        assert torch.equal(original.model.state_dict()[name], tuned.model.state_dict()[name])
    # The trained model the run returns is the one whose adapter was written.
    batch = collate([([65, 66], [67, 68])], 256, torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(result.model(**batch).logits, tuned.model(**batch).logits, atol=1e-6)


def test_lora_is_merged_into_plain_adapter_blocks(tmp_path, bundle, choices):
    result = finetune(quick_config(bundle, choices, tmp_path / "lora", method="lora", lora_rank=4), progress=False)
    tensors, _ = load_adapter(tmp_path / "lora" / "adapter.safetensors")
    original, _ = load_adapter(bundle / "adapter.safetensors")
    assert tensors.keys() == original.keys()  # same file format as a full-weight adapter
    changed = {k for k in tensors if not torch.equal(tensors[k], original[k])}
    assert changed and all(k.endswith("proj.weight") for k in changed)  # only LoRA-wrapped linear weights
    tuned = load_bundle(bundle, adapter=tmp_path / "lora" / "adapter.safetensors")
    batch = collate([([65, 66, 67], [68, 69])], 256, torch.device("cpu"))
    with torch.no_grad():  # the merged adapter computes what the LoRA-wrapped model computed
        assert torch.allclose(result.model(**batch).logits, tuned.model(**batch).logits, atol=1e-5)


def test_bitfit_trains_biases_only_and_refuses_models_without_them(tmp_path, choices):
    gpt2 = make_bundle(tmp_path, "gpt2")
    finetune(quick_config(gpt2, choices, tmp_path / "bitfit", method="bitfit", epochs=1), progress=False)
    tensors, _ = load_adapter(tmp_path / "bitfit" / "adapter.safetensors")
    original, _ = load_adapter(gpt2 / "adapter.safetensors")
    changed = {k for k in tensors if not torch.equal(tensors[k], original[k])}
    assert changed and all(k.endswith("bias") for k in changed)
    llama = make_bundle(tmp_path, "llama")
    with pytest.raises(OffsiteError, match="no biases for BitFit"):
        finetune(quick_config(llama, choices, tmp_path / "none", method="bitfit"), progress=False)


def test_full_baseline_trains_the_bundles_adapter_layers_or_all_weights(tmp_path, bundle, choices):
    model_dir = tmp_path / "model"
    tiny_model("llama", 6).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    result = finetune(quick_config(model_dir, choices, tmp_path / "full", full=True, bundle=str(bundle), epochs=1),
                      progress=False)
    assert result.manifest["mode"] == "full" and result.manifest["adapter_layers"] == [0, 5]
    assert set(load_adapter(tmp_path / "full" / "adapter.safetensors")[0]) == set(load_adapter(bundle / "adapter.safetensors")[0])
    everything = finetune(quick_config(model_dir, choices, tmp_path / "all", full=True, all_weights=True, epochs=1),
                          progress=False)
    written = AutoModelForCausalLM.from_pretrained(tmp_path / "all" / "model").state_dict()
    base = tiny_model("llama", 6).state_dict()
    # Every weight trains: blocks outside the adapter layers (2) and the embeddings changed too.
    for name in ("model.layers.2.mlp.up_proj.weight", "model.embed_tokens.weight"):
        assert not torch.equal(written[name], base[name]), name
    assert everything.manifest["trainable_parameters"] == sum(p.numel() for p in everything.model.parameters())
    with pytest.raises(OffsiteError, match="only go with --full"):
        FinetuneConfig(source=str(bundle), task="arc_easy", out=str(tmp_path / "x"), adapter=(2, 2))


def test_cli_finetunes_and_reports(tmp_path, bundle, choices, capsys):
    code = main(["finetune", str(bundle), "--task", str(choices), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "4", "--max-length", "32", "--lora", "2", "--no-progress"])
    output = capsys.readouterr().out
    assert code == 0 and "best" in output and f"kept step {manifest_step(tmp_path / 'run')} (best acc)" in output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["trains"] == "lora" and manifest["hyperparameters"]["lora_rank"] == 2
    assert main(["finetune", str(bundle), "--task", "no_such_task", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown task" in capsys.readouterr().err


def manifest_step(run) -> int:
    return json.loads((run / "manifest.json").read_text())["selected_step"]


def test_selection_keeps_trained_steps_only_unless_asked():
    default, with_init = Selection("loss"), Selection("loss", include_init=True)
    for selection in (default, with_init):
        kept = [selection.offer(step, {"loss": loss}) for step, loss in ((0, 1.0), (5, 3.0), (10, 2.0), (15, float("nan")))]
        assert selection.initial["step"] == 0 and Selection.from_json(selection.to_json()) == selection
    assert kept == [True, False, False, False] and with_init.best["step"] == 0 and with_init.warning() is None
    assert default.best == {"metric": "loss", "score": 2.0, "step": 10, "loss": 2.0}
    assert "best trained step (10: loss 2.0000) is worse than the untrained start (step 0: 1.0000)" in default.warning()
    accuracy = Selection("acc")
    assert not accuracy.offer(0, {"acc": 0.5}) and accuracy.offer(3, {"acc": float("nan")}) and accuracy.offer(6, {"acc": 0.1})
    assert accuracy.best["step"] == 6 and accuracy.warning() is not None


def test_a_run_that_only_gets_worse_still_returns_a_trained_adapter(tmp_path, bundle, choices, capsys):
    # With lr 1.0 every trained step has a lower validation accuracy than the untrained adapter.
    worse = finetune(quick_config(bundle, choices, tmp_path / "worse", epochs=2, lr=1.0), progress=False)
    manifest = worse.manifest
    assert manifest["select"] == "acc" and manifest["selected_step"] > 0
    assert manifest["best"]["score"] < manifest["initial"]["score"]
    assert "worse than the untrained start" in manifest["selection_warning"]
    err = capsys.readouterr().err
    assert err.count("offsite: warning:") == 1 and "--select-include-init" in err
    original, _ = load_adapter(bundle / "adapter.safetensors")
    trained, _ = load_adapter(tmp_path / "worse" / "adapter.safetensors")
    assert any(not torch.equal(trained[k], original[k]) for k in original)
    init = finetune(quick_config(bundle, choices, tmp_path / "init", epochs=2, lr=1.0, select_include_init=True),
                    progress=False)
    assert init.manifest["selected_step"] == 0 and init.manifest["selection_warning"] is None
    kept, _ = load_adapter(tmp_path / "init" / "adapter.safetensors")
    assert all(torch.equal(kept[k], original[k]) for k in original)
