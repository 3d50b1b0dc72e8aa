"""Saving matplotlib figures: PNG, written atomically so an interrupted run leaves no half-written image."""

from __future__ import annotations

import os

from matplotlib.figure import Figure

from ..paths import atomic_path


def save_figure(figure: Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` to ``path`` as a PNG (120 dpi, tight bounding box)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
