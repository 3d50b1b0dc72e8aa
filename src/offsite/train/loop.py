"""The fine-tuning loop: AdamW with a cosine schedule and warmup, gradient accumulation and clipping, evaluation
and best-adapter selection, metrics, and checkpoints to resume from; one code path for 1 or N processes
(``accelerate launch``).

A run directory ends with ``adapter.safetensors`` (or ``model/`` for ``all_weights``), ``manifest.json`` and
``metrics.jsonl``; while it runs it also holds ``checkpoint/``. Running the same command again resumes from the
checkpoint, and the run ends with the same adapter as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, get_cosine_schedule_with_warmup

from ..emulator import save_adapter
from ..emulator.bundle import versions
from ..errors import OffsiteError
from ..paths import atomic_path, read_json, write_json
from .checkpoint import Checkpoint, check_identity, cpu_copy, load_checkpoint, load_into, restore_rng, save_run_checkpoint
from .config import FinetuneConfig
from .data import FinetuneData, collate, epoch_plan, load_finetune_data, steps_per_epoch
from .metrics import append_metrics, prepare_metrics
from .trainable import Target, adapter_tensors, build_target, set_trainable
from .validation import Selection, validate

RUN_FORMAT = "offsite-run"
MANIFEST = "manifest.json"
ADAPTER_FILE = "adapter.safetensors"
MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoint"


@dataclass
class FinetuneResult:
    """How a run ended: ``completed`` or stopped early at ``step`` (resumable). ``manifest`` is the run's manifest
    (main process only); ``model`` the trained model with the selected adapter in place, in every process (None
    when the run had finished before this call)."""

    out: Path
    completed: bool
    step: int
    manifest: dict[str, Any] | None
    model: PreTrainedModel | None


def train_step(
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[dict[str, torch.Tensor]],
    parameters: Sequence[nn.Parameter],
    max_grad_norm: float,
) -> float:
    """One optimizer step over the micro-``batches`` (gradients accumulated, synchronised across processes once,
    clipped to ``max_grad_norm``); returns the mean loss over micro-batches and processes."""
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


def warmup_steps(warmup: float, total: int) -> int:
    """Warmup steps of a schedule over ``total`` steps: ``warmup`` below 1 is a fraction of them, else a count."""
    return round(warmup * total) if warmup < 1 else int(warmup)


def _identity(config: FinetuneConfig, target: Target, data: FinetuneData, num_processes: int) -> dict[str, Any]:
    """What a checkpoint or finished run must share with this command to count as the same run."""
    return {
        "settings": config.training_settings(),
        "base_fingerprint": target.base_fingerprint,
        "data_sha256": data.sha256,
        "num_processes": num_processes,
    }


def _manifest_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The identity (see :func:`_identity`) of a finished run, from its manifest."""
    return {
        "settings": manifest["hyperparameters"],
        "base_fingerprint": manifest["base_model_fingerprint"],
        "data_sha256": manifest["data"]["sha256"],
        "num_processes": manifest["num_processes"],
    }


