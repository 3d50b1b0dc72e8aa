"""The settings of a five-row experiment (``offsite experiment CONFIG.yaml``), read from YAML and checked up front."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from ..data.corpus import DEFAULT_BLOCK_SIZE, DEFAULT_SOURCES, CorpusConfig
from ..data.tasks import harness_metric
from ..emulator.strategies import AdapterSpec, SimilaritySource, StrategySpec
from ..errors import OffsiteError
from ..evaluate.scores import METRICS
from ..evaluate.fidelity import FidelityConfig
from ..landscape import BASE_LABEL, BASE_POINT, LandscapeConfig
from ..train.config import FinetuneConfig
from ..train.distill import DistillConfig
from ..train.merge import MERGE_METHODS
from .cells import EMULATOR_ZS, FULL_ZS, Cell, Emulator

@dataclass(frozen=True)
class TrainSettings:
    """How each adapter is fine-tuned. Model selection uses ``select_split`` (never the evaluation split): the run
    keeps its step with the best score there (evaluated every ``eval_every`` steps, 0: after each epoch). ``lr`` may
    be a list: each one is trained, and the run whose kept step scores best on ``select_split`` is used (the first
    listed on a tie)."""

    split: str = "train"
    limit: int | None = 512
    select_split: str = "validation"
    select_limit: int | None = 100
    epochs: int = 1
    lr: float | tuple[float, ...] = 1e-4
    batch_size: int = 8
    warmup: float = 0.1
    eval_every: int = 0

    def __post_init__(self) -> None:
        given = tuple(self.lr) if isinstance(self.lr, (list, tuple)) else (self.lr,)
        try:
            lrs = tuple(float(lr) for lr in given)  # YAML reads 1e-4 (no dot) as text
        except (TypeError, ValueError):
            lrs = ()
        if not lrs or min(lrs) <= 0 or len(set(lrs)) < len(lrs):
            raise OffsiteError(f"train.lr must be a positive number or a list of different ones, got {self.lr!r}")
        object.__setattr__(self, "lr", lrs[0] if len(lrs) == 1 else lrs)
        self.finetune_config(lrs[0])  # a bad value fails here, before anything runs

    def finetune_config(self, lr: float, **run: Any) -> FinetuneConfig:
        """The fine-tuning run at ``lr`` with these settings; ``run`` gives the rest (source, task, out, seed...)."""
        return FinetuneConfig(**{"source": "", "task": "", "out": "", **run}, train_split=self.split,
                              eval_split=self.select_split, limit=self.limit, eval_limit=self.select_limit,
                              epochs=self.epochs, lr=lr, batch_size=self.batch_size, warmup=self.warmup,
                              eval_every=self.eval_every)

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rates tried, in the order given."""
        return self.lr if isinstance(self.lr, tuple) else (self.lr,)


@dataclass(frozen=True)
class DistillSettings:
    """How a distilled emulator is made from the plain one (see :class:`offsite.train.distill.DistillConfig`):
    ``steps`` optimizer steps of ``batch_size`` blocks of ``block_size`` tokens of ``corpus`` (bundled source
    names, text or JSONL files), with the documents holding an evaluation question of the experiment's tasks left
    out; ``held_out`` blocks pick the step (held-out perplexity, every ``eval_every`` steps)."""

    corpus: tuple[str, ...] = DEFAULT_SOURCES
    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 4
    block_size: int = DEFAULT_BLOCK_SIZE
    held_out: int = 32
    eval_every: int = 50
    warmup: float = 0.0
    lm_weight: float = 1.0
    kd_weight: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        corpus = (self.corpus,) if isinstance(self.corpus, str) else tuple(self.corpus)
        object.__setattr__(self, "corpus", corpus)
        self.distill_config("", "", "", ())  # a bad value fails here, before anything runs

    def distill_config(self, bundle: str, out: str, model: str, tasks: tuple[str, ...]) -> DistillConfig:
        """The distillation of ``bundle`` into ``out`` by the full ``model``, leaving out ``tasks``' questions."""
        return DistillConfig(
            bundle=bundle, out=out, model=model, corpus=CorpusConfig(self.corpus, tasks, self.block_size),
            steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup=self.warmup, lm_weight=self.lm_weight,
            kd_weight=self.kd_weight, held_out=self.held_out, eval_every=self.eval_every, seed=self.seed,
        )


