"""The shipped unseen evaluation set (asr_helpers/unseen) and its generator, scripts/unseen_set.py."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_helpers import synth
from asr_helpers.audio import read_audio
from asr_helpers.data import CORPUS_DIR, UNSEEN_DIR, load_unseen_set
from asr_helpers.text import normalize_text
from conftest import needs_espeak
import pretraining_corpus as pretrain
import unseen_set as unseen

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
FORMATS = {  # name: rate, channels, container, subtype, extension; written out to check the script's table
    "phone-wav-8k": (8000, 1, "WAV", "PCM_16", "wav"),
    "flac-16k": (16_000, 1, "FLAC", "PCM_16", "flac"),
    "ogg-22k": (22_050, 1, "OGG", "VORBIS", "ogg"),
    "mp3-24k": (24_000, 1, "MP3", "MPEG_LAYER_III", "mp3"),
    "wav-44k-stereo": (44_100, 2, "WAV", "PCM_16", "wav"),
    "flac-48k": (48_000, 1, "FLAC", "PCM_16", "flac"),
}
ALLOWED_TEXT = re.compile(r"[a-z' ,?.]+")
SIZE_LIMIT = 5_000_000  # bytes; six 44.1 kHz stereo WAVs alone take about 3.3 MB
QUIET = 1e-5  # share of a recording's energy that counts as "none"


def read_rows() -> list[dict[str, str]]:
    with (UNSEEN_DIR / "metadata.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def index_of(row: dict[str, str]) -> int:
    """The row's sentence line (from 0): the number in its file name."""
    return int(Path(row["file"]).stem.rsplit("_", 1)[1])


