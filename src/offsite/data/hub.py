"""Tasks that exist only on the Hugging Face hub (RACE, WebQuestions): fetched by ``datasets`` where a hub is reachable."""

from __future__ import annotations

from typing import Iterable

from ..errors import OffsiteError
from .examples import MultipleChoiceExample


def load_hub_rows(dataset: str, config: str | None, split: str) -> Iterable[dict]:
    """The rows of a hub dataset split, or a clear error when the hub cannot be reached."""
    import datasets

    try:
        return datasets.load_dataset(dataset, config, split=split)
    except (ConnectionError, OSError, ValueError) as exc:
        raise OffsiteError(
            f"could not load {dataset} from the Hugging Face hub ({type(exc).__name__}); this task needs a hub"
        ) from None


def race_example(row: dict) -> MultipleChoiceExample:
    """One RACE question: the article, the question, and the four options (answer given as a letter)."""
    question = row["question"]
    prompt = f"Article: {row['article']}\n\nQuestion: {question}\nAnswer:"
    return MultipleChoiceExample(prompt, tuple(row["options"]), "ABCD".index(row["answer"]))


def web_questions_example(row: dict) -> MultipleChoiceExample:
    """One WebQuestions question; its accepted answers are the choices, any of which is correct (gold 0)."""
    return MultipleChoiceExample(f"Question: {row['question']}\nAnswer:", tuple(row["answers"]), 0)
