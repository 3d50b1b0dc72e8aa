"""Zero-shot multiple-choice scoring speed and accuracy against lm-evaluation-harness's ``HFLM``, in one process.

Three variants score the same examples with the same model object and batch size (``batch_size`` counts
(prompt, choice) sequences per forward pass in all three):

- ``harness HFLM``: ``HFLM.loglikelihood`` on the (prompt, " " + choice) requests, the baseline of the ratios;
- ``offsite per-choice``: :func:`offsite.evaluate.score_choices` with ``reuse_prompt=False`` (prompt + choice per
  choice, as the harness does);
- ``offsite prompt-reuse``: the default path, each prompt run once and its KV cache reused for every choice.

After a warm-up of each, the variants take turns on consecutive chunks of ``--chunk`` examples and their times
are summed, so that load from other processes (on a shared CPU) falls on all three alike. Accuracy differences
are in points against the harness's log-likelihoods, with the harness's acc/acc_norm formulas.

    python benchmarks/bench_eval.py [--model smollm2-135m] [--tasks arc_easy,piqa] [--limit 100] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

VARIANTS = ("harness HFLM", "offsite per-choice", "offsite prompt-reuse")


def harness_loglikelihoods(lm, examples) -> list[list[float]]:
    from lm_eval.api.instance import Instance

    requests = [Instance("loglikelihood", {}, (e.prompt, e.continuation(j)), j) for e in examples for j in range(len(e.choices))]
    flat = iter(ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True))
    return [[next(flat) for _ in e.choices] for e in examples]


def accuracies(loglikelihoods: list[list[float]], examples) -> tuple[np.ndarray, np.ndarray]:
    """Per example, the predictions of acc and acc_norm, computed as the harness's ``process_results`` does."""
    pred = np.array([np.argmax(ll) for ll in loglikelihoods])
    pred_norm = np.array([np.argmax(np.array(ll) / np.array([float(len(c)) for c in e.choices]))
                          for ll, e in zip(loglikelihoods, examples)])
    return pred, pred_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="arc_easy,piqa")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=100, help="examples per task (default 100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=32, help="examples per turn of each variant (default 32)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    if args.threads:
        torch.set_num_threads(args.threads)

    from offsite.data import load_examples
    from offsite.evaluate import score_choices, supports_prompt_reuse
    from offsite.models import load_model
    from offsite.report.table import format_table

    model, tokenizer = load_model(args.model)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    runners = {
        "harness HFLM": lambda ex: harness_loglikelihoods(lm, ex),
        "offsite per-choice": lambda ex: [list(s.loglikelihoods) for s in score_choices(
            model, tokenizer, ex, batch_size=args.batch_size, reuse_prompt=False, progress=False)],
        "offsite prompt-reuse": lambda ex: [list(s.loglikelihoods) for s in score_choices(
            model, tokenizer, ex, batch_size=args.batch_size, reuse_prompt=True, progress=False)],
    }
    assert supports_prompt_reuse(model)
    rows = []
    for task in args.tasks.split(","):
        examples = load_examples(task, args.split, args.limit)
        for run in runners.values():
            run(examples[:4])  # warm-up
        seconds = dict.fromkeys(VARIANTS, 0.0)
        results: dict[str, list[list[float]]] = {name: [] for name in VARIANTS}
        for begin in range(0, len(examples), args.chunk):
            chunk = examples[begin:begin + args.chunk]
            for name, run in runners.items():
                start = time.perf_counter()
                results[name] += run(chunk)
                seconds[name] += time.perf_counter() - start
        gold = np.array([e.gold for e in examples])
        base_pred, base_norm = accuracies(results["harness HFLM"], examples)
        for name in VARIANTS:
            pred, pred_norm = accuracies(results[name], examples)
            rows.append({
                "task": task,
                "variant": name,
                "n": len(examples),
                "ex_per_s": len(examples) / seconds[name],
                "speedup": seconds["harness HFLM"] / seconds[name],
                "acc": 100 * float(np.mean(pred == gold)),
                "acc_norm": 100 * float(np.mean(pred_norm == gold)),
                "d_acc": 100 * float(np.mean(pred == gold) - np.mean(base_pred == gold)),
                "d_acc_norm": 100 * float(np.mean(pred_norm == gold) - np.mean(base_norm == gold)),
                "same_choice": 100 * float(np.mean((pred == base_pred) & (pred_norm == base_norm))),
                "max_abs_dll": max(abs(a - b) for x, y in zip(results[name], results["harness HFLM"]) for a, b in zip(x, y)),
            })
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.model}, {args.split}, batch size {args.batch_size}, {torch.get_num_threads()} threads, "
          f"turns of {args.chunk} examples; speedup = harness time / variant time; d_* = points vs the harness; "
          "same_choice = % of examples where acc and acc_norm pick the harness's choices")
    print(format_table(rows, ["task", "variant", "n", "ex_per_s", "speedup", "acc", "acc_norm", "d_acc", "d_acc_norm",
                              "same_choice", "max_abs_dll"]))


if __name__ == "__main__":
    main()
