"""The settings of one fine-tuning run, checked up front so that a bad value fails before any model is loaded."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import OffsiteError

METHODS = ("weights", "lora", "bitfit")
SELECT_METRICS = ("loss", "acc", "acc_norm", "exact_match")
PRECISIONS = ("no", "bf16", "fp16")

# Settings that only change where or how often things are written, not what a run ends with; a resumed run may
# change them.
_BOOKKEEPING = ("out", "save_every", "log_every", "stop_after_steps")


@dataclass(kw_only=True)
class RunSettings:
    """What every training run of offsite has, fine-tuning and distillation alike: where it writes (``out``), the
    optimiser (AdamW on a cosine schedule; ``batch_size`` per process, ``warmup`` below 1 a fraction of all steps,
    otherwise a number of steps), how often it evaluates, checkpoints and logs (optimizer steps), whether the
    untrained step 0 may be kept (``select_include_init``), and ``stop_after_steps``, which stops as if killed (for
    testing resumption)."""

    out: str
    lr: float = 1e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_every: int = 0
    eval_batch_size: int = 32
    select_include_init: bool = False
    save_every: int = 50
    log_every: int = 10
    mixed_precision: str = "no"
    stop_after_steps: int | None = None

    def check_run_settings(self, *at_least_one: str) -> None:
        """Refuse a bad shared setting, or a bad one of ``at_least_one`` (names of the subclass's counts)."""
        for name in ("batch_size", "eval_batch_size", "grad_accum", "save_every", "log_every", *at_least_one):
            if getattr(self, name) < 1:
                raise OffsiteError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.max_grad_norm <= 0 or min(self.warmup, self.weight_decay, self.eval_every) < 0:
            raise OffsiteError("--lr and --max-grad-norm must be positive; --warmup, --weight-decay, --eval-every >= 0")
        if self.mixed_precision not in PRECISIONS:
            raise OffsiteError(f"unknown --mixed-precision {self.mixed_precision!r}; choose one of: {', '.join(PRECISIONS)}")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def training_settings(self) -> dict[str, Any]:
        """Every setting that shapes what the run ends with: a checkpoint resumes only when these match."""
        return {k: v for k, v in self.to_json().items() if k not in _BOOKKEEPING}


@dataclass(kw_only=True)
class FinetuneConfig(RunSettings):
    """One run of ``offsite finetune``.

    ``source`` is a bundle directory (train its adapter on its emulator) or, with ``full``, a model name or path
    (train that model itself: the blocks named by ``adapter``/``adapter_layers``/``bundle``, or every weight with
    ``all_weights``). ``task`` is a registered task, a ``.jsonl`` file (``{"prompt","choices","gold"}`` or
    ``{"prompt","completion"}`` lines) or a plain-text file; ``eval_task`` defaults to ``task``. One optimizer
    step sees ``batch_size × processes × grad_accum`` sequences. ``select`` (None: the task's harness metric,
    :func:`offsite.data.tasks.harness_metric`, for multiple-choice data, else ``loss``, the answer tokens'
    log-perplexity) picks the best evaluation among the trained steps (and the untrained adapter, step 0, with
    ``select_include_init``); ``eval_every`` 0 evaluates after each epoch. The shared settings: :class:`RunSettings`.
    """

    source: str
    task: str
    full: bool = False
    adapter: tuple[int, int] | None = None
    adapter_layers: tuple[int, ...] | None = None
    bundle: str | None = None
    all_weights: bool = False
    train_split: str = "train"
    eval_split: str = "validation"
    eval_task: str | None = None
    limit: int | None = None
    eval_limit: int | None = None
    max_length: int = 512
    epochs: int = 1
    method: str = "weights"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    select: str | None = None
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.check_run_settings("epochs", "max_length", "lora_rank")
        for name in ("limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OffsiteError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.method not in METHODS:
            raise OffsiteError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.select is not None and self.select not in SELECT_METRICS:
            raise OffsiteError(f"unknown --select {self.select!r}; choose one of: {', '.join(SELECT_METRICS)}")
        layer_choices = [n for n in ("adapter", "adapter_layers", "bundle") if getattr(self, n) is not None]
        if not self.full and (layer_choices or self.all_weights):
            raise OffsiteError("--adapter, --adapter-layers, --bundle and --all-weights only go with --full "
                               "(a bundle already names its adapter layers)")
        if len(layer_choices) + self.all_weights > 1:
            raise OffsiteError("give at most one of --adapter, --adapter-layers, --bundle, --all-weights")
        if self.all_weights and self.method != "weights":
            raise OffsiteError("--all-weights trains every weight; it does not combine with --lora or --bitfit")
        if self.adapter is not None:
            self.adapter = tuple(self.adapter)
        if self.adapter_layers is not None:
            self.adapter_layers = tuple(self.adapter_layers)
