"""Loss landscapes through fine-tuned models: the line between two points and the plane through three, every
parameter that differs between them interpolated in place on one model (linear mode connectivity)."""

from .compute import (
    LANDSCAPE_FILE,
    compute_landscape,
    describe_parameters,
    finished_landscape,
    landscape,
    save_landscape_figures,
)
from .config import LandscapeConfig
from .grid import DEFAULTS, affine_weights, grid_coordinates, point_coordinates
from .interpolate import interpolating, set_combination
from .points import BASE_LABEL, BASE_POINT, Point, differing_parameters, resolve_point

__all__ = [
    "BASE_LABEL",
    "BASE_POINT",
    "DEFAULTS",
    "LANDSCAPE_FILE",
    "LandscapeConfig",
    "Point",
    "affine_weights",
    "compute_landscape",
    "describe_parameters",
    "differing_parameters",
    "finished_landscape",
    "grid_coordinates",
    "interpolating",
    "landscape",
    "point_coordinates",
    "resolve_point",
    "save_landscape_figures",
    "set_combination",
]
