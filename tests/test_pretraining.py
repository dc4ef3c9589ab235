"""The pre-training corpus generator (scripts/pretraining_corpus.py), the shipped course-base
checkpoint and its training script."""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_helpers import synth
from asr_helpers.checks import check_vocab
from asr_helpers.data import CORPUS_DIR
from asr_helpers.metrics import character_error_rate
from asr_helpers.training import RECIPES
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.text import normalize_text, spell_ordinal, spell_year
from conftest import needs_espeak
import channels
import pretraining_corpus as pretrain

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CHECKPOINT = COURSE_CHECKPOINT
SCRIPT = SCRIPTS / "pretrain_checkpoint.py"
ALLOWED_TEXT = re.compile(r"[a-zA-Z' ,?.]+")
SIZE_LIMIT = 15_000_000  # bytes of model.safetensors
needs_hts_voices = pytest.mark.skipif(
    not all((Path(os.environ.get(synth.HTS_VOICES_ENV, "/nonexistent")) / voice).is_dir() for voice in pretrain.NATURAL["hts_voices"]["sha256"]),
    reason=f"the Nitech HTS voices are not under ${synth.HTS_VOICES_ENV}: make them with scripts/hts_voices.py --out DIR, set it to DIR",
)


def course_texts() -> list[str]:
    """Every sentence the course templates can produce, and every transcript of the shipped corpus."""
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        shipped = [row["transcription"] for row in csv.DictReader(handle)]
    return shipped + [s for sentences in synth.sentences_by_intent().values() for s in sentences]


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    return {"train": pretrain.pretraining_sentences(0, "train", 4000), "heldout": pretrain.pretraining_sentences(0, "heldout", 300)}


# --- sentences: no espeak-ng needed -------------------------------------------------------------


def test_pretraining_sentences_share_none_with_the_course(sentences: dict[str, list[str]]) -> None:
    course = {normalize_text(text) for text in course_texts()}
    for split, texts in sentences.items():
        normalized = [normalize_text(text) for text in texts]
        assert len(set(normalized)) == len(texts), f"{split}: a sentence repeats"
        assert not set(normalized) & course, split


def test_train_and_heldout_sentences_are_disjoint(sentences: dict[str, list[str]]) -> None:
    train = {normalize_text(text) for text in sentences["train"]}
    assert not train & {normalize_text(text) for text in sentences["heldout"]}
    assert all(pretrain.split_of(text) == "heldout" for text in sentences["heldout"])


def test_pretraining_sentences_are_general_english_in_words(sentences: dict[str, list[str]]) -> None:
    texts = sentences["train"]
    assert all(ALLOWED_TEXT.fullmatch(text) for text in texts)  # no digits: numbers are words
    words = {word for text in texts for word in normalize_text(text).split()}
    assert len(words) >= 1000
    assert not words & {"ACCOUNT", "BALANCE", "DEPOSIT", "DEBIT", "LOAN", "ATM", "TRANSFER", "WITHDRAW"}
    assert 5 <= np.mean([len(text.split()) for text in texts]) <= 12


def test_word_lists_come_from_the_everyday_lexicon(sentences: dict[str, list[str]]) -> None:
    lexicon = pretrain.pretraining_words()
    assert len(lexicon) >= 2000 and len(set(lexicon)) == len(lexicon)
    assert all(re.fullmatch(r"[a-z']+", word) for word in lexicon)
    rng = random.Random(5)
    for _ in range(200):
        words = pretrain.expand_grammar(rng, "word_list").split()
        assert pretrain.WORD_LIST_LENGTH[0] <= len(words) <= pretrain.WORD_LIST_LENGTH[1]
        assert set(words) <= set(lexicon) and len(set(words)) == len(words)
    lists = [text for text in sentences["train"] if set(text.split()) <= set(lexicon)]
    assert 0.4 <= len(lists) / len(sentences["train"]) <= 0.6  # half lists, half grammar sentences


