"""The training driver shared by fine-tuning and distillation: optimizer steps on a fixed plan, evaluations and model
selection, a metrics log, and checkpoints that a rerun resumes from to the same result; one code path for 1 or N
processes (``accelerate launch``). What is trained, on which batches, and how it is scored is the caller's.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, cpu_copy, load_checkpoint, load_into, restore_rng, save_run_checkpoint
from .metrics import append_metrics, prepare_metrics
from .validation import Selection


def warmup_steps(warmup: float, total: int) -> int:
    """Warmup steps of a schedule over ``total`` steps: ``warmup`` below 1 is a fraction of them, else a count."""
    return round(warmup * total) if warmup < 1 else int(warmup)


def train_step(
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[dict[str, torch.Tensor]],
    parameters: Sequence[nn.Parameter],
    max_grad_norm: float,
) -> float:
    """One optimizer step over the micro-``batches`` (gradients accumulated, synchronised across processes once,
    clipped to ``max_grad_norm``); returns the mean loss over micro-batches and processes. ``model(**batch)`` must
    return an object with a ``loss``."""
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=accelerator.device)
    for index, batch in enumerate(batches):
        # Only the last micro-batch needs the all-reduce of gradients.
        last = index == len(batches) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = model(**batch).loss
            accelerator.backward(loss / len(batches))
        total += loss.detach().float()
    accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return accelerator.reduce(total / len(batches), "mean").item()


@dataclass(frozen=True)
class Schedule:
    """How long a run is and when it logs, evaluates (``eval_every`` 0: after each epoch) and checkpoints;
    ``stop_after_steps`` stops as if killed (for testing resumption). Evaluations also run at step 0 and at the end."""

    total: int
    per_epoch: int
    eval_every: int
    log_every: int
    save_every: int
    max_grad_norm: float
    stop_after_steps: int | None = None

    def evaluates_at(self, step: int) -> bool:
        every = self.eval_every or self.per_epoch
        return step % every == 0 or step == self.total


@dataclass
class TrainingJob:
    """One run for :func:`drive`. ``batches(epoch, index)`` are this process's micro-batches of that optimizer step;
    ``evaluate(model)`` scores the unwrapped model (every process takes part); ``selection`` starts empty and decides
    which evaluation's ``trainable`` state the run ends with. ``identity`` must match for a checkpoint to resume."""

    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: dict[str, nn.Parameter]
    batches: Callable[[int, int], list[dict[str, torch.Tensor]]]
    evaluate: Callable[[nn.Module], dict[str, float]]
    selection: Selection
    schedule: Schedule
    checkpoint_dir: Path
    metrics_path: Path
    identity: dict[str, Any]
    description: str


@dataclass
class DriveResult:
    """How :func:`drive` ended: ``completed`` (the selected state is loaded into the trainable parameters) or
    stopped at ``step``, having started (or resumed) at ``start_step``; the selection and the last evaluation."""

    completed: bool
    step: int
    start_step: int
    selection: Selection
    last_eval: dict[str, Any] | None


def _resume(job: TrainingJob) -> Checkpoint | None:
    if not (job.checkpoint_dir / "state.json").is_file():
        return None
    checkpoint = load_checkpoint(job.checkpoint_dir, job.identity)
    load_into(job.trainable, checkpoint.trainable, "the checkpoint")
    job.optimizer.load_state_dict(checkpoint.optimizer)
    job.scheduler.load_state_dict(checkpoint.scheduler)
    job.accelerator.print(f"offsite: resuming {job.checkpoint_dir.parent} from step {checkpoint.step} of "
                          f"{job.schedule.total}")
    return checkpoint


