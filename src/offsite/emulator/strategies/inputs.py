"""What strategies draw on: the owner's calibration samples, and layer similarity, layer importance and
calibration batches measured on them, each on first request and then kept (so that several emulators of one
model share one measurement)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterator, Mapping

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...errors import OffsiteError
from ...models import num_layers
from ...similarity import HiddenStateConfig, analysis_texts, layer_cka
from ...similarity.files import read_similarity_file
from ...similarity.importance import LayerImportance, layer_importance
from ...similarity.language_loss import TokenBatches, token_batches

# Named settings of the samples; the authors' own: the first 512 validation examples, BOS + prompt + answer,
# weighted mean pooling (weights 1..T), nothing skipped.
SIMILARITY_PRESETS: dict[str, dict[str, Any]] = {
    "authors": {"split": "validation", "limit": 512, "pooling": "weighted", "skip_first": 0, "bos": True},
}


@dataclass(frozen=True)
class SimilaritySource:
    """The owner's calibration samples: what strategies measure layer similarity (linear CKA of pooled block
    outputs), importance and language-model loss on.

    Samples are a task split's prompt + gold answer, or the non-empty lines of ``text_file``. The train split by
    default, so that the evaluation split is never looked at when building an emulator. Loss-based measures
    (drop-one perplexity, the emulator search) use the first ``loss_limit`` samples.
    """

    task: str = "arc_easy"
    split: str = "train"
    limit: int = 128
    pooling: str = "mean"
    skip_first: int = 1
    batch_size: int = 8
    max_length: int = 512
    bos: bool = False
    text_file: str | None = None
    loss_limit: int = 64

    def __post_init__(self) -> None:
        if self.limit < 1 or self.loss_limit < 1:
            raise OffsiteError(f"sample limits must be at least 1, got {self.limit} and {self.loss_limit}")

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "SimilaritySource":
        """From a mapping of fields, where ``preset`` names :data:`SIMILARITY_PRESETS` defaults to start from."""
        values = dict(values or {})
        preset = values.pop("preset", None)
        if preset is not None and preset not in SIMILARITY_PRESETS:
            raise OffsiteError(f"unknown similarity preset {preset!r}; choose one of: {', '.join(SIMILARITY_PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise OffsiteError(f"unknown similarity setting {unknown[0]!r}; known: preset, {', '.join(sorted(known))}")
        return cls(**{**SIMILARITY_PRESETS.get(preset, {}), **values})

    def for_task(self, task: str) -> "SimilaritySource":
        """The same settings on another task's samples (similarity per task, as the authors measured it)."""
        return replace(self, task=task, text_file=None)

    def texts(self) -> tuple[list[str], dict]:
        """The samples and a description of where they came from."""
        task = None if self.text_file else self.task
        return analysis_texts(task, self.split, self.limit, self.text_file)

    def hidden_state_config(self) -> HiddenStateConfig:
        """How the samples' block outputs are pooled."""
        return HiddenStateConfig(self.pooling, self.skip_first, self.batch_size, self.max_length, self.bos)


@dataclass(frozen=True)
class Calibration:
    """A model with calibration batches, for strategies that compare emulators by their loss."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    batches: TokenBatches


class StrategyInputs:
    """Layer similarity, importance and calibration of one model on one :class:`SimilaritySource`.

    Given values (``similarity``, ``importance``) are used as they are; missing ones are measured on ``model``
    the first time a strategy asks. :meth:`tracking` tells which ones a strategy used, for its manifest.
    """

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        source: SimilaritySource = SimilaritySource(),
        *,
        similarity: np.ndarray | None = None,
        importance: LayerImportance | None = None,
        origin: dict[str, Any] | None = None,
        progress: bool = True,
    ):
        self.model, self.tokenizer, self.source, self.progress = model, tokenizer, source, progress
        self._similarity, self._importance = similarity, importance
        self._origin = origin
        self._texts: list[str] | None = None
        self._calibration: Calibration | None = None
        self._used: set[str] | None = None

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
        source: SimilaritySource = SimilaritySource(), progress: bool = True,
    ) -> "StrategyInputs":
        """CKA (and importance, where saved) from a ``similarity.json`` of ``offsite analyze``, checked against
        ``model``'s depth; anything else is measured on ``source``."""
        cka, data = read_similarity_file(path, num_layers(model))
        importance = LayerImportance.from_json(data["importance"]) if data.get("importance") else None
        settings = {k: data.get(k) for k in ("model", "task", "split", "num_samples", "pooling", "skip_first")}
        return cls(model, tokenizer, source, similarity=cka, importance=importance,
                   origin={"file": str(path), **settings}, progress=progress)

    @contextlib.contextmanager
    def tracking(self) -> Iterator[set[str]]:
        """Within the block, the names of the inputs asked for ("similarity", "importance", "calibration")."""
        self._used = used = set()
        try:
            yield used
        finally:
            self._used = None

    def _note(self, name: str) -> None:
        if self._used is not None:
            self._used.add(name)

    def _require_model(self, what: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self.model is None or self.tokenizer is None:
            raise OffsiteError(f"this strategy needs {what}: give it, or the model to measure it on")
        return self.model, self.tokenizer

    def texts(self) -> list[str]:
        if self._texts is None:
            self._texts, origin = self.source.texts()
            self._origin = self._origin or {**asdict(self.source), **origin, "num_samples": len(self._texts)}
        return self._texts

    def similarity(self) -> np.ndarray:
        """The L×L linear CKA between block outputs."""
        self._note("similarity")
        if self._similarity is None:
            model, tokenizer = self._require_model("a layer-similarity matrix")
            self._similarity = layer_cka(model, tokenizer, self.texts(), self.source.hidden_state_config(),
                                         self.progress)
        return self._similarity

    def importance(self, drop_one: bool = False) -> LayerImportance:
        """Per-block importance; drop-one perplexity is measured only where ``drop_one`` asks for it."""
        self._note("importance")
        if self._importance is None or (drop_one and self._importance.drop_one_perplexity is None):
            model, tokenizer = self._require_model("layer importance")
            self._importance = layer_importance(model, tokenizer, self.texts()[: self.source.loss_limit],
                                                self.source.hidden_state_config(), drop_one, self.progress)
        return self._importance

    def calibration(self) -> Calibration:
        """The model with batches of the first ``loss_limit`` samples."""
        self._note("calibration")
        if self._calibration is None:
            model, tokenizer = self._require_model("calibration samples")
            batches = token_batches(tokenizer, self.texts()[: self.source.loss_limit], self.source.max_length,
                                    self.source.batch_size)
            self._calibration = Calibration(model, tokenizer, batches)
        return self._calibration

    def record(self, used: set[str]) -> dict[str, Any]:
        """Manifest entries for the inputs named in ``used``: where they came from and their values."""
        record: dict[str, Any] = {}
        if used:
            record["similarity"] = self._origin
        if "similarity" in used:
            record["cka"] = self.similarity().round(8).tolist()
        if "importance" in used:
            record["importance"] = self._importance.to_json()
        if "calibration" in used:
            batches = self._calibration.batches
            record["calibration"] = {"num_samples": batches.num_samples, "num_tokens": batches.num_tokens}
        return record
