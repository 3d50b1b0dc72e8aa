"""A short, stable fingerprint of a model's weights, so an adapter or bundle can refuse the wrong base model."""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

_SAMPLES_PER_TENSOR = 4096


def fingerprint(model: nn.Module) -> str:
    """SHA-256 (hex, 16 chars) over the architecture and, for every named tensor, its name, shape, dtype and a
    strided sample of its values. Cheap even for large models, yet any retrained or different model differs.
    """
    digest = hashlib.sha256()
    digest.update(model.config.model_type.encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
        sample = flat[::step].to(torch.float32).contiguous().cpu().numpy().tobytes()
        digest.update(json.dumps([name, list(tensor.shape), str(tensor.dtype)]).encode())
        digest.update(sample)
    return digest.hexdigest()[:16]
