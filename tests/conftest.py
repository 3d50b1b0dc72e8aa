"""Shared fixtures: each supported architecture, a character tokenizer, and the real embedded model."""

from __future__ import annotations

import pytest

from offsite.models import load_model
from offsite.models.tiny import TINY_ARCHITECTURES, tiny_tokenizer


@pytest.fixture(params=TINY_ARCHITECTURES)
def architecture(request) -> str:
    """Each supported architecture in turn (build the model with ``offsite.models.tiny.tiny_model``)."""
    return request.param


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded model (SmolLM2-135M) and its tokenizer, loaded once per test session."""
    return load_model("smollm2-135m")
