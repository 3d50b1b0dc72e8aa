"""The experiment: the five rows (Full ZS, Full FT, Emulator ZS, Emulator FT, Plug-in) per task and emulator
(strategy × size × distilled or not), over seeds, with merged plug-ins; tables, charts and a reading of the numbers."""

from .cells import Cell, Emulator, Part
from .config import (
    DistillSettings,
    EvalSettings,
    ExperimentConfig,
    TrainSettings,
    experiment_from_dict,
    load_experiment_config,
)
from .estimates import Estimate
from .reading import reading, recommendation
from .runner import Experiment, measure_part, run_experiment
from .summary import GAP, EmulatorSummary, TaskSummary, summarize
from .table import table_markdown

__all__ = [
    "GAP",
    "Cell",
    "DistillSettings",
    "Emulator",
    "EmulatorSummary",
    "Estimate",
    "EvalSettings",
    "Experiment",
    "ExperimentConfig",
    "Part",
    "TaskSummary",
    "TrainSettings",
    "experiment_from_dict",
    "load_experiment_config",
    "measure_part",
    "reading",
    "recommendation",
    "run_experiment",
    "summarize",
    "table_markdown",
]
