"""The records that flow from task data into training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OffsiteError


@dataclass(frozen=True)
class MultipleChoiceExample:
    """A prompt, its answer choices and the index of the correct one.

    A choice is scored as the continuation ``" " + choice`` of the prompt (lm-evaluation-harness's target
    delimiter); ``choices`` hold the text without that space.
    """

    prompt: str
    choices: tuple[str, ...]
    gold: int

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise OffsiteError("a multiple-choice example needs at least one choice")
        if not 0 <= self.gold < len(self.choices):
            raise OffsiteError(f"gold index {self.gold} is out of range for {len(self.choices)} choices")

    def continuation(self, index: int) -> str:
        """The text scored after the prompt for choice ``index``."""
        return " " + self.choices[index]