@dataclass(frozen=True)
class EvalSettings:
    """Where the five rows are scored."""

    split: str = "test"
    limit: int | None = 500
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise OffsiteError(f"eval.batch_size and eval.limit must be at least 1, got {self.batch_size} and {self.limit}")


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
    """A model, tasks, emulators (strategies × sizes × distilled or not), and seeds.

    ``strategies`` are :class:`~offsite.emulator.strategies.StrategySpec` (given as names, ``NAME:KEY=VALUE``
    strings or mappings; each may name its own adapter, else ``adapter`` / ``adapter_layers`` apply). ``keep`` is
    one size or a list of sizes (blocks kept besides the adapter). ``distill`` is False, True or ``[false, true]``:
    whether each emulator is also (or only) used distilled against the full model, as ``distillation`` says.
    ``full_ft`` is what "Full FT" trains on the full model: ``adapter`` (the adapter layers of the first strategy,
    the upper bound of plug-in) or ``all`` (every weight). ``similarity_file`` (a ``similarity.json`` from ``offsite
    analyze``) replaces measuring CKA on ``similarity``; ``similarity_per_task`` measures on each task's own
    samples instead, so each task gets its own clusters (as the CRaSh authors did). ``fidelity``: the held-out
    samples each emulator is measured on against the full model (default: the first task's ``train.select_split``).
    ``metric`` (acc, acc_norm or exact_match; None: each task's harness metric, exact_match for WebQuestions)
    selects each run's step and scores every row. ``merge`` (methods of :mod:`offsite.train.merge`, two seeds or
    more) adds, per emulator, the plug-in of the adapter merged from every seed's run. ``results_dir`` (default:
    the experiment directory) holds one small JSON file per cell, the tables and charts: a directory to commit,
    from which a stopped experiment continues on another machine. ``landscape`` (None: none) asks for the loss
    landscapes of the runs.
    """

    model: str = "smollm2-135m"
    tasks: tuple[str, ...] = ("arc_easy",)
    strategies: tuple[StrategySpec, ...] = ("uniform", "crash")
    keep: int | tuple[int, ...] = 6
    distill: bool | tuple[bool, ...] = False
    distillation: DistillSettings = field(default_factory=DistillSettings)
    adapter: tuple[int, int] = (2, 2)
    adapter_layers: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    full_ft: str = "adapter"
    metric: str | None = None
    similarity: SimilaritySource = field(default_factory=SimilaritySource)
    similarity_file: str | None = None
    similarity_per_task: bool = False
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    fidelity: FidelityConfig | None = None
    merge: tuple[str, ...] = ()
    results_dir: str | None = None
    landscape: LandscapeSettings | None = None

    def __post_init__(self) -> None:
        if not self.tasks or not self.strategies or not self.seeds:
            raise OffsiteError("an experiment needs at least one task, one strategy and one seed")
        specs = tuple(s if isinstance(s, StrategySpec) else StrategySpec.from_config(s) for s in self.strategies)
        object.__setattr__(self, "strategies", specs)
        object.__setattr__(self, "keep", _axis("keep", self.keep, int))
        object.__setattr__(self, "distill", _axis("distill", self.distill, bool))
        object.__setattr__(self, "merge", _axis("merge", self.merge, str, empty=True))
        if self.fidelity is None:
            object.__setattr__(self, "fidelity", FidelityConfig(task=self.tasks[0], split=self.train.select_split))
        unknown = [method for method in self.merge if method not in MERGE_METHODS]
        if unknown:
            raise OffsiteError(f"unknown merge method {unknown[0]!r}; choose from: {', '.join(MERGE_METHODS)}")
        if self.merge and len(self.seeds) < 2:
            raise OffsiteError("merge combines the runs of several seeds; give at least two seeds")
        titles = [spec.title for spec in specs]
        repeated = sorted({title for title in titles if titles.count(title) > 1})
        if repeated:
            raise OffsiteError(f"strategy {repeated[0]!r} is listed twice; give one a label")
        if self.similarity_per_task and self.similarity_file:
            raise OffsiteError("similarity_per_task measures on each task's samples; it takes no similarity_file")
        if self.full_ft not in ("adapter", "all"):
            raise OffsiteError(f"full_ft must be 'adapter' or 'all', got {self.full_ft!r}")
        if self.train.select_split == self.eval.split:
            raise OffsiteError(f"adapters would be selected on the split they are scored on ({self.eval.split}); "
                               "use another train.select_split or eval.split")
        if self.metric not in (None, *METRICS):
            raise OffsiteError(f"metric must be one of {', '.join(METRICS)} (or left out: each task's harness "
                               f"metric), got {self.metric!r}")

    @property
    def titles(self) -> tuple[str, ...]:
        """The strategies' names in tables, files and records."""
        return tuple(spec.title for spec in self.strategies)

    def spec(self, title: str) -> StrategySpec:
        return self.strategies[self.titles.index(title)]

    @property
    def emulators(self) -> tuple[Emulator, ...]:
        """Every emulator: each strategy at each size, plain then distilled, as the axes list them."""
        return tuple(Emulator(title, keep, distilled) for title in self.titles for keep in self.keep
                     for distilled in self.distill)

    def label(self, emulator: Emulator) -> str:
        """The emulator's name in tables and figures: the strategy, and its size and distillation where the
        experiment has several."""
        parts = [emulator.strategy]
        if len(self.keep) > 1:
            parts.append(f"keep {emulator.keep}")
        if emulator.distilled:
            parts.append("distilled")
        return ", ".join(parts)

    def emulator_name(self, emulator: Emulator) -> str:
        """The emulator's name in directories and files."""
        return emulator.file_name(self.spec(emulator.strategy).slug)

    @property
    def default_adapter(self) -> AdapterSpec:
        """The adapter of strategies that do not name their own."""
        return AdapterSpec(None, self.adapter_layers) if self.adapter_layers else AdapterSpec(self.adapter)

    @property
    def full_ft_adapter(self) -> AdapterSpec:
        """What Full FT trains with ``full_ft: adapter``: the adapter layers of the first strategy."""
        return self.strategies[0].adapter or self.default_adapter

    def similarity_for(self, task: str) -> SimilaritySource:
        """The calibration samples of ``task``'s emulators."""
        return self.similarity.for_task(task) if self.similarity_per_task else self.similarity

    def metric_for(self, task: str) -> str:
        """The metric ``task``'s adapters are selected and scored by: ``metric``, or the task's harness metric."""
        return self.metric or harness_metric(task)

    def emulator_identity(self, emulator: Emulator, task: str) -> dict[str, Any]:
        """Every setting that shapes ``emulator`` (for ``task``) and its fidelity figures."""
        spec = self.spec(emulator.strategy)
        return _plain({
            "model": self.model, "strategy": spec.to_config(), "keep": emulator.keep,
            "adapter": (spec.adapter or self.default_adapter).to_config(),
            "similarity": self.similarity_file or asdict(self.similarity_for(task)), "fidelity": asdict(self.fidelity),
            "distillation": asdict(self.distillation) if emulator.distilled else None,
        })

    def cell_identity(self, cell: Cell) -> dict[str, Any]:
        """Every setting that shapes ``cell``'s score: a cell file measured with other settings is not reused."""
        identity: dict[str, Any] = {"model": self.model, "task": cell.task, "row": cell.row,
                                    "eval": {"split": self.eval.split, "limit": self.eval.limit}}
        if cell.row == FULL_ZS:
            return identity
        if cell.emulator is not None:
            identity["emulator"] = self.emulator_identity(cell.emulator, cell.task)
        else:
            identity.update(full_ft=self.full_ft, adapter=self.full_ft_adapter.to_config())
        if cell.row == EMULATOR_ZS:
            return identity
        identity.update(train=asdict(self.train), metric=self.metric_for(cell.task))
        identity.update({"seed": cell.seed} if cell.seed is not None else {"seeds": list(self.seeds)})
        return _plain(identity)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), so a saved config compares equal to a fresh one; a strategy is
        its plain name where it has no options."""
        data = asdict(self)
        data["strategies"] = [spec.to_config() for spec in self.strategies]
        return json.loads(json.dumps(data))

    def identity(self) -> dict[str, Any]:
        """What an experiment directory pins: every setting but ``landscape``, which only adds figures of the runs
        (so landscapes can be asked for later, of the runs already there), and ``results_dir``."""
        return {k: v for k, v in self.to_json().items() if k not in ("landscape", "results_dir")}


def _plain(data: Any) -> Any:
    """``data`` with JSON's types (lists, not tuples), as it reads back from a file."""
    return json.loads(json.dumps(data))