def test_numbers_times_and_dates_are_spoken_in_words() -> None:
    """The rules made by code: words only, over their whole range, and every clock style said."""
    rng = random.Random(11)
    said = {rule: {pretrain.GENERATED[rule](rng) for _ in range(3000)} for rule in pretrain.GENERATED}
    for rule, texts in said.items():
        assert all(re.fullmatch(r"[a-z']+( [a-z']+)*", text) for text in texts), rule
    assert said["ordinal"] == {spell_ordinal(n) for n in range(1, 32)}
    assert len(said["year"]) == 2029 - 1850 + 1 and "nineteen oh five" in said["year"]
    assert said["count"] == {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"}
    clock = said["clock"]
    assert {"noon", "midnight", "dawn", "twelve o'clock", "half past six", "a quarter to one"} <= clock
    assert any(text.endswith("in the morning") for text in clock) and "seven thirty" in clock


def test_years_and_ordinals_are_said_as_people_say_them() -> None:
    """The dates of the sentences: spelled by asr_helpers.text, pinned here because the corpus depends on them."""
    assert [spell_year(y) for y in (1984, 1905, 2007, 1900, 2010)] == [
        "nineteen eighty four", "nineteen oh five", "two thousand seven", "nineteen hundred", "twenty ten",
    ]
    assert [spell_ordinal(n) for n in (1, 3, 20, 22, 30, 31)] == [
        "first", "third", "twentieth", "twenty second", "thirtieth", "thirty first",
    ]


# --- the data files: no espeak-ng needed ------------------------------------------------------


def test_every_grammar_reference_has_a_rule_and_every_rule_is_reachable() -> None:
    """A typo in grammar.json ("{animl}") fails only when drawn; a rule nothing reaches is dead data."""
    references = {
        rule: {name for template in templates for _, name, _, _ in string.Formatter().parse(template) if name}
        for rule, templates in pretrain.GRAMMAR.items()
    }
    known = set(pretrain.GRAMMAR) | set(pretrain.GENERATED)
    assert set().union(*references.values()) <= known
    assert not set(pretrain.GRAMMAR) & set(pretrain.GENERATED)
    reached, todo = set(), ["utterance"]
    while todo:
        rule = todo.pop()
        if rule not in reached:
            reached.add(rule)
            todo.extend(references.get(rule, ()))
    assert reached == known


# --- voices and plan: no espeak-ng needed ----------------------------------------------------


def test_pretraining_voices_never_include_the_course_test_variants() -> None:
    train, heldout = set(pretrain.VARIANTS["train"]), set(pretrain.VARIANTS["heldout"])
    course_test = set(synth.VARIANTS["test"])
    assert not (train | heldout) & course_test
    assert not train & heldout
    assert not (train | heldout) & set(pretrain.EXCLUDED_VARIANTS)
    assert set(synth.VARIANTS["train"]) <= train  # the course's training voices are pre-trained on
    assert len(train) >= 60 and len(heldout) >= 6

    plan = pretrain.plan_pretraining(0, 2000, 100)
    for utterance in plan:
        accent, variant = utterance.voice.split("+")
        assert accent in synth.ACCENTS
        assert variant in pretrain.VARIANTS[utterance.split]
        assert variant not in course_test


def test_every_pretraining_variant_exists_in_espeak_ng_data() -> None:
    folders = [Path(p) / "voices" / "!v" for p in (
        "/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/lib/aarch64-linux-gnu/espeak-ng-data",
        "/usr/share/espeak-ng-data", "/usr/local/share/espeak-ng-data",
    )]
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        pytest.skip("espeak-ng data not found (Debian package espeak-ng-data)")
    available = {path.name for path in folder.iterdir()}
    used = set(pretrain.VARIANTS["train"]) | set(pretrain.VARIANTS["heldout"])
    assert used <= available
    # every variant of this espeak-ng is either used, excluded, or a course test voice
    assert available <= used | set(pretrain.EXCLUDED_VARIANTS) | set(synth.VARIANTS["test"])


def test_plan_is_deterministic_and_a_small_plan_is_a_prefix() -> None:
    big = pretrain.plan_pretraining(0, 40, 6)
    assert big == pretrain.plan_pretraining(0, 40, 6)
    assert pretrain.plan_pretraining(0, 10, 2) == big[:10] + big[40:42]
    assert pretrain.plan_pretraining(1, 10, 2) != big[:10] + big[40:42]
    for utterance in big:
        assert pretrain.SPEED_WPM[0] <= utterance.speed <= pretrain.SPEED_WPM[1]
        assert pretrain.PITCH[0] <= utterance.pitch <= pretrain.PITCH[1]
        assert pretrain.AMPLITUDE[0] <= utterance.amplitude <= pretrain.AMPLITUDE[1]
        channel = utterance.channel
        assert (channel.rate, channel.noise, channel.rt60_s, channel.peak_dbfs) == (8000, "white", 0.0, None)
        assert pretrain.SNR_DB[0] <= channel.snr_db <= pretrain.SNR_DB[1]
        low, high = channel.band_hz
        assert pretrain.TELEPHONE_LOW_HZ[0] <= low <= pretrain.TELEPHONE_LOW_HZ[1]
        assert pretrain.TELEPHONE_HIGH_HZ[0] <= high <= pretrain.TELEPHONE_HIGH_HZ[1]


def test_seed_zero_plan_is_the_one_the_checkpoint_was_trained_on() -> None:
    """The card's "the seed regenerates it" holds only while the draws keep their order: pinned here."""
    first, _, heldout = pretrain.plan_pretraining(0, 2, 1)
    assert first == pretrain.PretrainUtterance(
        file="train/train_00000.flac", split="train", text="is it going to be snowy at one in the morning?",
        voice="en-gb-x-gbclan+m1", speed=198, pitch=6, amplitude=45,
        channel=channels.Channel(rate=8000, band_hz=(222, 3422), noise="white", snr_db=22.5, seed=4062912908),
    )
    assert (heldout.file, heldout.text, heldout.voice, heldout.channel.band_hz) == (
        "heldout/heldout_00000.flac", "flew fine used inside", "en-gb-x-rp+klatt5", (234, 3535),
    )


def test_mixed_channels_cover_both_bands_noise_echo_and_levels() -> None:
    """The same sentences and voices as the telephone plan; only the channel differs, drawn within channels.json."""
    telephone, mixed = pretrain.plan_pretraining(0, 400, 0), pretrain.plan_pretraining(0, 400, 0, "mixed")
    assert [(u.text, u.voice, u.speed) for u in telephone] == [(u.text, u.voice, u.speed) for u in mixed]
    ranges = pretrain.MIXED
    wide = [u.channel for u in mixed if u.channel.rate == 16_000]
    assert 0.45 < len(wide) / len(mixed) < 0.65  # wideband_share 0.55
    assert all(ranges["wide_high_hz"][0] <= c.band_hz[1] <= ranges["wide_high_hz"][1] for c in wide)
    assert all(c.band_hz[1] <= 3700 for u in mixed if (c := u.channel).rate == 8000)
    assert {u.channel.noise for u in mixed} == {"none", "white", "pink", "brown"}
    echo = [u.channel.rt60_s for u in mixed if u.channel.rt60_s]
    assert 0.3 < len(echo) / len(mixed) < 0.5 and min(echo) >= 0.15 and max(echo) <= 0.8
    assert all(-35 <= u.channel.peak_dbfs <= -1 for u in mixed)


def test_natural_voices_keep_the_sentences_and_channels_and_hold_out_whole_speakers() -> None:
    """flite and festival take some rows; the other rows, and every row's sentence and channel, are the espeak-ng plan's."""
    espeak, natural = pretrain.plan_pretraining(0, 300, 100, "mixed"), pretrain.plan_pretraining(0, 300, 100, "mixed", "natural")
    assert [(u.text, u.channel) for u in espeak] == [(u.text, u.channel) for u in natural]
    assert all(n == e for e, n in zip(espeak, natural) if n.engine == "espeak-ng")
    engines = {u.engine for u in natural}
    assert engines == {"espeak-ng", "flite", "festival"}
    share = sum(u.engine != "espeak-ng" for u in natural) / len(natural)
    assert 0.35 < share < 0.55  # flite 0.15 + festival 0.3
    used = {split: {(u.engine, u.voice) for u in natural if u.split == split and u.engine != "espeak-ng"} for split in pretrain.SPLITS}
    nitech = {("festival", f"nitech_us_{speaker}_arctic_hts") for speaker in ("bdl", "clb", "jmk", "rms", "slt")}
    assert used["train"] == {("flite", "rms"), ("flite", "slt"), ("festival", "cmu_us_slt_arctic_hts"), ("festival", "ked_diphone")} | nitech
    assert used["heldout"] == {("flite", "awb"), ("flite", "kal"), ("flite", "kal16"), ("festival", "kal_diphone"), ("festival", "nitech_us_awb_arctic_hts")}
    for u in natural:
        if u.engine == "flite":
            assert pretrain.NATURAL["flite_f0_hz"][u.voice][0] <= u.pitch <= pretrain.NATURAL["flite_f0_hz"][u.voice][1]
        if u.engine != "espeak-ng":
            assert u.speaker != type(u.speaker)() and u.speed == 0


def test_a_voice_weight_sets_its_share_among_its_engines_voices() -> None:
    """ked_diphone's weight 3 gives it three times the rows of each other festival training voice."""
    plan = pretrain.plan_pretraining(0, 4000, 0, "mixed", "natural")
    festival = collections.Counter(u.voice for u in plan if u.engine == "festival")
    others = [n for voice, n in festival.items() if voice != "ked_diphone"]
    assert pretrain.NATURAL["voice_weights"] == {"ked_diphone": 3} and len(others) == 6
    assert 2.4 < festival["ked_diphone"] / (sum(others) / len(others)) < 3.6


def test_a_wideband_share_moves_rows_to_the_telephone_band_and_keeps_the_rest() -> None:
    """--wideband-share 0.3: about 30 % of the rows wideband; a row wideband at 0.3 is the same row at the table's 0.55,
    a telephone row at 0.55 is the same at 0.3; a share for --channels telephone is refused."""
    table, fewer = pretrain.plan_pretraining(0, 2000, 0, "mixed"), pretrain.plan_pretraining(0, 2000, 0, "mixed", wideband_share=0.3)
    assert 0.26 < sum(u.channel.rate == 16_000 for u in fewer) / len(fewer) < 0.34
    assert all(t == f for t, f in zip(table, fewer) if f.channel.rate == 16_000 or t.channel.rate == 8_000)
    assert sum(t != f for t, f in zip(table, fewer)) > 300
    with pytest.raises(ValueError, match=r"a wideband share \(0.3\) is a share of --channels mixed, not of telephone"):
        pretrain.plan_pretraining(0, 10, 0, "telephone", wideband_share=0.3)


def test_an_espeak_share_gives_espeak_ng_more_rows_and_keeps_the_others_ratio() -> None:
    """--espeak-share 0.75: three rows in four are espeak-ng, flite and festival keep 1:2 between them; every row
    that is espeak-ng in the table's plan stays espeak-ng and unchanged; a share outside (0, 1) is refused."""
    assert pretrain.engine_shares(pretrain.ESPEAK_SHARE) == pretrain.NATURAL["shares"] == {"espeak-ng": 0.55, "flite": 0.15, "festival": 0.3}
    shares = pretrain.engine_shares(0.75)
    assert shares == pytest.approx({"espeak-ng": 0.75, "flite": 0.25 / 3, "festival": 0.5 / 3})
    table, more = pretrain.plan_pretraining(0, 3000, 0, "mixed", "natural"), pretrain.plan_pretraining(0, 3000, 0, "mixed", "natural", 0.75)
    counts = collections.Counter(u.engine for u in more)
    assert 0.72 < counts["espeak-ng"] / len(more) < 0.78 and 1.6 < counts["festival"] / counts["flite"] < 2.4
    assert all(m == t for t, m in zip(table, more) if t.engine == "espeak-ng")
    for share in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"espeak-ng share {share}: must be between 0 and 1 \(the table's is 0.55\)"):
            pretrain.engine_shares(share)


