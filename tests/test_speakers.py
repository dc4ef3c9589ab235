"""The speaker variety of the pre-training corpus's flite and festival rows (scripts/speakers.py)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "scripts")]

import speakers  # noqa: E402

RATE = 16_000


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)


def peak_hz(samples: np.ndarray) -> float:
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[np.argmax(np.abs(np.fft.rfft(samples)))])


@pytest.mark.parametrize("factor", [0.8, 1.25, 1.5])
def test_time_stretch_changes_the_length_and_keeps_the_pitch(factor: float) -> None:
    stretched = speakers.time_stretch(tone(200.0), factor, RATE)
    assert len(stretched) == round(RATE * factor)
    assert peak_hz(stretched) == pytest.approx(200.0, abs=1.5)
    middle = stretched[len(stretched) // 4 : -len(stretched) // 4]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(np.sqrt(0.5), rel=0.05)  # no dips where frames overlap


@pytest.mark.parametrize("factor", [0.86, 1.16])
def test_warp_moves_every_frequency_and_keeps_the_length_at_tempo_one(factor: float) -> None:
    warped = speakers.warp(tone(300.0) + tone(1000.0), factor, 1.0, RATE)
    assert len(warped) == RATE
    spectrum = np.abs(np.fft.rfft(warped))
    freqs = np.fft.rfftfreq(len(warped), 1 / RATE)
    top_two = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert top_two == pytest.approx([300.0 * factor, 1000.0 * factor], abs=2.0)


def test_speaker_adds_its_pauses_and_tempo_and_is_the_same_every_time() -> None:
    speaker = speakers.Speaker(warp=1.1, tempo=1.25, drift_db=6.0, pauses_s=(0.2, 0.1), seed=7)
    speech = tone(150.0)
    first, second = speaker.apply(speech, RATE), speaker.apply(speech, RATE)
    np.testing.assert_array_equal(first, second)
    assert len(first) == int(0.2 * RATE) + round(RATE / 1.25) + int(0.1 * RATE)
    assert not first[: int(0.2 * RATE)].any() and not first[-int(0.1 * RATE) :].any()
    voiced = first[int(0.2 * RATE) : -int(0.1 * RATE)]
    envelope = [np.max(np.abs(voiced[i : i + 800])) for i in range(800, len(voiced) - 1600, 800)]
    assert 20 * np.log10(max(envelope) / min(envelope)) == pytest.approx(6.0, abs=1.5)  # the drift's swing


def test_drawn_speakers_stay_in_their_ranges() -> None:
    rng = random.Random(0)
    drawn = [speakers.Speaker.draw(rng) for _ in range(200)]
    assert all(speakers.WARP[0] <= s.warp <= speakers.WARP[1] for s in drawn)
    assert all(speakers.TEMPO[0] <= s.tempo <= speakers.TEMPO[1] for s in drawn)
    assert all(speakers.PAUSE_S[0] <= p <= speakers.PAUSE_S[1] for s in drawn for p in s.pauses_s)
    assert min(s.warp for s in drawn) < 0.9 and max(s.warp for s in drawn) > 1.1
