"""The unseen evaluation set (``asr_helpers/unseen``): recordings made the way a learner's differ.

The course corpus is one kind of audio: 8 kHz telephone-band FLAC of banking sentences from
per-intent templates, spoken by the course's espeak-ng voices. A model scored only on its test
split looks better than it will on a learner's own recordings, which have other words, other
speaking rates, other files (WAV, OGG, MP3, stereo, 16-48 kHz) and wider bands. This set
measures that gap with 36 recordings, six in each of six formats, each a different sentence:

* hand-written sentences (``unseen_data/sentences.txt``): banking requests phrased unlike the
  templates, and everyday sentences; the script refuses any the course or pre-training has;
* voices of the pre-training held-out variants (never a course variant, never heard in
  pre-training), at 130-190 words per minute;
* a :class:`~channels.Channel` per row: room echo, coloured noise, the format's band, a level.

Every draw of a row comes from a generator seeded by the row's index alone, so a row never
depends on the others. Run ``python scripts/unseen_set.py --out asr_helpers/unseen``.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf

from asr_helpers import synth
from channels import NOISE_COLOURS, TELEPHONE_RATE, Channel
from pretraining_corpus import VARIANTS as PRETRAINING_VARIANTS
from pretraining_corpus import course_sentence_keys, pretraining_sentences, sentence_key

SENTENCES_FILE = Path(__file__).resolve().parent / "unseen_data" / "sentences.txt"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "asr_helpers" / "unseen"
METADATA_COLUMNS: tuple[str, ...] = (
    "file", "transcription", "format", "rate", "channels", "band", "band_hz", "voice", "speed", "pitch",
    "noise", "snr_db", "rt60_s", "peak_dbfs", "duration_s",
)
PRETRAINING_SEEDS = (0, 1, 2, 3, 4)  # the seeds of the course-base runs' corpora (its card lists them)
PRETRAINING_SIZES = {"train": 32_000, "heldout": 400}  # more sentences than any of them used
VARIANTS = PRETRAINING_VARIANTS["heldout"]  # no course variant, none heard in pre-training
SPEED_WPM = (130, 190)
PITCH = (20, 80)
AMPLITUDE = 60  # espeak-ng -a; each row's level is then set by its channel's peak_dbfs
TELEPHONE_BAND_HZ = (300, 3400)
WIDE_LOW_HZ = (60, 120)
WIDE_HIGH_HZ = 10_000  # or 500 Hz below Nyquist when that is lower
SNR_DB = (15.0, 30.0)
RT60_S = (0.2, 0.5)
DRR_DB = (3.0, 10.0)
PEAK_DBFS = (-25.0, -3.0)
# (noise, echo), dealt as a Latin square (:func:`conditions`): each format, and each group of six
# sentences, meets every condition once, so noise is on 2/3 of the rows and echo on 1/2.
CONDITIONS: tuple[tuple[bool, bool], ...] = (
    (True, True), (True, False), (False, True), (True, True), (True, False), (False, False),
)
MIC_DELAY_SAMPLES = (2, 8)  # a laptop's second microphone, a few centimetres further away
MIC_GAIN_DB = (-4.0, -1.0)


@dataclass(frozen=True)
class Format:
    """How one sixth of the set is stored: rate, channels, libsndfile container and subtype."""

    name: str
    rate: int
    channels: int
    container: str
    subtype: str
    extension: str

    @property
    def lossy(self) -> bool:
        """Lossy files are encoded from floats; lossless ones get exact 16-bit integers."""
        return self.container in ("OGG", "MP3")

    def band_hz(self, rng: random.Random) -> tuple[int, int]:
        """The band the recording passes: a phone line at 8 kHz, else a microphone's wide band."""
        if self.rate == TELEPHONE_RATE:
            return TELEPHONE_BAND_HZ
        return rng.randint(*WIDE_LOW_HZ), min(self.rate // 2 - 500, WIDE_HIGH_HZ)


FORMATS: tuple[Format, ...] = (
    Format("phone-wav-8k", 8000, 1, "WAV", "PCM_16", "wav"),
    Format("flac-16k", 16_000, 1, "FLAC", "PCM_16", "flac"),
    Format("ogg-22k", 22_050, 1, "OGG", "VORBIS", "ogg"),
    Format("mp3-24k", 24_000, 1, "MP3", "MPEG_LAYER_III", "mp3"),
    Format("wav-44k-stereo", 44_100, 2, "WAV", "PCM_16", "wav"),
    Format("flac-48k", 48_000, 1, "FLAC", "PCM_16", "flac"),
)


@dataclass(frozen=True)
class Recording:
    """One planned recording: its sentence, voice, format and channel, before any audio exists."""

    index: int
    text: str
    voice: str
    speed: int
    pitch: int
    format: Format
    channel: Channel
    mic_delay: int  # samples between the two microphones (stereo formats only)
    mic_gain_db: float

    @property
    def file(self) -> str:
        """Where the file goes under the set's folder; the number is the sentence's line, from 0."""
        return f"{self.format.name}/{self.format.name}_{self.index:02d}.{self.format.extension}"

    def audio(self) -> np.ndarray:
        """The speech at the format's rate through the channel; (samples, 2) for a stereo format."""
        speech = synth.speak(self.text, self.voice, self.speed, self.pitch, AMPLITUDE, self.format.rate)
        mono = self.channel.apply(speech)
        if self.format.channels == 1:
            return mono
        second = np.concatenate((np.zeros(self.mic_delay), mono[: len(mono) - self.mic_delay]))
        return np.column_stack((mono, second * 10 ** (self.mic_gain_db / 20)))

    def write(self, out_dir: Path) -> dict[str, str]:
        """Synthesise into ``out_dir``/:attr:`file` and return the file's metadata.csv row."""
        samples = self.audio()
        path = out_dir / self.file
        path.parent.mkdir(parents=True, exist_ok=True)
        data = samples.astype(np.float32) if self.format.lossy else synth.to_pcm16(samples)
        sf.write(path, data, self.format.rate, format=self.format.container, subtype=self.format.subtype)
        return {
            "file": self.file, "transcription": self.text, "format": self.format.name,
            "channels": str(self.format.channels), "band": self.channel.band, "voice": self.voice,
            "speed": str(self.speed), "pitch": str(self.pitch), **self.channel.columns(),
            "duration_s": f"{len(samples) / self.format.rate:.3f}",
        }


def conditions(index: int) -> tuple[bool, bool]:
    """Whether row ``index`` has noise and echo: format ``index % 6``, sentence group ``index // 6``."""
    return CONDITIONS[(index % len(FORMATS) + index // len(FORMATS)) % len(CONDITIONS)]


def draw_channel(rng: random.Random, fmt: Format, noisy: bool, echo: bool) -> Channel:
    """The row's channel at the format's rate: its band, noise colour and SNR, room, level, seed."""
    return Channel(
        rate=fmt.rate, band_hz=fmt.band_hz(rng), noise=rng.choice(tuple(NOISE_COLOURS)) if noisy else "none",
        snr_db=round(rng.uniform(*SNR_DB), 1) if noisy else 0.0,
        rt60_s=round(rng.uniform(*RT60_S), 2) if echo else 0.0,
        drr_db=round(rng.uniform(*DRR_DB), 1) if echo else 0.0,
        peak_dbfs=round(rng.uniform(*PEAK_DBFS), 1), seed=rng.getrandbits(32),
    )


def plan_recording(index: int, text: str) -> Recording:
    """Row ``index``: sentence ``index`` in format ``index % 6``, every draw from its own generator."""
    rng = random.Random(f"unseen-{index}")
    fmt = FORMATS[index % len(FORMATS)]
    voice, speed, pitch = synth.draw_voice(rng, VARIANTS, SPEED_WPM, PITCH)
    channel = draw_channel(rng, fmt, *conditions(index))
    return Recording(
        index=index, text=text, voice=voice, speed=speed, pitch=pitch, format=fmt, channel=channel,
        mic_delay=rng.randint(*MIC_DELAY_SAMPLES), mic_gain_db=round(rng.uniform(*MIC_GAIN_DB), 1),
    )


@cache
def known_sentences() -> dict[str, str]:
    """Sentence keys the course or pre-training already has, each with where it comes from."""
    known = {}
    for seed in PRETRAINING_SEEDS:
        for split, n in PRETRAINING_SIZES.items():
            origin = f"a pre-training sentence (seed {seed}, {split})"
            known.update(dict.fromkeys(map(sentence_key, pretraining_sentences(seed, split, n)), origin))
    known.update(dict.fromkeys(course_sentence_keys(), "a course template sentence"))
    return known


def read_sentences(path: Path = SENTENCES_FILE) -> list[str]:
    """The set's sentences, one per format slot; any the models may have heard is refused."""
    sentences = path.read_text(encoding="utf-8").splitlines()
    if len(sentences) % len(FORMATS):
        raise ValueError(f"{path}: {len(sentences)} sentences, not a multiple of the {len(FORMATS)} formats")
    for number, text in enumerate(sentences, 1):
        origin = known_sentences().get(sentence_key(text))
        if origin:
            raise ValueError(f"{path.name} line {number}: {text!r} is {origin}; an unseen sentence must be new")
    return sentences


def generate_unseen_set(out_dir: Path = DEFAULT_OUT) -> Path:
    """Synthesise every recording into ``out_dir`` and return the path of its ``metadata.csv``."""
    synth.require_espeak()
    rows = [plan_recording(index, text).write(out_dir) for index, text in enumerate(read_sentences())]
    return synth.write_metadata(out_dir, rows, METADATA_COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write (default: %(default)s)")
    args = parser.parse_args()
    try:
        print(generate_unseen_set(args.out))
    except (ValueError, RuntimeError) as error:
        parser.exit(1, f"unseen_set.py: {error}\n")


if __name__ == "__main__":
    main()
