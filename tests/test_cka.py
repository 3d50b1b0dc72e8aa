"""Linear CKA: against an independent HSIC computation, its invariances, and its guards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.errors import OffsiteError
from offsite.similarity import adjacent_similarity, has_variance, linear_cka, linear_cka_matrix


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA written independently: HSIC with an explicit centring matrix, trace(K H L H)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def correlated(seed: int, n: int, widths: list[int], noise: float = 1.0) -> list[np.ndarray]:
    """Layers that share a latent signal, so their CKA is neither 0 nor 1."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 5))
    return [latent @ rng.normal(size=(5, d)) + noise * rng.normal(size=(n, d)) + rng.normal(size=d) for d in widths]


def test_matches_independent_float64_computation():
    layers = correlated(0, 40, [7, 12, 3, 20])
    matrix = linear_cka_matrix(layers)
    for i, x in enumerate(layers):
        for j, y in enumerate(layers):
            expected = hsic_cka(x, y)
            assert matrix[i, j] == pytest.approx(expected, abs=1e-6)
            assert linear_cka(x, y) == pytest.approx(expected, abs=1e-6)
    assert 0.05 < matrix[0, 1] < 0.95  # a non-trivial value was checked


def test_self_similarity_is_one_and_matrix_is_symmetric_in_unit_interval():
    layers = correlated(1, 30, [8] * 6, noise=2.0)
    matrix = linear_cka_matrix(np.stack(layers))
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(np.diag(matrix), 1.0)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert matrix.min() >= 0.0 and matrix.max() <= 1.0
    assert linear_cka(layers[2], layers[2]) == pytest.approx(1.0, abs=1e-12)


def test_adjacent_similarity_is_the_first_off_diagonal():
    matrix = linear_cka_matrix(correlated(2, 20, [4] * 5))
    np.testing.assert_array_equal(adjacent_similarity(matrix), [matrix[i, i + 1] for i in range(4)])


shapes = st.tuples(st.integers(0, 10_000), st.integers(4, 30), st.integers(1, 12), st.integers(1, 12))


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_symmetric_in_its_arguments(shape):
    seed, n, d1, d2 = shape
    x, y = correlated(seed, n, [d1, d2])
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from([0, 1]))
def test_invariant_under_orthogonal_rotation(shape, which):
    seed, n, d1, d2 = shape
    layers = correlated(seed, n, [d1, d2])
    d = layers[which].shape[1]
    q, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(d, d)))
    rotated = list(layers)
    rotated[which] = layers[which] @ q
    assert linear_cka(*rotated) == pytest.approx(linear_cka(*layers), abs=1e-9)
    np.testing.assert_allclose(linear_cka_matrix(rotated), linear_cka_matrix(layers), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from([0, 1]), st.floats(1e-3, 1e3))
def test_invariant_under_isotropic_scaling(shape, which, scale):
    seed, n, d1, d2 = shape
    layers = correlated(seed, n, [d1, d2])
    scaled = list(layers)
    scaled[which] = layers[which] * scale
    assert linear_cka(*scaled) == pytest.approx(linear_cka(*layers), abs=1e-9)
    np.testing.assert_allclose(linear_cka_matrix(scaled), linear_cka_matrix(layers), atol=1e-9)


def test_not_invariant_under_anisotropic_scaling():
    # The invariance tests above would pass for a function that ignored its input; this one would not.
    x, y = correlated(3, 50, [4, 4])
    stretched = x * np.array([100.0, 1.0, 1.0, 1.0])
    assert abs(linear_cka(stretched, y) - linear_cka(x, y)) > 1e-3


@pytest.mark.parametrize("value", [0.0, 0.1, 1e6])
def test_constant_layer_is_a_clear_error_naming_the_layer(value):
    layers = correlated(4, 10, [3, 3, 3])
    layers[1] = np.full((10, 3), value)
    assert not has_variance(layers[1])
    with pytest.raises(OffsiteError, match="layer 1 has zero variance"):
        linear_cka_matrix(layers)
    with pytest.raises(OffsiteError, match="embedding has zero variance"):
        linear_cka_matrix(layers, labels=[0, "embedding", 2])
    with pytest.raises(OffsiteError, match="zero variance"):
        linear_cka(layers[0], layers[1])


def test_non_finite_values_and_mismatched_samples_are_clear_errors():
    x, y = correlated(5, 10, [3, 3])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(OffsiteError, match="layer 0 has non-finite"):
        linear_cka_matrix([bad, y])
    with pytest.raises(OffsiteError, match="same number of samples"):
        linear_cka_matrix([x, y[:8]])
    with pytest.raises(OffsiteError, match="N ≥ 2"):
        linear_cka_matrix([x[:1], y[:1]])
