"""The distillation corpus: sources, deduplication, leaving evaluation questions out, token blocks, held-out slice."""

from __future__ import annotations

import json

import pytest
import torch

from offsite import OffsiteError
from offsite.data.corpus import (
    CorpusConfig,
    QuestionIndex,
    deduplicate,
    load_corpus,
    question_texts,
    read_source,
    split_held_out,
    token_blocks,
)
from offsite.models.tiny import tiny_tokenizer

QUESTION = "which of these animals lays eggs and also feeds its young with milk in the wild today"  # 17 words


def test_deduplicate_ignores_case_spacing_and_punctuation():
    assert deduplicate(["A cat sat.", "a  CAT\nsat!", "Dog.", "dog", "A cat sat on"]) == ["A cat sat.", "Dog.", "A cat sat on"]


def test_a_document_with_a_run_of_the_question_is_caught_and_one_word_less_is_not():
    words = QUESTION.split()
    index = QuestionIndex([f"Question: {QUESTION}?\nAnswer:"], ngram=13)
    assert index.contains_question("Intro text. " + " ".join(words[2:15]).upper() + ", and more.")  # 13 words
    assert not index.contains_question("Intro text. " + " ".join(words[2:14]) + " and more.")  # 12 words
    short = QuestionIndex(["Where do owls sleep?", "What is ice?"], ngram=13)
    assert short.contains_question("By day, where do owls sleep? In trees.")  # whole short question
    assert not short.contains_question("Where do owls hunt? And what is ice?")  # 3 words: too generic to count
    assert len(short) == 1


def test_question_texts_drop_the_prompt_template(tmp_path):
    task = tmp_path / "task.jsonl"
    rows = [{"prompt": "Some support text.\nQuestion: Why is the sky blue?\nAnswer:", "choices": ["a", "b"], "gold": 0},
            {"prompt": "The sun is responsible for", "choices": ["a", "b"], "gold": 1}]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = question_texts(str(task))
    assert set(texts) == {"Some support text.", "Why is the sky blue?", "The sun is responsible for"}


def test_corpus_from_files_drops_repeats_and_documents_holding_an_eval_question(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text(f"First paragraph about birds.\n\nfirst paragraph ABOUT birds!\n\nA platypus: {QUESTION}.\n\n\n"
                    "Last one.")
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"text": "From JSONL."}) + "\n" + json.dumps({"text": "Last one."}) + "\n")
    task = tmp_path / "task.jsonl"
    task.write_text(json.dumps({"prompt": f"Question: {QUESTION}?\nAnswer:", "choices": ["x", "y"], "gold": 0}) + "\n")
    corpus = load_corpus(CorpusConfig(sources=(str(text), str(lines)), exclude_tasks=(str(task),)))
    assert corpus.documents == ["First paragraph about birds.", "Last one.", "From JSONL."]
    assert corpus.stats == {"documents_read": 6, "duplicates_dropped": 2, "question_documents_dropped": 1,
                            "documents": 3}
    kept = load_corpus(CorpusConfig(sources=(str(text),), exclude_tasks=()))
    assert len(kept.documents) == 3 and kept.stats["question_documents_dropped"] == 0


def test_bundled_passages_of_the_task_under_study_are_left_out():
    # SciQ's supports are the passages of SciQ's own validation prompts: studying SciQ must leave all of them out.
    supports = read_source("sciq")
    assert len(supports) > 800 and all(supports)
    assert len(load_corpus(CorpusConfig(sources=("sciq",), exclude_tasks=())).documents) == len(deduplicate(supports))
    with pytest.raises(OffsiteError, match="no text left"):
        load_corpus(CorpusConfig(sources=("sciq",), exclude_tasks=("sciq",)))


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(OffsiteError, match="text file not found"):
        read_source(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "no text key"}) + "\n")
    with pytest.raises(OffsiteError, match='bad.jsonl:1: expected a "text" string'):
        read_source(str(bad))
    with pytest.raises(OffsiteError, match="block-size"):
        CorpusConfig(block_size=1)


def test_token_blocks_separate_documents_and_drop_the_short_tail():
    tokenizer = tiny_tokenizer()
    eos = tokenizer.eos_token_id
    blocks = token_blocks(["ab", "cde", "f"], tokenizer, 4)
    a, b, c, d, e = (tokenizer.convert_tokens_to_ids(ch) for ch in "abcde")
    assert blocks.tolist() == [[a, b, eos, c], [d, e, eos, tokenizer.convert_tokens_to_ids("f")]]  # "eos" left over
    with pytest.raises(OffsiteError, match="fewer than one block"):
        token_blocks(["ab"], tokenizer, 8)


def test_held_out_slice_is_disjoint_complete_and_seeded():
    blocks = torch.arange(40).reshape(20, 2)
    train, held = split_held_out(blocks, 5, seed=3)
    assert len(train) == 15 and len(held) == 5
    assert sorted(torch.cat([train, held])[:, 0].tolist()) == list(range(0, 40, 2))
    assert torch.equal(split_held_out(blocks, 5, seed=3)[1], held)
    assert not torch.equal(split_held_out(blocks, 5, seed=4)[1], held)
    with pytest.raises(OffsiteError, match="cannot hold out"):
        split_held_out(blocks, 20)
