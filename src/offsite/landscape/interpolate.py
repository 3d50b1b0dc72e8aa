"""Moving one model's weights across a landscape in place: no copy of the model per grid point, no drift.

Each grid point's weights are computed afresh from the saved tensors of the given points (never by adding a step
to the previous grid point's weights), and the base model's own tensors are copied back at the end, so the model
ends bit for bit as it began.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

Tensors = Mapping[str, torch.Tensor]


def set_combination(parameters: Mapping[str, nn.Parameter], points: Sequence[Tensors], weights: Sequence[float]) -> None:
    """Set each named parameter to ``Σ weights[i] · points[i][name]``, in place, in the parameter's own memory.

    A weight of exactly 1 with the others 0 gives that point's tensor exactly."""
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(points[0][name]).mul_(weights[0])
            for point, weight in zip(points[1:], weights[1:]):
                parameter.add_(point[name], alpha=weight)


@contextlib.contextmanager
def interpolating(model: nn.Module, base: Tensors, points: Sequence[Tensors]) -> Iterator[Callable[[Sequence[float]], None]]:
    """Yield ``move(weights)``, which sets the parameters named in ``base`` to the points' combination (see
    :func:`set_combination`); on leaving, however it is left, those parameters hold ``base``'s values again."""
    named = dict(model.named_parameters())
    parameters = {name: named[name] for name in base}
    try:
        yield lambda weights: set_combination(parameters, points, weights)
    finally:
        with torch.no_grad():
            for name, parameter in parameters.items():
                parameter.copy_(base[name])
