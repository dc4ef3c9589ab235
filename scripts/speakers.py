"""What makes one person's voice unlike another's, applied to a synthesiser's voice.

A flite or festival voice is one recorded speaker, always at the same vocal-tract length, tempo
and level. People differ in all of these, and the model should not learn one speaker's formants
as the sound of a letter. A :class:`Speaker` turns one voice into many: it warps the spectrum
(a longer or shorter vocal tract: formants and pitch move together), changes the tempo without
changing the spectrum, lets the level drift through the utterance and pads it with pauses of any
length. Only numpy and soxr: resampling warps, overlap-add with a waveform-similarity search
(WSOLA) restores the length. Each effect is drawn from the row's seed, so a file is the same on
every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import soxr

WARP = (0.86, 1.16)  # spectral warp factor: formants and pitch times this (about a child to a tall adult, around the voice)
TEMPO = (0.8, 1.25)  # speaking rate times this (duration divided by it)
LEVEL_DRIFT_DB = (0.0, 6.0)  # peak-to-peak swing of a slow gain drift (a speaker moving towards or away from the microphone)
PAUSE_S = (0.05, 0.45)  # silence before and after the speech, each drawn alone
FRAME_S = 0.03  # WSOLA frame: several pitch periods of any voice
SEARCH_S = 0.008  # how far WSOLA may move a frame to line up its waveform with the previous one


def time_stretch(samples: np.ndarray, factor: float, rate: int) -> np.ndarray:
    """``samples`` made ``factor`` times longer with the same spectrum (WSOLA, Hann frames, 50 % overlap).

    Each output frame is taken from near its ideal place in the input, shifted by up to
    :data:`SEARCH_S` to the spot whose waveform best continues the previous frame, so periods line
    up and no phasing is heard.
    """
    frame = int(FRAME_S * rate) // 2 * 2
    hop_out, search = frame // 2, int(SEARCH_S * rate)
    padded = np.concatenate([np.zeros(frame + search), samples, np.zeros(2 * frame + search)])
    window = np.hanning(frame)
    length = int(round(len(samples) * factor))
    out = np.zeros(length + 2 * frame)
    weight = np.zeros_like(out)
    previous = None
    for k, start_out in enumerate(range(0, length + frame, hop_out)):
        ideal = frame + search + int(round(k * hop_out / factor)) - frame // 2
        start = ideal
        if previous is not None:
            target = padded[previous + hop_out : previous + hop_out + frame]
            region = padded[ideal - search : ideal + search + frame]
            start = ideal - search + int(np.argmax(np.correlate(region, target, "valid")))
        out[start_out : start_out + frame] += padded[start : start + frame] * window
        weight[start_out : start_out + frame] += window
        previous = start
    out = out[frame // 2 : frame // 2 + length]
    return out / np.maximum(weight[frame // 2 : frame // 2 + length], 1e-3)


def warp(samples: np.ndarray, factor: float, tempo: float, rate: int) -> np.ndarray:
    """Every frequency times ``factor`` (resampling), then the length set for ``tempo`` (WSOLA)."""
    shifted = soxr.resample(samples, rate * factor, rate, quality="HQ")
    return time_stretch(shifted, factor / tempo, rate)


@dataclass(frozen=True)
class Speaker:
    """One drawn speaker: a warp of the voice's spectrum, a tempo, a level drift and pauses."""

    warp: float = 1.0
    tempo: float = 1.0
    drift_db: float = 0.0
    pauses_s: tuple[float, float] = (0.0, 0.0)
    seed: int = 0

    @classmethod
    def draw(cls, rng: random.Random) -> Speaker:
        """A speaker with every effect drawn from its range, in a fixed order."""
        return cls(
            warp=round(rng.uniform(*WARP), 3), tempo=round(rng.uniform(*TEMPO), 3),
            drift_db=round(rng.uniform(*LEVEL_DRIFT_DB), 1),
            pauses_s=(round(rng.uniform(*PAUSE_S), 2), round(rng.uniform(*PAUSE_S), 2)), seed=rng.getrandbits(32),
        )

    def apply(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """The voice as this speaker says it: warped, at its tempo, its level drifting, between pauses."""
        if self.warp != 1.0 or self.tempo != 1.0:
            samples = warp(samples, self.warp, self.tempo, rate)
        if self.drift_db > 0:
            phase = np.random.default_rng(self.seed).uniform(0, 2 * np.pi)
            t = np.linspace(0, 1, len(samples))
            samples = samples * 10 ** (self.drift_db / 40 * np.sin(2 * np.pi * 0.7 * t + phase))
        before, after = (np.zeros(int(s * rate)) for s in self.pauses_s)
        return np.concatenate([before, samples, after])

    def columns(self) -> dict[str, str]:
        """How the speaker is written in a metadata.csv row."""
        return {"warp": f"{self.warp:.3f}", "tempo": f"{self.tempo:.3f}", "drift_db": f"{self.drift_db:.1f}"}
