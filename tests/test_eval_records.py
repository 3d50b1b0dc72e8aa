"""``offsite eval --records``: one JSON line per example, equal to the library's per-example scores."""

from __future__ import annotations

import json

import pytest

from offsite.cli import main
from offsite.data import MultipleChoiceExample, load_jsonl_examples
from offsite.evaluate import score_choices
from offsite.evaluate.records import example_records, prompt_id
from offsite.models import load_model
from offsite.models.tiny import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama", num_layers=2).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_records_hold_each_examples_scores(model_dir, tmp_path, capsys):
    task = tmp_path / "qa.jsonl"
    rows = [
        {"prompt": "Question: 1 + 1?\nAnswer:", "choices": ["2", "three"], "gold": 0},
        {"prompt": "Cats say", "choices": ["woof", "meow", "moo"], "gold": 1},
        {"prompt": "Cats say", "choices": ["woof", "meow", "moo!"], "gold": 1},
    ]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = tmp_path / "out" / "records.jsonl"

    assert main(["eval", str(model_dir), "--tasks", str(task), "--records", str(records)]) == 0

    lines = [json.loads(line) for line in records.read_text().splitlines()]
    model, tokenizer = load_model(str(model_dir))
    examples = load_jsonl_examples(task)
    expected = score_choices(model, tokenizer, examples, progress=False)
    assert [line["doc_id"] for line in lines] == [0, 1, 2]
    for line, score in zip(lines, expected):
        assert line["task"] == str(task) and line["gold"] == score.gold
        assert line["loglikelihoods"] == pytest.approx(list(score.loglikelihoods))
        assert (line["prediction"], line["prediction_norm"]) == (score.prediction, score.prediction_norm)
        assert line["acc"] == float(score.prediction == score.gold)
    # The same prompt with a changed choice is another prompt id.
    assert len({line["prompt_id"] for line in lines}) == 3
    assert "wrote" in capsys.readouterr().out


def test_several_correct_answers_are_recorded_as_a_list():
    example = MultipleChoiceExample("Question: Name a colour.\nAnswer:", ("blue", "red"), 0, golds=(0, 1))
    model, tokenizer = tiny_model("llama", num_layers=1), tiny_tokenizer()
    [record] = example_records("colours", [example], score_choices(model, tokenizer, [example], progress=False))
    assert record["gold"] == [0, 1] and record["acc"] == 1.0 and record["greedy"] == [False, False]
    # The id names the texts scored, not the answer key.
    assert record["prompt_id"] == prompt_id(MultipleChoiceExample(example.prompt, ("blue", "red"), 1))


def test_records_without_tasks_is_an_error(model_dir, tmp_path, capsys):
    text = tmp_path / "doc.txt"
    text.write_text("Some text.\n")
    code = main(["eval", str(model_dir), "--text", str(text), "--records", str(tmp_path / "r.jsonl")])
    assert code == 2 and "--records needs --tasks" in capsys.readouterr().err
