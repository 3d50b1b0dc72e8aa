"""The settings of one landscape (``offsite landscape``), checked before any model is loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import OffsiteError
from .grid import DEFAULTS, GridDefaults


@dataclass(frozen=True)
class LandscapeConfig:
    """The line through two ``points`` or the plane through three, around the ``base`` model (θ_init).

    Each grid point is scored on the first ``limit`` examples of ``task``'s ``split``: the loss on answer tokens
    only (as fine-tuning computes it) and, for multiple-choice data, acc and acc_norm. ``grid`` is the number of
    points per axis and ``range`` the span of every axis; None takes the defaults of :data:`grid.DEFAULTS`.
    """

    base: str
    points: tuple[str, ...]
    task: str = "arc_easy"
    split: str = "validation"
    limit: int | None = 100
    grid: int | None = None
    range: tuple[float, float] | None = None
    labels: tuple[str, ...] | None = None
    batch_size: int = 32
    max_length: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(str(point) for point in self.points))  # paths given as Path too
        if len(self.points) not in (2, 3):
            raise OffsiteError(f"give 2 points (a line) or 3 (a plane), got {len(self.points)}")
        if self.labels is not None and len(self.labels) != len(self.points):
            raise OffsiteError(f"give one label per point: {len(self.points)} points, {len(self.labels)} labels")
        if self.grid is not None and self.grid < 2:
            raise OffsiteError(f"--grid must be at least 2, got {self.grid}")
        if self.range is not None:
            if len(self.range) != 2 or not self.range[0] < self.range[1]:
                raise OffsiteError(f"the range must be LOW,HIGH with LOW < HIGH, got {list(self.range)}")
            object.__setattr__(self, "range", tuple(self.range))  # a YAML list becomes the tuple a range is
        for name in ("limit", "batch_size", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OffsiteError(f"--{name.replace('_', '-')} must be at least 1, got {value}")

    @property
    def dimensions(self) -> int:
        return len(self.points) - 1

    @property
    def axes(self) -> GridDefaults:
        """Points per axis and the range of each axis, with the defaults filled in."""
        default = DEFAULTS[self.dimensions]
        low, high = self.range or (default.low, default.high)
        return GridDefaults(self.grid or default.size, low, high)

    def data_settings(self) -> dict[str, Any]:
        """The settings that decide a grid point's scores besides the weights there; a saved landscape's grid points
        are reused only when these (and the points' weights) match. Grid, range, labels and batch size may change."""
        return {"task": self.task, "split": self.split, "limit": self.limit, "max_length": self.max_length}

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
