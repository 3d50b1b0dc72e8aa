"""What an experiment measures: cells, each one score of one row of the protocol, keyed by task, row, emulator
(strategy, size, distilled or not) and seed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import OffsiteError

FULL_ZS, FULL_FT = "Full ZS", "Full FT"
EMULATOR_ZS, EMULATOR_FT, PLUG_IN = "Emulator ZS", "Emulator FT", "Plug-in"


def merged_row(method: str) -> str:
    """The row of the plug-in whose adapter merges the runs of every seed by ``method``."""
    return f"Plug-in ({method} merge)"


@dataclass(frozen=True)
class Emulator:
    """One emulator of an experiment: a strategy (its title) keeping ``keep`` blocks besides the adapter, distilled
    against the full model or not."""

    strategy: str
    keep: int
    distilled: bool = False

    def file_name(self, slug: str) -> str:
        """A directory or file name, from the strategy's ``slug``."""
        return f"{slug}-keep{self.keep}" + ("-distilled" if self.distilled else "")

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> "Emulator | None":
        """The emulator of a cell record (see :meth:`Cell.key`); None for the full model's rows."""
        if record["strategy"] is None:
            return None
        return cls(record["strategy"], record["keep"], record["distilled"])


@dataclass(frozen=True)
class Cell:
    """One score: ``row`` for ``task``, of ``emulator`` (None for the full model's rows) and ``seed`` (None for the
    scores that involve no fine-tuning run of their own: zero-shot and merged rows)."""

    task: str
    row: str
    emulator: Emulator | None = None
    seed: int | None = None

    def key(self) -> dict[str, Any]:
        """The cell's key as plain JSON: task, row, strategy, keep, distilled, seed."""
        emulator = self.emulator
        return {"task": self.task, "row": self.row, "strategy": emulator.strategy if emulator else None,
                "keep": emulator.keep if emulator else None, "distilled": emulator.distilled if emulator else None,
                "seed": self.seed}

    def file_name(self, emulator_name: str | None) -> str:
        """``EMULATOR-ROW[-seedN]`` (``full-ROW`` for the full model), e.g. ``uniform-keep6-plug-in-seed0``."""
        row = re.sub(r"[^a-z0-9]+", "-", self.row.lower().removeprefix("full ")).strip("-")
        seed = f"-seed{self.seed}" if self.seed is not None else ""
        return f"{emulator_name or 'full'}-{row}{seed}"


@dataclass(frozen=True)
class Part:
    """Part ``index`` of ``count`` of an experiment's cells, so that several processes or machines measure one
    experiment at once, each writing only its own cell files.

    The rule: the full model's rows belong to part 1. An emulator and its distilled version stay together (the
    distilled bundle is made from the plain one), and these groups, in the config's order, are dealt to the parts
    like cards in a snake (1, 2, …, N, N, …, 2, 1, 1, 2, …), so that the slow strategies and sizes spread evenly."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Part":
        """``K/N``, e.g. ``2/3``; 1 <= K <= N."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise OffsiteError(f"a part is K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def holds(self, group: int | None) -> bool:
        """Whether the emulators of ``group`` (the position of their strategy and size among the config's; None:
        the full model's rows) are this part's."""
        if group is None:
            return self.index == 1
        turn, place = divmod(group, self.count)
        return self.index - 1 == (place if turn % 2 == 0 else self.count - 1 - place)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
