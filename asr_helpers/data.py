"""Loading speech datasets: MInDS-14 from the hub, TIMIT from a local copy, or the shipped corpus.

Every loader returns a ``DatasetDict`` with ``train`` and ``test`` splits whose ``audio`` column is
``Audio(decode=False)``: a dict with the file's ``path`` and/or raw ``bytes``, decoded by
:func:`asr_helpers.audio.read_audio` (soundfile) because ``datasets`` 5.x decodes through
torchcodec, whose PyPI wheels need a CUDA build of torch and fail to load next to the CPU wheel.
The unseen evaluation set (:func:`load_unseen_set`) is one ``Dataset`` of file paths instead.
"""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path
from typing import Literal

from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset

Mode = Literal["offline", "hub"]
MODES: tuple[str, ...] = ("offline", "hub")
MINDS14_LANGS: tuple[str, ...] = (
    "cs-CZ", "de-DE", "en-AU", "en-GB", "en-US", "es-ES", "fr-FR",
    "it-IT", "ko-KR", "nl-NL", "pl-PL", "pt-PT", "ru-RU", "zh-CN",
)
MINDS14_COLUMNS: tuple[str, ...] = (
    "path", "audio", "transcription", "english_transcription", "intent_class", "lang_id",
)
HUB_HOST = ("huggingface.co", 443)
CORPUS_DIR = Path(__file__).parent / "corpus"
"""The shipped offline corpus (``python -m asr_helpers synth`` remakes it)."""
UNSEEN_DIR = Path(__file__).parent / "unseen"
"""A small evaluation set unlike the corpus: other sentences, voices, files and bands (``scripts/unseen_set.py``)."""
INTENTS: tuple[str, ...] = (
    "abroad", "address", "app_error", "atm_limit", "balance", "business_loan", "card_issues",
    "cash_deposit", "direct_debit", "freeze", "high_value_payment", "joint_account",
    "latest_transactions", "pay_bill",
)
"""MInDS-14's 14 intents, the names of its ``intent_class`` labels."""


def resolve_mode(mode: str | None = None, *, corpus_dir: str | os.PathLike | None = None, verbose: bool = True) -> Mode:
    """Pick ``offline`` or ``hub``, once, where a program starts: the argument, then
    ``ASR_HELPERS_MODE``, then detection. Everything below takes the answer as it is.

    Detection says offline when ``HF_HUB_OFFLINE=1`` or when the hub does not answer within two
    seconds, so a classroom with flaky wifi falls back to the shipped corpus instead of hanging.
    A corpus folder (``corpus_dir``) is offline data: it chooses offline, and refuses ``hub``.
    """
    chosen = mode or os.environ.get("ASR_HELPERS_MODE")
    reason = "asked for" if mode else f"ASR_HELPERS_MODE={chosen}"
    if corpus_dir is not None and chosen == "hub":
        raise ValueError(f"{corpus_dir}: a corpus folder is offline data; it cannot be combined with mode 'hub'")
    if chosen is None and corpus_dir is not None:
        chosen, reason = "offline", "a corpus folder is offline data"
    elif chosen is None:
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
            chosen, reason = "offline", "HF_HUB_OFFLINE=1"
        elif _hub_reachable():
            chosen, reason = "hub", "the hub answered"
        else:
            chosen, reason = "offline", "the hub is unreachable"
    if chosen not in MODES:
        raise ValueError(f"unknown mode {chosen!r}: use one of {', '.join(MODES)}")
    if verbose:
        print(f"mode: {chosen} ({reason})")
    return chosen  # type: ignore[return-value]


def _hub_reachable(timeout: float = 2.0) -> bool:
    """One TCP connection attempt to the hub; any failure means offline."""
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def load_minds14(
    mode: Mode,
    *,
    split: str = "train[:100]",
    test_size: float = 0.2,
    seed: int = 42,
    corpus_dir: Path = CORPUS_DIR,
) -> DatasetDict:
    """MInDS-14 en-US (hub) or the shipped MInDS-14-like corpus (offline), as train/test.

    The hub dataset has one ``train`` split, so we slice it and hold out ``test_size`` as the
    guide does. The shipped corpus already has a test split of held-out voices and sentences;
    ``corpus_dir`` reads another folder in its layout (``python -m asr_helpers synth`` writes one).
    """
    if mode == "offline":
        return load_offline_corpus(corpus_dir)
    minds = _load_minds14_hub(split).cast_column("audio", Audio(decode=False))
    return minds.train_test_split(test_size=test_size, seed=seed)


def _load_minds14_hub(split: str) -> Dataset:
    """MInDS-14 was published with a loading script, which datasets >= 4 refuses to run.

    The hub keeps an automatic Parquet conversion of every dataset on the ``refs/convert/parquet``
    revision, so we fall back to that: the same rows and columns, no script.
    """
    try:
        return load_dataset("PolyAI/minds14", name="en-US", split=split)
    except RuntimeError as error:
        if "script" not in str(error).lower():
            raise
        print("note: PolyAI/minds14 is a loading-script dataset; reading its Parquet conversion instead")
        return load_dataset(
            "PolyAI/minds14", revision="refs/convert/parquet", data_dir="en-US", split=split
        )


