"""``offsite fidelity``: the table of strategies by size, one resumable JSON file per cell."""

from __future__ import annotations

import copy
import json

import pytest

from offsite.cli import main
from offsite.data import load_examples
from offsite.emulator import build_emulator, load_bundle
from offsite.emulator.layer_map import LayerMap
from offsite.evaluate import evaluate_multiple_choice, text_perplexity
from offsite.models.tiny import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    model = tiny_model("llama", num_layers=8)
    model.save_pretrained(root / "tiny")
    tiny_tokenizer().save_pretrained(root / "tiny")
    rows = [{"prompt": f"Fact {i}: the sky is", "choices": ["blue", "green", "red"], "gold": i % 3} for i in range(8)]
    (root / "facts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "held_out.txt").write_text("A held-out text for perplexity, never used to build. " * 10)
    return root, model


def test_table_cells_resume_and_match_a_direct_evaluation(files, tmp_path, capsys):
    root, base = files
    args = ["fidelity", str(root / "tiny"), "--strategies", "uniform", "crash:fill=repeat-all:tie=higher",
            "importance:metric=influence", "--keep", "2,4", "--adapter", "1,1", "--task", str(root / "facts.jsonl"),
            "--fidelity-task", str(root / "facts.jsonl"), "--fidelity-limit", "8",
            "--fidelity-text-file", str(root / "held_out.txt"), "--fidelity-text-chars", "300", "--out", str(tmp_path / "t")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| full model |" in printed and "| `crash:fill=repeat-all:tie=higher` |" in printed
    cells = sorted(p.name for p in (tmp_path / "t" / "cells").iterdir())
    assert len(cells) == 1 + 3 * 2 and "crash_fill-repeat-all_tie-higher-keep4.json" in cells
    cell = json.loads((tmp_path / "t" / "cells" / "uniform-keep2.json").read_text())
    emulator = build_emulator(copy.deepcopy(base), LayerMap.from_json(cell["layer_map"]))
    tokenizer = tiny_tokenizer()
    text = (root / "held_out.txt").read_text()[:300]
    assert cell["figures"]["perplexity"] == pytest.approx(text_perplexity(emulator, tokenizer, text).perplexity, rel=1e-6)
    scores = evaluate_multiple_choice(emulator, tokenizer, load_examples(str(root / "facts.jsonl"), "validation", 8))
    assert cell["figures"]["acc"] == scores.acc
    # A second run measures nothing again: every cell is reused.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t" / "cells").iterdir()}
    assert main(args) == 0
    assert "== " not in capsys.readouterr().out
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t" / "cells").iterdir()}
    # Fewer strategies and sizes in the same directory: a table of those, from the cells there.
    assert main([*args[:4], "--keep", "2", *args[8:]]) == 0
    printed = capsys.readouterr().out
    assert "== " not in printed and "| `uniform` |" in printed and "crash" not in printed and "keep 4" not in printed
    # Other measurement settings in the same directory are refused.
    assert main([*args[:-2], "--fidelity-limit", "4", "--out", str(tmp_path / "t")]) == 2
    assert "measured with other settings (fidelity)" in capsys.readouterr().err


def test_distilled_rows_are_measured_on_the_distilled_bundle(files, tmp_path, capsys):
    root, _ = files
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"paragraph {i}: the owl sees the sun and the dog eats " * 3 for i in range(30)))
    args = ["fidelity", str(root / "tiny"), "--strategies", "uniform", "--keep", "2", "--adapter", "1,1",
            "--task", str(root / "facts.jsonl"), "--fidelity-task", str(root / "facts.jsonl"), "--fidelity-limit", "8",
            "--fidelity-text-file", str(root / "held_out.txt"), "--fidelity-text-chars", "300",
            "--distill-steps", "3", "--distill-text", str(corpus), "--distill-batch-size", "2",
            "--distill-block-size", "16", "--distill-held-out", "2", "--distill-eval-every", "1", "--out", str(tmp_path / "t")]
    # A plain table first; the distilled run in the same directory adds its rows and reuses the plain cells.
    assert main([*args[:18], *args[-2:]]) == 0
    plain_cells = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t" / "cells").iterdir()}
    assert sorted(plain_cells) == ["full.json", "uniform-keep2.json"] and "== uniform-keep2" in capsys.readouterr().out
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| `uniform` distilled |" in printed and "== uniform-keep2\n" not in printed
    assert all((tmp_path / "t" / "cells" / name).stat().st_mtime_ns == time for name, time in plain_cells.items())
    # The distillation settings hold for the directory once given.
    assert main([*args[:19], "4", *args[20:]]) == 2
    assert "measured with other settings (distillation)" in capsys.readouterr().err
    cell = json.loads((tmp_path / "t" / "cells" / "uniform-keep2-distilled.json").read_text())
    plain = json.loads((tmp_path / "t" / "cells" / "uniform-keep2.json").read_text())
    bundle = load_bundle(tmp_path / "t" / "bundles" / "uniform-keep2-distilled")
    assert bundle.manifest["distillation"]["steps"] == cell["distillation"]["steps"] == 3
    assert bundle.layer_map.to_json() == plain["layer_map"]  # the plain cell's emulator, not planned again
    text = (root / "held_out.txt").read_text()[:300]
    measured = text_perplexity(bundle.model, bundle.tokenizer, text).perplexity
    assert cell["figures"]["perplexity"] == pytest.approx(measured, rel=1e-6)
    assert cell["figures"]["perplexity"] != pytest.approx(plain["figures"]["perplexity"], rel=1e-6)
