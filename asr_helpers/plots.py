"""The course's pictures: waveforms, spectrograms, durations, padding, training curves, CTC paths.

Each function returns a matplotlib ``Figure`` so a notebook shows it and a script can save it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def spectrogram(array: np.ndarray, sampling_rate: int, window_s: float = 0.025, hop_s: float = 0.010) -> np.ndarray:
    """Log-power spectrogram in dB (frequency x time), 25 ms Hann windows every 10 ms."""
    window = int(window_s * sampling_rate)
    hop = int(hop_s * sampling_rate)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(array, (0, window)), window)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(window), axis=1)) ** 2
    return 10 * np.log10(power.T + 1e-10)


def _show_spectrogram(ax, array: np.ndarray, sampling_rate: int, max_hz: float | None = None) -> None:
    spec = spectrogram(array, sampling_rate)
    duration = len(array) / sampling_rate
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 80, vmax=spec.max(),
              extent=(0, duration, 0, sampling_rate / 2))
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", ylim=(0, max_hz or sampling_rate / 2))


def plot_waveform_and_spectrogram(array: np.ndarray, sampling_rate: int, title: str = "") -> Figure:
    """What the model hears: amplitude over time, and energy per frequency over time."""
    fig, (wave, spec) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, layout="constrained")
    wave.plot(np.arange(len(array)) / sampling_rate, array, linewidth=0.5)
    wave.set(ylabel="amplitude", title=title)
    _show_spectrogram(spec, array, sampling_rate)
    return fig


def plot_resampling(before: np.ndarray, rate_before: int, after: np.ndarray, rate_after: int) -> Figure:
    """Two spectrograms on the same frequency axis: resampling adds samples, not high frequencies."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True, layout="constrained")
    top = max(rate_before, rate_after) / 2
    for ax, array, rate in zip(axes, (before, after), (rate_before, rate_after)):
        _show_spectrogram(ax, array, rate, max_hz=top)
        ax.set_title(f"{rate / 1000:g} kHz: {len(array)} samples")
        if rate / 2 < top:
            ax.text(len(array) / rate / 2, (rate / 2 + top) / 2, f"above {rate / 2:g} Hz:\nnot representable",
                    ha="center", va="center", color="grey")
    return fig


def plot_durations(durations: dict[str, Sequence[float]], bins: int = 20) -> Figure:
    """Histogram of utterance durations per split."""
    fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    edges = np.histogram_bin_edges(np.concatenate([np.asarray(d) for d in durations.values()]), bins=bins)
    for name, values in durations.items():
        ax.hist(values, bins=edges, alpha=0.6, label=f"{name} (n={len(values)})")
    ax.set(xlabel="duration (s)", ylabel="utterances")
    ax.legend()
    return fig


def plot_padding(batches: dict[str, Sequence[Sequence[int]]], rate: int = 16_000) -> Figure:
    """Each batch as rows of real audio (colour) and padding (grey), for each way of batching."""
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 3.2), sharey=True, layout="constrained")
    for ax, (name, groups) in zip(np.atleast_1d(axes), batches.items()):
        row = 0
        for group in groups:
            longest = max(group) / rate
            for length in group:
                ax.barh(row, longest, color="lightgrey")
                ax.barh(row, length / rate, color="tab:blue")
                row += 1
            row += 0.6
        ax.set(title=name, xlabel="seconds (blue: audio, grey: padding)")
        ax.set_yticks([])
    return fig


def plot_training_curves(log_history: list[dict]) -> Figure:
    """Training and evaluation loss, and evaluation WER/CER, against the optimisation step."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"], e["eval_wer"], e["eval_cer"]) for e in log_history if "eval_wer" in e]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    loss_ax.plot(*zip(*train), label="train loss")
    if evals:
        steps, eval_loss, wer, cer = zip(*evals)
        loss_ax.plot(steps, eval_loss, "o-", label="eval loss")
        err_ax.plot(steps, wer, "o-", label="WER")
        err_ax.plot(steps, cer, "s-", label="CER")
    loss_ax.set(xlabel="step", ylabel="CTC loss", title="loss")
    err_ax.set(xlabel="step", ylabel="error rate", title="evaluation", ylim=(0, None))
    loss_ax.legend()
    err_ax.legend()
    return fig


def plot_ctc_path(probs: np.ndarray, tokens: Sequence[str], frame_s: float = 0.02) -> Figure:
    """Frame-by-token probabilities with the greedy (argmax) path marked on top.

    Most frames choose the blank; a word appears as a few frames of its letters, repeats merge.
    """
    fig, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    ax.imshow(probs.T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
              extent=(0, len(probs) * frame_s, -0.5, len(tokens) - 0.5))
    best = probs.argmax(axis=1)
    ax.plot((np.arange(len(probs)) + 0.5) * frame_s, best, "r.", markersize=3, label="greedy path")
    ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    ax.set(xlabel="time (s)", ylabel="token")
    ax.legend(loc="upper right")
    return fig


def plot_bands(
    recordings: dict[str, tuple[np.ndarray, int]], marks_hz: Sequence[float] = (4000, 8000), max_hz: float = 11_025
) -> Figure:
    """Spectrograms of recordings at their own rates on one frequency axis, with lines at ``marks_hz``.

    The lines mark the top of the telephone band (4 kHz) and of what 16 kHz audio can hold
    (8 kHz): energy between them is what a wideband recording carries and a phone line does not.
    Above a file's own Nyquist frequency the panel is black: the file has nothing there.
    """
    fig, axes = plt.subplots(1, len(recordings), figsize=(5 * len(recordings), 3.5), sharey=True, layout="constrained")
    for ax, (name, (array, rate)) in zip(np.atleast_1d(axes), recordings.items()):
        _show_spectrogram(ax, array, rate, max_hz=max_hz)
        ax.set_facecolor("black")
        ax.set_title(f"{name}: {rate / 1000:g} kHz")
        for hz in marks_hz:
            ax.axhline(hz, color="cyan", linestyle="--", linewidth=1)
            ax.text(0.02, hz, f" {hz / 1000:g} kHz", color="cyan", va="bottom", fontsize=8, transform=ax.get_yaxis_transform())
    return fig


def plot_words(array: np.ndarray, sampling_rate: int, words: Sequence, title: str = "") -> Figure:
    """:func:`plot_waveform_and_spectrogram` with each word's span shaded and named on the waveform
    and its start marked on the spectrogram: where the model (or a forced alignment) put it.
    ``words`` have ``word``, ``start`` and ``end`` in seconds (:class:`asr_helpers.decoding.Word`)."""
    fig = plot_waveform_and_spectrogram(array, sampling_rate, title=title)
    wave, spec = fig.axes[:2]
    for number, word in enumerate(words):
        wave.axvspan(word.start, word.end, color=f"C{number % 2 + 1}", alpha=0.2)
        wave.text((word.start + word.end) / 2, 0.9, word.word, transform=wave.get_xaxis_transform(), ha="center", fontsize=8)
        spec.axvline(word.start, color="white", linestyle="--", linewidth=0.8)
    return fig
