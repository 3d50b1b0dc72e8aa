"""Fidelity: how well an emulator stands in for its full model, measured on the same held-out samples.

Two figures, for the full model and the emulator alike: perplexity of a text (the first characters of a text
file, or a task split's prompt + gold answer samples joined by blank lines) and zero-shot multiple-choice
accuracy on the task split. An emulator whose perplexity is many times the full model's is a broken language
model: adapters tuned against it learn to repair it rather than the task, so this is said, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data import MultipleChoiceExample, load_examples, load_text
from ..emulator.layer_map import LayerMap
from ..emulator.view import emulator_view
from ..errors import OffsiteError
from ..similarity import example_texts
from .multiple_choice import evaluate_multiple_choice
from .perplexity import text_perplexity


@dataclass(frozen=True)
class FidelityConfig:
    """The held-out samples: zero-shot accuracy on ``limit`` questions of ``task``'s ``split`` (0: none);
    perplexity on the first ``text_chars`` characters of ``text_file``, or, without one, on the first
    ``text_limit`` samples of the same split joined into one text (0: none). ``warn_ratio``: how many times the
    full model's perplexity an emulator may reach before a warning."""

    task: str = "arc_easy"
    split: str = "validation"
    limit: int = 50
    text_file: str | None = None
    text_chars: int | None = 6000
    text_limit: int = 50
    batch_size: int = 32
    warn_ratio: float = 10.0

    def __post_init__(self) -> None:
        if self.limit < 0 or self.text_limit < 0:
            raise OffsiteError(f"fidelity sample counts must be 0 or more, got {self.limit} and {self.text_limit}")
        if self.limit == 0 and self.text_limit == 0 and self.text_file is None:
            raise OffsiteError("fidelity needs questions or a text to measure on")


@dataclass(frozen=True)
class HeldOut:
    """The text and questions both models are measured on, and where they come from."""

    text: str | None
    examples: Sequence[MultipleChoiceExample]
    description: dict[str, Any]


def held_out(config: FidelityConfig) -> HeldOut:
    """Read the samples of ``config``."""
    examples = load_examples(config.task, config.split, config.limit) if config.limit else []
    description: dict[str, Any] = {"task": config.task, "split": config.split, "questions": len(examples)}
    if config.text_file is not None:
        text = load_text(config.text_file)[: config.text_chars]
        description.update(text_file=config.text_file, text_chars=len(text))
    elif config.text_limit:
        samples = example_texts(load_examples(config.task, config.split, config.text_limit))
        text = "\n\n".join(samples)
        description.update(text=f"{len(samples)} {config.split} samples (prompt + gold answer) joined by blank lines")
    else:
        text = None
    return HeldOut(text, examples, description)


def model_figures(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, samples: HeldOut, batch_size: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Perplexity of the held-out text and zero-shot accuracy on the held-out questions of one model."""
    figures: dict[str, Any] = {}
    if samples.text is not None:
        score = text_perplexity(model, tokenizer, samples.text, progress=progress)
        figures.update(perplexity=score.perplexity, nll=score.nll, num_tokens=score.num_tokens)
    if samples.examples:
        scores = evaluate_multiple_choice(model, tokenizer, samples.examples, batch_size=batch_size, progress=progress)
        figures.update(acc=scores.acc, acc_norm=scores.acc_norm, n=scores.n)
    return figures


def emulator_fidelity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    layer_map: LayerMap,
    config: FidelityConfig = FidelityConfig(),
    full: dict[str, Any] | None = None,
    samples: HeldOut | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The figures of the full ``model`` (or ``full``, measured before on the same samples) and of its emulator
    of ``layer_map``, their perplexity ratio and the warning threshold, as stored in a bundle's manifest."""
    samples = samples or held_out(config)
    full = full or model_figures(model, tokenizer, samples, config.batch_size, progress)
    with emulator_view(model, layer_map) as emulator:
        emulated = model_figures(emulator, tokenizer, samples, config.batch_size, progress)
    ratio = emulated["perplexity"] / full["perplexity"] if "perplexity" in full else None
    return {"held_out": samples.description, "full": full, "emulator": emulated, "perplexity_ratio": ratio,
            "warn_ratio": config.warn_ratio}


def fidelity_warning(fidelity: dict[str, Any]) -> str | None:
    """One line when the emulator's perplexity is more than ``warn_ratio`` times the full model's, else None."""
    ratio = fidelity.get("perplexity_ratio")
    if ratio is None or ratio <= fidelity["warn_ratio"]:
        return None
    return (f"the emulator's perplexity ({fidelity['emulator']['perplexity']:,.0f}) is {ratio:,.0f}x the full "
            f"model's ({fidelity['full']['perplexity']:,.1f}), more than {fidelity['warn_ratio']:g}x: it is a broken "
            "language model, and adapters tuned on it may learn to repair it rather than the task")


def fidelity_rows(fidelity: dict[str, Any]) -> list[dict[str, str]]:
    """Rows (figure, full model, emulator) for a summary table."""
    full, emulated = fidelity["full"], fidelity["emulator"]
    rows = []
    if "perplexity" in full:
        rows.append({"figure": f"perplexity ({full['num_tokens']:,} tokens)", "full model": f"{full['perplexity']:,.1f}",
                     "emulator": f"{emulated['perplexity']:,.1f} ({fidelity['perplexity_ratio']:,.1f}x)"})
    if "acc" in full:
        for metric in ("acc", "acc_norm"):
            rows.append({"figure": f"{metric} % ({full['n']} questions)", "full model": f"{100 * full[metric]:.1f}",
                         "emulator": f"{100 * emulated[metric]:.1f}"})
    return rows
