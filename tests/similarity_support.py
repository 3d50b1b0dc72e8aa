"""A layer-similarity matrix with a known cluster structure, for the strategy and layer-map tests."""

from __future__ import annotations

import numpy as np


def block_similarity(boundaries: list[int], size: int) -> np.ndarray:
    """High similarity (0.9) inside the runs of layers that start at ``boundaries``, low (0.1) across; 1 on the
    diagonal."""
    block_of = np.searchsorted(boundaries, np.arange(size), side="right")
    return np.where(block_of[:, None] == block_of[None, :], 0.9, 0.1) + 0.1 * np.eye(size)