@dataclass
class _Run:
    """Where a run of :func:`drive` stands: the prepared model and optimizer, its step, the selection and the best
    trainable state so far, the losses since the last metrics line, and the last evaluation."""

    job: TrainingJob
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int
    selection: Selection
    best: dict[str, torch.Tensor] | None
    losses: list[float]
    last_eval: dict[str, Any] | None = None

    @classmethod
    def start(cls, job: TrainingJob) -> "_Run":
        """From the job's checkpoint when it has one (weights, optimizer, scheduler, random state), else step 0."""
        accelerator = job.accelerator
        checkpoint = _resume(job)
        # The scheduler is stepped by hand once per optimizer step, so it is not handed to accelerate (which would
        # step it once per process).
        model, optimizer = accelerator.prepare(job.model, job.optimizer)
        if checkpoint is None:
            run = cls(job, model, optimizer, 0, job.selection, None, [])
        else:
            if accelerator.scaler is not None and checkpoint.scaler is not None:
                accelerator.scaler.load_state_dict(checkpoint.scaler)
            restore_rng(checkpoint.rng, accelerator.process_index)
            run = cls(job, model, optimizer, checkpoint.step, Selection.from_json(checkpoint.best_record),
                      checkpoint.best, checkpoint.losses)
        if accelerator.is_main_process:
            job.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            prepare_metrics(job.metrics_path, run.step if checkpoint else None)
        accelerator.wait_for_everyone()
        return run

    def log(self, record: dict[str, Any]) -> None:
        if self.job.accelerator.is_main_process:
            epoch = self.step / self.job.schedule.per_epoch
            append_metrics(self.job.metrics_path, {"step": self.step, "epoch": epoch, **record})

    def evaluate(self) -> None:
        """Score the model now; its trainable state becomes the best when the selection prefers this score."""
        scores = self.job.evaluate(self.job.accelerator.unwrap_model(self.model))
        self.last_eval = {"step": self.step, **scores}
        self.log({f"eval_{k}": v for k, v in scores.items()})
        if self.selection.offer(self.step, scores):
            self.best = cpu_copy(self.job.trainable)
        self.job.accelerator.print(f"offsite: step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    def advance(self) -> float:
        """One optimizer step, then the metrics line, evaluation and checkpoint that fall on the new step."""
        job, schedule = self.job, self.job.schedule
        batches = job.batches(*divmod(self.step, schedule.per_epoch))
        loss = train_step(job.accelerator, self.model, self.optimizer, batches, list(job.trainable.values()),
                          schedule.max_grad_norm)
        if not job.accelerator.optimizer_step_was_skipped:  # an fp16 overflow skips the step, and so the schedule
            job.scheduler.step()
        self.step += 1
        self.losses.append(loss)
        if self.step % schedule.log_every == 0 or self.step == schedule.total:
            self.log({"loss": sum(self.losses) / len(self.losses), "lr": job.scheduler.get_last_lr()[0]})
            self.losses = []
        if schedule.evaluates_at(self.step):
            self.evaluate()
        if self.step % schedule.save_every == 0 and self.step < schedule.total:
            save_run_checkpoint(job.accelerator, job.checkpoint_dir, self.step, job.identity, job.trainable, self.best,
                                self.selection.to_json(), self.optimizer, job.scheduler, self.losses)
        return loss

    def stops_early(self) -> bool:
        """Whether ``stop_after_steps`` stops the run here, as if it were killed."""
        stop, total = self.job.schedule.stop_after_steps, self.job.schedule.total
        return stop is not None and stop <= self.step < total


def drive(job: TrainingJob, progress: bool = True) -> DriveResult:
    """Train ``job`` from its checkpoint (or from the start) to the end of its schedule, or until it is stopped."""
    accelerator, total = job.accelerator, job.schedule.total
    run = _Run.start(job)
    start_step = run.step
    if run.step == 0:
        run.evaluate()  # the score of the untrained start (a candidate only when the selection includes it)
    run.model.train()
    main = accelerator.is_main_process
    with tqdm(total=total, initial=run.step, desc=job.description, unit="step", disable=not (progress and main)) as bar:
        while run.step < total:
            loss = run.advance()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{job.scheduler.get_last_lr()[0]:.2e}")
            if run.stops_early():
                accelerator.wait_for_everyone()
                return DriveResult(False, run.step, start_step, run.selection, run.last_eval)
    load_into(job.trainable, run.best, "the best state")
    selection = run.selection
    accelerator.print(f"offsite: kept step {selection.best['step']} (best {selection.metric} {selection.best['score']:.4f})")
    warning = selection.warning()
    if warning:
        accelerator.print(f"offsite: warning: {warning}", file=sys.stderr)
    return DriveResult(True, run.step, start_step, selection, run.last_eval)