def test_a_missing_hts_voice_is_named_with_how_to_make_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(synth.HTS_VOICES_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match=r"nitech_us_bdl_arctic_hts not found .*scripts/hts_voices.py --out DIR"):
        synth.hts_voice_dir("nitech_us_bdl_arctic_hts")


def test_metadata_rows_have_exactly_the_csv_columns() -> None:
    row = pretrain.plan_pretraining(0, 1, 0)[0].row(2.0)
    assert tuple(sorted(row)) == tuple(sorted(pretrain.METADATA_COLUMNS))
    assert (row["snr_db"], row["band_hz"], row["amplitude"], row["rate"], row["rt60_s"], row["duration_s"]) == (
        "22.5", "222-3422", 45, "8000", "", "2.000"
    )
    assert (row["engine"], row["warp"], row["tempo"]) == ("espeak-ng", "", "")


# --- the channel: no espeak-ng needed ------------------------------------------------------


def test_band_pass_keeps_the_band_and_removes_the_rest() -> None:
    for rate, band, inside, outside in ((8000, (300, 3400), 1000, (100, 3900)), (16_000, (100, 7000), 5000, (40, 7800))):
        t = np.arange(rate) / rate
        for hz in (inside, *outside):
            tone = np.sin(2 * np.pi * hz * t)
            kept = channels.band_pass(tone, *band, rate)
            ratio = np.sqrt(np.mean(kept[1000:-1000] ** 2) / np.mean(tone[1000:-1000] ** 2))
            assert (ratio > 0.99) if hz == inside else (ratio < 0.01), (rate, hz)


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_is_added_at_the_asked_snr_with_its_colour(colour: str) -> None:
    rng = np.random.default_rng(0)
    speech = np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    noise = channels.add_noise(speech, 20.0, rng, colour) - speech
    assert 10 * np.log10(np.mean(speech**2) / np.mean(noise**2)) == pytest.approx(20.0, abs=0.5)
    power = np.abs(np.fft.rfft(noise)) ** 2
    low, high = power[10:100].mean(), power[1000:8000].mean()  # 10-100 Hz against 1-8 kHz (1 Hz bins)
    expected = {"white": 1.0, "pink": 100.0, "brown": 10_000.0}[colour]  # (1000 / 10) ** exponent, roughly
    assert expected / 4 < low / high < expected * 4


