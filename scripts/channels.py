"""What happens to speech between a mouth and a file: the channel of a synthetic recording.

espeak-ng speaks in a silent, echo-free room straight into the file. A learner's recording went
through a room (echo), a microphone or a phone line (its band), and the world around it (noise),
at whatever level the input gain left it. The pre-training corpus (``pretraining_corpus.py``) and
the unseen evaluation set (``unseen_set.py``) put their speech through a :class:`Channel`, so the
model hears in training what users will feed it, and the evaluation measures it on what it never
heard. Each effect is seeded by the row, so a file is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr_helpers.audio import TARGET_SAMPLING_RATE
from asr_helpers.synth import SAMPLE_RATE

NOISE_COLOURS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power falls as 1/f**exponent
EDGE_HZ = 100.0  # width of the raised-cosine transition at each band edge
TELEPHONE_RATE = SAMPLE_RATE  # the course corpus's 8 kHz: nothing above 4 kHz survives a phone line
WIDEBAND_RATE = TARGET_SAMPLING_RATE  # the model's own 16 kHz: every wider recording is resampled to it first


def band_pass(samples: np.ndarray, low_hz: float, high_hz: float, rate: int) -> np.ndarray:
    """Keep [low_hz, high_hz] with raised-cosine edges, in the frequency domain (no phase shift)."""
    size = 1 << max(len(samples) - 1, 1).bit_length()  # a power of two: prime lengths are slow
    spectrum = np.fft.rfft(samples, size)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    rise = np.clip((freqs - (low_hz - EDGE_HZ / 2)) / EDGE_HZ, 0, 1)
    fall = np.clip(((high_hz + EDGE_HZ / 2) - freqs) / EDGE_HZ, 0, 1)
    gain = (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
    return np.fft.irfft(spectrum * gain, size)[: len(samples)]


def speech_power(samples: np.ndarray) -> float:
    """Mean power of the speech alone: samples within 40 dB of the peak, so pauses do not dilute it."""
    peak = np.max(np.abs(samples)) if len(samples) else 0.0
    active = samples[np.abs(samples) > peak * 0.01] if peak > 0 else samples
    return float(np.mean(active**2)) if len(active) else 0.0


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of unit power whose spectrum falls as 1/f**k: white (0), pink (1), brown (2).

    Pink is what rooms, fans and traffic sound like; brown is rumble. White draws straight from
    ``rng``, so the telephone-only corpus keeps the samples it always had.
    """
    white = rng.standard_normal(length)
    exponent = NOISE_COLOURS[colour]
    if exponent == 0.0 or length < 2:
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = freqs[1]  # no infinite gain at DC
    shaped = np.fft.irfft(spectrum / freqs ** (exponent / 2), length)
    return shaped / np.sqrt(np.mean(shaped**2))


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white") -> np.ndarray:
    """Noise at ``snr_db`` below the power of the speech (:func:`speech_power`)."""
    noise = coloured_noise(len(samples), colour, rng)
    return samples + noise * np.sqrt(speech_power(samples) / 10 ** (snr_db / 10))


def room_impulse_response(rt60_s: float, drr_db: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room's echo: the direct sound, then a tail of noise decaying by 60 dB in ``rt60_s``.

    ``drr_db`` is the direct-to-reverberant ratio: the direct sound's energy over the tail's.
    A small office is about 0.3 s and 5-10 dB; a bare kitchen 0.6 s and 0 dB.
    """
    t = np.arange(1, int(rt60_s * rate)) / rate
    tail = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60_s)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate(([1.0], tail))


def reverberate(samples: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """Convolve with ``impulse`` (through FFTs) and keep the original length: the echo's end is cut."""
    size = 1 << (len(samples) + len(impulse) - 2).bit_length()
    wet = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(impulse, size), size)
    return wet[: len(samples)]


@dataclass(frozen=True)
class Channel:
    """One recording's path from voice to file, applied in the order sound meets it.

    Room echo (``rt60_s`` > 0), then noise (``noise`` a colour of :data:`NOISE_COLOURS`, or
    "none"), then the band the microphone or line passes, then the level the file ends at
    (``peak_dbfs``; None keeps the synthesiser's). ``rate`` is the rate of the samples it is
    given and of the file: 8 kHz for the telephone band, 16 kHz and up for wideband.
    """

    rate: int
    band_hz: tuple[int, int]
    noise: str = "none"
    snr_db: float = 0.0
    rt60_s: float = 0.0
    drr_db: float = 0.0
    peak_dbfs: float | None = None
    seed: int = 0

    @property
    def band(self) -> str:
        """"telephone" when the top of the band is at or below 4 kHz, else "wideband"."""
        return "telephone" if self.band_hz[1] <= TELEPHONE_RATE // 2 else "wideband"

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """The recording as the file holds it: echo, noise, band, level (each drawn from ``seed``)."""
        rng = np.random.default_rng(self.seed)
        if self.rt60_s > 0:
            samples = reverberate(samples, room_impulse_response(self.rt60_s, self.drr_db, self.rate, rng))
        if self.noise != "none":
            samples = add_noise(samples, self.snr_db, rng, self.noise)
        samples = band_pass(samples, *self.band_hz, self.rate)
        if self.peak_dbfs is not None:
            samples = samples * (10 ** (self.peak_dbfs / 20) / max(np.max(np.abs(samples)), 1e-9))
        return samples

    def columns(self) -> dict[str, str]:
        """How the channel is written in a metadata.csv row."""
        return {
            "rate": str(self.rate), "band_hz": f"{self.band_hz[0]}-{self.band_hz[1]}",
            "noise": self.noise, "snr_db": f"{self.snr_db:.1f}" if self.noise != "none" else "",
            "rt60_s": f"{self.rt60_s:.2f}" if self.rt60_s > 0 else "",
            "peak_dbfs": "" if self.peak_dbfs is None else f"{self.peak_dbfs:.1f}",
        }
