"""Computing a landscape: the loss and accuracy at every grid point of the line or plane through the given points.

``landscape.json`` is rewritten (atomically) after every grid point, so a stopped landscape continues where it
stopped: the same command again computes only the grid points it lacks. Grid points already computed are kept
whenever the points' weights and the data are the same, even on a changed grid or range.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..models import load_model
from ..models.fingerprint import fingerprint
from ..paths import claim_directory, read_json, write_json
from ..train.checkpoint import check_identity
from ..train.data import load_split
from ..train.validation import validate
from .config import LandscapeConfig
from .grid import Coordinates, affine_weights, axis_values, grid_coordinates, key, point_coordinates
from .interpolate import interpolating
from .points import Point, differing_parameters, resolve_point

LANDSCAPE_FILE = "landscape.json"
LANDSCAPE_FORMAT = "offsite-landscape"


def describe_parameters(names: Sequence[str]) -> str:
    """The parameter names grouped by block (``model.layers.3 (9 tensors)``), for one line of output."""
    groups: dict[str, int] = {}
    for name in names:
        match = re.match(r"(.*?\.\d+)\.", name)
        group = match.group(1) if match else name
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(group if count == 1 and group in names else f"{group} ({count} tensors)"
                     for group, count in groups.items())


def _saved_evaluations(path: Path, identity: dict[str, Any]) -> dict[Coordinates, dict[str, Any]]:
    """The grid points a landscape at ``path`` holds already, if it is one of the same points and data."""
    if not path.is_file():
        return {}
    saved = read_json(path, "landscape", ("format", "identity", "evaluations"))
    if saved.get("format") != LANDSCAPE_FORMAT:
        raise OffsiteError(f"{path} is not an offsite landscape; choose another --out")
    check_identity(saved["identity"], identity, path.parent, "a landscape")
    return {key(e["coordinates"]): e for e in saved["evaluations"]}


def _record(config: LandscapeConfig, identity: dict[str, Any], points: Sequence[Point], names: Sequence[str],
            model: PreTrainedModel, evaluations: dict[Coordinates, dict[str, Any]], complete: bool) -> dict[str, Any]:
    named = dict(model.named_parameters())
    axes = config.axes
    return {
        "format": LANDSCAPE_FORMAT,
        "format_version": 1,
        "identity": identity,
        "settings": config.to_json(),
        "dimensions": config.dimensions,
        "formula": "θ0 + x·(θ1 − θ0)" if config.dimensions == 1 else "θ0 + a·(θ1 − θ0) + b·(θ2 − θ0)",
        "axis": axis_values(axes.size, axes.low, axes.high),
        "points": [{"spec": p.spec, "kind": p.kind, "label": p.label, "coordinates": list(c), "fingerprint": f}
                   for p, c, f in zip(points, point_coordinates(len(points)), identity["points"])],
        "interpolated": {"tensors": list(names), "parameters": sum(named[n].numel() for n in names),
                         "of_parameters": sum(p.numel() for p in named.values())},
        "evaluations": list(evaluations.values()),
        "complete": complete,
    }


def finished_landscape(out: str | Path, config: LandscapeConfig) -> dict[str, Any] | None:
    """The record of a finished landscape of exactly ``config``'s settings in ``out``, else None (to compute)."""
    path = Path(out) / LANDSCAPE_FILE
    if not path.is_file():
        return None
    record = read_json(path, "landscape", ())
    return record if record.get("complete") and record.get("settings") == config.to_json() else None


def compute_landscape(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: LandscapeConfig,
    out: str | Path,
    progress: bool = True,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score every grid point of ``config``'s landscape with ``model`` as the base (θ_init), moving its weights in
    place, and write ``out/landscape.json`` (and the figures once every grid point is done); return its record.
    ``stop_after`` computes at most that many new grid points, then returns (call again to continue). ``model``
    ends with exactly the weights it had."""
    out = Path(out)
    labels = config.labels or (None,) * len(config.points)
    points = [resolve_point(spec, model, config.base, label) for spec, label in zip(config.points, labels)]
    names = differing_parameters(model, points)
    if not names:
        raise OffsiteError(f"the points {', '.join(config.points)} hold the same weights; there is nothing to draw")
    named = dict(model.named_parameters())
    base = {name: named[name].detach().clone() for name in names}
    values = [{name: point.tensors.get(name, base[name]).to(base[name].device) for name in names} for point in points]
    log(f"interpolating {len(names)} tensors: {describe_parameters(names)}")
    data = load_split(config.task, config.split, config.limit, tokenizer, config.max_length)
    accelerator = Accelerator()
    axes = config.axes
    corners = point_coordinates(len(points))
    # The given points first, so that even a landscape stopped early has its ends.
    wanted = list(dict.fromkeys(corners + grid_coordinates(config.dimensions, axes.size, axes.low, axes.high)))
    with interpolating(model, base, values) as move:
        prints = []
        for corner in corners:
            move(affine_weights(corner))
            prints.append(fingerprint(model))
        identity = {**config.data_settings(), "points": prints}
        claim_directory(out)  # only now: a bad input above leaves no directory behind
        evaluations = _saved_evaluations(out / LANDSCAPE_FILE, identity)
        missing = [c for c in wanted if c not in evaluations]
        with tqdm(total=len(wanted), initial=len(wanted) - len(missing), desc="landscape", unit="point",
                  disable=not (progress and accelerator.is_main_process)) as bar:
            for coordinates in missing[:stop_after]:
                move(affine_weights(coordinates))
                scores = validate(accelerator, model, tokenizer, data, config.batch_size)
                evaluations[coordinates] = {"coordinates": list(coordinates), **scores}
                record = _record(config, identity, points, names, model, evaluations, False)
                if accelerator.is_main_process:
                    write_json(out / LANDSCAPE_FILE, record)
                bar.update(1)
                bar.set_postfix(loss=f"{scores['loss']:.3f}")
    complete = all(c in evaluations for c in wanted)
    record = _record(config, identity, points, names, model, evaluations, complete)
    if accelerator.is_main_process:
        write_json(out / LANDSCAPE_FILE, record)
        if complete:
            save_landscape_figures(record, out)
    return record


def save_landscape_figures(record: dict[str, Any], out: str | Path) -> list[Path]:
    """``line.png`` for a line; ``contour.png`` and ``surface.png`` for a plane. Returns the paths written."""
    from ..report.landscape_plots import save_contour, save_line_plot, save_surface

    out = Path(out)
    if record["dimensions"] == 1:
        save_line_plot({" → ".join(p["label"] for p in record["points"]): record}, out / "line.png")
        return [out / "line.png"]
    save_contour(record, out / "contour.png")
    save_surface(record, out / "surface.png")
    return [out / "contour.png", out / "surface.png"]


def landscape(config: LandscapeConfig, out: str | Path, device: str = "cpu", progress: bool = True,
              stop_after: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load ``config.base`` onto ``device`` and compute its landscape (see :func:`compute_landscape`)."""
    model, tokenizer = load_model(config.base)
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise OffsiteError(f"cannot use device {device!r}: {exc}") from None
    return compute_landscape(model, tokenizer, config, out, progress, stop_after, log)
