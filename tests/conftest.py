"""Fixtures: a small processor built from a vocabulary, and audio files written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_helpers.modeling import load_model
from asr_helpers.preprocessing import build_processor, build_vocab, normalize_text

SENTENCES = [
    "hi I'd like to check my balance",
    "can you freeze my card please",
    "I want to pay a bill",
    "how do I set up a joint account",
]


@pytest.fixture(scope="session")
def model(processor):
    """The offline model with a CTC head for the fixture's vocabulary, in eval mode."""
    return load_model(processor, "offline", seed=0).eval()


@pytest.fixture(scope="session")
def model_dir(model, processor, tmp_path_factory):
    """``model`` and ``processor`` saved as ``train`` saves them."""
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def processor(tmp_path_factory):
    vocab = build_vocab(normalize_text(s) for s in SENTENCES)
    return build_processor(vocab, tmp_path_factory.mktemp("processor"))


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    """A sine wave: its frequency survives resampling, which is what we check."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def write_audio(tmp_path):
    def write(name: str, data: np.ndarray, rate: int, **kwargs) -> Path:
        path = tmp_path / name
        sf.write(path, data, rate, **kwargs)
        return path

    return write
