"""The layer-similarity analysis: pooled hidden states → linear CKA of all block pairs → adjacent clusters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data import load_examples, load_text
from .clustering import Clustering, cluster_adjacent
from ..errors import OffsiteError
from ..models import num_layers
from ..paths import write_json
from .cka import adjacent_similarity, has_variance, linear_cka_matrix
from .hidden_states import HiddenStateConfig, collect_hidden_states, example_texts, text_samples
from .importance import LayerImportance, layer_importance


def analysis_texts(
    task: str | None = None, split: str = "validation", limit: int | None = None, text_file: str | None = None
) -> tuple[list[str], dict]:
    """The samples of a task split (prompt + " " + gold choice) or of a text file (one per non-empty line),
    and a description of where they came from, for the output JSON."""
    if (task is None) == (text_file is None):
        raise OffsiteError("give either a task or a text file as the source of samples")
    if limit is not None and limit < 1:
        raise OffsiteError(f"--limit must be at least 1, got {limit}")
    if task is not None:
        texts = example_texts(load_examples(task, split, limit))
        return texts, {"task": task, "split": split, "sample": 'prompt + " " + gold choice'}
    texts = text_samples(load_text(text_file), limit)
    return texts, {"text_file": str(text_file), "sample": "one non-empty line of the file"}


def layer_cka(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    config: HiddenStateConfig = HiddenStateConfig(),
    progress: bool = True,
) -> np.ndarray:
    """The L×L linear CKA matrix between the outputs of ``model``'s blocks (0..L-1) on ``texts``."""
    return linear_cka_matrix(collect_hidden_states(model, tokenizer, texts, config, progress).layers)


@dataclass(frozen=True)
class LayerSimilarity:
    """The result of :func:`analyze_similarity` for one model."""

    model: str
    source: dict
    config: HiddenStateConfig
    num_samples: int
    num_tokens: int
    cka: np.ndarray
    embedding_cka: np.ndarray | None
    clustering: Clustering
    importance: LayerImportance | None = None

    @property
    def adjacent(self) -> np.ndarray:
        return adjacent_similarity(self.cka)

    def cluster_rows(self) -> list[dict]:
        """One row per cluster for a summary table: its layers, representative and lowest CKA between members."""
        return [
            {
                "cluster": index,
                "layers": f"{cluster[0]}-{cluster[-1]}" if len(cluster) > 1 else str(cluster[0]),
                "size": len(cluster),
                "representative": representative,
                "min_cka": float(self.cka[np.ix_(cluster, cluster)].min()),
            }
            for index, (cluster, representative) in enumerate(
                zip(self.clustering.clusters, self.clustering.representatives)
            )
        ]

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "layers": "numbered from 0 (the first transformer block) to L-1; each is the block's output "
            "before the final norm",
            "num_layers": int(self.cka.shape[0]),
            **self.source,
            "num_samples": self.num_samples,
            "num_tokens_pooled": self.num_tokens,
            "pooling": self.config.pooling,
            "skip_first": self.config.skip_first,
            "max_length": self.config.max_length,
            "similarity": "linear CKA, float64",
            "cka": self.cka.round(8).tolist(),
            "adjacent": self.adjacent.round(8).tolist(),
            "embedding_cka": None if self.embedding_cka is None else self.embedding_cka.round(8).tolist(),
            **self.clustering.to_json(),
            "importance": None if self.importance is None else self.importance.to_json(),
        }


def analyze_similarity(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    num_clusters: int,
    config: HiddenStateConfig = HiddenStateConfig(),
    model_name: str = "model",
    source: dict | None = None,
    progress: bool = True,
    importance_limit: int = 0,
    drop_one: bool = True,
) -> LayerSimilarity:
    """CKA between all blocks of ``model`` on ``texts``, and their adjacent clustering into ``num_clusters``.

    The CKA of the embedding output with each block is added where the embedding varies across samples
    (with ``last`` pooling it may not: every sample can end in the same token). With ``importance_limit``, each
    block's importance is measured on the first that many samples (drop-one perplexity unless ``drop_one`` is off).
    """
    depth = num_layers(model)
    if not 1 <= num_clusters <= depth:
        raise OffsiteError(f"cannot form {num_clusters} clusters from {depth} layers; choose between 1 and {depth}")
    states = collect_hidden_states(model, tokenizer, texts, config, progress)
    if has_variance(states.embedding):
        full = linear_cka_matrix([states.embedding, *states.layers], ["embedding", *range(depth)])
        cka, embedding_cka = full[1:, 1:], full[0, 1:]
    else:
        cka, embedding_cka = linear_cka_matrix(states.layers), None
    return LayerSimilarity(
        model=model_name,
        source=source or {},
        config=config,
        num_samples=states.num_samples,
        num_tokens=states.num_tokens,
        cka=cka,
        embedding_cka=embedding_cka,
        clustering=cluster_adjacent(cka, num_clusters),
        importance=layer_importance(model, tokenizer, texts[:importance_limit], config, drop_one, progress)
        if importance_limit > 0 else None,
    )


def write_similarity(result: LayerSimilarity, out_dir: str | Path) -> list[Path]:
    """Write ``similarity.json``, ``cka.png`` (with the layers' importance under the map where measured) and
    ``adjacent.png`` into ``out_dir``; return their paths."""
    from ..report.similarity_plots import save_adjacent_plot, save_cka_heatmap  # matplotlib only when plotting

    out_dir = Path(out_dir)
    paths = [out_dir / "similarity.json", out_dir / "cka.png", out_dir / "adjacent.png"]
    write_json(paths[0], result.to_json())
    importance = result.importance
    measures = None if importance is None else {"block influence": importance.block_influence,
                                                "angular distance": importance.angular_distance}
    save_cka_heatmap(paths[1], result.cka, result.clustering.clusters, plot_title(result), measures,
                     None if importance is None else importance.drop_one_perplexity,
                     None if importance is None else importance.perplexity)
    save_adjacent_plot(paths[2], result.adjacent, result.clustering.clusters, plot_title(result))
    return paths


def plot_title(result: LayerSimilarity) -> str:
    """``model, pooling P (first K skipped), N samples`` for figure titles."""
    skipped = f", first {result.config.skip_first} skipped" if result.config.skip_first else ""
    return f"{result.model}: {result.config.pooling} pooling{skipped}, N={result.num_samples}"
