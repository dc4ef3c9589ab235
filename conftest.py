"""Test-session settings and fixtures, shared by the unit tests and the notebooks run under nbval.

Everything runs offline and on a fresh cache, so results do not depend on the network or on what
an earlier run left behind; kernels started by nbval inherit these variables (set before any
library is imported: huggingface_hub and datasets read them at import).

Fixtures: a small processor built from a vocabulary, a small ARPA language model, frames of a
model sure of a text (``spelled``), a three-row corpus folder, audio files written on the fly, and
the offline course model (``course_training``: notebook 05's, from the session's cache).
Markers (registered in ``pyproject.toml``): ``slow`` for training runs, command-line subprocesses
and wav2vec2-base-sized models (``-m "not slow"`` leaves them out), ``gpu`` for tests that need
CUDA, skipped here without it.

Two worker processes run the session (pytest-xdist, ``pyproject.toml``), each on one thread. One of
them takes the notebooks, in order, and the tests that read notebook 05's model (:func:`in_course_group`);
every other test module goes whole to either worker.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["ASR_HELPERS_MODE"] = "offline"
OWN_CACHE = None if "ASR_HELPERS_CACHE" in os.environ else tempfile.mkdtemp(prefix="asr_helpers_cache_")
"""A cache for this session alone (shared with the notebooks' kernels), removed when it ends; a set ``ASR_HELPERS_CACHE`` is kept."""
if OWN_CACHE:
    os.environ["ASR_HELPERS_CACHE"] = OWN_CACHE
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Each worker (pytest-xdist, pyproject.toml) on one thread, its kernels and subprocesses too: two
    # workers of two OpenMP threads each on two cores wait on each other. Outputs pass on any thread count.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from transformers import Wav2Vec2Config  # noqa: E402

from asr_helpers import ngram  # noqa: E402
from asr_helpers.checks import ConvGeometry  # noqa: E402
from asr_helpers.data import CORPUS_DIR  # noqa: E402
from asr_helpers.modeling import load_model  # noqa: E402
from asr_helpers.preprocessing import COURSE_CHECKPOINT  # noqa: E402
from asr_helpers.preprocessing import build_processor, build_vocab  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "benchmarks")]  # the tests import the scripts and benchmarks they check
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (Debian package espeak-ng)")
"""For tests that synthesise speech."""
BASE_CONV = ConvGeometry.of(Wav2Vec2Config())
"""wav2vec2-base's convolutions (the default configuration), which the course's small models copy: 25 ms windows every 20 ms."""
LM_SENTENCES = ["I want to pay a bill", "I want to freeze my card", "can you freeze my card please", "pay my gas bill"]
SENTENCES = [
    "hi I'd like to check my balance",
    "can you freeze my card please",
    "I want to pay a bill",
    "how do I set up a joint account",
]


def start_logged(command: list[str], env: dict[str, str], folder: Path) -> subprocess.Popen:
    """Start ``command`` in the background, its output in ``folder``'s stdout.txt and stderr.txt:
    files, not pipes, so that a process never waits on a full pipe while the test awaits another
    started beside it (:func:`finish_logged`)."""
    with open(folder / "stdout.txt", "w") as stdout, open(folder / "stderr.txt", "w") as stderr:
        return subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)


def finish_logged(process: subprocess.Popen, folder: Path, timeout: float) -> subprocess.CompletedProcess:
    """Wait for a :func:`start_logged` process; it must succeed (else its stderr's end is the message)."""
    process.wait(timeout=timeout)
    stdout, stderr = ((folder / name).read_text() for name in ("stdout.txt", "stderr.txt"))
    assert process.returncode == 0, stderr[-4000:]
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if OWN_CACHE:
        shutil.rmtree(OWN_CACHE, ignore_errors=True)


COURSE_GROUP = "course-model"
"""The scheduling group of the notebooks and of the tests that read notebook 05's model (``course_training``)."""
COURSE_GROUP_FILE = "ASR_HELPERS_TEST_COURSE_GROUP"
"""Where a worker lists the course group's tests for the scheduler, which sees test ids only."""


def in_course_group(item: pytest.Item) -> bool:
    """A notebook cell, or a test that reads the model notebook 05 trains: one worker runs them all, in
    order, so the notebooks run top to bottom and the model is trained once and before it is read."""
    return item.path.suffix == ".ipynb" or "course_training" in getattr(item, "fixturenames", ())


