"""The settings of one fine-tuning run, checked up front so that a bad value fails before any model is loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import OffsiteError

METHODS = ("weights", "lora", "bitfit")
SELECT_METRICS = ("loss", "acc", "acc_norm", "exact_match")
PRECISIONS = ("no", "bf16", "fp16")

# Settings that only change where or how often things are written, not the adapter a run ends with;
# a resumed run may change them.
_BOOKKEEPING = ("out", "save_every", "log_every", "stop_after_steps")


@dataclass
class FinetuneConfig:
    """One run of ``offsite finetune``.

    ``source`` is a bundle directory (train its adapter on its emulator) or, with ``full``, a model name or path
    (train that model itself: the blocks named by ``adapter``/``adapter_layers``/``bundle``, or every weight with
    ``all_weights``). ``task`` is a registered task, a ``.jsonl`` file (``{"prompt","choices","gold"}`` or
    ``{"prompt","completion"}`` lines) or a plain-text file; ``eval_task`` defaults to ``task``.
    ``batch_size`` is per process: one optimizer step sees ``batch_size × processes × grad_accum`` sequences.
    ``warmup`` below 1 is a fraction of all steps, otherwise a number of steps. ``select`` (None: the
    task's harness metric, :func:`offsite.data.tasks.harness_metric`, for multiple-choice data, else ``loss``, the
    answer tokens' log-perplexity) picks the best evaluation among the trained steps (and the untrained adapter,
    step 0, with ``select_include_init``). ``eval_every``/``save_every`` count optimizer steps (``eval_every`` 0:
    after each epoch). ``stop_after_steps`` stops as if killed (for testing resumption).
    """

    source: str
    task: str
    out: str
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
    lr: float = 1e-4
    batch_size: int = 8
    eval_batch_size: int = 32
    grad_accum: int = 1
    warmup: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    method: str = "weights"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    select: str | None = None
    select_include_init: bool = False
    eval_every: int = 0
    save_every: int = 50
    log_every: int = 10
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    stop_after_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "max_length", "lora_rank",
                     "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise OffsiteError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OffsiteError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.lr <= 0 or self.warmup < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0 or self.eval_every < 0:
            raise OffsiteError("--lr and --max-grad-norm must be positive; --warmup, --weight-decay, --eval-every >= 0")
        if self.method not in METHODS:
            raise OffsiteError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.select is not None and self.select not in SELECT_METRICS:
            raise OffsiteError(f"unknown --select {self.select!r}; choose one of: {', '.join(SELECT_METRICS)}")
        if self.mixed_precision not in PRECISIONS:
            raise OffsiteError(f"unknown --mixed-precision {self.mixed_precision!r}; choose one of: {', '.join(PRECISIONS)}")
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

    def training_settings(self) -> dict[str, Any]:
        """Every setting that shapes the trained adapter: a checkpoint resumes only when these match."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self) if f.name not in _BOOKKEEPING}

    def to_json(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
