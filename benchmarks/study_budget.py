"""The CPU budget of experiment configs (the emulator-size study): what each unit of work costs on this machine, and
how many units each config asks for.

Units, measured on the config's model with real ARC-Easy data (each the median of ``--repeats`` after a warm-up):

- a fine-tuning step (a batch of ``train.batch_size`` train questions; the adapter trains, gradients flow back
  through every block in between) on the full model and on an emulator of another depth;
- scoring 100 test questions (multiple choice, as ``offsite eval``), on the full model and on an emulator;
- a distillation step (``distillation.batch_size`` blocks of ``distillation.block_size`` tokens; the full model
  teaches, the emulator's non-adapter blocks train), for emulators of two depths.

Cost is linear in the number of blocks run, so each unit is measured at two depths and interpolated; an emulator's
depth comes from planning its layer map (CRaSh keeps the full depth: shared blocks fill the removed positions).
Times are process CPU seconds (all threads), with ``--threads`` torch threads (default 1: CPU seconds then do not
include threads waiting on each other); wall-clock hours on an idle machine with N cores are at best CPU hours / N.

    python benchmarks/study_budget.py configs/study-smollm2-arc-easy.yaml configs/headline-smollm2-arc-easy.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator

from offsite.data import load_examples
from offsite.emulator import load_bundle
from offsite.emulator.create import EmulatorConfig, plan_emulator, strategy_inputs, write_bundle
from offsite.emulator.strategies import StrategyInputs, plan_layer_map
from offsite.evaluate import evaluate_multiple_choice
from offsite.experiment import ExperimentConfig, load_experiment_config
from offsite.models import get_blocks, load_model, num_layers
from offsite.train import train_step
from offsite.train.data import collate, load_split, steps_per_epoch
from offsite.train.distill import DistillationObjective, distillable_parameters

ARC_EASY_TRAIN, ARC_EASY_TEST = 2251, 2376  # questions in the splits a null limit means


def timed(action: Callable[[], Any], repeats: int) -> float:
    """Median process CPU seconds of ``action`` over ``repeats`` runs after one warm-up run."""
    action()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        action()
        times.append(time.process_time() - start)
    return statistics.median(times)


def train_step_seconds(model, batch, positions, repeats: int) -> float:
    """One optimizer step training the blocks at ``positions`` of ``model`` on ``batch``."""
    accelerator = Accelerator()
    model.requires_grad_(False)
    blocks = get_blocks(model)
    parameters = [p for i in positions for p in blocks[i].parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=1e-12)
    model.train()
    seconds = timed(lambda: train_step(accelerator, model, optimizer, [batch], parameters, 1.0), repeats)
    model.eval().requires_grad_(False)
    return seconds


def distill_step_seconds(student, teacher, layer_map, blocks, repeats: int) -> float:
    accelerator = Accelerator()
    objective = DistillationObjective(student, teacher, layer_map, 1.0, 30.0)
    student.requires_grad_(False)
    parameters = list(distillable_parameters(student, layer_map).values())
    optimizer = torch.optim.AdamW(parameters, lr=1e-12)
    objective.train()
    batch = {"input_ids": blocks}
    seconds = timed(lambda: train_step(accelerator, objective, optimizer, [batch], parameters, 1.0), repeats)
    student.eval().requires_grad_(False)
    return seconds


def measure_units(config: ExperimentConfig, repeats: int, questions: int) -> dict[str, Any]:
    """CPU seconds per unit at the full depth and at the depth of the config's smallest uniform emulator."""
    model, tokenizer = load_model(config.model)
    depth = num_layers(model)
    adapter = config.default_adapter.resolve(depth)
    inputs = strategy_inputs(model, tokenizer, config.similarity, config.similarity_file, progress=False)
    task, train = config.tasks[0], config.train
    pairs = load_split(task, train.split, train.batch_size, tokenizer, 512).pairs
    batch = collate(pairs, tokenizer.pad_token_id, torch.device("cpu"))
    examples = load_examples(task, config.eval.split, questions)
    distillation = config.distillation
    tokens = torch.randint(0, model.config.vocab_size, (distillation.batch_size, distillation.block_size),
                           generator=torch.Generator().manual_seed(0))

    def score(target) -> Callable[[], None]:
        return lambda: evaluate_multiple_choice(target, tokenizer, examples, batch_size=config.eval.batch_size,
                                                progress=False)

    units: dict[str, Any] = {"inputs": inputs}
    with tempfile.TemporaryDirectory() as root:
        # The smallest uniform emulator, and a full-depth one (CRaSh's: shared blocks fill the removed positions).
        emulators = {}
        for name, strategy in (("small", "uniform"), ("full depth", "crash")):
            plan = plan_layer_map(strategy, inputs, depth, adapter, min(config.keep))
            write_bundle(model, tokenizer, plan, f"{root}/{name}", config.model)
            emulators[name] = load_bundle(f"{root}/{name}")
        small, shared = emulators["small"], emulators["full depth"]
        units["depths"] = [depth, len(small.layer_map.emulator_sources)]
        units["train_step"] = [train_step_seconds(model, batch, adapter, repeats),
                               train_step_seconds(small.model, batch, small.layer_map.adapter_positions, repeats)]
        log("train_step", units["train_step"])
        units["score_100"] = [timed(score(model), 1) * 100 / len(examples),
                              timed(score(small.model), 1) * 100 / len(examples)]
        log("score_100", units["score_100"])
        units["distill_step"] = [distill_step_seconds(e.model, model, e.layer_map, tokens, repeats)
                                 for e in (shared, small)]
        units["distill_tokens"] = tokens.numel()
        log("distill_step", units["distill_step"])
    return units


