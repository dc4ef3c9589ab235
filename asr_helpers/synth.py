"""A small offline stand-in for MInDS-14 en-US, synthesised with espeak-ng.

MInDS-14 holds short phone calls to a bank: a customer states one of 14 intents ("I lost my
card", "what's my balance") over an 8 kHz telephone line. The course fine-tunes Wav2Vec2 on it,
but a classroom may have no internet, so the package ships a look-alike made here: sentences
from per-intent templates, spoken by espeak-ng voices, resampled to 8 kHz, saved as FLAC.

Like a real test set, the test split has held-out speakers (voice variants never heard in
training) and held-out sentences. Every random choice is seeded from the seed and the row's
place, never from how many rows are asked for: the same seed and espeak-ng version give
byte-identical files, and a smaller corpus is exactly the first rows of a bigger one.

The word tables (templates, slot fillers, voices) are data, in ``synth_data/``. The synthesis
path (:class:`Utterance`, :func:`speak`, :func:`write_corpus`) is shared with the pre-training
corpus of ``scripts/pretraining_corpus.py``, which adds its own channel on top.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import random
import shutil
import string
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from asr_helpers.data import INTENTS

DATA_DIR = Path(__file__).parent / "synth_data"
EN_US_LANG_ID = 4  # index of en-US in MInDS-14's lang_id ClassLabel
SAMPLE_RATE = 8000  # MInDS-14 is telephone audio
SPLITS: tuple[str, ...] = ("train", "test")
METADATA_COLUMNS: tuple[str, ...] = (
    "file", "split", "transcription", "english_transcription", "intent_class", "lang_id",
    "voice", "speed", "pitch", "duration_s",
)
MISSING_ESPEAK = "espeak-ng not found: install the Debian package espeak-ng to regenerate the corpus"
SPEED_WPM = (150, 200)  # espeak-ng -s, words per minute
PITCH = (30, 70)  # espeak-ng -p, 0-99 around the variant's own pitch
AMPLITUDE = 50  # espeak-ng -a (default 100): a phone-call level with headroom, and smaller files
TEST_EVERY = 5  # every fifth sentence of each intent is held out for test
FLAC_COMPRESSION = 1.0  # the smallest files; decoding is just as fast


def read_tables(path: Path) -> dict:
    """A JSON data file of word tables. Lists become tuples, so no caller can edit a table in place."""

    def freeze(value: object) -> object:
        if isinstance(value, list):
            return tuple(freeze(item) for item in value)
        return {key: freeze(item) for key, item in value.items()} if isinstance(value, dict) else value

    return freeze(json.loads(path.read_text(encoding="utf-8")))


_VOICES = read_tables(DATA_DIR / "voices.json")
ACCENTS: tuple[str, ...] = _VOICES["accents"]
VARIANTS: dict[str, tuple[str, ...]] = _VOICES["variants"]  # split -> espeak-ng variants
_TEMPLATES = read_tables(DATA_DIR / "templates.json")
SLOTS: dict[str, tuple[str, ...]] = _TEMPLATES["slots"]  # "{bill}" in a template -> each filler in turn
TEMPLATES: dict[str, tuple[str, ...]] = _TEMPLATES["templates"]  # intent name -> its templates


# --- the shared synthesis path --------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    """One planned recording: what to say, who says it, and where the file goes.

    A corpus subclasses it to add its own columns (:meth:`row`) and channel effects
    (:meth:`audio`); :func:`write_corpus` renders every kind the same way.
    """

    file: str
    split: str
    text: str
    voice: str
    speed: int
    pitch: int
    amplitude: int

    @property
    def rate(self) -> int:
        """The sampling rate of :meth:`audio` and of the file: 8 kHz, MInDS-14's telephone rate."""
        return SAMPLE_RATE

    def audio(self) -> np.ndarray:
        """The recording at :attr:`rate` as floats in [-1, 1]: here the clean speech, as the course has it."""
        return speak(self.text, self.voice, self.speed, self.pitch, self.amplitude, self.rate)

    def row(self, duration_s: float) -> dict[str, object]:
        """The metadata.csv columns every corpus has: the file, its transcript, how the voice was made."""
        return {
            "file": self.file, "split": self.split, "transcription": self.text, "voice": self.voice,
            "speed": self.speed, "pitch": self.pitch, "duration_s": f"{duration_s:.3f}",
        }


@dataclass(frozen=True)
class CourseUtterance(Utterance):
    """A course recording: an Utterance with its MInDS-14 intent label."""

    intent_class: int

    def row(self, duration_s: float) -> dict[str, object]:
        """MInDS-14's columns (en-US rows repeat the transcription as the English one)."""
        return {
            **super().row(duration_s), "english_transcription": self.text,
            "intent_class": self.intent_class, "lang_id": EN_US_LANG_ID,
        }


