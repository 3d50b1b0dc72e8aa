"""The settings of a five-row experiment (``offsite experiment CONFIG.yaml``), read from YAML and checked up front."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from ..emulator.strategies import AdapterSpec, SimilaritySource, StrategySpec
from ..errors import OffsiteError
from ..landscape import BASE_LABEL, BASE_POINT, LandscapeConfig

@dataclass(frozen=True)
class TrainSettings:
    """How each adapter is fine-tuned. Model selection uses ``select_split`` (never the evaluation split)."""

    split: str = "train"
    limit: int | None = 512
    select_split: str = "validation"
    select_limit: int | None = 100
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8
    warmup: float = 0.1
    eval_every: int = 0


@dataclass(frozen=True)
class EvalSettings:
    """Where the five rows are scored."""

    split: str = "test"
    limit: int | None = 500
    batch_size: int = 32


@dataclass(frozen=True)
class LandscapeSettings:
    """The loss landscapes drawn of each task and seed's runs (see :mod:`offsite.landscape`), per strategy: the line
    from Full FT to the plug-in, and the plane through init, Full FT and the plug-in. Grids and ranges left None
    take the landscape defaults; the paper's surface is ``plane_grid: 50, plane_range: [-4, 4]``."""

    split: str = "validation"
    limit: int | None = 100
    line: bool = True
    plane: bool = True
    line_grid: int | None = None
    line_range: tuple[float, float] | None = None
    plane_grid: int | None = None
    plane_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.landscapes("", "", "", "", "uniform", 1)  # a bad grid or range fails here, before anything runs

    def landscapes(self, model: str, task: str, full_run: str, run: str, strategy: str,
                   batch_size: int) -> dict[str, LandscapeConfig]:
        """The landscapes of one strategy's runs, by kind (``line``, ``plane``); ``model`` is θ_init."""
        shared = dict(base=model, task=task, split=self.split, limit=self.limit, batch_size=batch_size)
        plugged = f"{strategy} plug-in"
        configs = {}
        if self.line:
            configs["line"] = LandscapeConfig(points=(full_run, run), labels=("Full FT", plugged), grid=self.line_grid,
                                              range=self.line_range, **shared)
        if self.plane:
            configs["plane"] = LandscapeConfig(points=(BASE_POINT, full_run, run), labels=(BASE_LABEL, "Full FT", plugged),
                                               grid=self.plane_grid, range=self.plane_range, **shared)
        return configs


