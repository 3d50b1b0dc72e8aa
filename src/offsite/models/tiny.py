"""Tiny random-weight models of every supported architecture, and a byte-level tokenizer, for tests and benchmarks.

Nothing is downloaded: each model is built from its transformers config with a fixed seed.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    FalconConfig,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    MixtralConfig,
    Olmo2Config,
    OPTConfig,
    Phi3Config,
    PhiConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2MoeConfig,
    Qwen3Config,
)

TINY_VOCAB = 260  # 256 Latin-1 characters + pad, bos, eos, unk
HIDDEN = 32
HEADS = 4
SLIDING_WINDOW = 16  # shorter than the test texts, so a sliding layer in the wrong place changes the logits
_TOKENS = dict(vocab_size=TINY_VOCAB, bos_token_id=257, eos_token_id=258, pad_token_id=256)


def _decoder(num_layers: int) -> dict[str, Any]:
    """The arguments most decoder configs share (named as Llama names them)."""
    return dict(
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=HEADS,
        max_position_embeddings=256,
        **_TOKENS,
    )


def _llama_like(num_layers: int) -> dict[str, Any]:
    """:func:`_decoder` with grouped-query attention (two KV heads)."""
    return dict(num_key_value_heads=2, **_decoder(num_layers))


def _alternating(num_layers: int) -> list[str]:
    return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)]


# Architecture name -> tiny config with that many blocks. Where an architecture has variants that run different
# code (Falcon's ALiBi and its 40B-style block), each variant gets a name of its own.
TINY_CONFIGS: dict[str, Callable[[int], PretrainedConfig]] = {
    "gpt2": lambda n: GPT2Config(n_embd=HIDDEN, n_layer=n, n_head=HEADS, n_positions=256, **_TOKENS),
    "opt": lambda n: OPTConfig(
        hidden_size=HIDDEN,
        ffn_dim=64,
        num_hidden_layers=n,
        num_attention_heads=HEADS,
        max_position_embeddings=256,
        word_embed_proj_dim=HIDDEN,
        **_TOKENS,
    ),
    "gpt_neox": lambda n: GPTNeoXConfig(**_decoder(n)),
    "bloom": lambda n: BloomConfig(hidden_size=HIDDEN, n_layer=n, n_head=HEADS, **_TOKENS),
    "llama": lambda n: LlamaConfig(**_llama_like(n)),
    "mistral": lambda n: MistralConfig(sliding_window=SLIDING_WINDOW, **_llama_like(n)),
    "qwen2": lambda n: Qwen2Config(**_llama_like(n)),
    # Sliding and global attention alternate, so that slicing layer_types is exercised.
    "gemma3_text": lambda n: Gemma3TextConfig(
        head_dim=HIDDEN // HEADS, sliding_window=SLIDING_WINDOW, layer_types=_alternating(n), **_llama_like(n)
    ),
    "phi": lambda n: PhiConfig(**_decoder(n)),
    # The upper half slides, as max_window_layers says.
    "qwen3": lambda n: Qwen3Config(
        head_dim=HIDDEN // HEADS,
        use_sliding_window=True,
        sliding_window=SLIDING_WINDOW,
        max_window_layers=n // 2,
        **_llama_like(n),
    ),
    # Gemma-2's own alternation, logit soft-capping and query scaling (its defaults).
    "gemma2": lambda n: Gemma2Config(head_dim=HIDDEN // HEADS, sliding_window=SLIDING_WINDOW, **_llama_like(n)),
    # Fused qkv_proj and gate_up_proj.
    "phi3": lambda n: Phi3Config(sliding_window=SLIDING_WINDOW, **_llama_like(n)),
    "olmo2": lambda n: Olmo2Config(**_llama_like(n)),
    # Falcon-7B's block: multi-query attention in parallel with the MLP, rotary positions.
    "falcon": lambda n: FalconConfig(hidden_size=HIDDEN, num_hidden_layers=n, num_attention_heads=HEADS, **_TOKENS),
    # Falcon-40B/180B's block: grouped KV heads, separate norms for attention and MLP.
    "falcon_40b": lambda n: FalconConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=n,
        num_attention_heads=HEADS,
        num_kv_heads=2,
        new_decoder_architecture=True,
        **_TOKENS,
    ),
    # Falcon-RW's block: ALiBi instead of rotary, attention then MLP.
    "falcon_alibi": lambda n: FalconConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=n,
        num_attention_heads=HEADS,
        alibi=True,
        multi_query=False,
        parallel_attn=False,
        **_TOKENS,
    ),
    "mixtral": lambda n: MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **_llama_like(n)),
    # Every second block is a mixture of experts with a shared expert; the others are dense.
    "qwen2_moe": lambda n: Qwen2MoeConfig(
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        decoder_sparse_step=2,
        **_llama_like(n),
    ),
}

TINY_ARCHITECTURES = tuple(TINY_CONFIGS)


def tiny_model(architecture: str = "llama", num_layers: int = 6, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM of ``architecture`` (a name in :data:`TINY_CONFIGS`) with ``num_layers``
    blocks, in eval mode."""
    if architecture not in TINY_CONFIGS:
        raise ValueError(f"no tiny config for {architecture!r}; there are {', '.join(TINY_CONFIGS)}")
    torch.manual_seed(seed)
    config = TINY_CONFIGS[architecture](num_layers)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: one token per Latin-1 character (others map to ``<unk>``), :data:`TINY_VOCAB` ids."""
    vocab = {**{chr(code): code for code in range(256)}, "<pad>": 256, "<s>": 257, "</s>": 258, "<unk>": 259}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
