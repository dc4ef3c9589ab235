"""Notebook 02's steps: audio in (``audio``), vocabulary and processor, ``prepare_dataset``,
``prepare_splits``, and the cache keys of what they make (``cache``).

Text normalisation itself is tested in ``tests/test_text.py``.
"""

import inspect
import os
import shutil

import numpy as np
import pytest
from datasets import Audio, Dataset, DatasetDict

from asr_helpers import cache, preprocessing, text
from asr_helpers.audio import AudioDecodeError, load_audio, resample
from asr_helpers.cache import fingerprint, prepare_splits
from asr_helpers.checks import BadRowsError, check_vocab
from asr_helpers.data import CORPUS_DIR
from asr_helpers.preprocessing import build_vocab, normalize_transcription, prepare_dataset
from asr_helpers.text import normalize_text
from conftest import BASE_CONV, SENTENCES, tone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the rest of the normalisation cases are in tests/test_text.py
        ("hi I'm trying to use the app", "HI I'M TRYING TO USE THE APP"),
        ("what's my balance? it's low...", "WHAT'S MY BALANCE IT'S LOW"),
    ],
)
def test_normalize_transcription_is_the_guides_uppercase_map(raw, expected):
    assert normalize_transcription({"transcription": raw, "path": "a.wav"}) == {"transcription": expected}


def test_vocab_layout_and_round_trip(processor):
    vocab = build_vocab(["AB BA", "C'"])
    assert vocab == {"<pad>": 0, "<unk>": 1, "|": 2, "'": 3, "A": 4, "B": 5, "C": 6}
    tokenizer = processor.tokenizer
    assert tokenizer.pad_token_id == 0
    for sentence in SENTENCES:
        normalized = normalize_text(sentence)
        ids = tokenizer(normalized)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, group_tokens=False) == normalized


def test_check_vocab_reports_unknown_characters(processor):
    assert check_vocab(SENTENCES, processor) == {}
    assert check_vocab(["pay $ in €", "five €"], processor) == {"$": 1, "€": 2, "V": 1}


def _frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum) * rate / len(signal))


@pytest.mark.parametrize("orig", [8000, 22050, 44100])
def test_resample_keeps_duration_and_pitch(orig):
    signal = tone(440.0, 2.0, orig)
    out = resample(signal, orig, 16000)
    assert out.dtype == np.float32
    assert abs(len(out) - 32000) <= 1
    assert abs(_frequency(out, 16000) - 440.0) < 1.0


def test_load_audio_mixes_stereo_and_resamples(write_audio):
    left, right = tone(300.0, 1.0, 44100), np.zeros(44100, dtype=np.float32)
    path = write_audio("stereo.wav", np.stack([left, right], axis=1), 44100)
    mono = load_audio(str(path))
    assert mono.ndim == 1 and abs(len(mono) - 16000) <= 1
    assert abs(_frequency(mono, 16000) - 300.0) < 1.5
    assert 0.2 < np.abs(mono).max() < 0.3  # averaged with a silent channel: half amplitude


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioDecodeError, match=r"missing\.wav: no such file"):
        load_audio(str(tmp_path / "missing.wav"))
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty\.wav: empty file"):
        load_audio(str(tmp_path / "empty.wav"))
    (tmp_path / "notes.flac").write_text("not audio at all")
    with pytest.raises(AudioDecodeError, match=r"notes\.flac: not a readable audio file"):
        load_audio(str(tmp_path / "notes.flac"))


def _tiny_dataset(write_audio, durations=(0.5, 1.25)):
    paths = [str(write_audio(f"u{i}.flac", tone(200 + 100 * i, d, 8000), 8000)) for i, d in enumerate(durations)]
    return Dataset.from_dict(
        {"path": paths, "audio": [{"path": p, "bytes": None} for p in paths], "transcription": SENTENCES[: len(paths)]}
    ).cast_column("audio", Audio(decode=False))


