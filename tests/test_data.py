"""The task registry, bundled data, local files and the harness-style encoding."""

from __future__ import annotations

import json

import pytest

from offsite import OffsiteError
from offsite.data import get_task, load_examples, load_jsonl_examples, load_text, task_table
from offsite.data.encoding import encode_pair
from offsite.data.hub import race_example, web_questions_example

EXPECTED_SIZES = {
    "arc_easy": {"train": 2251, "validation": 570, "test": 2376},
    "arc_challenge": {"train": 1119, "validation": 299, "test": 1172},
    "openbookqa": {"train": 4957, "validation": 500, "test": 500},
    "piqa": {"train": 16113, "validation": 1838},
    "hellaswag": {"train": 39905, "validation": 10042},
    "sciq": {"validation": 1000},
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
    ],
)
def test_prompt_formats_follow_the_harness(task, prompt_start, prompt_end):
    for example in load_examples(task, "validation", limit=20):
        assert example.prompt.startswith(prompt_start) and example.prompt.endswith(prompt_end)
        assert 0 <= example.gold < len(example.choices)
        assert example.continuation(0) == " " + example.choices[0]


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


def test_hub_task_rows_convert():
    race = race_example(
        {"article": "Tom has a cat.", "question": "What does Tom have?", "options": ["a dog", "a cat", "a fish", "x"],
         "answer": "B"}
    )
    assert race.prompt == "Article: Tom has a cat.\n\nQuestion: What does Tom have?\nAnswer:" and race.gold == 1
    webqs = web_questions_example({"question": "what is the capital of france?", "answers": ["Paris"]})
    assert webqs.prompt.endswith("france?\nAnswer:") and webqs.choices == ("Paris",) and webqs.gold == 0


def test_encode_pair_splits_where_the_prompt_ends(tokenizer):
    context, continuation = encode_pair(tokenizer, "Question: 1+1?\nAnswer: ", "2")
    assert tokenizer.decode(context) == "Question: 1+1?\nAnswer:"
    assert tokenizer.decode(continuation) == " 2"


def test_encode_pair_gives_an_empty_prompt_the_bos_token(tokenizer):
    context, continuation = encode_pair(tokenizer, "", "abc")
    assert context == [tokenizer.bos_token_id] and tokenizer.decode(continuation) == "abc"


def test_encode_pair_matches_whole_tokenisation_on_real_tokenizer(smollm2):
    _, tokenizer = smollm2
    prompt, continuation = "Question: Which gas do plants absorb?\nAnswer:", " carbon dioxide"
    context_ids, continuation_ids = encode_pair(tokenizer, prompt, continuation)
    assert context_ids + continuation_ids == tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(continuation_ids) == continuation
