"""Decoding beyond greedy (notebook 07): CTC by hand, word timestamps, forced alignment and error analysis.

Every decoder starts from the same thing, the model's log-probabilities for every 20 ms frame of a
whole recording (:func:`~asr_helpers.inference.frame_logits`), so greedy, beam and beam + LM
(:mod:`asr_helpers.beam_search`) differ only in how they read those frames, and word times are
frame numbers times the frame's duration. :func:`~asr_helpers.inference.transcribe` runs them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.checks import ConvGeometry
from asr_helpers.metrics import align

# --- CTC by hand ------------------------------------------------------------------------------


def collapse(path: Sequence[str], blank: str = "_") -> str:
    """CTC's many-to-one map: merge runs of the same symbol, then drop the blanks ("HH_EL_LL_O" -> "HELLO")."""
    return "".join(symbol for symbol, _ in itertools.groupby(path) if symbol != blank)


def alignments(target: str, frames: int, alphabet: str, blank: str = "_") -> list[str]:
    """Every path of ``frames`` symbols from ``alphabet`` that collapses to ``target``, by brute
    force: ``len(alphabet) ** frames`` candidates, so only for toy sizes."""
    return ["".join(path) for path in itertools.product(alphabet, repeat=frames) if collapse(path, blank) == target]


def transcript_probabilities(probs: np.ndarray, alphabet: str, blank: str = "_") -> dict[str, float]:
    """The probability of every transcript: the sum over all the paths that collapse to it, most probable first.

    ``probs`` is frames x symbols (rows sum to 1). Greedy decoding keeps only the single best
    path; a transcript spread over many good paths can beat it.
    """
    totals: Counter[str] = Counter()
    for path in itertools.product(range(len(alphabet)), repeat=len(probs)):
        totals[collapse([alphabet[i] for i in path], blank)] += float(np.prod(probs[np.arange(len(probs)), path]))
    return dict(totals.most_common())


# --- words and their times --------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """A word and where it is in the recording, in seconds: its first letter's first frame to its last letter's last."""

    word: str
    start: float
    end: float


def frame_seconds(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor) -> float:
    """How long one output frame lasts: the samples per frame over the sampling rate (20 ms for wav2vec2)."""
    return ConvGeometry.of(model.config).frame_samples / processor.feature_extractor.sampling_rate


def words_from_frames(path: Sequence[str], frame_s: float, blank: str = "<pad>", delimiter: str = "|") -> list[Word]:
    """The words of a frame-by-frame token path with their times, as ``batch_decode(output_word_offsets=True)``
    counts them: a word runs from its first letter's first frame to the frame after its last letter."""
    words: list[Word] = []
    letters, start, end = "", 0, 0
    for t, (token, group) in enumerate_runs(path):
        if token == delimiter and letters:
            words.append(Word(letters, round(start * frame_s, 3), round(end * frame_s, 3)))
            letters = ""
        elif token not in (blank, delimiter):
            start = t if not letters else start
            letters, end = letters + token, t + group
    if letters:
        words.append(Word(letters, round(start * frame_s, 3), round(end * frame_s, 3)))
    return words


def enumerate_runs(path: Sequence[str]) -> Iterator[tuple[int, tuple[str, int]]]:
    """``(first frame, (token, run length))`` for each run of equal tokens: CTC's repeats are one letter."""
    t = 0
    for token, run in itertools.groupby(path):
        length = len(list(run))
        yield t, (token, length)
        t += length


def forced_align(log_probs: np.ndarray, targets: Sequence[int], blank: int) -> list[int]:
    """The most probable frame-by-frame path (Viterbi) that spells exactly ``targets``: where each
    letter of a *known* transcript is, rather than what the model would have written.

    The states are the targets with a blank before, between and after them; a path may stay,
    move one state on, or skip a blank between two different letters (CTC's rules).
    """
    states = np.array([blank] + [token for target in targets for token in (target, blank)])
    emit = np.asarray(log_probs)[:, states]
    skip_ok = np.r_[False, False, (states[2:] != blank) & (states[2:] != states[:-2])]
    score = np.full(len(states), -np.inf)
    score[:2] = emit[0, :2]
    moves = np.zeros((len(emit), len(states)), dtype=np.int64)
    for t in range(1, len(emit)):
        candidates = np.stack([score, np.r_[-np.inf, score[:-1]], np.where(skip_ok, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)])
        moves[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + emit[t]
    state = len(states) - 1 if len(states) == 1 or score[-1] >= score[-2] else len(states) - 2
    if not np.isfinite(score[state]):
        raise ValueError(f"{len(targets)} tokens cannot be spelled in {len(emit)} frames")
    path = []
    for t in range(len(emit) - 1, -1, -1):
        path.append(int(states[state]))
        state -= moves[t, state]
    return path[::-1]


# --- greedy words --------------------------------------------------------------------------


def greedy_words(processor: Wav2Vec2Processor, log_probs: torch.Tensor, frame_s: float) -> list[Word]:
    """Greedy decoding with the times transformers gives: ``decode(..., output_word_offsets=True)``
    counts each word's first and past-the-last frame, which times the frame's duration makes seconds."""
    output = processor.decode(log_probs.argmax(dim=-1), output_word_offsets=True)
    return [Word(o["word"], round(float(o["start_offset"]) * frame_s, 3), round(float(o["end_offset"]) * frame_s, 3))
            for o in output.word_offsets]


# --- error analysis ---------------------------------------------------------------------------


def confusions(references: Sequence[str], hypotheses: Sequence[str], unit: str = "word") -> Counter[tuple[str, str]]:
    """How often each (reference, hypothesis) pair was substituted, over notebook 04's alignments of words or characters."""
    split = str.split if unit == "word" else list
    return Counter((ref, hyp) for r, h in zip(references, hypotheses)
                   for op, ref, hyp in align(split(r), split(h)) if op == "substitute")
