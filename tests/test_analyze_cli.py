"""``offsite analyze`` and ``offsite lens`` end to end on tiny saved models; one analysis of the real model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from offsite.cli import main
from offsite.data import load_examples
from offsite.models import load_model
from offsite.models.tiny import tiny_model, tiny_tokenizer
from offsite.similarity import HiddenStateConfig, analyze_similarity, example_texts
from offsite.similarity.analysis import analysis_texts, layer_cka

PARAGRAPHS = "\n".join(f"Sample number {i}: {'lorem ipsum dolor sit amet ' * (i % 4 + 1)}" for i in range(20))


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Two tiny models saved as model directories, as a user would pass them."""
    root = tmp_path_factory.mktemp("models")
    paths = []
    for architecture, depth in (("llama", 6), ("gpt2", 4)):
        path = root / f"tiny-{architecture}"
        tiny_model(architecture, num_layers=depth).save_pretrained(path)
        tiny_tokenizer().save_pretrained(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "samples.txt"
    path.write_text(PARAGRAPHS)
    return str(path)


def test_analyze_writes_json_and_figures(saved_models, text_file, tmp_path, capsys):
    out = tmp_path / "analysis"
    code = main(["analyze", saved_models[0], "--text-file", text_file, "--limit", "12", "--pooling", "weighted",
                 "--skip-first", "2", "--clusters", "3", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "similarity.json").read_text())
    cka = np.array(data["cka"])
    assert cka.shape == (6, 6) and np.allclose(cka, cka.T) and np.allclose(np.diag(cka), 1)
    assert data["adjacent"] == pytest.approx([cka[i, i + 1] for i in range(5)])
    assert len(data["embedding_cka"]) == 6
    assert [layer for cluster in data["clusters"] for layer in cluster] == list(range(6))
    assert len(data["clusters"]) == 3 and len(data["merges"]) == 3
    assert data["representatives"] == [c[len(c) // 2] for c in data["clusters"]]
    assert (data["pooling"], data["skip_first"], data["num_samples"]) == ("weighted", 2, 12)
    # The matrix is the one measured with those settings, not only recorded with them.
    model, tokenizer = load_model(saved_models[0])
    texts, _ = analysis_texts(text_file=text_file, limit=12)
    measured = layer_cka(model, tokenizer, texts, HiddenStateConfig("weighted", 2), progress=False)
    assert np.allclose(cka, measured, atol=1e-6)
    assert not np.allclose(cka, layer_cka(model, tokenizer, texts, HiddenStateConfig("mean", 1), progress=False), atol=1e-4)
    assert data["model"] == saved_models[0] and data["text_file"] == text_file
    importance = data["importance"]  # measured on the first 64 (here all 12) samples by default
    assert importance["num_samples"] == 12 and importance["perplexity"] > 1
    for key in ("block_influence", "angular_distance", "drop_one_perplexity"):
        assert len(importance[key]) == 6
    for name in ("cka.png", "adjacent.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "representative" in printed and "numbered from 0" in printed and "drop-one ppl" in printed


def test_analyze_several_models_gives_a_side_by_side_figure(saved_models, text_file, tmp_path):
    out = tmp_path / "both"
    assert main(["analyze", *saved_models, "--text-file", text_file, "--limit", "8", "--clusters", "2",
                 "--out", str(out)]) == 0
    for path, depth in zip(saved_models, (6, 4)):
        data = json.loads((out / path.rsplit("/", 1)[-1] / "similarity.json").read_text())
        assert len(data["cka"]) == depth
    assert (out / "cka_comparison.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--clusters", "7"], "cannot form 7 clusters from 6 layers"),
        (["--skip-first", "60"], "leaves none to pool"),
        (["--task", "no_such_task"], "unknown task 'no_such_task'"),
        (["--text-file", "EMPTY"], "text file is empty"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_analyze_bad_input_is_one_line_and_writes_nothing(saved_models, text_file, tmp_path, capsys, arguments,
                                                          message):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    arguments = [str(empty) if a == "EMPTY" else a for a in arguments]
    source = [] if {"--task", "--text-file"} & set(arguments) else ["--text-file", text_file]
    out = tmp_path / "out"
    code = main(["analyze", saved_models[0], *source, "--limit", "4", *arguments, "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("offsite: error: ") and message in error and error.count("\n") == 1
    assert not out.exists()


def test_bad_pooling_name_is_refused(saved_models, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", saved_models[0], "--pooling", "median", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "invalid choice: 'median'" in capsys.readouterr().err


def test_lens_logit_then_tuned_trained_then_loaded(saved_models, text_file, tmp_path, capsys):
    model = saved_models[0]
    logit = tmp_path / "logit"
    assert main(["lens", model, "--text", "Hello there", "--kind", "logit", "--out", str(logit)]) == 0
    data = json.loads((logit / "lens.json").read_text())
    assert data["kind"] == "logit" and len(data["top_tokens"]) == 6 and len(data["top_tokens"][0]) == 11
    assert (logit / "lens.png").read_bytes()[:4] == b"\x89PNG"

    tuned = tmp_path / "tuned"
    assert main(["lens", model, "--text", "Hello there", "--kind", "tuned", "--train-text-file", text_file,
                 "--steps", "3", "--batch-size", "2", "--out", str(tuned)]) == 0
    data = json.loads((tuned / "lens.json").read_text())
    assert data["kind"] == "tuned" and len(data["tuned_lens"]["kl_before_each_step"]) == 3
    translators = tuned / "tuned_lens.safetensors"
    assert translators.is_file()

    again = tmp_path / "again"
    assert main(["lens", model, "--text", "Hello there", "--kind", "tuned", "--translators", str(translators),
                 "--out", str(again)]) == 0
    assert json.loads((again / "lens.json").read_text())["top_ids"] == data["top_ids"]
    capsys.readouterr()
    assert main(["lens", model, "--text", "Hello", "--translators", str(translators), "--out", str(again)]) == 2
    assert "--translators only applies to --kind tuned" in capsys.readouterr().err


@pytest.mark.real
def test_smollm2_layers_form_similar_blocks(smollm2):
    model, tokenizer = smollm2
    texts = example_texts(load_examples("arc_easy", "validation", 12))
    result = analyze_similarity(model, tokenizer, texts, 6, HiddenStateConfig("mean", skip_first=1), progress=False)
    assert result.cka.shape == (30, 30)
    assert [layer for cluster in result.clustering.clusters for layer in cluster] == list(range(30))
    # Modular structure: neighbours are far more alike than distant layers.
    assert np.median(result.adjacent) > 0.9
    assert result.cka[2, 27] < np.median(result.adjacent) - 0.2
