"""The heavy files of an experiment directory, and how each missing one is made: emulator bundles (with their
fidelity), distilled bundles, fine-tuning runs (one per learning rate, the best on validation chosen) and merged
adapters. None of them is needed again once the cells that use them are scored."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data import get_task
from ..emulator.create import EmulatorConfig
from ..emulator.summary import is_bundle
from ..errors import OffsiteError
from ..paths import read_json
from ..train import FinetuneConfig, finetune
from ..train.distill import distill
from ..train.loop import MANIFEST
from ..train.merge import MergeConfig, merge_runs
from ..train.validation import is_better
from .cells import Emulator
from .config import ExperimentConfig
from .locks import Busy, Locks
from .owner import emulate


def choose_run(runs: dict[float, Path]) -> tuple[Path, dict[str, Any]]:
    """Of finished runs by learning rate, the one whose kept step scores best on its own validation split (the
    first listed on a tie), and a record of the choice."""
    manifests = {lr: read_json(run / MANIFEST, "run manifest") for lr, run in runs.items()}
    chosen = None
    for lr, manifest in manifests.items():
        if chosen is None or is_better(manifest["select"], manifest["best"]["score"], manifests[chosen]["best"]["score"]):
            chosen = lr
    best = manifests[chosen]
    return runs[chosen], {
        "lr": chosen, "selected_step": best["selected_step"], "steps": best["steps"], "select": best["select"],
        "validation_score": best["best"]["score"], "selection_warning": best.get("selection_warning"),
        "candidates": [{"lr": lr, "selected_step": m["selected_step"], "validation_score": m["best"]["score"]}
                       for lr, m in manifests.items()],
    }


class Artifacts:
    """The bundles, runs and merged adapters under ``out`` for ``config``; ``base`` gives the loaded full model.
    Each missing one is made under its lock (see :mod:`.locks`): :class:`.locks.Busy` while another process makes
    it."""

    def __init__(self, config: ExperimentConfig, out: Path,
                 base: Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerBase]], log: Callable[[str], None]):
        self.config, self.out, self.base, self.log = config, out, base, log
        self.locks = Locks(out)

    def _make_once(self, path: Path, done: Callable[[], bool], make: Callable[[], None]) -> None:
        """``make()`` the file or directory ``path`` unless ``done()``: under ``path``'s lock, asking again once the
        lock is held (another process may have made it meanwhile)."""
        if done():
            return
        with self.locks.hold(str(path.relative_to(self.out))):
            if not done():
                make()

    def bundle_dir(self, emulator: Emulator, task: str) -> Path:
        """One bundle per emulator, or per emulator and task where each task has its own similarity."""
        root = self.out / "bundles"
        root = root / get_task(task).name if self.config.similarity_per_task else root
        return root / self.config.emulator_name(emulator)

    def run_dir(self, task: str, seed: int, emulator: Emulator | None, lr: float) -> Path:
        name = self.config.emulator_name(emulator) if emulator else "full"
        return self.out / "runs" / get_task(task).name / f"seed{seed}" / name / f"lr{lr:g}"

    def merged_dir(self, task: str, emulator: Emulator, method: str) -> Path:
        return self.out / "merged" / get_task(task).name / self.config.emulator_name(emulator) / method

    def ensure_bundle(self, emulator: Emulator, task: str) -> Path:
        """The bundle of ``emulator``, built (with its fidelity in the manifest) or distilled from the plain one."""
        path = self.bundle_dir(emulator, task)
        self._make_once(path, lambda: is_bundle(path), lambda: self._make_bundle(emulator, task, path))
        return path

    def _make_bundle(self, emulator: Emulator, task: str, path: Path) -> None:
        config = self.config
        if emulator.distilled:
            plain = self.ensure_bundle(replace(emulator, distilled=False), task)
            self.log(f"== distil: {config.label(emulator)}")
            settings = config.distillation.distill_config(str(plain), str(path), config.model, config.tasks)
            if not distill(settings, teacher=self.base()[0]).completed:
                raise OffsiteError(f"the distillation of {plain} stopped early; run the experiment again to resume")
            return
        self.log(f"== emulator: {config.label(emulator)}")
        model, tokenizer = self.base()
        emulator_config = EmulatorConfig(config.spec(emulator.strategy), emulator.keep, config.default_adapter,
                                         config.similarity_for(task))
        layer_map, _ = emulate(model, tokenizer, emulator_config, path, config.model, config.similarity_file,
                               config.fidelity)
        self.log(f"   layer map: {layer_map.describe()}")

    def finetune_config(self, task: str, seed: int, emulator: Emulator | None, lr: float) -> FinetuneConfig:
        """The run of ``emulator``'s adapter (None: the full model's) at ``lr``."""
        config, train = self.config, self.config.train
        if emulator is None:
            layers = {"all_weights": True} if config.full_ft == "all" else config.full_ft_adapter.to_config()
            source: dict[str, Any] = {"source": config.model, "full": True, **layers}
        else:
            source = {"source": str(self.ensure_bundle(emulator, task))}
        return train.finetune_config(lr, task=task, out=str(self.run_dir(task, seed, emulator, lr)), seed=seed,
                                     select=config.metric_for(task), **source)

    def _train(self, task: str, seed: int, emulator: Emulator | None, lr: float) -> None:
        settings = self.finetune_config(task, seed, emulator, lr)  # makes the bundle first
        self.log(f"== fine-tune: {self.config.label(emulator) if emulator else 'full model'} on {task} "
                 f"(seed {seed}, lr {lr:g})")
        finetune(settings)

    def ensure_run(self, task: str, seed: int, emulator: Emulator | None) -> tuple[Path, dict[str, Any]]:
        """The run of ``emulator`` (None: the full model) for ``seed``: every learning rate trained unless done,
        the best on validation chosen (see :func:`choose_run`)."""
        # The experiment directory's config.json pins these settings, so a finished run is taken as it is.
        runs = {lr: self.run_dir(task, seed, emulator, lr) for lr in self.config.train.lrs}
        busy = None
        for lr, out in runs.items():
            try:  # each learning rate under its own lock, so that two processes train two of them at once
                self._make_once(out, (out / MANIFEST).is_file, functools.partial(self._train, task, seed, emulator, lr))
            except Busy as error:
                busy = error
        if busy is not None:
            raise busy
        return choose_run(runs)

    def ensure_merged(self, task: str, emulator: Emulator, method: str) -> tuple[Path, dict[str, Any]]:
        """The adapter merged by ``method`` from the chosen run of every seed."""
        chosen = [self.ensure_run(task, seed, emulator) for seed in self.config.seeds]
        out = self.merged_dir(task, emulator, method)
        def merge() -> None:
            self.log(f"== merge: {self.config.label(emulator)} on {task} ({method})")
            merge_runs(MergeConfig(tuple(str(run) for run, _ in chosen), str(out), method))

        self._make_once(out, (out / MANIFEST).is_file, merge)
        return out, {"merge": {"method": method, "seeds": list(self.config.seeds),
                               "lrs": [record["lr"] for _, record in chosen]}}
