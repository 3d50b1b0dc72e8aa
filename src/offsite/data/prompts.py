"""lm-evaluation-harness's task definitions (its YAML templates, ``process_docs`` and task utils, version 0.4)
written out: a row of the dataset the harness reads, in that dataset's schema, becomes one example.

``tests/test_harness_agreement.py`` checks each against the harness's own functions on real rows.
"""

from __future__ import annotations

import ast
import re
from typing import Iterable

from .examples import MultipleChoiceExample

LETTERS = "ABCDE"


def _question_answer(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def arc(row: dict) -> MultipleChoiceExample:
    """``arc_easy``/``arc_challenge`` (allenai/ai2_arc)."""
    choices = row["choices"]
    return MultipleChoiceExample(
        _question_answer(row["question"]), tuple(choices["text"]), choices["label"].index(row["answerKey"])
    )


def openbookqa(row: dict) -> MultipleChoiceExample:
    """``openbookqa`` (allenai/openbookqa, main): the bare question stem."""
    choices = row["choices"]
    return MultipleChoiceExample(
        row["question_stem"], tuple(choices["text"]), choices["label"].index(row["answerKey"].lstrip())
    )


def piqa(row: dict) -> MultipleChoiceExample:
    """``piqa``."""
    return MultipleChoiceExample(_question_answer(row["goal"]), (row["sol1"], row["sol2"]), int(row["label"]))


def _hellaswag_clean(text: str) -> str:
    # The brackets are artifacts of HellaSwag's WikiHow part.
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def hellaswag_doc(row: dict) -> dict:
    """The harness's ``process_docs`` for ``hellaswag`` (Rowan/hellaswag): ``{"query", "choices", "gold"}``."""
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {
        "query": _hellaswag_clean(row["activity_label"] + ": " + context),
        "choices": [_hellaswag_clean(ending) for ending in row["endings"]],
        "gold": int(row["label"]),
    }


def hellaswag(doc: dict) -> MultipleChoiceExample:
    """``hellaswag``, from a document :func:`hellaswag_doc` made."""
    return MultipleChoiceExample(doc["query"], tuple(doc["choices"]), int(doc["gold"]))


def sciq(row: dict) -> MultipleChoiceExample:
    """``sciq`` (allenai/sciq): the support paragraph, then the question; the correct answer is the fourth choice."""
    prompt = f"{row['support'].lstrip()}\n{_question_answer(row['question'])}"
    choices = (row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"])
    return MultipleChoiceExample(prompt, choices, 3)


def boolq(row: dict) -> MultipleChoiceExample:
    """``boolq`` (super_glue, boolq): the passage (led by its title) and the question; label 1 is yes."""
    return MultipleChoiceExample(f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", ("no", "yes"), int(row["label"]))


def winogrande(row: dict) -> MultipleChoiceExample:
    """``winogrande`` (winogrande_xl) with partial scoring: each option fills the blank, and the rest of the
    sentence after the blank is scored."""
    blank = row["sentence"].index("_")
    return MultipleChoiceExample(
        row["sentence"][:blank],
        (row["option1"], row["option2"]),
        {"1": 0, "2": 1}[row["answer"]],
        ending=row["sentence"][blank + 1:].strip(),
    )


def social_iqa(row: dict) -> MultipleChoiceExample:
    """``social_iqa`` (siqa); the label counts from 1."""
    return MultipleChoiceExample(
        f"Q: {row['context']} {row['question']}\nA:", (row["answerA"], row["answerB"], row["answerC"]), int(row["label"]) - 1
    )


def _lettered(question: str, options: Iterable[str]) -> str:
    lines = [question.strip(), *(f"{letter}. {option}" for letter, option in zip(LETTERS, options)), "Answer:"]
    return "\n".join(lines)


def commonsense_qa(row: dict) -> MultipleChoiceExample:
    """``commonsense_qa`` (tau/commonsense_qa): the options listed A-E, the letter scored."""
    prompt = "Question: " + _lettered(row["question"], row["choices"]["text"])
    return MultipleChoiceExample(prompt, tuple(LETTERS), LETTERS.index(row["answerKey"]))


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:]


def copa(row: dict) -> MultipleChoiceExample:
    """``copa`` (super_glue, copa): the premise without its full stop, "because" or "therefore", and the choice
    (whose harness string starts with a space, so two spaces precede it in the continuation)."""
    connector = {"cause": "because", "effect": "therefore"}[row["question"]]
    prompt = row["premise"].strip()[:-1] + f" {connector}"
    choices = (" " + _lower_first(row["choice1"]), " " + _lower_first(row["choice2"]))
    return MultipleChoiceExample(prompt, choices, int(row["label"]))


def mmlu(row: dict) -> MultipleChoiceExample:
    """``mmlu_<subject>`` zero-shot (cais/mmlu): the subject's description, the question with options A-D."""
    description = f"The following are multiple choice questions (with answers) about {row['subject'].replace('_', ' ')}.\n\n"
    return MultipleChoiceExample(description + _lettered(row["question"], row["choices"]), tuple(LETTERS[:4]), int(row["answer"]))


def webqs_aliases(answers: Iterable[str]) -> list[str]:
    """The harness's ``webqs`` choices: the answers sorted, dropping each that starts with the alias kept just
    before it (when the shorter one is the greedy continuation, the question already counts as answered)."""
    kept: list[str] = []
    for alias in sorted(answers):
        if not kept or not alias.startswith(kept[-1]):
            kept.append(alias)
    return kept


def webqs(row: dict) -> MultipleChoiceExample:
    """``webqs`` (stanfordnlp/web_questions): every accepted alias is a correct choice; the metric is
    ``exact_match``, whether any of them is the model's greedy continuation."""
    aliases = webqs_aliases(row["answers"])
    return MultipleChoiceExample(_question_answer(row["question"]), tuple(aliases), 0, golds=tuple(range(len(aliases))))


def race_documents(rows: Iterable[dict]) -> list[dict]:
    """Per-question RACE rows (``race``/``ehovy/race``: article, question, options, answer) as the harness's
    article documents (EleutherAI/race): one per article, in order of first appearance, its questions in order."""
    documents: dict[str, list[dict]] = {}
    for row in rows:
        problem = {"question": row["question"], "answer": row["answer"], "options": list(row["options"])}
        documents.setdefault(row["article"], []).append(problem)
    return [{"article": article, "problems": problems} for article, problems in documents.items()]


def _race_answer(problem: dict) -> str:
    return problem["options"]["ABCD".index(problem["answer"])]


def race(doc: dict) -> MultipleChoiceExample:
    """``race`` (EleutherAI/race, high): the article, every earlier question of the article with its answer (a
    fill-in question "…  _  ." completed in place), then the last question, whose four options are the choices."""
    problems = ast.literal_eval(doc["problems"]) if isinstance(doc["problems"], str) else doc["problems"]
    text = "Article: " + doc["article"] + "\n\n"
    for problem in problems[:-1]:
        if problem["question"][-6:] == "  _  .":
            text += problem["question"][:-5] + _race_answer(problem) + "\n"
        else:
            text += "Question: " + problem["question"] + "\n" + "Answer: " + _race_answer(problem) + "\n"
    last = problems[-1]
    return MultipleChoiceExample(text + last["question"], tuple(last["options"][:4]), "ABCD".index(last["answer"]))