_AXIS_VALUES = {int: "a whole number", bool: "true or false", str: "a name"}


def _axis(name: str, value: Any, kind: type, empty: bool = False) -> tuple:
    """One value or a list of them, as a tuple of different values of ``kind``."""
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    # bool is an int in Python: a size of True is refused, and so is a distill of 1.
    if any(type(v) is not kind for v in values) or len(set(values)) < len(values) or (not values and not empty):
        raise OffsiteError(f"{name} must be {_AXIS_VALUES[kind]} or a list of different ones, got {value!r}")
    return values


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
    """An :class:`ExperimentConfig` from a parsed YAML mapping (lists become tuples; unknown keys are errors; a value
    of the wrong type is an :class:`OffsiteError`)."""
    try:
        return _experiment_from_dict(data)
    except (TypeError, ValueError) as exc:
        raise OffsiteError(f"experiment config: a value has the wrong type ({exc})") from None


def _experiment_from_dict(data: dict[str, Any]) -> ExperimentConfig:
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
    values["distillation"] = _section(DistillSettings, data.get("distillation"), "distillation")
    if data.get("fidelity") is not None:
        # The held-out samples default to the first task's selection split, as without a 'fidelity' section.
        tasks = values.get("tasks") or ExperimentConfig.tasks
        defaults = {"task": tasks[0], "split": values["train"].select_split}
        fidelity = data["fidelity"]
        values["fidelity"] = _section(FidelityConfig, {**defaults, **fidelity} if isinstance(fidelity, dict) else fidelity,
                                      "fidelity")
    if data.get("landscape") is not None:
        values["landscape"] = _section(LandscapeSettings, data["landscape"], "landscape")
    return ExperimentConfig(**values)


class _ConfigLoader(yaml.SafeLoader):
    """YAML as ``safe_load`` reads it, except that ``1e-4`` is a number (YAML 1.1 wants ``1.0e-4``)."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_experiment_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment config from a YAML file."""
    if not os.path.isfile(path):
        raise OffsiteError(f"experiment config not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_ConfigLoader)
    except yaml.YAMLError as exc:
        raise OffsiteError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return experiment_from_dict(data)