def share_above(samples: np.ndarray, rate: int, hz: float) -> float:
    """The share of the recording's energy above ``hz``."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    return float(power[np.fft.rfftfreq(len(samples), 1 / rate) > hz].sum() / power.sum())


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_rows()


# --- the shipped set: no espeak-ng needed -------------------------------------------------------


def test_six_formats_of_six_rows_each_a_different_sentence(rows: list[dict[str, str]]) -> None:
    assert {name: [r["format"] for r in rows].count(name) for name in FORMATS} == dict.fromkeys(FORMATS, 6)
    assert sorted(index_of(row) for row in rows) == list(range(36))
    assert len({row["transcription"] for row in rows}) == 36
    assert tuple(rows[0]) == unseen.METADATA_COLUMNS


def test_every_file_has_the_stated_rate_channels_container_and_duration(rows: list[dict[str, str]]) -> None:
    for row in rows:
        rate, channels, container, subtype, extension = FORMATS[row["format"]]
        path = UNSEEN_DIR / row["file"]
        assert row["file"] == f"{row['format']}/{row['format']}_{index_of(row):02d}.{extension}"
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (rate, channels, container, subtype)
        assert (int(row["rate"]), int(row["channels"])) == (rate, channels), row["file"]
        assert abs(info.frames / rate - float(row["duration_s"])) <= 0.0005 + 1e-9, row["file"]


def test_every_file_ends_at_its_peak_level(rows: list[dict[str, str]]) -> None:
    for row in rows:
        samples, _ = sf.read(UNSEEN_DIR / row["file"], always_2d=True)
        peak_dbfs = 20 * np.log10(np.max(np.abs(samples[:, 0])))
        assert -25.5 <= peak_dbfs <= -2.5
        assert abs(peak_dbfs - float(row["peak_dbfs"])) < 0.5, row["file"]  # lossy codecs move peaks a little


def test_the_set_fits_its_size_budget() -> None:
    assert sum(path.stat().st_size for path in UNSEEN_DIR.rglob("*")) <= SIZE_LIMIT


def test_sentences_are_new_to_the_course_corpus(rows: list[dict[str, str]]) -> None:
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        shipped = {normalize_text(row["transcription"]) for row in csv.DictReader(handle)}
    templates = {normalize_text(s) for sentences in synth.sentences_by_intent().values() for s in sentences}
    for row in rows:
        assert normalize_text(row["transcription"]) not in shipped | templates, row["transcription"]


def test_sentences_are_new_to_pretraining_and_match_the_sentence_file(rows: list[dict[str, str]]) -> None:
    sentences = unseen.read_sentences()  # refuses a course or pre-training sentence
    assert [row["transcription"] for row in sorted(rows, key=index_of)] == sentences


def test_sentences_are_written_in_words_of_the_ctc_alphabet() -> None:
    sentences = unseen.SENTENCES_FILE.read_text(encoding="utf-8").splitlines()
    assert len(sentences) == 36
    for text in sentences:
        assert ALLOWED_TEXT.fullmatch(text), text
        assert 4 <= len(text.split()) <= 14, text
        assert normalize_text(text) == pretrain.sentence_key(text).upper(), text  # no word changes


@pytest.mark.parametrize(
    ("text", "origin"),
    [("I need to pay my water bill", "a course template sentence"), (None, "a pre-training sentence (seed 2, train)")],
)
def test_the_generator_refuses_a_sentence_the_models_know(tmp_path: Path, text: str | None, origin: str) -> None:
    text = text or pretrain.pretraining_sentences(2, "train", 100)[-1]
    lines = unseen.SENTENCES_FILE.read_text(encoding="utf-8").splitlines()
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join([*lines[:5], text]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"sentences.txt line 6: {text!r} is {origin}")):
        unseen.read_sentences(sentences)


def test_voices_are_outside_the_course_and_pretraining(rows: list[dict[str, str]]) -> None:
    heard = {*synth.VARIANTS["train"], *synth.VARIANTS["test"], *pretrain.VARIANTS["train"]}
    for row in rows:
        accent, variant = row["voice"].split("+")
        assert accent in synth.ACCENTS and variant in pretrain.VARIANTS["heldout"], row["voice"]
        assert variant not in heard, row["voice"]
        assert 130 <= int(row["speed"]) <= 190 and 20 <= int(row["pitch"]) <= 80
    assert len({row["voice"].split("+")[1] for row in rows}) >= 6


def test_noise_and_echo_are_spread_over_every_format(rows: list[dict[str, str]]) -> None:
    assert sum(row["noise"] != "none" for row in rows) == 24
    assert sum(row["rt60_s"] != "" for row in rows) == 18
    for name in FORMATS:
        chosen = [row for row in rows if row["format"] == name]
        assert sum(row["noise"] != "none" for row in chosen) == 4, name
        assert sum(row["rt60_s"] != "" for row in chosen) == 3, name
    for row in rows:
        assert row["noise"] in ("none", "white", "pink", "brown")
        assert row["noise"] == "none" or 15.0 <= float(row["snr_db"]) <= 30.0
        assert row["rt60_s"] == "" or 0.2 <= float(row["rt60_s"]) <= 0.5


def test_telephone_rows_stop_below_4khz_and_wideband_rows_go_above(rows: list[dict[str, str]]) -> None:
    for row in rows:
        samples, rate = read_audio(UNSEEN_DIR / row["file"])
        low, high = map(int, row["band_hz"].split("-"))
        assert share_above(samples, rate, high + 100) < QUIET, row["file"]  # the metadata's band is the audio's
        if row["band"] == "telephone":
            assert (rate, low, high) == (8000, 300, 3400)
            assert share_above(samples, rate, 3600) < QUIET, row["file"]
        else:
            assert row["band"] == "wideband" and rate >= 16_000 and 60 <= low <= 120
            assert high == min(rate // 2 - 500, 10_000)
            assert share_above(samples, rate, 4000) > 10 * QUIET, row["file"]


def test_stereo_rows_are_two_microphones(rows: list[dict[str, str]]) -> None:
    """The second channel is the first, a few samples later and a little quieter."""
    for row in (row for row in rows if row["channels"] == "2"):
        left, right = sf.read(UNSEEN_DIR / row["file"])[0].T
        lags = [float(np.dot(left[: len(left) - lag], right[lag:])) for lag in range(16)]
        assert 2 <= int(np.argmax(lags)) <= 8, row["file"]
        assert 0.6 < np.max(np.abs(right)) / np.max(np.abs(left)) < 0.9, row["file"]


def test_the_shipped_set_matches_the_current_plan(rows: list[dict[str, str]]) -> None:
    """Catches a change to the script's draws that was not followed by regenerating the set."""
    for row in rows:
        planned = unseen.plan_recording(index_of(row), row["transcription"])
        assert (planned.file, planned.voice, str(planned.speed), str(planned.pitch)) == (
            row["file"], row["voice"], row["speed"], row["pitch"],
        )
        assert planned.channel.columns().items() <= row.items(), row["file"]


def test_load_unseen_set_lists_every_file() -> None:
    dataset = load_unseen_set()
    assert dataset.num_rows == 36
    assert dataset.column_names == ["path", "transcription", "format", "band", "rate", "voice"]
    assert all(Path(path).is_absolute() and Path(path).is_file() for path in dataset["path"])
    assert sorted(set(dataset["rate"])) == sorted(rate for rate, *_ in FORMATS.values())


def test_load_unseen_set_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))) as error:
        load_unseen_set(tmp_path / "nowhere")
    assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "metadata.csv"))):
        load_unseen_set(tmp_path)


# --- the generator: needs espeak-ng -------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("index", [1, 2, 3])  # flac-16k, ogg-22k, mp3-24k
def test_regenerating_a_row_gives_the_shipped_file(tmp_path: Path, rows: list[dict[str, str]], index: int) -> None:
    """FLAC and MP3 (LAME) bytes repeat exactly; an OGG's do not (libsndfile draws a random
    stream serial number), but its decoded samples do."""
    shipped = next(row for row in rows if index_of(row) == index)
    written = unseen.plan_recording(index, unseen.read_sentences()[index]).write(tmp_path)
    assert written == shipped
    new, old = tmp_path / shipped["file"], UNSEEN_DIR / shipped["file"]
    if shipped["format"] == "ogg-22k":
        np.testing.assert_allclose(sf.read(new)[0], sf.read(old)[0], rtol=0, atol=1e-6)
    else:
        assert new.read_bytes() == old.read_bytes()