def log(name: str, values: Any) -> None:
    print(f"measured {name}: {values}", file=sys.stderr, flush=True)


def at_depth(pair: list[float], depths: list[int], depth: int) -> float:
    """Linear in depth through the two measured points."""
    (high, low), (d_high, d_low) = pair, depths
    return low + (high - low) * (depth - d_low) / (d_high - d_low)


def emulator_depths(config: ExperimentConfig, inputs: StrategyInputs) -> dict[tuple[str, int], int]:
    """The depth of each strategy's emulator at each size, planned once (a distilled emulator has its plain one's)."""
    sizes = dict.fromkeys((e.strategy, e.keep) for e in config.emulators)
    return {(strategy, keep): len(plan_emulator(inputs.model, inputs.tokenizer, EmulatorConfig(
        config.spec(strategy), keep, config.default_adapter), inputs).layer_map.emulator_sources)
        for strategy, keep in sizes}


def budget(config: ExperimentConfig, units: dict[str, Any]) -> dict[str, float]:
    """CPU hours per kind of work that ``config`` asks for (a fresh run, nothing reused)."""
    depths = units["depths"]
    full_depth = depths[0]
    emulator_depth = emulator_depths(config, units["inputs"])
    train, evaluation = config.train, config.eval
    steps = train.epochs * steps_per_epoch(train.limit or ARC_EASY_TRAIN, train.batch_size, 1, 1)
    evaluations = (steps // train.eval_every if train.eval_every else train.epochs) + 1  # and step 0
    select = (train.select_limit or 100) / 100
    test = (evaluation.limit or ARC_EASY_TEST) / 100
    runs_per_setting = len(config.seeds) * len(train.lrs)
    fidelity = (config.fidelity.limit + config.fidelity.text_limit) / 100  # questions, and about as many samples

    def run(depth: int) -> float:
        per_step = at_depth(units["train_step"], depths, depth)
        return runs_per_setting * (steps * per_step + evaluations * select * at_depth(units["score_100"], depths, depth))

    seconds = {"fine-tuning (with validation)": run(full_depth), "test scoring": 0.0, "distillation": 0.0,
               "fidelity": 0.0}
    full_score = units["score_100"][0]
    seconds["test scoring"] += test * full_score * (1 + len(config.seeds))  # Full ZS, Full FT
    for e in config.emulators:
        depth = emulator_depth[(e.strategy, e.keep)]
        seconds["fine-tuning (with validation)"] += run(depth)
        score = at_depth(units["score_100"], depths, depth)
        # Emulator ZS, and per seed Emulator FT and Plug-in (the plug-in runs the full model), and merged plug-ins.
        seconds["test scoring"] += test * (score + len(config.seeds) * (score + full_score) + len(config.merge) * full_score)
        seconds["fidelity"] += fidelity * (score + (0 if e.distilled else full_score))
        if e.distilled:
            d = config.distillation
            # Linear in the tokens of a step: a little more than shorter blocks cost (attention is quadratic).
            per_step = at_depth(units["distill_step"], depths, depth) * d.batch_size * d.block_size / units["distill_tokens"]
            held_out = (d.steps // d.eval_every + 1) * math.ceil(d.held_out / 8) * per_step / 3  # forward passes only
            seconds["distillation"] += d.steps * per_step + held_out
    hours = {kind: value / 3600 for kind, value in seconds.items()}
    hours["total"] = sum(hours.values())
    return hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="experiment configs (YAML); units are measured on the first's model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while measuring (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each step (default 3)")
    parser.add_argument("--questions", type=int, default=50, help="test questions scored per measurement (default 50)")
    parser.add_argument("--units", help="a JSON file of units measured before (this script's first output): "
                        "nothing is timed, only the emulators' depths are planned")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = [load_experiment_config(path) for path in args.configs]
    if args.units:
        units = json.loads(Path(args.units).read_text())["cpu_seconds"]
        model, tokenizer = load_model(configs[0].model)
        units["inputs"] = strategy_inputs(model, tokenizer, configs[0].similarity, configs[0].similarity_file,
                                          progress=False)
    else:
        units = measure_units(configs[0], args.repeats, args.questions)
    shown = {k: v for k, v in units.items() if k != "inputs"}
    print(json.dumps({"threads": args.threads, "cpu_seconds": shown}, indent=2))
    for path, config in zip(args.configs, configs):
        hours = budget(config, units)
        print(f"{path}: " + ", ".join(f"{kind} {value:.2f}" for kind, value in hours.items()) + " CPU hours")


if __name__ == "__main__":
    main()
