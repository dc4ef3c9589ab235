"""The shipped MInDS-14 stand-in (asr_helpers/corpus), its data files and the generator that makes it."""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import re
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_helpers import synth
from asr_helpers.__main__ import main
from asr_helpers.data import CORPUS_DIR, INTENTS
from asr_helpers.synth import METADATA_COLUMNS, generate_corpus, plan_corpus
from conftest import needs_espeak

SIZE_LIMIT = 12_000_000  # bytes, as `du -sb` counts them
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
ALLOWED_TEXT = re.compile(r"[a-zA-Z' ,?.]+")
CAPITALISED_WORDS = {"I", "I'm", "I'd", "I've"}


def read_rows(metadata: Path) -> list[dict[str, str]]:
    with metadata.open(newline="") as handle:
        return list(csv.DictReader(handle))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(root: Path) -> dict[str, str]:
    files = (path for path in root.rglob("*") if path.is_file())
    return {path.relative_to(root).as_posix(): sha256(path) for path in files}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_rows(CORPUS_DIR / "metadata.csv")


def split_rows(rows: list[dict[str, str]], split: str) -> list[dict[str, str]]:
    return [row for row in rows if row["split"] == split]


# --- the shipped corpus: no espeak-ng needed --------------------------------------------------


def test_metadata_has_exactly_the_documented_columns() -> None:
    header = (CORPUS_DIR / "metadata.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == METADATA_COLUMNS == (
        "file", "split", "transcription", "english_transcription", "intent_class", "lang_id",
        "voice", "speed", "pitch", "duration_s",
    )


def test_one_sorted_row_per_audio_file(rows: list[dict[str, str]]) -> None:
    files = [row["file"] for row in rows]
    on_disk = sorted(path.relative_to(CORPUS_DIR).as_posix() for path in CORPUS_DIR.rglob("*.flac"))
    assert files == sorted(files) == on_disk
    assert all(row["file"].startswith(f"{row['split']}/{row['split']}_") for row in rows)


def test_split_sizes_and_labels(rows: list[dict[str, str]]) -> None:
    train, test = split_rows(rows, "train"), split_rows(rows, "test")
    assert (len(train), len(test)) == (480, 120)  # generate_corpus's defaults, as the README states
    assert len(train) + len(test) == len(rows)  # no other split
    assert {int(row["intent_class"]) for row in train} == set(range(len(INTENTS)))
    assert {row["lang_id"] for row in rows} == {str(synth.EN_US_LANG_ID)}
    assert all(row["english_transcription"] == row["transcription"] for row in rows)


def test_test_split_holds_out_sentences_and_voices(rows: list[dict[str, str]]) -> None:
    train, test = split_rows(rows, "train"), split_rows(rows, "test")
    assert not {r["transcription"] for r in train} & {r["transcription"] for r in test}
    assert not {r["voice"] for r in train} & {r["voice"] for r in test}
    assert len({r["voice"] for r in test}) >= 10


def test_transcripts_look_like_minds14(rows: list[dict[str, str]]) -> None:
    for row in rows:
        text = row["transcription"]
        assert ALLOWED_TEXT.fullmatch(text), text
        capitalised = {word.strip(",?.") for word in text.split() if word != word.lower()}
        assert capitalised <= CAPITALISED_WORDS, text


def test_corpus_fits_the_size_budget() -> None:
    entries = [CORPUS_DIR, *CORPUS_DIR.rglob("*")]
    assert sum(entry.stat().st_size for entry in entries) <= SIZE_LIMIT


def test_every_file_is_8khz_mono_flac_of_the_listed_duration(rows: list[dict[str, str]]) -> None:
    for row in rows:
        info = sf.info(CORPUS_DIR / row["file"])
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 8000, 1)
        # duration_s is rounded to 3 decimals: half a millisecond, plus float slack
        assert abs(info.frames / 8000 - float(row["duration_s"])) <= 0.0005 + 1e-9, row["file"]
        assert 1.0 <= info.frames / 8000 <= 5.0, row["file"]


def test_shipped_corpus_matches_the_current_templates(rows: list[dict[str, str]]) -> None:
    """Catches a template edit that was not followed by regenerating the corpus."""
    train, test = split_rows(rows, "train"), split_rows(rows, "test")
    planned = {u.file: u for u in plan_corpus(14, len(train), len(test))}
    for row in rows:
        utterance = planned[row["file"]]
        assert (row["transcription"], row["voice"], int(row["intent_class"])) == (
            utterance.text, utterance.voice, utterance.intent_class,
        )
        assert (int(row["speed"]), int(row["pitch"])) == (utterance.speed, utterance.pitch)


# --- the generator's plan: no espeak-ng needed -------------------------------------------------


def test_templates_give_enough_distinct_sentences() -> None:
    by_intent = synth.sentences_by_intent()
    assert set(by_intent) == set(INTENTS)
    every = [sentence for sentences in by_intent.values() for sentence in sentences]
    assert len(every) == len(set(every)) >= 700  # no sentence belongs to two intents
    assert min(len(sentences) for sentences in by_intent.values()) >= 44
    assert not any(char.isdigit() for char in "".join(every))


def test_a_small_plan_is_the_prefix_of_the_default_one() -> None:
    small, full = plan_corpus(14, 6, 3), plan_corpus(14, 480, 120)
    assert small == full[:6] + full[480:483]
    assert plan_corpus(15, 6, 3) != small


def test_asking_for_more_sentences_than_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="train: asked for 5000 utterances but the templates give"):
        plan_corpus(14, 5000, 10)


# --- the data files: no espeak-ng needed ------------------------------------------------------


