"""Linear CKA between layer representations (Kornblith et al., 2019), in float64.

For pooled features X (N×d1) and Y (N×d2) with centred columns,
CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F). Since ‖YᵀX‖²_F = ⟨XXᵀ, YYᵀ⟩_F, all L×L pairs come from one
product of the stacked, flattened centred Gram matrices (L×N²) with its own transpose. That needs
8·L·N² bytes (30 layers and 1,000 samples: 240 MB).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import OffsiteError

# Centring a constant column leaves only rounding residue of about 1e-16 of its size; anything this small
# relative to the raw features is treated as no variance at all.
_RELATIVE_VARIANCE_FLOOR = 1e-10


def layer_label(layer: int | str) -> str:
    """How a layer is named in messages: ``layer 3`` for a block index, the label itself otherwise."""
    return f"layer {layer}" if isinstance(layer, (int, np.integer)) else str(layer)


def centred(features: np.ndarray, label: int | str = "input") -> np.ndarray:
    """``features`` (N×d) in float64 with each column's mean removed; an error if it has no variance or is not finite."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise OffsiteError(f"{layer_label(label)}: CKA needs an N×d matrix with N ≥ 2 samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise OffsiteError(f"{layer_label(label)} has non-finite values (inf or NaN); CKA is undefined")
    xc = x - x.mean(axis=0, keepdims=True)
    if not np.linalg.norm(xc) > _RELATIVE_VARIANCE_FLOOR * np.linalg.norm(x):
        raise OffsiteError(
            f"{layer_label(label)} has zero variance across samples (every sample gives the same vector); "
            "CKA is undefined"
        )
    return xc


def has_variance(features: np.ndarray) -> bool:
    """Whether CKA is defined for ``features``: finite and not the same vector for every sample."""
    try:
        centred(features)
    except OffsiteError:
        return False
    return True


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of one pair, computed on features (d1×d2 cross-products): the straightforward way."""
    xc, yc = centred(x, "x"), centred(y, "y")
    if xc.shape[0] != yc.shape[0]:
        raise OffsiteError(f"x and y must have the same number of samples, got {xc.shape[0]} and {yc.shape[0]}")
    cross = np.linalg.norm(yc.T @ xc) ** 2
    return float(cross / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def linear_cka_matrix(features: Sequence[np.ndarray] | np.ndarray, labels: Sequence[int | str] | None = None) -> np.ndarray:
    """Linear CKA of every pair of ``features`` (L matrices N×d_i, or one L×N×d array): an L×L float64 matrix.

    Symmetric, ones on the diagonal, values in [0, 1]. ``labels`` name the layers in errors (default 0..L-1).
    """
    labels = list(range(len(features))) if labels is None else list(labels)
    if len(labels) != len(features) or not labels:
        raise OffsiteError(f"need one label per layer, got {len(labels)} labels for {len(features)} layers")
    xs = [centred(x, label) for x, label in zip(features, labels)]
    if len({x.shape[0] for x in xs}) != 1:
        raise OffsiteError("every layer must have the same number of samples")
    grams = np.stack([x @ x.T for x in xs]).reshape(len(xs), -1)
    inner = grams @ grams.T  # inner[i, j] = ⟨K_i, K_j⟩_F = ‖X_jᵀ X_i‖²_F
    scale = np.sqrt(np.diag(inner))
    cka = inner / np.outer(scale, scale)
    # Remove the rounding asymmetry of the product and pin the exact values CKA is known to take.
    cka = np.clip((cka + cka.T) / 2, 0.0, 1.0)
    np.fill_diagonal(cka, 1.0)
    return cka


def adjacent_similarity(matrix: np.ndarray) -> np.ndarray:
    """The similarity of each layer with the next: ``matrix[i, i + 1]`` for i in 0..L-2."""
    matrix = np.asarray(matrix)
    return np.diagonal(matrix, offset=1).copy()
