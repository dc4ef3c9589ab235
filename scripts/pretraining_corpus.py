"""The pre-training corpus of the course-base checkpoint (used by ``pretrain_checkpoint.py``).

The offline course fine-tunes a small checkpoint (asr_helpers/checkpoints/course-base) that was
first trained on this corpus, made by the course corpus's synthesis path
(:mod:`asr_helpers.synth`): general English from a grammar of everyday topics (never a banking
request, never a sentence of the course corpus), spoken by many more espeak-ng voices at wider
speeds and pitches, then a channel (``channels.py``). The first runs heard ``--channels
telephone`` (white noise and a telephone band, 8 kHz, like the course corpus); a model that knows
only that band hears a laptop's 16-48 kHz recording as noise, so later runs hear ``--channels
mixed``: wideband and telephone band, three colours of noise, room echo, any level. The course TEST
variants are never heard in pre-training, so the course's goal is measured on voices both models
have never heard. A second set of variants, ``VARIANTS["heldout"]``, is kept out of pre-training
too: the checkpoint's card reports its error rates on them, and the unseen set
(``unseen_set.py``) is spoken by them.

The grammar, the voice lists and the mixed channels' ranges are data, in ``pretraining_data/``;
the everyday lexicon of the word lists is ``scripts/pretraining_data/words.txt``. A run may move two
shares of those tables, espeak-ng's share of the rows (``espeak_share``) and the wideband share
(``wideband_share``), without changing any row the move does not touch.
"""

from __future__ import annotations

import random
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path

import numpy as np

from asr_helpers import synth
from asr_helpers.text import spell_number, spell_ordinal, spell_year
from channels import NOISE_COLOURS, TELEPHONE_RATE, WIDEBAND_RATE, Channel
from speakers import Speaker

DATA_DIR = Path(__file__).resolve().parent / "pretraining_data"
WORDS_FILE = Path(__file__).parent / "pretraining_data" / "words.txt"
SPLITS: tuple[str, ...] = ("train", "heldout")
METADATA_COLUMNS: tuple[str, ...] = (
    "file", "split", "transcription", "voice", "speed", "pitch", "amplitude", "rate", "band_hz", "noise",
    "snr_db", "rt60_s", "peak_dbfs", "duration_s", "engine", "warp", "tempo", "drift_db",
)
SPEED_WPM = (120, 260)
PITCH = (5, 95)
AMPLITUDE = (30, 90)
SNR_DB = (15.0, 40.0)  # white noise added before the telephone band-pass
TELEPHONE_LOW_HZ = (200, 400)  # the band-pass edges vary around the classic 300-3400 Hz line
TELEPHONE_HIGH_HZ = (3200, 3700)
HELDOUT_SHARE = 20  # one sentence in 20 may go to the held-out split, never to train
WORD_LIST_LENGTH = (3, 8)

MIXED: dict[str, tuple[float, float] | float] = synth.read_tables(DATA_DIR / "channels.json")["mixed"]
GRAMMAR: dict[str, tuple[str, ...]] = synth.read_tables(DATA_DIR / "grammar.json")["rules"]
_VOICES = synth.read_tables(DATA_DIR / "voices.json")
VARIANTS: dict[str, tuple[str, ...]] = _VOICES["variants"]  # split -> espeak-ng variants
EXCLUDED_VARIANTS: tuple[str, ...] = _VOICES["excluded"]  # never spoken, in either corpus's train split
NATURAL = synth.read_tables(DATA_DIR / "natural_voices.json")
ESPEAK = "espeak-ng"
ESPEAK_SHARE: float = NATURAL["shares"][ESPEAK]  # the table's share: the default of --espeak-share
WIDEBAND_SHARE: float = MIXED["wideband_share"]  # the table's share: the default of --wideband-share


@cache
def pretraining_words() -> tuple[str, ...]:
    """The everyday lexicon of the word-list utterances (jobs, shops, places, verbs in all forms...).

    It is general English written without regard to the course, so, as in any English corpus, some
    course words are in it (about 120 of the course's ~300); the course's sentences never are.
    """
    return tuple(WORDS_FILE.read_text(encoding="utf-8").split())


