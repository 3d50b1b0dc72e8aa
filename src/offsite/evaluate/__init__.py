"""Zero-shot evaluation: multiple choice by log-likelihood (as lm-evaluation-harness scores it) and perplexity.

Every function takes any causal LM object and its tokenizer (a full model, an emulator, a plugged-in model).
"""

from .multiple_choice import encode_choices, evaluate_multiple_choice, score_choices, supports_prompt_reuse
from .perplexity import text_perplexity
from .scores import ChoiceScores, PerplexityScore, TaskScores, mean_stderr
from .suite import EvalConfig, EvalReport, run_evaluation

__all__ = [
    "ChoiceScores",
    "EvalConfig",
    "EvalReport",
    "PerplexityScore",
    "TaskScores",
    "encode_choices",
    "evaluate_multiple_choice",
    "mean_stderr",
    "run_evaluation",
    "score_choices",
    "supports_prompt_reuse",
    "text_perplexity",
]