def speak(text: str, voice: str, speed: int, pitch: int, amplitude: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Run espeak-ng and return its speech at ``rate`` (8 kHz unless asked) as float64 samples.

    espeak-ng writes a 22050 Hz WAV to stdout; we resample it to the telephone rate (or ``rate``)
    ourselves, with soxr's fixed HQ filter, so the same espeak-ng gives the same samples on every machine.
    """
    command = [
        "espeak-ng", "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude), text,
    ]
    return wav_at(subprocess.run(command, capture_output=True, check=True).stdout, rate)


def speak_flite(text: str, voice: str, f0_hz: int | None = None, rate: int = SAMPLE_RATE) -> np.ndarray:
    """flite's ``voice`` (kal, kal16, awb, rms, slt: recorded speakers) at a mean pitch of ``f0_hz`` (None: its own), at ``rate``."""
    pitch = ["--setf", f"int_f0_target_mean={f0_hz}"] if f0_hz else []
    command = ["flite", "-voice", voice, *pitch, "-t", text, "-o", "/dev/stdout"]
    return wav_at(subprocess.run(command, capture_output=True, check=True).stdout, rate)


HTS_VOICES_ENV = "ASR_HELPERS_HTS_VOICES"  # the folder of the converted Nitech HTS voices (scripts/hts_voices.py)


def hts_voice_dir(voice: str) -> Path:
    """The folder of the converted Nitech HTS ``voice`` under ``$ASR_HELPERS_HTS_VOICES``; a clear error if it is not there."""
    folder = Path(os.environ.get(HTS_VOICES_ENV, "")) / voice
    if not os.environ.get(HTS_VOICES_ENV) or not (folder / "hts" / f"{voice}.htsvoice").is_file():
        raise RuntimeError(
            f"festival voice {voice} not found under ${HTS_VOICES_ENV} ({os.environ.get(HTS_VOICES_ENV, 'unset')}):"
            f" make it with `python scripts/hts_voices.py --out DIR` and set {HTS_VOICES_ENV}=DIR"
        )
    return folder


def speak_festival(text: str, voice: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """festival's ``voice`` (e.g. cmu_us_slt_arctic_hts, kal_diphone) saying ``text``, at ``rate``.

    The Nitech HTS voices (``nitech_us_*``) are loaded from :func:`hts_voice_dir`. The text goes in as
    a Scheme string, so quotes and backslashes are escaped; the WAV comes back on stdout.
    """
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    location = f'(voice-location "{voice}" "{hts_voice_dir(voice)}/" "")\n' if voice.startswith("nitech_") else ""
    script = f'{location}(voice_{voice})\n(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "-" \'riff)\n'
    wav = subprocess.run(["festival", "--pipe"], input=script.encode(), capture_output=True, check=True).stdout
    return wav_at(wav, rate)


def wav_at(wav: bytes, rate: int) -> np.ndarray:
    """A synthesiser's WAV bytes as float64 samples at ``rate`` (soxr HQ: the same samples on every machine)."""
    samples, native_rate = sf.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(samples, native_rate, rate, quality="HQ").astype(np.float64)


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Round to 16-bit integers ourselves, so the FLAC writer gets exact integers and the bytes are reproducible."""
    return np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)


def render(utterance: Utterance, out_dir: Path, compression_level: float | None) -> float:
    """Synthesise one utterance into its FLAC file and return its duration in seconds."""
    samples = to_pcm16(utterance.audio())
    sf.write(
        out_dir / utterance.file, samples, utterance.rate, format="FLAC", subtype="PCM_16",
        compression_level=compression_level,
    )
    return len(samples) / utterance.rate


def require_espeak() -> None:
    """Fail at once, with the fix in the message, rather than deep inside a thread pool."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(MISSING_ESPEAK)


def write_corpus(
    out_dir: Path, plan: Sequence[Utterance], splits: Sequence[str], columns: Sequence[str], *,
    compression_level: float | None = None, workers: int | None = None, progress: bool = True, desc: str = "synth",
) -> Path:
    """Synthesise ``plan`` into ``out_dir/{split}/`` and return the path of its ``metadata.csv``.

    Old ``{split}_*.flac`` files are removed first so that a smaller run leaves nothing stale.
    Threads are enough to use every core: the work happens in the espeak-ng processes and in
    numpy, soxr and libsndfile, which release the GIL. Results come back in plan order, so the
    output is the same with any number of workers. ``compression_level`` None is libsndfile's default.
    """
    require_espeak()
    out_dir = Path(out_dir)
    for split in splits:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / split).glob(f"{split}_*.flac"):
            stale.unlink()
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        durations = pool.map(lambda utterance: render(utterance, out_dir, compression_level), plan)
        rows = [u.row(d) for u, d in tqdm(zip(plan, durations), total=len(plan), desc=desc, disable=not progress)]
    return write_metadata(out_dir, rows, columns)


def write_metadata(out_dir: Path, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> Path:
    """``out_dir/metadata.csv``, rows sorted by file: the same bytes whatever order they were made in."""
    metadata = out_dir / "metadata.csv"
    with metadata.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: str(row["file"])))
    return metadata