def spell_clock(rng: random.Random) -> str:
    """A time of day in words: "seven thirty", "half past six", "a quarter to nine", "noon"."""
    hour, minute = rng.randint(1, 12), rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50))
    style = rng.randrange(4)
    if style == 0:
        return f"{spell_number(hour)} o'clock" if minute == 0 else f"{spell_number(hour)} {spell_number(minute)}"
    if style == 1 and minute in (15, 30, 45):
        return {15: "a quarter past", 30: "half past", 45: "a quarter to"}[minute] + " " + spell_number(
            hour if minute < 45 else hour % 12 + 1
        )
    if style == 2:
        return rng.choice(("noon", "midnight", "dawn"))
    return f"{spell_number(hour)} {rng.choice(('in the morning', 'in the evening', 'at night'))}"


# Rules made by code, not by GRAMMAR: numbers, times and dates are drawn and spelled in words.
GENERATED: dict[str, Callable[[random.Random], str]] = {
    "word_list": lambda rng: " ".join(rng.sample(pretraining_words(), rng.randint(*WORD_LIST_LENGTH))),
    "count": lambda rng: spell_number(rng.randint(2, 12)),
    "small_number": lambda rng: spell_number(rng.randint(0, 40)),
    "number": lambda rng: spell_number(
        rng.choice((rng.randint(13, 99), rng.randint(100, 999), rng.randint(1000, 9999)))
    ),
    "age": lambda rng: spell_number(rng.randint(2, 99)),
    "year": lambda rng: spell_year(rng.randint(1850, 2029)),
    "clock": spell_clock,
    "ordinal": lambda rng: spell_ordinal(rng.randint(1, 31)),
}


def expand_grammar(rng: random.Random, rule: str = "utterance") -> str:
    """One random sentence of ``rule``: each "{name}" is expanded in turn, left to right."""
    if rule in GENERATED:
        return GENERATED[rule](rng)
    template = rng.choice(GRAMMAR[rule])
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if name:
            parts.append(expand_grammar(rng, name))
    return "".join(parts)


def sentence_key(text: str) -> str:
    """What a sentence is once punctuation and case are gone: how sentences are compared."""
    return " ".join("".join(ch if ch.isalpha() or ch == "'" else " " for ch in text.lower()).split())


def course_sentence_keys() -> set[str]:
    """Keys of every sentence the course templates can produce (the shipped corpus included)."""
    return {sentence_key(s) for sentences in synth.sentences_by_intent().values() for s in sentences}


def split_of(text: str) -> str:
    """Which pre-training split may speak ``text``: fixed by the sentence alone, so none is in both."""
    bucket = random.Random(f"pretrain-heldout-{sentence_key(text)}").randrange(HELDOUT_SHARE)
    return "heldout" if bucket == 0 else "train"


def pretraining_sentences(seed: int, split: str, n: int) -> list[str]:
    """``n`` distinct grammar sentences of one split, none of them a course sentence.

    Drawn in order from one generator seeded by (seed, split): a smaller list is the prefix of a
    bigger one. Sentences belonging to the other split (:func:`split_of`) or to the course are skipped.
    """
    rng = random.Random(f"{seed}-pretrain-sentences-{split}")
    course = course_sentence_keys()
    seen: set[str] = set()
    sentences: list[str] = []
    attempts = 0
    while len(sentences) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"{split}: the grammar gave only {len(sentences)} distinct sentences of {n}")
        text = expand_grammar(rng)
        key = sentence_key(text)
        if key in seen or key in course or split_of(text) != split:
            continue
        seen.add(key)
        sentences.append(text)
    return sentences


def draw_telephone(rng: random.Random) -> Channel:
    """The first corpus's channel: white noise, then a telephone band-pass, at 8 kHz.

    Drawn in the order the first checkpoint's corpora drew it, so ``--channels telephone``
    regenerates them exactly.
    """
    snr_db = round(rng.uniform(*SNR_DB), 1)
    band_hz = (rng.randint(*TELEPHONE_LOW_HZ), rng.randint(*TELEPHONE_HIGH_HZ))
    return Channel(
        rate=TELEPHONE_RATE, band_hz=band_hz, noise="white", snr_db=snr_db, seed=rng.getrandbits(32),
    )


