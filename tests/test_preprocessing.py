import numpy as np
import pytest
from datasets import Audio, Dataset

from asr_helpers.data import AudioDecodeError
from asr_helpers.preprocessing import (
    build_vocab,
    check_vocab,
    load_audio,
    normalize_text,
    number_to_words,
    prepare_dataset,
    resample,
)
from conftest import SENTENCES, tone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hi I'm trying to use the app", "HI I'M TRYING TO USE THE APP"),
        ("  Hello,   world!  ", "HELLO WORLD"),
        ("what's my balance? it's low...", "WHAT'S MY BALANCE IT'S LOW"),
        ("'quoted' words", "QUOTED WORDS"),
        ("café résumé", "CAFE RESUME"),
        ("pay 250 to Tom & Jerry", "PAY TWO HUNDRED FIFTY TO TOM AND JERRY"),
        ("50% off", "FIFTY PERCENT OFF"),
        ("well-known e-mail", "WELL KNOWN E MAIL"),
        ("costs $5", "COSTS $ FIVE"),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("number", "words"),
    [(0, "ZERO"), (13, "THIRTEEN"), (40, "FORTY"), (99, "NINETY NINE"), (105, "ONE HUNDRED FIVE"),
     (2026, "TWO THOUSAND TWENTY SIX"), (1_000_001, "ONE MILLION ONE")],
)
def test_number_to_words(number, words):
    assert number_to_words(number) == words


def test_vocab_layout_and_round_trip(processor):
    vocab = build_vocab(["AB BA", "C'"])
    assert vocab == {"<pad>": 0, "<unk>": 1, "|": 2, "'": 3, "A": 4, "B": 5, "C": 6}
    tokenizer = processor.tokenizer
    assert tokenizer.pad_token_id == 0
    for sentence in SENTENCES:
        text = normalize_text(sentence)
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, group_tokens=False) == text


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
    prepared = prepare_dataset(_tiny_dataset(write_audio), processor)
    assert prepared.column_names == ["input_values", "labels", "input_length"]
    assert prepared["input_length"] == [8000, 20000]  # 8 kHz resampled to 16 kHz
    assert [len(v) for v in prepared["input_values"]] == prepared["input_length"]
    first = np.asarray(prepared[0]["input_values"])
    assert abs(first.mean()) < 1e-3 and abs(first.std() - 1) < 1e-2  # zero mean, unit variance
    decoded = processor.tokenizer.decode(prepared[0]["labels"], group_tokens=False)
    assert decoded == normalize_text(SENTENCES[0])


def test_prepare_dataset_refuses_out_of_vocabulary_text(write_audio, processor):
    dataset = _tiny_dataset(write_audio, durations=(0.5,)).map(lambda row: {"transcription": "pay £ now"})
    with pytest.raises(ValueError, match="outside the vocabulary: {'£': 1}"):
        prepare_dataset(dataset, processor)