def test_room_echo_decays_by_60_db_in_rt60_and_keeps_the_direct_sound() -> None:
    rate, rt60 = 16_000, 0.4
    impulse = channels.room_impulse_response(rt60, 6.0, rate, np.random.default_rng(1))
    assert impulse[0] == 1.0 and len(impulse) == int(rt60 * rate)
    assert 10 * np.log10(1.0 / np.sum(impulse[1:] ** 2)) == pytest.approx(6.0)  # the direct-to-reverberant ratio
    first, last = (np.mean(impulse[a : a + 800] ** 2) for a in (1, len(impulse) - 801))
    assert 10 * np.log10(first / last) == pytest.approx(60 * (len(impulse) - 802) / rate / rt60, abs=3)
    click = np.zeros(rate)
    click[100] = 1.0
    wet = channels.reverberate(click, impulse)
    assert len(wet) == rate and np.allclose(wet[100 : 100 + len(impulse)], impulse)


def test_channel_is_echo_then_noise_then_band_then_level() -> None:
    """Noise goes in before the band, as on a phone line, so the band-pass narrows it too; the level comes last."""
    rate = 8000
    t = np.arange(4 * rate) / rate
    voice, hum = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 60 * t)
    channel = channels.Channel(rate=rate, band_hz=(300, 3400), noise="white", snr_db=20.0, peak_dbfs=-6.0, seed=3)
    audio = channel.apply(voice + hum)
    assert np.array_equal(audio, channel.apply(voice + hum))  # the noise is the channel's own, not the run's
    assert 20 * np.log10(np.max(np.abs(audio))) == pytest.approx(-6.0)
    inner = slice(4000, -4000)
    spectrum = np.abs(np.fft.rfft(audio[inner]))
    freqs = np.fft.rfftfreq(len(audio[inner]), 1 / rate)
    assert spectrum[np.argmin(abs(freqs - 60))] < 0.01 * spectrum.max()  # the hum is gone
    gain = np.dot(audio[inner], voice[inner]) / np.dot(voice[inner], voice[inner])  # the level's scale
    residual = audio[inner] / gain - voice[inner]
    # noise 20 dB under voice + hum (power 1), then 3.1 of its 4 kHz kept; the voice (power 0.5) passes.
    # Band first, noise after, would give 17 dB.
    snr = 10 * np.log10(np.mean(voice**2) / np.mean(residual**2))
    assert snr == pytest.approx(10 * np.log10(0.5 / (0.01 * 3100 / 4000)), abs=0.4)


