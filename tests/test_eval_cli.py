"""``offsite eval`` end to end on a tiny saved model, its per-example records, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from offsite.cli import main
from offsite.data import MultipleChoiceExample, load_jsonl_examples
from offsite.evaluate import evaluate_multiple_choice, score_choices
from offsite.evaluate.records import example_records, prompt_id
from offsite.models import load_model
from offsite.models.tiny import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama", num_layers=2).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture
def task_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"prompt": "Question: 1 + 1?\nAnswer:", "choices": ["2", "three"], "gold": 0},
        {"prompt": "Question: The sky is\nAnswer:", "choices": ["blue", "red", "made of cheese"], "gold": 0},
        {"prompt": "Cats say", "choices": ["woof", "meow"], "gold": 1},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_writes_scores_equal_to_the_library(model_dir, task_file, tmp_path, capsys):
    text = tmp_path / "doc.txt"
    text.write_text("A short document to score.\n")
    out = tmp_path / "out" / "scores.json"

    code = main([
        "eval", str(model_dir), "--tasks", str(task_file), "--limit", "2", "--text", str(text),
        "--batch-size", "3", "--out", str(out),
    ])

    assert code == 0
    result = json.loads(out.read_text())
    assert result["model"] == str(model_dir) and result["limit"] == 2
    model, tokenizer = load_model(str(model_dir))
    expected = evaluate_multiple_choice(model, tokenizer, load_jsonl_examples(task_file)[:2], progress=False)
    assert result["tasks"][str(task_file)] == pytest.approx(expected.to_dict())
    assert result["texts"][str(text)]["num_tokens"] == len(text.read_text())
    printed = capsys.readouterr().out
    assert "acc_norm" in printed and "perplexity" in printed
    # The same --out again is refused (a single file carries no record of who wrote it), replaced with --force.
    again = ["eval", str(model_dir), "--tasks", str(task_file), "--limit", "1", "--out", str(out)]
    assert main(again) == 2 and "add --force to replace it" in capsys.readouterr().err
    assert json.loads(out.read_text())["limit"] == 2
    assert main([*again, "--force"]) == 0 and json.loads(out.read_text())["limit"] == 1


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


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--tasks", "no_such_task"], "unknown task 'no_such_task'"),
        (["--text", "{tmp}/missing.txt"], "text file not found"),
        (["--text", "{tmp}/empty.txt"], "text file is empty"),
        (["--tasks", "arc_easy", "--split", "nonsense"], "has no split"),
        ([], "nothing to evaluate"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(model_dir, tmp_path, capsys, arguments, message):
    (tmp_path / "empty.txt").write_text("  \n")
    out = tmp_path / "scores.json"
    code = main(["eval", str(model_dir), *[a.format(tmp=tmp_path) for a in arguments], "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("offsite: error:") and message in err[0]
    assert not out.exists()
