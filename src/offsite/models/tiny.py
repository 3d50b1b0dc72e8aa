"""Tiny random-weight models of every supported architecture, and a byte-level tokenizer, for tests and benchmarks.

Nothing is downloaded: each model is built from its transformers config with a fixed seed.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    PhiConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

TINY_VOCAB = 260  # 256 Latin-1 characters + pad, bos, eos, unk
HIDDEN = 32
HEADS = 4


def _tiny_config(model_type: str, num_layers: int) -> PretrainedConfig:
    common = dict(vocab_size=TINY_VOCAB, bos_token_id=257, eos_token_id=258, pad_token_id=256)
    llama_like = dict(
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        max_position_embeddings=256,
        **common,
    )
    if model_type == "gpt2":
        return GPT2Config(n_embd=HIDDEN, n_layer=num_layers, n_head=HEADS, n_positions=256, **common)
    if model_type == "opt":
        return OPTConfig(
            hidden_size=HIDDEN,
            ffn_dim=64,
            num_hidden_layers=num_layers,
            num_attention_heads=HEADS,
            max_position_embeddings=256,
            word_embed_proj_dim=HIDDEN,
            **common,
        )
    if model_type == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=num_layers,
            num_attention_heads=HEADS,
            max_position_embeddings=256,
            **common,
        )
    if model_type == "bloom":
        return BloomConfig(hidden_size=HIDDEN, n_layer=num_layers, n_head=HEADS, **common)
    if model_type == "llama":
        return LlamaConfig(**llama_like)
    if model_type == "mistral":
        return MistralConfig(sliding_window=16, **llama_like)
    if model_type == "qwen2":
        return Qwen2Config(**llama_like)
    if model_type == "gemma3_text":
        # Alternate sliding and global attention so that slicing layer_types is exercised.
        layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)]
        return Gemma3TextConfig(head_dim=8, sliding_window=16, layer_types=layer_types, **llama_like)
    if model_type == "phi":
        return PhiConfig(
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=num_layers,
            num_attention_heads=HEADS,
            max_position_embeddings=256,
            **common,
        )
    raise ValueError(f"no tiny config for {model_type!r}")


TINY_ARCHITECTURES = ("gpt2", "opt", "gpt_neox", "bloom", "llama", "mistral", "qwen2", "gemma3_text", "phi")


def tiny_model(model_type: str = "llama", num_layers: int = 6, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM of ``model_type`` with ``num_layers`` blocks, in eval mode."""
    torch.manual_seed(seed)
    config = _tiny_config(model_type, num_layers)
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