def test_every_template_slot_has_fillers_and_every_filler_list_is_used() -> None:
    """A typo in templates.json ("{bil}") would fail deep in expand(); an unused slot is dead data."""
    used = {
        name for templates in synth.TEMPLATES.values() for template in templates
        for _, name, _, _ in string.Formatter().parse(template) if name
    }
    assert used == set(synth.SLOTS)
    assert all(synth.SLOTS[name] and len(set(synth.SLOTS[name])) == len(synth.SLOTS[name]) for name in used)
    assert set(synth.TEMPLATES) == set(INTENTS)


def test_course_voices_split_train_and_test_variants() -> None:
    assert not set(synth.VARIANTS["train"]) & set(synth.VARIANTS["test"])
    assert (len(synth.ACCENTS), len(synth.VARIANTS["train"]), len(synth.VARIANTS["test"])) == (8, 21, 7)
    assert all(accent.startswith("en-") for accent in synth.ACCENTS)


def test_loaded_tables_cannot_be_edited_in_place() -> None:
    """The tables are module constants shared by every caller: one caller's append must not reach the others."""
    with pytest.raises(AttributeError):
        synth.SLOTS["city"].append("paris")  # type: ignore[attr-defined]
    assert isinstance(synth.VARIANTS["test"], tuple) and isinstance(synth.TEMPLATES["freeze"], tuple)


def test_data_files_are_shipped_with_the_package() -> None:
    """synth.py reads synth_data/ at import: a file missing from package-data breaks an installed package."""
    tomllib = pytest.importorskip("tomllib")
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["asr_helpers"]
    files = [path.relative_to(synth.DATA_DIR.parent).as_posix() for path in synth.DATA_DIR.iterdir()]
    assert sorted(files) == ["synth_data/templates.json", "synth_data/voices.json"]
    for file in files:
        assert any(fnmatch.fnmatch(file, pattern) for pattern in patterns), file


# --- the shared synthesis path: espeak-ng stood in for ---------------------------------------


def test_metadata_rows_have_exactly_the_csv_columns() -> None:
    """write_corpus's DictWriter refuses a missing or extra key, but only after all the audio is made."""
    utterance = plan_corpus(14, 1, 0)[0]
    row = utterance.row(1.23456)
    assert tuple(sorted(row)) == tuple(sorted(METADATA_COLUMNS))
    assert row["duration_s"] == "1.235" and row["english_transcription"] == row["transcription"] == utterance.text
    assert row["lang_id"] == synth.EN_US_LANG_ID == 4


def test_course_audio_is_the_clean_speech_of_its_planned_voice(monkeypatch: pytest.MonkeyPatch) -> None:
    """No channel on the course path: one would change every shipped file."""
    calls = []
    speech = np.linspace(-0.5, 0.5, 800)
    monkeypatch.setattr(synth, "speak", lambda *args: calls.append(args) or speech)
    utterance = plan_corpus(14, 1, 0)[0]
    assert utterance.audio() is speech
    assert calls == [(utterance.text, utterance.voice, utterance.speed, utterance.pitch, synth.AMPLITUDE, 8000)]


def test_samples_are_rounded_and_clipped_to_16_bits() -> None:
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 1.5 / 32768, 2.5 / 32768])
    assert synth.to_pcm16(samples).tolist() == [0, 16384, -16384, 32767, -32768, 32767, 2, 2]
    assert synth.to_pcm16(samples).dtype == np.int16


# --- regeneration: needs espeak-ng ------------------------------------------------------------


@needs_espeak
def test_regeneration_is_byte_identical_and_reproduces_the_shipped_files(tmp_path: Path) -> None:
    first = generate_corpus(tmp_path / "first", n_train=6, n_test=3)
    second = generate_corpus(tmp_path / "second", n_train=6, n_test=3)
    assert first == tmp_path / "first" / "metadata.csv"
    assert digests(first.parent) == digests(second.parent)

    shipped = {row["file"]: row for row in read_rows(CORPUS_DIR / "metadata.csv")}
    regenerated = read_rows(first)
    assert len(regenerated) == 9
    for row in regenerated:
        assert row == shipped[row["file"]]
        assert sha256(first.parent / row["file"]) == sha256(CORPUS_DIR / row["file"]), row["file"]


@needs_espeak
def test_the_synth_command_writes_the_corpus_generate_corpus_writes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", "--out", str(tmp_path / "cli"), "--n-train", "3", "--n-test", "2"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'cli' / 'metadata.csv'}\n"
    generate_corpus(tmp_path / "direct", n_train=3, n_test=2)
    files = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*") if p.is_file())
    assert len(files) == 6 and files == sorted(p.relative_to(tmp_path / "direct") for p in (tmp_path / "direct").rglob("*") if p.is_file())
    assert all((tmp_path / "cli" / f).read_bytes() == (tmp_path / "direct" / f).read_bytes() for f in files)


@needs_espeak
def test_smaller_regeneration_leaves_no_stale_files(tmp_path: Path) -> None:
    generate_corpus(tmp_path, n_train=4, n_test=2)
    metadata = generate_corpus(tmp_path, n_train=2, n_test=1)
    listed = {row["file"] for row in read_rows(metadata)}
    assert listed == {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.flac")}
    assert len(listed) == 3


def test_missing_espeak_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH on which no espeak-ng can be found
    with pytest.raises(RuntimeError) as error:
        generate_corpus(tmp_path / "corpus")
    assert str(error.value) == (
        "espeak-ng not found: install the Debian package espeak-ng to regenerate the corpus"
    )
    assert not (tmp_path / "corpus").exists()