# --- generation and training: need espeak-ng ------------------------------------------------


@needs_espeak
def test_pretraining_generator_is_deterministic(tmp_path: Path) -> None:
    first = pretrain.generate_pretraining_corpus(tmp_path / "a", seed=3, n_train=4, n_heldout=2, progress=False)
    second = pretrain.generate_pretraining_corpus(tmp_path / "b", seed=3, n_train=4, n_heldout=2, workers=1, progress=False)

    def digests(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}

    assert digests(first.parent) == digests(second.parent)
    with first.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == pretrain.METADATA_COLUMNS
    assert [row["split"] for row in rows] == ["heldout"] * 2 + ["train"] * 4
    for row in rows:
        info = sf.info(first.parent / row["file"])
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 8000, 1)
        assert abs(info.frames / 8000 - float(row["duration_s"])) <= 0.0005 + 1e-9


@pytest.mark.skipif(
    not all(shutil.which(program) for program in ("espeak-ng", "flite", "festival")),
    reason="espeak-ng, flite or festival not installed (Debian packages espeak-ng flite festival festvox-us-slt-hts festvox-kdlpc16k festvox-kallpc16k)",
)
@needs_hts_voices
def test_natural_voices_are_synthesised_with_their_engine_and_speaker(tmp_path: Path) -> None:
    plan = pretrain.plan_pretraining(2, 12, 6, "mixed", "natural")
    metadata = pretrain.generate_pretraining_corpus(tmp_path, seed=2, n_train=12, n_heldout=6, progress=False, channels="mixed", voices="natural")
    with metadata.open(newline="") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert {row["engine"] for row in rows.values()} == {"espeak-ng", "flite", "festival"}
    for utterance in plan:
        row = rows[utterance.file]
        assert (row["engine"], row["voice"]) == (utterance.engine, utterance.voice)
        samples, rate = sf.read(tmp_path / utterance.file)
        assert rate == utterance.channel.rate and len(samples) / rate == pytest.approx(float(row["duration_s"]), abs=1e-3)
        assert 20 * np.log10(np.max(np.abs(samples))) == pytest.approx(utterance.channel.peak_dbfs, abs=0.1)
        if utterance.engine != "espeak-ng":
            assert row["warp"] == f"{utterance.speaker.warp:.3f}"
            assert len(samples) / rate > sum(utterance.speaker.pauses_s) + 0.3  # pauses and some speech