def draw_mixed(rng: random.Random, wideband_share: float = WIDEBAND_SHARE) -> Channel:
    """Any channel a learner's recording may have come through (the ranges are MIXED's).

    ``wideband_share`` of the rows are wideband, the others telephone band; a row draws the same
    numbers whatever the share, so only the rows the threshold moves change.

    Wideband rows are kept at 16 kHz, the model's rate: a file at 22-48 kHz reaches the model
    resampled to 16 kHz, so what its microphone adds above 8 kHz is never heard anyway.
    """
    if rng.random() < wideband_share:
        rate, band_hz = WIDEBAND_RATE, (rng.randint(*MIXED["wide_low_hz"]), rng.randint(*MIXED["wide_high_hz"]))
    else:
        rate, band_hz = TELEPHONE_RATE, (rng.randint(*TELEPHONE_LOW_HZ), rng.randint(*TELEPHONE_HIGH_HZ))
    noisy = rng.random() < MIXED["noise_share"]
    echo = rng.random() < MIXED["echo_share"]
    return Channel(
        rate=rate, band_hz=band_hz, noise=rng.choice(tuple(NOISE_COLOURS)) if noisy else "none",
        snr_db=round(rng.uniform(*MIXED["snr_db"]), 1) if noisy else 0.0,
        rt60_s=round(rng.uniform(*MIXED["rt60_s"]), 2) if echo else 0.0,
        drr_db=round(rng.uniform(*MIXED["drr_db"]), 1) if echo else 0.0,
        peak_dbfs=round(rng.uniform(*MIXED["peak_dbfs"]), 1), seed=rng.getrandbits(32),
    )


CHANNELS: dict[str, Callable[[random.Random], Channel]] = {"telephone": draw_telephone, "mixed": draw_mixed}


@dataclass(frozen=True)
class PretrainUtterance(synth.Utterance):
    """A pre-training recording: the speech of its engine and :class:`Speaker`, then its own :class:`Channel`.

    espeak-ng rows are spoken as the course's are (``speed`` words/min, ``pitch`` 0-99); flite
    rows at a mean pitch of ``pitch`` Hz, festival rows at the voice's own; both then through
    their ``speaker`` (spectral warp, tempo, level drift, pauses).
    """

    channel: Channel
    engine: str = ESPEAK
    speaker: Speaker = Speaker()

    @property
    def rate(self) -> int:
        """The channel's rate: 8 kHz for the telephone band, 16 kHz for wideband."""
        return self.channel.rate

    def speech(self) -> np.ndarray:
        """The clean speech at the channel's rate, before any channel."""
        if self.engine == ESPEAK:
            return super().audio()
        if self.engine == "flite":
            voice = synth.speak_flite(self.text, self.voice, self.pitch, self.rate)
        else:
            voice = synth.speak_festival(self.text, self.voice, self.rate)
        return self.speaker.apply(voice, self.rate)

    def audio(self) -> np.ndarray:
        """The clean speech, then the channel (its noise seeded per row)."""
        return self.channel.apply(self.speech())

    def row(self, duration_s: float) -> dict[str, object]:
        """The shared columns plus the engine, speaker and channel, so a row says exactly how its audio was made."""
        speaker = self.speaker.columns() if self.engine != ESPEAK else dict.fromkeys(Speaker().columns(), "")
        return {
            **super().row(duration_s), "amplitude": self.amplitude, **self.channel.columns(), "engine": self.engine,
            **speaker,
        }


def engine_shares(espeak_share: float) -> dict[str, float]:
    """Each engine's share of the rows: espeak-ng ``espeak_share``, flite and festival the rest in the table's ratio.

    The unseen set and the course test split are espeak-ng voices, so a run may give espeak-ng more rows
    than :data:`NATURAL`'s table does without changing which recorded voices the others hear.
    """
    if not 0.0 < espeak_share < 1.0:
        raise ValueError(f"espeak-ng share {espeak_share}: must be between 0 and 1 (the table's is {ESPEAK_SHARE})")
    if espeak_share == ESPEAK_SHARE:
        return dict(NATURAL["shares"])
    rest = 1.0 - ESPEAK_SHARE
    return {
        engine: espeak_share if engine == ESPEAK else share * (1.0 - espeak_share) / rest
        for engine, share in NATURAL["shares"].items()
    }


def moved_shares(voices: str, espeak_share: float, wideband_share: float) -> dict[str, float]:
    """The shares a run moved from the tables, by argument name: its corpus folder and its card name them."""
    moved = {"espeak_share": espeak_share} if voices != ESPEAK and espeak_share != ESPEAK_SHARE else {}
    return moved | ({"wideband_share": wideband_share} if wideband_share != WIDEBAND_SHARE else {})


