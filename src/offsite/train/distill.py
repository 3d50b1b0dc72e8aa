"""Distilling an emulator, as Offsite-Tuning does: the emulator's frozen, non-adapter kept blocks are trained so
that it behaves like the full model, with the adapter blocks frozen at their pretrained weights.

On plain text (:mod:`offsite.data.corpus`), the emulator (student) and the full model (teacher, which the model
owner has) read the same tokens. The student's hidden state where its last emulated position ends, just before the
top adapter blocks, is pulled to the full model's hidden state at the same point (the input of the same original
layer; the final hidden state when the adapter has no top blocks):

    loss = lm_weight × LM loss of the student + kd_weight × mean(((h_full − h_student) / rms(h_full))²)

the mean over tokens and features, rms per token over the features (Offsite-Tuning's weights: 1 and 30). A block that fills several positions (CRaSh sharing) is
one set of weights, trained once and still tied afterwards. The step kept is the one with the lowest perplexity
on a held-out slice of the corpus. The result is an ordinary bundle with the distillation in its manifest.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from transformers import PreTrainedModel, get_cosine_schedule_with_warmup
from transformers.utils import ModelOutput

from ..data.corpus import Corpus, CorpusConfig, load_corpus, split_held_out, token_blocks
from ..emulator import Bundle, LayerMap, load_bundle, read_manifest, save_bundle
from ..errors import OffsiteError
from ..evaluate.forward import eval_mode, model_max_length
from ..models import layout_of, load_model
from ..models.fingerprint import fingerprint
from ..paths import claim_directory, remove_output
from .checkpoint import check_identity
from .config import RunSettings
from .data import step_batches, steps_per_epoch
from .driver import DriveResult, Schedule, TrainingJob, drive, warmup_steps
from .metrics import read_metrics
from .validation import Selection

SELECT_METRIC = "perplexity"
HELD_OUT_SEED = 0  # the held-out slice stays the same whatever the training seed, so runs compare


@dataclass(kw_only=True)
class DistillConfig(RunSettings):
    """One distillation of the bundle ``bundle`` into the bundle ``out``.

    ``model`` is the full model that teaches (default: the base model the bundle's manifest names); it must be the
    model the bundle was made from. ``steps`` optimizer steps of ``batch_size × processes × grad_accum`` blocks of
    the corpus; ``held_out`` blocks are set aside to select the step by perplexity (evaluated every ``eval_every``
    steps, 0: once per pass over the corpus, and at the end). The shared settings: :class:`RunSettings`.
    """

    bundle: str
    model: str | None = None
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    steps: int = 200
    batch_size: int = 4
    lm_weight: float = 1.0
    kd_weight: float = 30.0
    held_out: int = 32
    eval_every: int = 50
    eval_batch_size: int = 8

    def __post_init__(self) -> None:
        self.check_run_settings("steps", "held_out")
        if min(self.lm_weight, self.kd_weight) < 0 or self.lm_weight + self.kd_weight == 0:
            raise OffsiteError("--lm-weight and --kd-weight must be non-negative and not both zero")


@dataclass
class DistillResult:
    """How a distillation ended: ``completed`` or stopped at ``step`` (resumable). ``manifest`` is the new bundle's
    (main process only); ``model`` the distilled emulator (None when the bundle had been finished before)."""

    out: Path
    completed: bool
    step: int
    manifest: dict[str, Any] | None
    model: PreTrainedModel | None


@dataclass
class DistillationLoss(ModelOutput):
    """The objective of one batch and its two parts (detached)."""

    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    hidden_loss: torch.Tensor | None = None


def match_points(layer_map: LayerMap) -> tuple[int, int]:
    """Where the student is pulled to the teacher, as indices into each model's ``output_hidden_states``: the input
    of the first block of the top adapter run (teacher: that layer's index; student: its position in the emulator),
    or the final hidden state of each when the adapter has no top blocks."""
    top = layer_map.num_layers
    while top - 1 in layer_map.adapter_layers:
        top -= 1
    if top == layer_map.num_layers:
        return top, len(layer_map.emulator_sources)
    return top, layer_map.adapter_positions[layer_map.adapter_layers.index(top)]


def normalised_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean(((teacher − student) / rms(teacher))²), the rms per token over the last (feature) dimension."""
    rms = teacher.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-6)
    return ((teacher - student) / rms).pow(2).mean()


class DistillationObjective(nn.Module):
    """The student (an emulator) and its frozen teacher (the full model); ``forward(input_ids)`` gives the loss."""

    def __init__(self, student: PreTrainedModel, teacher: PreTrainedModel, layer_map: LayerMap, lm_weight: float,
                 kd_weight: float) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher
        self.teacher_index, self.student_index = match_points(layer_map)
        self.lm_weight, self.kd_weight = lm_weight, kd_weight
        teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> "DistillationObjective":
        super().train(mode)
        self.teacher.eval()  # the teacher never trains: no dropout in it
        return self

    def forward(self, input_ids: torch.Tensor) -> DistillationLoss:
        student = self.student(input_ids=input_ids, labels=input_ids, output_hidden_states=True, use_cache=False)
        with torch.no_grad():
            # The base model without its head: the teacher's logits are not needed.
            teacher = self.teacher.base_model(input_ids=input_ids, output_hidden_states=True, use_cache=False)
        hidden_loss = normalised_mse(student.hidden_states[self.student_index].float(),
                                     teacher.hidden_states[self.teacher_index].float())
        loss = self.lm_weight * student.loss + self.kd_weight * hidden_loss
        return DistillationLoss(loss, student.loss.detach(), hidden_loss.detach())


def distillable_parameters(student: PreTrainedModel, layer_map: LayerMap) -> dict[str, nn.Parameter]:
    """Freeze the emulator except its frozen (non-adapter) kept blocks and return their parameters by name.

    A block shared by several positions is listed once, under its first position (its tied copies follow it).
    """
    sources = layer_map.emulator_sources
    prefix = layout_of(student).blocks
    firsts = tuple(f"{prefix}.{sources.index(layer)}." for layer in layer_map.frozen_layers)
    if not firsts:
        raise OffsiteError("nothing to distil: the emulator keeps no block besides the adapter")
    trainable = {}
    for name, parameter in student.named_parameters():
        parameter.requires_grad_(name.startswith(firsts))
        if parameter.requires_grad:
            trainable[name] = parameter
    return trainable


def held_out_scores(
    accelerator: Accelerator, objective: DistillationObjective, blocks: torch.Tensor, batch_size: int
) -> dict[str, float]:
    """The student's ``perplexity`` (and ``lm_loss``, its log) and ``hidden_loss`` on ``blocks``, each process
    scoring its share."""
    mine = blocks[accelerator.process_index :: accelerator.num_processes]
    totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
    with eval_mode(objective):
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size].to(accelerator.device)
            out = objective(batch)
            # Every block has the same length, so the mean over blocks of per-block means is the mean over tokens.
            totals += torch.tensor([out.lm_loss.item(), out.hidden_loss.item(), 1.0], dtype=torch.float64,
                                   device=totals.device) * len(batch)
    lm_loss, hidden_loss, count = accelerator.reduce(totals, "sum").tolist()
    return {SELECT_METRIC: math.exp(lm_loss / count), "lm_loss": lm_loss / count, "hidden_loss": hidden_loss / count}


