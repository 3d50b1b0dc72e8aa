"""Emulators: clustering of layers, the layer map of each strategy, and bundles on disk."""

from .clustering import Clustering, Merge, cluster_adjacent

__all__ = ["Clustering", "Merge", "cluster_adjacent"]
