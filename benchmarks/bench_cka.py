"""All-pairs linear CKA against a straightforward per-pair loop, in one process, on real pooled hidden states.

- ``per-pair loop``: :func:`offsite.similarity.linear_cka` (feature-space cross-products) called for every pair
  i ≤ j of the L layers, filling both halves of the matrix: the baseline of the ratio;
- ``all pairs``: :func:`offsite.similarity.linear_cka_matrix`, one product of the stacked centred Gram matrices.

Both run on the same pooled hidden states. The forward pass is :func:`offsite.similarity.collect_hidden_states`
on all samples (the model run and the pooling of every block's output). The three take turns for ``--repeats``
rounds and the median time of each is reported, so that load from other processes on a shared CPU falls on all
alike.

    python benchmarks/bench_cka.py [--model smollm2-135m] [--task arc_easy] [--limit 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def per_pair(layers: np.ndarray) -> np.ndarray:
    from offsite.similarity import linear_cka

    count = len(layers)
    matrix = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            matrix[i, j] = matrix[j, i] = linear_cka(layers[i], layers[j])
    return matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="arc_easy")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=128, help="samples (default 128)")
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--skip-first", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from offsite.data import load_examples
    from offsite.models import load_model
    from offsite.report.table import format_table
    from offsite.similarity import HiddenStateConfig, collect_hidden_states, example_texts, linear_cka_matrix

    model, tokenizer = load_model(args.model)
    texts = example_texts(load_examples(args.task, args.split, args.limit))
    config = HiddenStateConfig(args.pooling, args.skip_first)
    def forward():
        return collect_hidden_states(model, tokenizer, texts, config, progress=False)

    collect_hidden_states(model, tokenizer, texts[:8], config, progress=False)  # warm-up
    states = forward()
    runners = {"forward + pooling": forward, "per-pair loop": lambda: per_pair(states.layers),
               "all pairs": lambda: linear_cka_matrix(states.layers)}
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    results = {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            results[name] = run()
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    largest_difference = float(np.abs(results["all pairs"] - results["per-pair loop"]).max())
    rows = [
        {
            "variant": name,
            "median_s": median[name],
            "speedup_vs_loop": median["per-pair loop"] / median[name],
            "share_of_forward_%": 100 * median[name] / median["forward + pooling"],
        }
        for name in ("per-pair loop", "all pairs")
    ]
    layers, samples, width = states.layers.shape
    print(f"{args.model}: {layers} layers x {samples} samples x width {width} ({args.task} {args.split}, "
          f"{args.pooling} pooling), {torch.get_num_threads()} threads, median of {args.repeats} turns each; "
          f"forward pass + pooling of all samples {median['forward + pooling']:.2f} s")
    print(format_table(rows, ["variant", "median_s", "speedup_vs_loop", "share_of_forward_%"]))
    print(f"largest |difference| between the two matrices: {largest_difference:.3g}")


if __name__ == "__main__":
    main()