def pytest_configure(config: pytest.Config) -> None:
    """In the controller of a distributed run, name the file for the course group's list."""
    distributed = getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "loadscope"
    if distributed and "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tempfile.mkdtemp(prefix="asr_helpers_groups_")
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
        os.environ[COURSE_GROUP_FILE] = os.path.join(folder, "course.json")  # the workers inherit it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker, list the course group's tests (each worker collects them all, the same)."""
    target, worker = os.environ.get(COURSE_GROUP_FILE), os.environ.get("PYTEST_XDIST_WORKER")
    if target and worker:
        written = Path(f"{target}.{worker}")
        written.write_text(json.dumps([item.nodeid for item in items if in_course_group(item)]))
        written.replace(target)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope`` (``pyproject.toml``), each module whole to one worker, with the course group as one more scope."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseGroupScheduling(LoadScopeScheduling):
        course: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.course is None:  # called once every worker has collected
                self.course = set(json.loads(Path(os.environ[COURSE_GROUP_FILE]).read_text()))
            return COURSE_GROUP if nodeid in self.course else super()._split_scope(nodeid)

    return CourseGroupScheduling(config, log)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``@pytest.mark.gpu`` tests on a machine without CUDA."""
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(scope="session")
def model(processor):
    """The offline model with a CTC head for the fixture's vocabulary, in eval mode."""
    return load_model(processor, COURSE_CHECKPOINT, seed=0).eval()


@pytest.fixture(scope="session")
def model_dir(model, processor, tmp_path_factory):
    """``model`` and ``processor`` saved as ``train`` saves them."""
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def course_training() -> Path:
    """The offline course model, as notebook 05 and ``python -m asr_helpers train`` train it, from the
    session's cache: the notebooks run before the tests that use this, in the same worker
    (:func:`in_course_group`), so notebook 05 has trained it; a run of the tests alone trains it here
    (3-6 minutes on 2 CPU cores)."""
    from asr_helpers.training import course_model

    return course_model("offline")


def guide_greedy(model, processor, arrays) -> list[str]:
    """The guide's manual path, the reference that transcription is checked against: one padded
    batch of 16 kHz arrays -> logits -> argmax per frame -> ``batch_decode``."""
    inputs = processor(audio=list(arrays), sampling_rate=16_000, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs.to(model.device)).logits
    return processor.batch_decode(logits.argmax(dim=-1))


@pytest.fixture(scope="session")
def processor(tmp_path_factory):
    vocab = build_vocab(normalize_text(s) for s in SENTENCES)
    return build_processor(vocab, tmp_path_factory.mktemp("processor"))


@pytest.fixture(scope="session")
def arpa(tmp_path_factory) -> Path:
    """A Kneser-Ney trigram of four short banking sentences, as an ARPA file: 16 unigrams, 20 bigrams, 19 trigrams."""
    sentences = ngram.sentences_from_text(LM_SENTENCES)
    return ngram.write_arpa(ngram.kneser_ney(sentences, 3), tmp_path_factory.mktemp("lm") / "lm.arpa")


@pytest.fixture(scope="session")
def spelled(processor):
    """``spelled(text)``: log-probabilities of a model sure of ``text``, each letter for a few frames
    and a blank after each, over ``processor``'s tokens (random elsewhere, from ``seed``)."""

    def spell(text: str, frames_per_letter: int = 3, seed: int = 0) -> torch.Tensor:
        tokenizer = processor.tokenizer
        path = []
        for letter in text.replace(" ", "|"):
            path += [tokenizer.convert_tokens_to_ids(letter)] * frames_per_letter + [tokenizer.pad_token_id]
        logits = torch.randn(len(path), len(tokenizer), generator=torch.Generator().manual_seed(seed))
        logits[torch.arange(len(path)), path] += 8.0
        return logits.log_softmax(dim=-1)

    return spell


@pytest.fixture
def small_corpus(tmp_path):
    """Three rows of the shipped corpus (two of them test) in a corpus folder of their own."""
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["file"] in ("train/train_0000.flac", "test/test_0000.flac", "test/test_0001.flac")]
        fields = reader.fieldnames
    for row in rows:
        (tmp_path / row["file"]).parent.mkdir(exist_ok=True)
        shutil.copy(CORPUS_DIR / row["file"], tmp_path / row["file"])
    with (tmp_path / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


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