def finetune(config: FinetuneConfig, progress: bool = True) -> FinetuneResult:
    """Fine-tune as ``config`` says and write the run directory ``config.out``; resume from its checkpoint if any.

    Works unchanged under ``accelerate launch`` with several processes; only the main process writes files.
    """
    out = Path(config.out)
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise OffsiteError("--mixed-precision fp16 needs a GPU; on the CPU use bf16 or no")
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    main = accelerator.is_main_process
    set_seed(config.seed)
    target = build_target(config)
    data = load_finetune_data(
        config.task, config.eval_task, config.train_split, config.eval_split, config.limit, config.eval_limit,
        target.tokenizer, config.max_length,
    )
    metric = config.select or ("acc" if data.multiple_choice else "loss")
    if metric != "loss" and not data.multiple_choice:
        raise OffsiteError(f"--select {metric} needs multiple-choice evaluation data; use --select loss")
    identity = _identity(config, target, data, accelerator.num_processes)
    if (out / MANIFEST).is_file():
        manifest = read_json(out / MANIFEST, "run manifest")
        check_identity(_manifest_identity(manifest), identity, out)
        accelerator.print(f"offsite: {out} already holds this finished run")
        return FinetuneResult(out, True, manifest["steps"], manifest, None)

    model = target.model
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = set_trainable(target, config)
    optimizer = torch.optim.AdamW(trainable.values(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = steps_per_epoch(len(data.train.pairs), config.batch_size, accelerator.num_processes, config.grad_accum)
    total = per_epoch * config.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps(config.warmup, total), total)

    checkpoint: Checkpoint | None = None
    if (out / CHECKPOINT_DIR / "state.json").is_file():
        checkpoint = load_checkpoint(out / CHECKPOINT_DIR, identity)
        load_into(trainable, checkpoint.trainable, "the checkpoint")
        optimizer.load_state_dict(checkpoint.optimizer)
        scheduler.load_state_dict(checkpoint.scheduler)
        accelerator.print(f"offsite: resuming {out} from step {checkpoint.step} of {total}")
    step = checkpoint.step if checkpoint else 0
    best = checkpoint.best if checkpoint else None
    selection = Selection.from_json(checkpoint.best_record) if checkpoint else Selection(metric, config.select_include_init)
    last_eval: dict[str, Any] | None = None

    # The scheduler is stepped by hand once per optimizer step, so it is not handed to accelerate (which would
    # step it once per process).
    model, optimizer = accelerator.prepare(model, optimizer)
    if checkpoint is not None:
        if accelerator.scaler is not None and checkpoint.scaler is not None:
            accelerator.scaler.load_state_dict(checkpoint.scaler)
        restore_rng(checkpoint.rng, accelerator.process_index)
    metrics_path = out / METRICS_FILE
    if main:
        out.mkdir(parents=True, exist_ok=True)
        prepare_metrics(metrics_path, step if checkpoint else None)
    accelerator.wait_for_everyone()

    def log(record: dict[str, Any]) -> None:
        if main:
            append_metrics(metrics_path, record)

    def evaluate() -> None:
        nonlocal best, last_eval
        scores = validate(accelerator, accelerator.unwrap_model(model), target.tokenizer, data.eval, config.eval_batch_size)
        last_eval = {"step": step, **scores}
        log({"step": step, "epoch": step / per_epoch, **{f"eval_{k}": v for k, v in scores.items()}})
        if selection.offer(step, scores):
            best = cpu_copy(trainable)
        accelerator.print(f"offsite: step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    if step == 0:
        evaluate()  # the zero-shot score of what the adapter runs on (a candidate only with select_include_init)
    plan: tuple[int, list] = (-1, [])
    losses: list[float] = checkpoint.losses if checkpoint else []
    model.train()
    with tqdm(total=total, initial=step, desc="fine-tuning", unit="step", disable=not (progress and main)) as bar:
        while step < total:
            epoch, index = divmod(step, per_epoch)
            if plan[0] != epoch:
                plan = (epoch, epoch_plan(len(data.train.pairs), config.seed, epoch, config.batch_size,
                                          accelerator.num_processes, config.grad_accum))
            batches = [
                collate([data.train.pairs[i] for i in micro[accelerator.process_index]],
                        target.tokenizer.pad_token_id, accelerator.device)
                for micro in plan[1][index]
            ]
            loss = train_step(accelerator, model, optimizer, batches, list(trainable.values()), config.max_grad_norm)
            if not accelerator.optimizer_step_was_skipped:  # an fp16 overflow skips the step, and so the schedule
                scheduler.step()
            step += 1
            losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if step % config.log_every == 0 or step == total:
                log({"step": step, "epoch": step / per_epoch, "loss": sum(losses) / len(losses),
                     "lr": scheduler.get_last_lr()[0]})
                losses = []
            if (step % config.eval_every == 0 if config.eval_every else step % per_epoch == 0) or step == total:
                evaluate()
            if step % config.save_every == 0 and step < total:
                save_run_checkpoint(accelerator, out / CHECKPOINT_DIR, step, identity, trainable, best,
                                    selection.to_json(), optimizer, scheduler, losses)
            if config.stop_after_steps is not None and step >= config.stop_after_steps and step < total:
                accelerator.wait_for_everyone()
                return FinetuneResult(out, False, step, None, target.model)

    load_into(trainable, best, "the best state")
    accelerator.print(f"offsite: kept the adapter of step {selection.best['step']} (best {metric} "
                      f"{selection.best['score']:.4f})")
    warning = selection.warning()
    if warning:
        accelerator.print(f"offsite: warning: {warning}", file=sys.stderr)
    manifest = None
    if main:
        manifest = _write_outputs(out, config, target, data, identity, trainable, selection, last_eval, total)
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    accelerator.wait_for_everyone()
    return FinetuneResult(out, True, total, manifest, target.model.eval())


def _write_outputs(
    out: Path,
    config: FinetuneConfig,
    target: Target,
    data: FinetuneData,
    identity: dict[str, Any],
    trainable: dict[str, nn.Parameter],
    selection: Selection,
    final: dict[str, Any] | None,
    total: int,
) -> dict[str, Any]:
    """The adapter (or the whole model) at its best evaluation, then the manifest that marks the run finished."""
    if config.all_weights:
        with atomic_path(out / MODEL_DIR) as tmp:
            target.model.save_pretrained(tmp)
            target.tokenizer.save_pretrained(tmp)
        output = {"model": MODEL_DIR}
    else:
        save_adapter(out / ADAPTER_FILE, adapter_tensors(target), target.base_fingerprint)
        output = {"adapter": ADAPTER_FILE}
    manifest = {
        "format": RUN_FORMAT,
        "format_version": 1,
        **target.description,
        "base_model_fingerprint": target.base_fingerprint,
        "adapter_layers": list(target.layers),
        "trains": "all weights" if config.all_weights else config.method,
        "trainable_parameters": sum(p.numel() for p in trainable.values()),
        "data": {
            "task": config.task,
            "eval_task": config.eval_task or config.task,
            "kind": data.train.kind,
            "train_split": config.train_split,
            "eval_split": config.eval_split,
            "train_sequences": len(data.train.pairs),
            "eval_sequences": len(data.eval.pairs),
            "sha256": data.sha256,
        },
        "hyperparameters": config.training_settings(),
        "num_processes": identity["num_processes"],
        "steps": total,
        "select": selection.metric,
        "selected_step": selection.best["step"],
        "best": selection.best,
        "initial": selection.initial,
        "selection_warning": selection.warning(),
        "final": final,
        "outputs": output,
        "versions": versions(),
    }
    write_json(out / MANIFEST, manifest)
    return manifest
