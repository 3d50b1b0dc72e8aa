"""Offsite fine-tuning of the adapter on an emulator (or of the full model, as the baseline), and plug-in."""

from .config import FinetuneConfig
from .loop import FinetuneResult, finetune, train_step
from .plugin import plugin

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "plugin", "train_step"]