def test_prepare_dataset_columns_lengths_and_labels(write_audio, processor):
    dataset = _tiny_dataset(write_audio).map(normalize_transcription)
    prepared = dataset.map(prepare_dataset, fn_kwargs={"processor": processor}, remove_columns=dataset.column_names)
    assert prepared.column_names == ["input_values", "labels", "input_length"]
    assert prepared["input_length"] == [8000, 20000]  # 8 kHz resampled to 16 kHz
    assert [len(v) for v in prepared["input_values"]] == prepared["input_length"]
    first = np.asarray(prepared[0]["input_values"])
    assert abs(first.mean()) < 1e-3 and abs(first.std() - 1) < 1e-2  # zero mean, unit variance
    decoded = processor.tokenizer.decode(prepared[0]["labels"], group_tokens=False)
    assert decoded == "HI I'D LIKE TO CHECK MY BALANCE"


def _raw_splits(write_audio, train_texts, test_texts):
    """A corpus as a loader gives it: raw transcripts, undecoded 8 kHz audio, train and test."""
    def split(name, texts):
        paths = [str(write_audio(f"{name}{i}.flac", tone(200 + 50 * i, 1.0, 8000), 8000)) for i in range(len(texts))]
        return Dataset.from_dict(
            {"path": paths, "audio": [{"path": p, "bytes": None} for p in paths], "transcription": texts}
        ).cast_column("audio", Audio(decode=False))

    return DatasetDict(train=split("train", train_texts), test=split("test", test_texts))


def test_prepare_splits_normalises_checks_and_prepares(write_audio, processor):
    raw = _raw_splits(write_audio, ["Hi, I'd like to check my balance!", "pay £ now"], ["Can you freeze my card?"])
    with pytest.raises(BadRowsError, match=r"train\[1\] .*train1\.flac: characters outside the vocabulary: \{'£': 1\}"):
        prepare_splits(raw, processor, BASE_CONV)
    prepared, report = prepare_splits(raw, processor, BASE_CONV, on_error="drop")
    assert [(bad.split, bad.index, bad.problem) for bad in report.bad] == [("train", 1, "characters outside the vocabulary")]
    assert prepared.num_rows == {"train": 1, "test": 1}
    assert prepared["train"].column_names == ["input_values", "labels", "input_length"]
    labels = [processor.tokenizer.decode(prepared[split][0]["labels"], group_tokens=False) for split in ("train", "test")]
    assert labels == ["HI I'D LIKE TO CHECK MY BALANCE", "CAN YOU FREEZE MY CARD"]  # normalised before tokenising
    assert prepared["test"]["input_length"] == [16000]


# --- cache keys: made of the mode, the settings and the code -------------------------------------


def key_of(*args, **kwargs) -> str:
    return fingerprint(*args, checkpoint=preprocessing.COURSE_CHECKPOINT, **kwargs)


def test_fingerprint_is_stable_and_changes_with_the_settings():
    key = key_of("offline", "fail")
    assert key == key_of("offline", "fail") and len(key) == 12
    assert key_of("offline", "drop") != key
    assert key_of("offline") != key
    assert key_of("hub", "fail") != key


def test_fingerprint_changes_when_a_modules_source_changes(monkeypatch):
    key = key_of("offline", "fail")
    assert key_of("offline", "fail", modules=cache.PREPARATION_MODULES[:-1]) != key  # less code
    assert key_of("offline", "fail", modules=(*cache.PREPARATION_MODULES, preprocessing)) != key  # more code
    getsource = inspect.getsource

    def edited(obj):  # as if someone changed normalize_text and saved text.py
        return getsource(obj) + ("\n# a changed rule\n" if obj is text else "")

    monkeypatch.setattr(inspect, "getsource", edited)
    assert text in cache.PREPARATION_MODULES
    assert key_of("offline", "fail") != key
    monkeypatch.setattr(inspect, "getsource", getsource)
    assert key_of("offline", "fail") == key


def test_fingerprint_of_a_corpus_folder_follows_its_files(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS_DIR / "metadata.csv", corpus / "metadata.csv")
    (corpus / "train").mkdir()
    (corpus / "train" / "a.flac").write_bytes(b"recording")
    key = key_of("offline", "fail", corpus_dir=corpus)
    assert key != key_of("offline", "fail")  # another folder, though its metadata is the shipped one
    assert key_of("offline", "fail", corpus_dir=corpus) == key
    stat = (corpus / "train" / "a.flac").stat()
    os.utime(corpus / "train" / "a.flac", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # fixed in place
    assert key_of("offline", "fail", corpus_dir=corpus) != key
