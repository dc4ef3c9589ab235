"""Test-session settings and fixtures, shared by the unit tests and the notebooks run under nbval.

Everything runs offline and on a fresh cache, so results do not depend on the network or on what
an earlier run left behind; kernels started by nbval inherit these variables (set before any
library is imported: huggingface_hub and datasets read them at import).

Fixtures: a small processor built from a vocabulary, audio files written on the fly, and the
offline course model as ``python -m asr_helpers train`` trains it (once per session, for the slow
tests that need a trained model).
Markers (registered in ``pyproject.toml``): ``slow`` for training runs, command-line subprocesses
and wav2vec2-base-sized models (``-m "not slow"`` leaves them out), ``gpu`` for tests that need
CUDA, skipped here without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["ASR_HELPERS_MODE"] = "offline"
os.environ.setdefault("ASR_HELPERS_CACHE", tempfile.mkdtemp(prefix="asr_helpers_cache_"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from asr_helpers.modeling import load_model  # noqa: E402
from asr_helpers.preprocessing import build_processor, build_vocab  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402

SENTENCES = [
    "hi I'd like to check my balance",
    "can you freeze my card please",
    "I want to pay a bill",
    "how do I set up a joint account",
]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``@pytest.mark.gpu`` tests on a machine without CUDA."""
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


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
def course_training(tmp_path_factory) -> tuple[Path, str]:
    """The offline course model trained and saved by ``python -m asr_helpers train`` (3-6 minutes on
    2 CPU cores), and what the command printed; trained once, for every test that needs it."""
    folder = tmp_path_factory.mktemp("course") / "model"
    result = subprocess.run([sys.executable, "-m", "asr_helpers", "train", "--output-dir", str(folder)],
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result.stdout


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