def load_teacher(bundle: Bundle, model: str | None, loaded: PreTrainedModel | None = None) -> tuple[str, PreTrainedModel]:
    """The full model that teaches: ``model``, or the base model the bundle names (``loaded``, when the caller
    holds it already, is used instead of loading it again); refused unless it is the model the bundle was made
    from."""
    name = model or bundle.manifest["base_model"].get("name")
    if not name:
        raise OffsiteError("the bundle does not name its base model; give it with --model")
    teacher = loaded if loaded is not None else load_model(name)[0]
    if fingerprint(teacher) != bundle.base_fingerprint:
        raise OffsiteError(f"{name} is not the model this bundle was made from (fingerprints differ)")
    return name, teacher.eval()


def work_dir(out: Path) -> Path:
    """Where a distillation into ``out`` keeps its checkpoint and metrics until the bundle is written."""
    return out.with_name(out.name + ".distilling")


def _corpus_blocks(config: DistillConfig, bundle: Bundle) -> tuple[Corpus, torch.Tensor, torch.Tensor]:
    if config.corpus.block_size > model_max_length(bundle.model):
        raise OffsiteError(f"--block-size {config.corpus.block_size} is longer than the model's maximum of "
                           f"{model_max_length(bundle.model)} tokens")
    corpus = load_corpus(config.corpus)
    blocks = token_blocks(corpus.documents, bundle.tokenizer, config.corpus.block_size)
    return (corpus, *split_held_out(blocks, config.held_out, HELD_OUT_SEED))


