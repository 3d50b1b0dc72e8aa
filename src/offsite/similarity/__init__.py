"""Layer similarity: pooled hidden states of every block, linear CKA, clustering analysis, logit and tuned lens.

Layers are numbered from 0 (the first transformer block) to L-1.
"""

from .analysis import LayerSimilarity, analysis_texts, analyze_similarity, layer_cka, write_similarity
from .cka import adjacent_similarity, has_variance, linear_cka, linear_cka_matrix
from .clustering import Clustering, Merge, cluster_adjacent
from .hidden_states import (
    HiddenStateConfig,
    PooledHiddenStates,
    block_outputs,
    capture_block_outputs,
    collect_hidden_states,
    example_texts,
    text_samples,
)
from .lens import LENS_KINDS, LensGrid, lens_grid, lens_logits
from .pooling import POOLINGS, pool, pooling_mask
from .tuned_lens import TunedLens, TunedLensConfig, train_tuned_lens

__all__ = [
    "LENS_KINDS",
    "POOLINGS",
    "Clustering",
    "HiddenStateConfig",
    "LayerSimilarity",
    "LensGrid",
    "Merge",
    "PooledHiddenStates",
    "TunedLens",
    "TunedLensConfig",
    "adjacent_similarity",
    "analysis_texts",
    "analyze_similarity",
    "block_outputs",
    "capture_block_outputs",
    "cluster_adjacent",
    "collect_hidden_states",
    "example_texts",
    "has_variance",
    "layer_cka",
    "lens_grid",
    "lens_logits",
    "linear_cka",
    "linear_cka_matrix",
    "pool",
    "pooling_mask",
    "text_samples",
    "train_tuned_lens",
    "write_similarity",
]