def draw_voice(
    rng: random.Random, variants: Sequence[str], speeds: tuple[int, int], pitches: tuple[int, int]
) -> tuple[str, int, int]:
    """A row's voice ("accent+variant"), speed and pitch, drawn in this order from the row's own generator."""
    return f"{rng.choice(ACCENTS)}+{rng.choice(variants)}", rng.randint(*speeds), rng.randint(*pitches)


# --- the course corpus ----------------------------------------------------------------------


def expand(template: str) -> list[str]:
    """Every sentence a template can produce, one per combination of its slot fillers."""
    slots = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    combinations = itertools.product(*(SLOTS[name] for name in slots))
    return [template.format(**dict(zip(slots, fillers))) for fillers in combinations]


def sentences_by_intent() -> dict[str, list[str]]:
    """All distinct sentences of each intent, sorted: set order changes from one run to the next."""
    return {intent: sorted({s for t in TEMPLATES[intent] for s in expand(t)}) for intent in INTENTS}


def sentence_pools(seed: int) -> dict[str, list[list[str]]]:
    """Shuffle each intent's sentences and deal every TEST_EVERY-th to test, the rest to train.

    The pools depend on the seed only, never on how many files are asked for: that is what keeps
    train and test sentences disjoint and makes a small corpus the prefix of a big one.
    """
    pools: dict[str, list[list[str]]] = {split: [] for split in SPLITS}
    for intent, sentences in sentences_by_intent().items():
        shuffled = random.Random(f"{seed}-sentences-{intent}").sample(sentences, len(sentences))
        pools["test"].append(shuffled[::TEST_EVERY])
        pools["train"].append([s for i, s in enumerate(shuffled) if i % TEST_EVERY])
    return pools


def round_order(seed: int, split: str, round_: int) -> list[int]:
    """The 14 intent indices in the order one round of a split speaks them."""
    return random.Random(f"{seed}-{split}-round-{round_}").sample(range(len(INTENTS)), len(INTENTS))


def plan_split(split: str, n: int, seed: int, pools: list[list[str]]) -> list[CourseUtterance]:
    """Utterances of one split: intents in rounds of 14 (shuffled per round), each sentence once.

    Round ``r`` uses sentence ``r`` of every intent's pool, so intents stay balanced as in
    MInDS-14 and no sentence repeats. Voice, speed and pitch come from a generator seeded with
    (seed, split, index), so each row is fixed whatever ``n`` is.
    """
    most = len(INTENTS) * min(len(pool) for pool in pools)
    if n > most:
        raise ValueError(f"{split}: asked for {n} utterances but the templates give at most {most}")
    plan = []
    for index in range(n):
        round_, position = divmod(index, len(INTENTS))
        intent = round_order(seed, split, round_)[position]
        voice, speed, pitch = draw_voice(random.Random(f"{seed}-{split}-{index}"), VARIANTS[split], SPEED_WPM, PITCH)
        plan.append(
            CourseUtterance(
                file=f"{split}/{split}_{index:04d}.flac", split=split, text=pools[intent][round_],
                voice=voice, speed=speed, pitch=pitch, amplitude=AMPLITUDE, intent_class=intent,
            )
        )
    return plan


def plan_corpus(seed: int, n_train: int, n_test: int) -> list[CourseUtterance]:
    """The whole corpus as a list of utterances, before any audio exists."""
    pools = sentence_pools(seed)
    train = plan_split("train", n_train, seed, pools["train"])
    return train + plan_split("test", n_test, seed, pools["test"])


def generate_corpus(out_dir: Path, seed: int = 14, n_train: int = 480, n_test: int = 120) -> Path:
    """Synthesise the course corpus into ``out_dir`` and return the path of its ``metadata.csv``."""
    plan = plan_corpus(seed, n_train, n_test)
    return write_corpus(out_dir, plan, SPLITS, METADATA_COLUMNS, compression_level=FLAC_COMPRESSION)