@pytest.mark.slow
@needs_espeak
def test_training_script_runs_a_few_steps(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    command = [
        sys.executable, str(SCRIPT), "--out", str(out), "--corpus", str(tmp_path / "corpus"), "--seed", "0",
        "--n-train", "6", "--n-heldout", "2", "--max-steps", "2", "--batch-seconds", "8", "--workers", "2",
        "--eval-every", "1", "--log-every", "1", "--no-course-eval", "--device", "cpu", "--minutes", "5",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "step 2/2" in result.stdout
    for name in ("config.json", "model.safetensors", "vocab.json", "README.md", "training_log.json"):
        assert (out / name).is_file(), name
    log = json.loads((out / "training_log.json").read_text())
    assert log["train"]["steps"] == 2 and set(log["heldout"]) == {"wer", "cer"}
    card = (out / "README.md").read_text()
    assert "## Reproduce" in card
    assert log["reproduce"].endswith("--max-steps 2") and "--minutes" not in log["reproduce"]

    # A second run from the first one's weights: the card lists both runs, in order.
    second = tmp_path / "ckpt2"
    again = [*command[:2], "--out", str(second), "--init-from", str(out), *command[4:]]
    result = subprocess.run(again, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stages = json.loads((second / "training_log.json").read_text())["stages"]
    assert [stage["steps"] for stage in stages] == [2, 2]
    card = (second / "README.md").read_text()
    assert card.index(stages[0]["reproduce"]) < card.index(stages[1]["reproduce"])
    assert "trained in 2 runs" in card


# --- the shipped checkpoint: no espeak-ng needed -------------------------------------------


@pytest.fixture(scope="module")
def checkpoint():
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    return Wav2Vec2ForCTC.from_pretrained(CHECKPOINT), Wav2Vec2Processor.from_pretrained(CHECKPOINT)


def test_shipped_checkpoint_loads_and_its_vocab_covers_the_course(checkpoint) -> None:
    model, processor = checkpoint
    vocab = processor.tokenizer.get_vocab()
    assert set("ABCDEFGHIJKLMNOPQRSTUVWXYZ'|") <= set(vocab)
    assert model.config.vocab_size == len(processor.tokenizer)
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id == vocab["<pad>"]
    assert check_vocab(course_texts(), processor) == {}
    assert processor.feature_extractor.sampling_rate == 16_000
    assert processor.feature_extractor.return_attention_mask


def test_shipped_checkpoint_is_the_small_course_architecture(checkpoint) -> None:
    from asr_helpers.modeling import COURSE_BASE_SIZE, small_config

    model, processor = checkpoint
    expected = small_config(len(processor.tokenizer), processor.tokenizer.pad_token_id, **COURSE_BASE_SIZE)
    for key in ("conv_dim", "conv_stride", "conv_kernel", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "feat_extract_norm", "do_stable_layer_norm", "ctc_loss_reduction"):
        assert tuple(np.atleast_1d(getattr(model.config, key))) == tuple(np.atleast_1d(getattr(expected, key))), key
    assert (CHECKPOINT / "model.safetensors").stat().st_size <= SIZE_LIMIT


def test_shipped_checkpoint_transcribes_course_audio(checkpoint) -> None:
    import torch

    from asr_helpers.audio import resample

    model, processor = checkpoint
    samples, rate = sf.read(CORPUS_DIR / "train" / "train_0000.flac", dtype="float32")
    inputs = processor(audio=resample(samples, rate), sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        logits = model(inputs.input_values, attention_mask=inputs.attention_mask).logits
    text = processor.batch_decode(logits.argmax(-1))[0]
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        reference = next(row["transcription"] for row in csv.DictReader(handle) if row["file"] == "train/train_0000.flac")
    # before any fine-tuning it already spells most of the characters of a course sentence
    assert character_error_rate([text], [normalize_text(reference)]) < 0.3, (text, reference)


def test_model_card_reports_the_run() -> None:
    card = (CHECKPOINT / "README.md").read_text()
    for heading in ("## Architecture", "## Data", "## Training", "## Results", "## Reproduce"):
        assert heading in card
    assert "python scripts/pretrain_checkpoint.py" in card and "--seed 0" in card
    log = json.loads((CHECKPOINT / "training_log.json").read_text())
    # zero-shot on the course test split: domain_shift.py's "base" row (the last run, on CPU, skipped its own)
    assert log["heldout"]["wer"] < 0.55 and log["domain_shift"]["results"]["shipped"]["base"]["none"]["course_test"] < 0.5
    assert "--channels mixed" in card and "wideband" in card
    # the last run holds out whole speakers of every engine; the card gives each its own row
    for voice, rates in log["heldout_by_voice"].items():
        if voice != "espeak-ng":
            assert f"| held-out split, {voice} " in card and f"{rates['utterances']} utterances | {rates['wer']:.3f} | {rates['cer']:.3f} |" in card


def test_model_card_table_is_the_domain_shift_measurement() -> None:
    """The card's before/after table is benchmarks/domain_shift.py's result, kept in training_log.json,
    and the shipped checkpoint meets the course's goal after fine-tuning (course test WER at most 0.15)."""
    card = (CHECKPOINT / "README.md").read_text()
    shift = json.loads((CHECKPOINT / "training_log.json").read_text())["domain_shift"]
    assert shift == json.loads((SCRIPTS.parent / "benchmarks" / "results" / "domain_shift.json").read_text())
    for label, result in shift["results"].items():
        for stage in ("base", "fine_tuned"):
            row = result[stage]["none"]
            assert f"| {label} | {stage.replace('_', ' ')} | {row['course_test']:.3f} | {row['unseen']:.3f} |" in card
    assert shift["results"]["shipped"]["fine_tuned"]["none"]["course_test"] <= 0.15


def test_shipped_card_is_what_its_training_log_writes(tmp_path: Path) -> None:
    """The card is generated, never edited by hand: scripts/pretraining_card.py, given the shipped
    training_log.json and config.json (what ``--card-only`` reads), writes the shipped README.md."""
    import pretraining_card

    pretraining_card.write_card(tmp_path, pretraining_card.saved_report(CHECKPOINT))
    assert (tmp_path / "README.md").read_text() == (CHECKPOINT / "README.md").read_text()


def test_minutes_needs_its_timed_steps_inside_the_warm_up() -> None:
    """--minutes fixes --max-steps at step 400; after a shorter warm-up the cosine of the first --max-steps has already
    begun, so the card's --max-steps command would not repeat the run: refused, naming the fix."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", "/nonexistent", "--minutes", "5", "--warmup-steps", "200"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "--minutes times steps 200-400, which must lie inside the warm-up: give --warmup-steps 400 or more"
        " (or --max-steps instead of --minutes)"
    )


def test_the_card_names_the_shares_a_run_set_and_what_minutes_did() -> None:
    """A run with --espeak-share or --wideband-share: the card's corpus call passes them and its channel line gives
    the run's wideband share; the table's shares (the shipped runs') add nothing. The line on the last run's command
    says --minutes set its steps only if it did."""
    import pretraining_card

    args = {"voices": "natural", "channels": "mixed", "espeak_share": 0.75, "wideband_share": 0.3}
    assert pretraining_card.share_args(args) == ", espeak_share=0.75, wideband_share=0.3"
    assert pretraining_card.share_args({"voices": "natural", "espeak_share": 0.55, "wideband_share": 0.55}) == ""
    assert pretraining_card.last_run_text("python scripts/pretrain_checkpoint.py --max-steps 410") == (
        "(The last run was `python scripts/pretrain_checkpoint.py --max-steps 410`.)"
    )
    assert pretraining_card.last_run_text("python x.py --minutes 3.9").endswith(
        "`--minutes` fixed the number of steps from the speed of its first steps.)"
    )
    assert pretraining_card.channel_text("mixed", 0.3).startswith(
        "`--channels mixed` (`scripts/pretraining_data/channels.json`): 30% of the rows wideband"
    )


def test_the_shipped_checkpoint_is_natural_voices_run_18() -> None:
    """natural_voices.md calls the shipped checkpoint run 18: before fine-tuning, its measurement there and the
    card's (domain_shift.json's "shipped") are the same rates; after the fine-tune, the card's are those of
    today's recipe, "run 18, fine-tuned at 5e-4", and "run 18" (the recipe of then) differs from it."""
    results = json.loads((SCRIPTS.parent / "benchmarks" / "results" / "natural_voices.json").read_text())["results"]
    shipped = json.loads((SCRIPTS.parent / "benchmarks" / "results" / "domain_shift.json").read_text())["results"]["shipped"]
    assert results["run 18"]["base"] == shipped["base"] and results["run 18"]["natural"]["base"] == shipped["natural"]["base"]
    assert results["run 18, fine-tuned at 5e-4"] == shipped
    assert results["run 18"]["fine_tuned"] != shipped["fine_tuned"]
    assert RECIPES["course"]["learning_rate"] == 5e-4  # the recipe those labels name


def test_readme_quotes_the_natural_voice_measurements() -> None:
    """The README's paragraph on voices of recorded speakers quotes benchmarks/results/natural_voices.json:
    for each checkpoint it names, after the course's fine-tune, the range of greedy CER over the held-out
    voices, and the course test and unseen-set WER (old and run 18 with today's recipe, the runs before with
    the learning rate of then); and the paired-bootstrap differences of wer_difference_recipe.json (the
    learning rates, with the pre-training held-out rows) and wer_difference_lr5e-4.json (run 18 against old)."""
    results_dir = SCRIPTS.parent / "benchmarks" / "results"
    results = json.loads((results_dir / "natural_voices.json").read_text())["results"]
    readme = (SCRIPTS.parent / "README.md").read_text()
    paragraph = " ".join(readme.split("How much larger:")[1].split("\n\n")[0].split())

    def span(label: str, rate: str) -> str:
        values = [voice[rate] for voice in results[label]["natural"]["fine_tuned"].values()]
        return f"{min(values):.2f}-{max(values):.2f}"

    def tuned(label: str, split: str) -> str:
        return f"{results[label]['fine_tuned']['none'][split]:.3f}"

    old, shipped = "old, fine-tuned at 5e-4", "run 18, fine-tuned at 5e-4"
    quoted = [f"WER {span(old, 'wer')}", f"CER {span(old, 'cer')}", f"CER {span(shipped, 'cer')}",
              tuned(shipped, "course_test"), tuned(shipped, "unseen"), tuned(old, "course_test"), tuned(old, "unseen")]
    quoted += [span("new", "cer"), tuned("new", "course_test"), tuned("new", "unseen")]
    for run in ("run 8", "run 9", "run 10", "run 11", "run 15", "run 18"):
        quoted += [span(run, "cer"), tuned(run, "unseen")]
    quoted += [tuned(run, "course_test") for run in ("run 8", "run 10", "run 11", "run 15", "run 18")]
    quoted += [tuned("old", "unseen"), f"{results['run 18']['base']['none']['unseen']:.3f} against {results['old']['base']['none']['unseen']:.3f}"]

    def interval(versus: dict) -> str:
        return f"{versus['low']:+.3f} to {versus['high']:+.3f}"

    recipe = json.loads((results_dir / "wer_difference_recipe.json").read_text())["results"]
    before, now, lower = "run 18, learning rate 1e-3", "run 18, learning rate 5e-4", "run 18, learning rate 3e-4"
    unseen, course = recipe["unseen"]["against_" + before][now], recipe["course_test"]["against_" + before]
    quoted += [f"{unseen['difference']:+.3f}, 95 % interval {interval(unseen)}", f"({interval(course[now])})",
               f"{course[lower]['difference']:.3f} ({recipe['course_test']['wer'][lower]:.3f}; 95 % interval {interval(course[lower])})"]
    heldout = [name for name in recipe if name.endswith(" espeak-ng")]
    quoted += [" and ".join(f"{recipe[name]['wer'][label]:.3f}" for name in heldout) for label in (before, now)]
    quoted += [f"{sum(recipe[name]['files'] for name in heldout)} espeak-ng recordings"]
    versus_old = json.loads((results_dir / "wer_difference_lr5e-4.json").read_text())["results"]
    for split in ("course_test", "unseen"):
        versus = versus_old[split]["against_old"]["run 18"]
        quoted += [f"({versus['difference']:+.3f}, {interval(versus)})"]
    assert [figure for figure in quoted if figure not in paragraph] == []
