"""Where a landscape is evaluated: a line through two points or the plane through three, in coordinates where the
given points sit at (0), (1) or at (0,0), (1,0), (0,1); and the weight each point gets at a coordinate.

With points P0, P1, P2 the plane is P0 + a·(P1 − P0) + b·(P2 − P0) (directions neither orthogonalised nor
normalised), which is the affine combination (1 − a − b)·P0 + a·P1 + b·P2; the line is the same with one axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Coordinates = tuple[float, ...]

# Decimal places kept of each coordinate, so that a grid computed twice names the same places (and a resumed
# landscape finds the points it already has).
_DECIMALS = 9


@dataclass(frozen=True)
class GridDefaults:
    """Points per axis and the range of each axis when none is given."""

    size: int
    low: float
    high: float


# The line shows a little beyond both ends; the plane the triangle of the three points and half a unit around it.
# Both defaults put the given points and the midpoints between them on the grid (steps of 0.125 and 0.25). A grid
# point with 100 ARC-Easy questions costs SmolLM2-135M about 30 CPU-seconds, so the 9×9 plane takes some 40
# CPU-minutes and the 13-point line about 6.
DEFAULTS = {1: GridDefaults(13, -0.25, 1.25), 2: GridDefaults(9, -0.5, 1.5)}


def point_coordinates(count: int) -> list[Coordinates]:
    """Where each of ``count`` (2 or 3) given points sits: the first at the origin, the others one unit along
    their own axis."""
    return [tuple(float(i == axis) for axis in range(1, count)) for i in range(count)]


def axis_values(size: int, low: float, high: float) -> list[float]:
    """``size`` evenly spaced values from ``low`` to ``high``, both included."""
    return [round(float(v), _DECIMALS) for v in np.linspace(low, high, size)]


def grid_coordinates(dimensions: int, size: int, low: float, high: float) -> list[Coordinates]:
    """Every coordinate of the grid, row by row (the second axis outermost)."""
    values = axis_values(size, low, high)
    if dimensions == 1:
        return [(x,) for x in values]
    return [(a, b) for b in values for a in values]


def key(coordinates: Sequence[float]) -> Coordinates:
    """The coordinates, rounded as grids round them, as a hashable tuple."""
    return tuple(round(float(c), _DECIMALS) for c in coordinates)


def affine_weights(coordinates: Sequence[float]) -> tuple[float, ...]:
    """The weight of each given point at ``coordinates``: ``(1 − Σc, c1, c2)``. At a given point's own coordinates
    one weight is 1 and the others 0, so the interpolated weights equal that point's exactly."""
    return (1.0 - sum(coordinates), *coordinates)
