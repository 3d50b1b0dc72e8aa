"""What an experiment measures: cells, each one score of one row of the protocol, keyed by task, row, emulator
(strategy, size, distilled or not) and seed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
