"""Offsite fine-tuning of the adapter on an emulator (or of the full model, as the baseline)."""

from .config import FinetuneConfig
from .driver import train_step
from .loop import FinetuneResult, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "train_step"]
