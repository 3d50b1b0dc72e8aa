"""Checkpoints that let an interrupted run continue exactly where it was: safetensors and JSON only, no pickle.

A checkpoint directory (written whole, atomically) holds

- ``trainable.safetensors``: the trained parameters, by their names in the model;
- ``best.safetensors``: the trained parameters of the best evaluation so far (empty before the first one);
- ``optimizer.safetensors``: every tensor of the optimizer's per-parameter state, as ``{index}.{key}``;
- ``rng.safetensors``: each process's torch (and CUDA) generator state, as ``{process}.cpu`` / ``{process}.cuda.{i}``;
- ``state.json``: the step, the run's identity (what must match to resume), the optimizer's parameter groups and
  non-tensor state, the scheduler's and the gradient scaler's state, the best score, and the losses of the steps
  since the last metrics line (so the resumed run logs the same means).

The data order needs no saved state: each epoch's order follows from the seed (see :func:`offsite.train.data.epoch_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from safetensors.torch import save_file
from torch import nn

from ..emulator.adapter import read_safetensors
from ..errors import OffsiteError
from ..paths import atomic_path, read_json, write_json

CHECKPOINT_FORMAT = "offsite-checkpoint"


@dataclass
class Checkpoint:
    """Everything a run needs to continue after ``step``; the tensors are on the CPU."""

    step: int
    identity: dict[str, Any]
    trainable: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    best_record: dict[str, Any] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    losses: list[float]


def rng_state(process: int) -> dict[str, torch.Tensor]:
    """This process's torch generator states, named for :func:`restore_rng`."""
    state = {f"{process}.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state.update({f"{process}.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def restore_rng(rng: dict[str, torch.Tensor], process: int) -> None:
    """Set this process's torch generators to the states saved by :func:`rng_state`."""
    torch.set_rng_state(rng[f"{process}.cpu"])
    prefix = f"{process}.cuda."
    devices = sorted(int(k.removeprefix(prefix)) for k in rng if k.startswith(prefix))
    if devices:
        torch.cuda.set_rng_state_all([rng[f"{prefix}{i}"] for i in devices])


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": saved["param_groups"]}


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to the directory ``path``, replacing any older one only once complete."""
    optimizer_tensors, optimizer_rest = _split_optimizer(checkpoint.optimizer)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file(checkpoint.trainable, str(tmp / "trainable.safetensors"))
        save_file(checkpoint.best or {}, str(tmp / "best.safetensors"))
        save_file(optimizer_tensors, str(tmp / "optimizer.safetensors"))
        save_file(checkpoint.rng, str(tmp / "rng.safetensors"))
        write_json(
            tmp / "state.json",
            {
                "format": CHECKPOINT_FORMAT,
                "step": checkpoint.step,
                "identity": checkpoint.identity,
                "best": checkpoint.best_record,
                "optimizer": optimizer_rest,
                "scheduler": checkpoint.scheduler,
                "scaler": checkpoint.scaler,
                "losses": checkpoint.losses,
            },
        )


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable ``key: saved -> current`` for every leaf that differs."""
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def check_identity(saved: dict[str, Any], current: dict[str, Any], where: Path, what: str = "a run") -> None:
    """Refuse to continue ``what`` (a run) whose settings, data or base model differ from the saved ones."""
    differences = _differences(saved, current)
    if differences:
        shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
        raise OffsiteError(
            f"{where} holds {what} with other settings ({shown}); rerun with the same settings or choose another --out"
        )


def load_checkpoint(path: str | Path, identity: dict[str, Any]) -> Checkpoint:
    """Read the checkpoint at ``path``, refusing one written by a run with a different ``identity``."""
    path = Path(path)
    state = read_json(path / "state.json", "checkpoint state", ("format", "identity", "step", "best", "optimizer",
                                                                "scheduler", "scaler", "losses"))
    if state.get("format") != CHECKPOINT_FORMAT:
        raise OffsiteError(f"{path} is not an offsite checkpoint")
    check_identity(state["identity"], identity, path.parent)
    optimizer_tensors, _ = read_safetensors(path / "optimizer.safetensors", "checkpoint optimizer state")
    return Checkpoint(
        step=state["step"],
        identity=state["identity"],
        trainable=read_safetensors(path / "trainable.safetensors", "checkpoint weights")[0],
        best=read_safetensors(path / "best.safetensors", "checkpoint best weights")[0] or None,
        best_record=state["best"],
        optimizer=_join_optimizer(optimizer_tensors, state["optimizer"]),
        scheduler=state["scheduler"],
        scaler=state["scaler"],
        rng=read_safetensors(path / "rng.safetensors", "checkpoint random state")[0],
        losses=state["losses"],
    )


def cpu_copy(parameters: Mapping[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """Detached CPU copies of ``parameters`` (to keep the best state, or to checkpoint)."""
    return {name: p.detach().to("cpu", copy=True).contiguous() for name, p in parameters.items()}


def load_into(parameters: Mapping[str, nn.Parameter], tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Copy ``tensors`` into the same-named ``parameters``; ``what`` names the source in the error."""
    if set(tensors) != set(parameters):
        raise OffsiteError(f"{what} does not hold this run's trainable parameters")
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(tensors[name])


def save_run_checkpoint(
    accelerator: Accelerator,
    path: Path,
    step: int,
    identity: dict[str, Any],
    trainable: Mapping[str, nn.Parameter],
    best: dict[str, torch.Tensor] | None,
    best_record: dict[str, Any] | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    losses: list[float],
) -> None:
    """Write a checkpoint from the main process; every process contributes its random state."""
    rng: dict[str, torch.Tensor] = {}
    for part in gather_object([rng_state(accelerator.process_index)]):
        rng.update(part)
    if accelerator.is_main_process:
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
        save_checkpoint(
            path,
            Checkpoint(step, identity, cpu_copy(trainable), best, best_record, optimizer.state_dict(),
                       scheduler.state_dict(), scaler, rng, losses),
        )
    accelerator.wait_for_everyone()
