"""Fine-tuning the adapter (or the full model): AdamW with a cosine schedule and warmup, on the shared training
driver (:mod:`offsite.train.driver`: accumulation, clipping, evaluation and selection, metrics, checkpoints; one
code path for 1 or N processes).

A run directory ends with ``adapter.safetensors`` (or ``model/`` for ``all_weights``), ``manifest.json`` and
``metrics.jsonl``; while it runs it also holds ``checkpoint/``. Running the same command again resumes from the
checkpoint, and the run ends with the same adapter as one that was never interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from transformers import PreTrainedModel, get_cosine_schedule_with_warmup

from ..data.tasks import harness_metric
from ..emulator import save_adapter
from ..emulator.bundle import versions
from ..errors import OffsiteError
from ..paths import atomic_path, check_output, claim_directory, read_json, remove_output, write_json
from .checkpoint import check_identity
from .config import FinetuneConfig
from .data import FinetuneData, collate, load_finetune_data, step_batches, steps_per_epoch
from .driver import Schedule, TrainingJob, drive, warmup_steps
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
    ``config.out`` is checked and claimed as :func:`offsite.paths.claim_directory` says.
    """
    inputs = [p for p in (config.source, config.task, config.eval_task, config.bundle) if p and Path(p).exists()]
    out = check_output(config.out, inputs)
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
    metric = config.select or (harness_metric(config.eval_task or config.task) if data.multiple_choice else "loss")
    if metric != "loss" and not data.multiple_choice:
        raise OffsiteError(f"--select {metric} needs multiple-choice evaluation data; use --select loss")
    identity = _identity(config, target, data, accelerator.num_processes)
    if (out / MANIFEST).is_file():
        return _finished_run(out, identity, inputs, accelerator)

    model = target.model
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = set_trainable(target, config)
    optimizer = torch.optim.AdamW(trainable.values(), lr=config.lr, weight_decay=config.weight_decay)
    processes = accelerator.num_processes
    per_epoch = steps_per_epoch(len(data.train.pairs), config.batch_size, processes, config.grad_accum)
    total = per_epoch * config.epochs
    batches = step_batches(
        len(data.train.pairs), config.seed, config.batch_size, processes, config.grad_accum,
        accelerator.process_index,
        lambda items: collate([data.train.pairs[i] for i in items], target.tokenizer.pad_token_id, accelerator.device),
    )
    job = TrainingJob(
        accelerator, model, optimizer,
        get_cosine_schedule_with_warmup(optimizer, warmup_steps(config.warmup, total), total),
        trainable, batches,
        lambda trained: validate(accelerator, trained, target.tokenizer, data.eval, config.eval_batch_size),
        Selection(metric, config.select_include_init),
        Schedule(total, per_epoch, config.eval_every, config.log_every, config.save_every, config.max_grad_norm,
                 config.stop_after_steps),
        out / CHECKPOINT_DIR, out / METRICS_FILE, identity, "fine-tuning",
    )
    if main:
        claim_directory(out, inputs=inputs)
    ended = drive(job, progress)
    if not ended.completed:
        return FinetuneResult(out, False, ended.step, None, target.model)
    manifest = None
    if accelerator.is_main_process:
        manifest = _write_outputs(out, config, target, data, identity, trainable, ended.selection, ended.last_eval,
                                  total)
        remove_output(out / CHECKPOINT_DIR)
    accelerator.wait_for_everyone()
    return FinetuneResult(out, True, total, manifest, target.model.eval())


def _finished_run(out: Path, identity: dict[str, Any], inputs: list[str], accelerator: Accelerator) -> FinetuneResult:
    """The run finished before in ``out``, refused unless it was made with this ``identity``."""
    manifest = read_json(out / MANIFEST, "run manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise OffsiteError(f"{out} holds something other than a fine-tuning run; choose another --out")
    if "merge" in manifest or "hyperparameters" not in manifest:
        raise OffsiteError(f"{out} holds a merged adapter, not a fine-tuning run to continue; choose another --out")
    check_identity(_manifest_identity(manifest), identity, out)
    if accelerator.is_main_process:  # a kill just after the manifest was written leaves the checkpoint behind
        claim_directory(out, inputs=inputs)
        remove_output(out / CHECKPOINT_DIR)
    accelerator.print(f"offsite: {out} already holds this finished run")
    return FinetuneResult(out, True, manifest["steps"], manifest, None)


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
