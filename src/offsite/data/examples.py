"""The records that flow from task data into training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OffsiteError


@dataclass(frozen=True)
class MultipleChoiceExample:
    """A prompt, its answer choices and the index of the correct one, in lm-evaluation-harness's terms.

    Choice i is scored as the continuation ``delimiter + choices[i]`` of ``prompt`` (the harness's target
    delimiter, a space by default); ``choices`` hold the harness's choice strings. Two variants of the harness:

    - ``golds``: every correct index where several answers are accepted (WebQuestions' aliases); empty means
      ``(gold,)``. ``gold`` is the answer fine-tuning learns.
    - ``ending``: partial scoring (WinoGrande): choice i fills a blank at the end of ``prompt``, and the text after
      the blank, ``delimiter + ending``, is what gets scored, in the context of ``prompt + choices[i]``.
    """

    prompt: str
    choices: tuple[str, ...]
    gold: int
    golds: tuple[int, ...] = ()
    delimiter: str = " "
    ending: str | None = None

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise OffsiteError("a multiple-choice example needs at least one choice")
        for index in (self.gold, *self.golds):
            if not 0 <= index < len(self.choices):
                raise OffsiteError(f"gold index {index} is out of range for {len(self.choices)} choices")
        if self.golds and self.gold not in self.golds:
            raise OffsiteError(f"gold index {self.gold} is not among the correct indices {list(self.golds)}")

    @property
    def correct(self) -> tuple[int, ...]:
        """Every index that counts as correct."""
        return self.golds or (self.gold,)

    def request(self, index: int) -> tuple[str, str]:
        """The harness's ``(context, continuation)`` for choice ``index``: the text conditioned on, the text scored."""
        if self.ending is None:
            return self.prompt, self.delimiter + self.choices[index]
        return self.prompt + self.choices[index], self.delimiter + self.ending

    def continuation(self, index: int) -> str:
        """Everything after ``prompt`` for choice ``index``: ``prompt + continuation(i)`` is the whole text."""
        context, scored = self.request(index)
        return context[len(self.prompt):] + scored

    def norm_length(self, index: int) -> int:
        """The divisor of ``acc_norm``: the length in characters of the harness's choice string (under partial
        scoring the harness's choices are the contexts ``prompt + choices[i]``)."""
        return len(self.request(index)[0] if self.ending is not None else self.choices[index])
