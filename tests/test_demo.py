"""The demo pipeline end to end on a tiny saved model: every stage runs, the report embeds every image,
and a second run reuses every stage."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest

from offsite.demo import DemoSettings, run_demo
from offsite.experiment import reading, summarize
from offsite.experiment.estimates import format_estimate
from offsite.models.tiny import tiny_model, tiny_tokenizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_report_embeds_every_figure_and_reruns_from_cache(tmp_path):
    tiny_model("llama", num_layers=6).save_pretrained(tmp_path / "model")
    tiny_tokenizer().save_pretrained(tmp_path / "model")
    rows = [{"prompt": f"Q{i}: pick one", "choices": ["aa", "bb", "cc"], "gold": i % 3} for i in range(16)]
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = DemoSettings(model=str(tmp_path / "model"), task=str(tmp_path / "task.jsonl"), keep=2, adapter=(1, 1),
                            similarity_limit=16, train_limit=8, select_limit=4, eval_limit=6, batch_size=4)
    lines: list[str] = []
    report = run_demo(tmp_path / "demo", settings, log=lines.append)
    assert [line[:5] for line in lines if line.startswith("[")] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    page = report.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [alt for alt, _ in images] == ["scores per strategy", "emulator choice", "CKA heatmap", "layer maps",
                                          "training curves"]
    for _, data in images:
        png = base64.b64decode(data)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    assert "<table>" in page and "Plug-in" in page and "What this shows" in page
    assert 'src="http' not in page and "src='http" not in page  # nothing fetched when opened offline
    # The written reading is the one computed from the demo's own numbers, every sentence of it.
    results = json.loads((tmp_path / "demo" / "experiment" / "results.json").read_text())
    config = settings.experiment(tmp_path / "demo" / "analysis" / "similarity.json")
    summary = summarize(results["cells"], config)[0]
    for sentence in reading(summary):
        assert f"<li>{html.escape(sentence)}</li>" in page
    for e in summary.emulators:
        claim = f"Privacy gap of {e.label} (plug-in − emulator alone): {format_estimate(e.gap, True)} points (resolved)"
        assert (html.escape(claim) in page) == e.gap.resolved
    # And by hand from the cells: each privacy gap, plug-in minus emulator alone (one seed), is on the page.
    acc = {(c["row"], c["strategy"], c["distilled"]): 100 * c["scores"]["acc"] for c in results["cells"]}
    for e in summary.emulators:
        key = (e.emulator.strategy, e.emulator.distilled)
        gap = acc[("Plug-in", *key)] - acc[("Emulator FT", *key)]
        assert f"{gap:+.1f} ± " in page and e.gap.mean == pytest.approx(gap)
    # Each emulator's fidelity against the full model, as its bundle records it.
    fidelity = page.split("Fidelity: each emulator")[1].split("</table>")[0]
    assert fidelity.count("<tr>") == 4  # header, full model, uniform, crash
    assert "<td>full model</td><td>100.0</td>" in fidelity and f"<td>{summary.emulators[1].label}</td>" in fidelity

    again: list[str] = []
    run_demo(tmp_path / "demo", settings, log=again.append)
    assert "   (reused)" in again and not any(line.strip().startswith("==") for line in again)