def natural_voice(
    utterance: PretrainUtterance, seed: int, index: int, voices: str, shares: dict[str, float]
) -> PretrainUtterance:
    """The row's engine (``voices`` "natural": drawn by ``shares``, :func:`engine_shares`), voice, pitch and speaker.

    A voice's ``voice_weights`` entry (1 if absent) sets its share among its engine's voices: ked, the
    trained speaker nearest the held-out kal, keeps its share when more voices join its engine.

    Drawn from a generator of their own, so the sentence and the channel are the espeak-ng row's
    and an espeak-ng row of a natural corpus is the row of an espeak-ng-only corpus.
    """
    if voices == ESPEAK:
        return utterance
    rng = random.Random(f"{seed}-pretrain-{utterance.split}-{index}-engine")
    engine = rng.choices(tuple(shares), weights=tuple(shares.values()))[0]
    if engine == ESPEAK:
        return utterance
    voices_of_split = NATURAL["voices"][engine][utterance.split]
    weights = [NATURAL["voice_weights"].get(voice, 1) for voice in voices_of_split]
    voice = rng.choices(voices_of_split, weights=weights)[0]
    pitch = rng.randint(*NATURAL["flite_f0_hz"][voice]) if engine == "flite" else 0
    return replace(utterance, engine=engine, voice=voice, speed=0, pitch=pitch, speaker=Speaker.draw(rng))


def plan_pretraining(
    seed: int = 0, n_train: int = 12_000, n_heldout: int = 400, channels: str = "telephone", voices: str = ESPEAK,
    espeak_share: float = ESPEAK_SHARE, wideband_share: float = WIDEBAND_SHARE,
) -> list[PretrainUtterance]:
    """The pre-training corpus as a list of utterances, before any audio exists.

    Each row's voice, speed, pitch, level and channel (:data:`CHANNELS`) come from a generator
    seeded with (seed, split, index), so a row is the same whatever ``n_train`` and ``n_heldout`` are;
    ``voices`` "natural" hands ``1 - espeak_share`` of the rows to flite and festival (:func:`natural_voice`).
    """
    if channels != "mixed" and wideband_share != WIDEBAND_SHARE:
        raise ValueError(f"a wideband share ({wideband_share}) is a share of --channels mixed, not of {channels}")
    draw_channel = partial(draw_mixed, wideband_share=wideband_share) if channels == "mixed" else CHANNELS[channels]
    shares = engine_shares(espeak_share) if voices != ESPEAK else {}
    plan = []
    for split, n in zip(SPLITS, (n_train, n_heldout)):
        for index, text in enumerate(pretraining_sentences(seed, split, n)):
            rng = random.Random(f"{seed}-pretrain-{split}-{index}")
            voice, speed, pitch = synth.draw_voice(rng, VARIANTS[split], SPEED_WPM, PITCH)
            utterance = PretrainUtterance(
                file=f"{split}/{split}_{index:05d}.flac", split=split, text=text, voice=voice,
                speed=speed, pitch=pitch, amplitude=rng.randint(*AMPLITUDE), channel=draw_channel(rng),
            )
            plan.append(natural_voice(utterance, seed, index, voices, shares))
    return plan


def require_engines(voices: str) -> None:
    """Fail at once if an engine or voice of ``voices`` is missing, naming the Debian packages or the voice and how to make it."""
    synth.require_espeak()
    for engine, packages in NATURAL["packages"].items():
        if voices != ESPEAK and shutil.which(engine) is None:
            raise RuntimeError(f"{engine} not found: install the Debian packages {packages} for --voices {voices}")
    for split_voices in NATURAL["voices"]["festival"].values() if voices != ESPEAK else ():
        for voice in (v for v in split_voices if v.startswith("nitech_")):
            synth.hts_voice_dir(voice)


def generate_pretraining_corpus(
    out_dir: Path, seed: int = 0, n_train: int = 12_000, n_heldout: int = 400, workers: int | None = None,
    progress: bool = True, channels: str = "telephone", voices: str = ESPEAK, espeak_share: float = ESPEAK_SHARE,
    wideband_share: float = WIDEBAND_SHARE,
) -> Path:
    """Synthesise the pre-training corpus into ``out_dir`` and return its ``metadata.csv``.

    Same layout as the course corpus (``train/``, ``heldout/``, ``metadata.csv``), written by
    :func:`asr_helpers.synth.write_corpus`; FLAC at libsndfile's default compression. A missing
    engine is reported before the sentences are drawn (seconds for a full-size corpus).
    """
    require_engines(voices)
    return synth.write_corpus(
        out_dir, plan_pretraining(seed, n_train, n_heldout, channels, voices, espeak_share, wideband_share),
        SPLITS, METADATA_COLUMNS,
        workers=workers, progress=progress, desc="synth-pretrain",
    )
