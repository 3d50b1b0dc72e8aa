"""Data that exists only on the Hugging Face hub (RACE, WebQuestions, text corpora): fetched by ``datasets`` where a
hub is reachable."""

from __future__ import annotations

from typing import Iterable

from ..errors import OffsiteError


def load_hub_rows(dataset: str, config: str | None, split: str) -> Iterable[dict]:
    """The rows of a hub dataset split, or a clear error when the hub cannot be reached."""
    import datasets  # heavy to import; only needed here

    try:
        return datasets.load_dataset(dataset, config, split=split)
    except (ConnectionError, OSError, ValueError) as exc:
        raise OffsiteError(
            f"could not load {dataset} from the Hugging Face hub ({type(exc).__name__}); this task needs a hub"
        ) from None
