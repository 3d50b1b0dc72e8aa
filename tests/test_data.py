"""The task registry, bundled data, hub tasks on fixtures, local files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offsite import OffsiteError
from offsite.data import MultipleChoiceExample, get_task, load_examples, load_jsonl_examples, load_text, prompts, task_table
from offsite.data.bundled import read_docs, read_saved

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


EXPECTED_SIZES = {
    "arc_easy": {"train": 2251, "validation": 570, "test": 2376},
    "arc_challenge": {"train": 1119, "validation": 299, "test": 1172},
    "openbookqa": {"train": 4957, "validation": 500, "test": 500},
    "piqa": {"train": 16113, "validation": 1838},
    "hellaswag": {"train": 39905, "validation": 10042},
    "sciq": {"validation": 1000},
    "boolq": {"train": 9427, "validation": 3270},
    "winogrande": {"train": 40398, "validation": 1267},
    "social_iqa": {"train": 33410, "validation": 1954},
    "commonsense_qa": {"train": 9741, "validation": 1221},
    "copa": {"validation": 100},
    "mmlu": {"validation": 1531, "test": 14042},
}


def test_bundled_split_sizes_match_the_design():
    sizes = {row["name"]: row["splits"] for row in task_table()}
    for name, expected in EXPECTED_SIZES.items():
        assert sizes[name] == expected


@pytest.mark.parametrize(
    "task, prompt_start, prompt_end",
    [
        ("arc_easy", "Question: ", "\nAnswer:"),
        ("arc_challenge", "Question: ", "\nAnswer:"),
        ("piqa", "Question: ", "\nAnswer:"),
        ("sciq", "", "\nAnswer:"),
        ("boolq", "", "?\nAnswer:"),
        ("social_iqa", "Q: ", "\nA:"),
        ("commonsense_qa", "Question: ", "\nAnswer:"),
        ("mmlu", "The following are multiple choice questions (with answers) about ", "\nAnswer:"),
    ],
)
def test_prompt_formats_follow_the_harness(task, prompt_start, prompt_end):
    for example in load_examples(task, "validation", limit=20):
        assert example.prompt.startswith(prompt_start) and example.prompt.endswith(prompt_end)
        assert 0 <= example.gold < len(example.choices)
        assert example.request(0) == (example.prompt, " " + example.choices[0])


def test_openbookqa_prompt_is_the_bare_question_stem():
    example = load_examples("openbookqa", "validation", limit=1)[0]
    assert example.prompt.startswith("Frilled sharks") and "Answer:" not in example.prompt


def test_arc_easy_first_validation_example():
    example = load_examples("arc_easy", "validation", limit=1)[0]
    assert example.prompt == "Question: Which technology was developed most recently?\nAnswer:"
    assert example.choices[example.gold] == "cellular telephone"


def test_unknown_task_and_split_are_clear_errors():
    with pytest.raises(OffsiteError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(OffsiteError, match="no split 'test'"):
        load_examples("piqa", "test")
    with pytest.raises(OffsiteError, match="--limit"):
        load_examples("piqa", "validation", limit=0)


def test_jsonl_task_file(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"prompt": "2+2=", "choices": ["4", "5"], "gold": 0}, {"prompt": "Sky?", "choices": ["blue"], "gold": 0}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = load_examples(str(path), "validation")
    assert [e.choices for e in examples] == [("4", "5"), ("blue",)]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("{not json\n", ":1: not valid JSON"),
        ('{"prompt": "a", "choices": ["x"]}\n', "missing key"),
        ('{"prompt": "a", "choices": ["x"], "gold": 3}\n', "out of range"),
    ],
)
def test_bad_jsonl_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(OffsiteError, match=message):
        load_jsonl_examples(path)


def test_text_file_errors(tmp_path):
    with pytest.raises(OffsiteError, match="not found"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(OffsiteError, match="empty"):
        load_text(tmp_path / "empty.txt")


def test_train_and_test_documents_take_the_harness_template():
    # Train and test come from OLMo's requests, mapped back to the harness's schema; the prompt is the same template.
    arc = load_examples("arc_easy", "train", limit=1)[0]
    assert arc.prompt.startswith("Question: ") and arc.prompt.endswith("\nAnswer:") and "Question: Question:" not in arc.prompt
    obqa = load_examples("openbookqa", "test", limit=1)[0]
    assert "Answer:" not in obqa.prompt and len(obqa.choices) == 4
    csqa = load_examples("commonsense_qa", "train", limit=1)[0]
    assert csqa.choices == tuple("ABCDE") and "\nE. " in csqa.prompt


def test_boolq_prompt_is_olmos_query_and_its_gold_the_saved_answer():
    # The harness reads super_glue's BoolQ, whose passage leads with the title; OLMo's query keeps it, the saved
    # google/boolq split (same questions, same order) has the passage without it and the answer as a bool.
    docs = read_docs("boolq", "val_rc_5shot")[:50]
    saved = read_saved("boolq/none/validation")[:50]
    for doc, row, example in zip(docs, saved, load_examples("boolq", "validation", limit=50)):
        assert example.prompt == doc["query"]
        assert example.prompt.endswith(f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:")
        assert example.choices[example.gold] == ("yes" if row["answer"] else "no")


def test_winogrande_scores_the_rest_of_the_sentence_after_each_option():
    example = load_examples("winogrande", "validation", limit=1)[0]
    assert example.prompt == "Sarah was a much better surgeon than Maria so "
    assert example.choices == ("Sarah", "Maria") and example.gold == 1
    assert example.request(1) == ("Sarah was a much better surgeon than Maria so Maria", " always got the easier cases.")
    assert example.prompt + example.continuation(0) == "Sarah was a much better surgeon than Maria so Sarah always got the easier cases."
    assert example.norm_length(0) == len("Sarah was a much better surgeon than Maria so Sarah")


def test_race_groups_questions_into_article_documents_like_eleutherais_dataset():
    grouped = prompts.race_documents(fixture_rows("race_high_questions.jsonl"))
    stored = fixture_rows("race_high_test.jsonl")
    assert len(grouped) == len(stored) == 3
    assert [prompts.race(d) for d in grouped] == [prompts.race(d) for d in stored]


def test_race_document_answers_earlier_questions_and_scores_the_last():
    first, cloze_last, single = [prompts.race(d) for d in fixture_rows("race_high_test.jsonl")]
    assert first.prompt.startswith("Article: Mr. Brown lives")
    assert "\n\nMr. Brown usually gets up at six\nQuestion: How does Mr. Brown go to work?\nAnswer: By bike.\n" in first.prompt
    assert first.prompt.endswith("\nWhich of the following is TRUE according to the passage?") and first.gold == 3
    assert cloze_last.prompt.endswith("\nThe writer wrote the passage to  _  .") and cloze_last.gold == 2
    assert single.prompt.endswith("\n\nWhat can we learn about the first powered flight?") and single.gold == 1


def test_webqs_aliases_are_sorted_and_drop_those_with_a_kept_prefix():
    brazil, bieber = fixture_rows("web_questions_test.jsonl")[1:3]
    example = prompts.webqs(brazil)
    assert example.choices == ("Portuguese",) and example.correct == (0,)
    assert prompts.webqs(bieber).choices == ("Jaxon Bieber", "Jazmyn Bieber")
    assert prompts.webqs_aliases(["b", "ab", "abc", "a", "ba"]) == ["a", "b"]
    assert prompts.webqs_aliases(["Soldier and statesman", "Soldier", "Farmer"]) == ["Farmer", "Soldier"]


def test_hub_tasks_without_a_hub_are_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(OffsiteError, match="EleutherAI/race from the Hugging Face hub.*needs a hub"):
        load_examples("race", "test", limit=1)


def test_several_correct_answers_and_partial_scoring_are_checked():
    with pytest.raises(OffsiteError, match="not among the correct"):
        MultipleChoiceExample("Q", ("a", "b", "c"), 0, golds=(1, 2))
    with pytest.raises(OffsiteError, match="out of range"):
        MultipleChoiceExample("Q", ("a", "b"), 0, golds=(0, 2))
    example = MultipleChoiceExample("Q:", ("a", "b"), 1, golds=(0, 1))
    assert example.correct == (0, 1) and MultipleChoiceExample("Q:", ("a",), 0).correct == (0,)