@dataclass(frozen=True)
class ExperimentConfig:
    """A model, tasks, emulator strategies of one size, and seeds.

    ``strategies`` are :class:`~offsite.emulator.strategies.StrategySpec` (given as names, ``NAME:KEY=VALUE``
    strings or mappings; each may name its own adapter, else ``adapter`` / ``adapter_layers`` apply). ``full_ft``
    is what "Full FT" trains on the full model: ``adapter`` (the adapter layers of the first strategy, the upper
    bound of plug-in) or ``all`` (every weight). ``similarity_file`` (a ``similarity.json`` from ``offsite
    analyze``) replaces measuring CKA on ``similarity``; ``similarity_per_task`` measures on each task's own
    samples instead, so each task gets its own clusters (as the CRaSh authors did). ``landscape`` (None: none)
    asks for the loss landscapes of the runs.
    """

    model: str = "smollm2-135m"
    tasks: tuple[str, ...] = ("arc_easy",)
    strategies: tuple[StrategySpec, ...] = ("uniform", "crash")
    keep: int = 6
    adapter: tuple[int, int] = (2, 2)
    adapter_layers: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    full_ft: str = "adapter"
    metric: str = "acc"
    similarity: SimilaritySource = field(default_factory=SimilaritySource)
    similarity_file: str | None = None
    similarity_per_task: bool = False
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    landscape: LandscapeSettings | None = None

    def __post_init__(self) -> None:
        specs = tuple(s if isinstance(s, StrategySpec) else StrategySpec.from_config(s) for s in self.strategies)
        object.__setattr__(self, "strategies", specs)
        titles = [spec.title for spec in specs]
        repeated = sorted({title for title in titles if titles.count(title) > 1})
        if repeated:
            raise OffsiteError(f"strategy {repeated[0]!r} is listed twice; give one a label")
        if self.similarity_per_task and self.similarity_file:
            raise OffsiteError("similarity_per_task measures on each task's samples; it takes no similarity_file")
        if not self.tasks or not self.strategies or not self.seeds:
            raise OffsiteError("an experiment needs at least one task, one strategy and one seed")
        if self.full_ft not in ("adapter", "all"):
            raise OffsiteError(f"full_ft must be 'adapter' or 'all', got {self.full_ft!r}")
        if self.train.select_split == self.eval.split:
            raise OffsiteError(f"adapters would be selected on the split they are scored on ({self.eval.split}); "
                               "use another train.select_split or eval.split")
        if self.metric not in ("acc", "acc_norm"):
            raise OffsiteError(f"metric must be 'acc' or 'acc_norm', got {self.metric!r}")

    @property
    def titles(self) -> tuple[str, ...]:
        """The strategies' names in tables, files and records."""
        return tuple(spec.title for spec in self.strategies)

    def spec(self, title: str) -> StrategySpec:
        return self.strategies[self.titles.index(title)]

    @property
    def default_adapter(self) -> AdapterSpec:
        """The adapter of strategies that do not name their own."""
        return AdapterSpec(None, self.adapter_layers) if self.adapter_layers else AdapterSpec(self.adapter)

    def similarity_for(self, task: str) -> SimilaritySource:
        """The calibration samples of ``task``'s emulators."""
        return self.similarity.for_task(task) if self.similarity_per_task else self.similarity

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), so a saved config compares equal to a fresh one; a strategy is
        its plain name where it has no options."""
        data = asdict(self)
        data["strategies"] = [spec.to_config() for spec in self.strategies]
        return json.loads(json.dumps(data))

    def identity(self) -> dict[str, Any]:
        """What an experiment directory pins: every setting but ``landscape``, which only adds figures of the runs
        (so landscapes can be asked for later, of the runs already there)."""
        return {k: v for k, v in self.to_json().items() if k != "landscape"}


def _section(cls, data: Any, name: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise OffsiteError(f"experiment config: '{name}' must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise OffsiteError(f"experiment config: unknown key '{name}.{unknown[0]}'; known: {', '.join(sorted(known))}")
    return cls(**data)


def experiment_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a parsed YAML mapping (lists become tuples; unknown keys are errors)."""
    if not isinstance(data, dict):
        raise OffsiteError("experiment config must be a YAML mapping")
    known = {f.name for f in fields(ExperimentConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise OffsiteError(f"experiment config: unknown key '{unknown[0]}'; known: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    for key in ("tasks", "strategies", "seeds"):
        if isinstance(values.get(key), (str, int)):
            values[key] = (values[key],)
    similarity = data.get("similarity")
    if similarity is not None and not isinstance(similarity, dict):
        raise OffsiteError("experiment config: 'similarity' must be a mapping")
    values["similarity"] = SimilaritySource.from_config(similarity)
    values["train"] = _section(TrainSettings, data.get("train"), "train")
    values["eval"] = _section(EvalSettings, data.get("eval"), "eval")
    if data.get("landscape") is not None:
        values["landscape"] = _section(LandscapeSettings, data["landscape"], "landscape")
    try:
        return ExperimentConfig(**values)
    except TypeError as exc:
        raise OffsiteError(f"experiment config: {exc}") from None


def load_experiment_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment config from a YAML file."""
    if not os.path.isfile(path):
        raise OffsiteError(f"experiment config not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise OffsiteError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return experiment_from_dict(data)