def load_offline_corpus(corpus_dir: Path = CORPUS_DIR) -> DatasetDict:
    """The shipped synthetic corpus with MInDS-14's columns, 8 kHz FLAC like the original."""
    metadata = corpus_dir / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata}: corpus metadata missing (regenerate with `python -m asr_helpers synth`)")
    with metadata.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = {
        "path": Value("string"),
        "transcription": Value("string"),
        "english_transcription": Value("string"),
        "intent_class": ClassLabel(names=list(INTENTS)),
        "lang_id": ClassLabel(names=list(MINDS14_LANGS)),
    }
    splits = {}
    for split in ("train", "test"):
        chosen = [row for row in rows if row["split"] == split]
        columns = {
            "path": [str(corpus_dir / row["file"]) for row in chosen],
            "transcription": [row["transcription"] for row in chosen],
            "english_transcription": [row["english_transcription"] for row in chosen],
            "intent_class": [int(row["intent_class"]) for row in chosen],
            "lang_id": [int(row["lang_id"]) for row in chosen],
        }
        splits[split] = audio_dataset(columns, features, sampling_rate=8000).select_columns(list(MINDS14_COLUMNS))
    return DatasetDict(splits)


def load_unseen_set(folder: Path = UNSEEN_DIR) -> Dataset:
    """The unseen evaluation set, one row per file (WAV, FLAC, OGG, MP3 at 8-48 kHz, mono or stereo).

    No ``audio`` column: one ``Audio`` feature declares one rate and these files have six, so each
    ``path`` is read with :func:`~asr_helpers.audio.load_audio`, as a learner's own file would be.
    """
    folder = Path(folder).resolve()
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        missing = metadata if folder.is_dir() else folder
        raise FileNotFoundError(f"{missing}: unseen set missing (regenerate with `python scripts/unseen_set.py`)")
    with metadata.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {
        "path": [str(folder / row["file"]) for row in rows],
        **{name: [row[name] for row in rows] for name in ("transcription", "format", "band")},
        "rate": [int(row["rate"]) for row in rows],
        "voice": [row["voice"] for row in rows],
    }
    features = {name: Value("int32" if name == "rate" else "string") for name in columns}
    return Dataset.from_dict(columns, features=Features(features))


def audio_dataset(columns: dict[str, list], features: dict, sampling_rate: int) -> Dataset:
    """A Dataset whose ``audio`` column points at the files in ``columns["path"]``, undecoded.

    The column is first stored as a plain ``{bytes, path}`` struct and then cast to
    ``Audio(decode=False)``: building it as ``Audio`` directly makes datasets 5.x import torchcodec.
    """
    audio_struct = {"bytes": Value("binary"), "path": Value("string")}
    dataset = Dataset.from_dict(
        {**columns, "audio": [{"bytes": None, "path": path} for path in columns["path"]]},
        features=Features({**features, "audio": audio_struct}),
    )
    return dataset.cast_column("audio", Audio(sampling_rate=sampling_rate, decode=False))


def load_timit(data_dir: str | os.PathLike) -> DatasetDict:
    """A local TIMIT copy (``TRAIN/`` and ``TEST/``, ``DR*/SPEAKER/*.WAV`` with ``.TXT`` beside).

    TIMIT is licensed, so users bring their own copy. Its ``.WAV`` files are NIST SPHERE, which
    soundfile reads directly. Each ``.TXT`` holds ``start end text``; we keep the text.
    """
    root = Path(data_dir)
    splits = {}
    for split in ("train", "test"):
        split_dir = _child_ignoring_case(root, split)
        wavs = sorted(p for p in split_dir.rglob("*") if p.suffix.upper() == ".WAV")
        if not wavs:
            raise FileNotFoundError(f"{split_dir}: no .WAV files found")
        columns = {
            "path": [str(p) for p in wavs],
            "transcription": [_timit_text(p) for p in wavs],
            "speaker_id": [p.parent.name for p in wavs],
            "dialect_region": [p.parent.parent.name for p in wavs],
        }
        splits[split] = audio_dataset(columns, dict.fromkeys(columns, Value("string")), sampling_rate=16000)
    return DatasetDict(splits)


def _child_ignoring_case(root: Path, name: str) -> Path:
    for child in root.iterdir() if root.is_dir() else ():
        if child.is_dir() and child.name.lower() == name:
            return child
    raise FileNotFoundError(f"{root}: no {name.upper()}/ folder (expected TIMIT's TRAIN/ and TEST/)")


def _timit_text(wav: Path) -> str:
    candidates = [wav.with_suffix(s) for s in (".TXT", ".txt")]
    text_file = next((c for c in candidates if c.is_file()), None)
    if text_file is None:
        raise FileNotFoundError(f"{wav}: transcript {wav.with_suffix('.TXT').name} missing")
    fields = text_file.read_text().split(maxsplit=2)
    if len(fields) < 3 or not (fields[0].isdigit() and fields[1].isdigit()):
        raise ValueError(f"{text_file}: expected 'start end text', got {text_file.read_text()!r}")
    return fields[2].strip()
