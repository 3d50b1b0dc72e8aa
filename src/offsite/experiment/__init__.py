"""The five-row experiment (Full ZS, Full FT, Emulator ZS, Emulator FT, Plug-in) per strategy and task."""

from .config import EvalSettings, ExperimentConfig, TrainSettings, experiment_from_dict, load_experiment_config
from .runner import Cell, Experiment, run_experiment
from .table import summarize, table_markdown

__all__ = [
    "Cell",
    "EvalSettings",
    "Experiment",
    "ExperimentConfig",
    "TrainSettings",
    "experiment_from_dict",
    "load_experiment_config",
    "run_experiment",
    "summarize",
    "table_markdown",
]