def _finished(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a finished distillation with this ``identity`` at ``out``; None if there is none."""
    if not (out / "manifest.json").is_file():
        return None
    manifest = read_manifest(out)
    if "distillation" not in manifest:
        raise OffsiteError(f"{out} holds a bundle that was not distilled; choose another --out")
    check_identity(manifest["distillation"]["identity"], identity, out)
    return manifest


def distill(config: DistillConfig, progress: bool = True, teacher: PreTrainedModel | None = None) -> DistillResult:
    """Distil the emulator of ``config.bundle`` and write the distilled bundle ``config.out``; resume from an
    interrupted run's checkpoint if there is one. Works unchanged under ``accelerate launch``.

    ``teacher``: the full model ``config.model`` names, when the caller has it loaded (it is checked against the
    bundle all the same, and left in eval mode with its gradients off); None loads it.
    """
    out = Path(config.out)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    bundle = load_bundle(config.bundle)
    teacher_name, teacher = load_teacher(bundle, config.model, teacher)
    corpus, train_blocks, held_out = _corpus_blocks(config, bundle)
    identity = {
        "settings": config.training_settings(),
        "bundle_fingerprint": fingerprint(bundle.model),
        "base_fingerprint": bundle.base_fingerprint,
        "data_sha256": hashlib.sha256(train_blocks.numpy().tobytes() + held_out.numpy().tobytes()).hexdigest(),
        "num_processes": accelerator.num_processes,
    }
    finished = _finished(out, identity)
    if finished is not None:
        accelerator.print(f"offsite: {out} already holds this distilled bundle")
        return DistillResult(out, True, config.steps, finished, None)

    objective = DistillationObjective(bundle.model, teacher, bundle.layer_map, config.lm_weight, config.kd_weight)
    trainable = distillable_parameters(bundle.model, bundle.layer_map)
    optimizer = torch.optim.AdamW(trainable.values(), lr=config.lr, weight_decay=config.weight_decay)
    processes = accelerator.num_processes
    per_epoch = steps_per_epoch(len(train_blocks), config.batch_size, processes, config.grad_accum)
    batches = step_batches(len(train_blocks), config.seed, config.batch_size, processes, config.grad_accum,
                           accelerator.process_index,
                           lambda items: {"input_ids": train_blocks[items].to(accelerator.device)})
    work = work_dir(out)
    job = TrainingJob(
        accelerator, objective, optimizer,
        get_cosine_schedule_with_warmup(optimizer, warmup_steps(config.warmup, config.steps), config.steps),
        trainable, batches, lambda model: held_out_scores(accelerator, model, held_out, config.eval_batch_size),
        Selection(SELECT_METRIC, config.select_include_init),
        Schedule(config.steps, per_epoch, config.eval_every, config.log_every, config.save_every,
                 config.max_grad_norm, config.stop_after_steps),
        work / "checkpoint", work / "metrics.jsonl", identity, "distilling",
    )
    if accelerator.is_main_process:
        claim_directory(work)
    started = time.perf_counter()
    ended = drive(job, progress)
    if not ended.completed:
        return DistillResult(out, False, ended.step, None, bundle.model)
    seconds = time.perf_counter() - started
    manifest = None
    if accelerator.is_main_process:
        record = _record(config, teacher_name, objective, corpus, (train_blocks, held_out), ended, identity,
                         read_metrics(work / "metrics.jsonl"), seconds)
        manifest = save_bundle(teacher, bundle.tokenizer, bundle.layer_map, out,
                               {**bundle.manifest, "distillation": record}, frozen_blocks_from=bundle.model)
        remove_output(work)
    accelerator.wait_for_everyone()
    return DistillResult(out, True, config.steps, manifest, bundle.model.eval())


def _record(
    config: DistillConfig,
    teacher: str,
    objective: DistillationObjective,
    corpus: Corpus,
    blocks: tuple[torch.Tensor, torch.Tensor],
    ended: DriveResult,
    identity: dict[str, Any],
    metrics: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """What the manifest says about the distillation."""
    selection = ended.selection
    before, after = selection.initial, selection.best
    return {
        "source_bundle": config.bundle,
        "teacher": teacher,
        "identity": identity,
        "pulled_at": {"teacher_hidden_state": objective.teacher_index, "student_hidden_state": objective.student_index},
        "corpus": {**corpus.stats, "train_blocks": len(blocks[0]), "held_out_blocks": len(blocks[1]),
                   "block_size": config.corpus.block_size},
        "steps": config.steps,
        "select": selection.metric,
        "selected_step": after["step"],
        "held_out_perplexity": {"before": before[SELECT_METRIC], "after": after[SELECT_METRIC]},
        "held_out_hidden_loss": {"before": before["hidden_loss"], "after": after["hidden_loss"]},
        "best": after,
        "initial": before,
        "final": ended.last_eval,
        "selection_warning": selection.warning(),
        # Wall clock of this call's steps and evaluations, per step.
        "seconds_per_step": seconds / max(1, ended.step - ended.start_step),
        "metrics": metrics,
    }
