"""Word and character error rate (notebook 04): the alignment written out as a worked example,
the numbers from jiwer, the guide's ``compute_metrics`` and the course's, which decodes each
utterance over its own frames only.

``evaluate.load("wer")`` and ``evaluate.load("cer")`` call jiwer: align each prediction with its
reference by Levenshtein distance, count substitutions S, deletions D and insertions I, and
divide by the number N of reference words (or characters), summed over the whole corpus:
``(S + D + I) / N``. Loading them needs the Hugging Face Hub, so :func:`load_metric` falls back
to jiwer itself offline. :func:`align` shows how the counts arise; the tests check its counts
against jiwer's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import jiwer
import numpy as np

if TYPE_CHECKING:
    from transformers import EvalPrediction, Wav2Vec2Processor

    from asr_helpers.checks import ConvGeometry

Op = tuple[str, str | None, str | None]
"""One alignment column: ``(operation, reference token or None, hypothesis token or None)``."""


@dataclass(frozen=True)
class ErrorCounts:
    """What an alignment found. WER is ``(substitutions + deletions + insertions) / reference_length``."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def reference_length(self) -> int:
        """Every reference token is either hit, substituted or deleted; insertions are extra."""
        return self.hits + self.substitutions + self.deletions


def _shared_prefix_length(a: list[str], b: list[str]) -> int:
    length = 0
    for token_a, token_b in zip(a, b):
        if token_a != token_b:
            break
        length += 1
    return length


def align(reference: list[str], hypothesis: list[str]) -> list[Op]:
    """Line up two token sequences with as few edits as possible, as jiwer does.

    Several alignments are often equally cheap ("a b" -> "b c" is two substitutions, or a
    deletion plus an insertion), and they give different S, D and I. jiwer takes its alignment
    from rapidfuzz, so this function makes rapidfuzz's choices: identical leading and trailing
    tokens are matched first, and the walk back through the cost table prefers a deletion, then an
    insertion when the cell to the left beats the diagonal one, then the diagonal step.
    """
    head = _shared_prefix_length(reference, hypothesis)
    tail = _shared_prefix_length(reference[head:][::-1], hypothesis[head:][::-1])
    ref = reference[head : len(reference) - tail]
    hyp = hypothesis[head : len(hypothesis) - tail]

    # cost[i][j]: fewest edits that turn ref[:i] into hyp[:j]; the first row and column are
    # all insertions or all deletions.
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,  # delete ref[i-1]
                cost[i][j - 1] + 1,  # insert hyp[j-1]
                cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),  # keep or substitute
            )

    ops: list[Op] = []
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        if i > 0 and (j == 0 or cost[i][j] == cost[i - 1][j] + 1):
            ops.append(("delete", ref[i - 1], None))
            i -= 1
        elif j > 0 and (i == 0 or cost[i - 1][j - 1] > cost[i][j - 1]):
            ops.append(("insert", None, hyp[j - 1]))
            j -= 1
        else:
            ops.append(("equal" if ref[i - 1] == hyp[j - 1] else "substitute", ref[i - 1], hyp[j - 1]))
            i -= 1
            j -= 1
    ops.reverse()
    return (
        [("equal", token, token) for token in reference[:head]]
        + ops
        + [("equal", token, token) for token in reference[len(reference) - tail :]]
    )


def count_errors(reference: list[str], hypothesis: list[str]) -> ErrorCounts:
    """Tally the columns of :func:`align`: the S, D, I and hits that error rates are made of."""
    operations = [op for op, _, _ in align(reference, hypothesis)]
    return ErrorCounts(
        substitutions=operations.count("substitute"),
        deletions=operations.count("delete"),
        insertions=operations.count("insert"),
        hits=operations.count("equal"),
    )


def _words(text: str) -> list[str]:
    """Split like jiwer's default WER transform: whitespace runs become one space, then split on it."""
    return [word for word in re.sub(r"\s\s+", " ", text).strip().split(" ") if word]


def _checked(predictions: list[str], references: list[str]) -> None:
    """One clear line for the two inputs that make an error rate meaningless."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    if not references:
        raise ValueError("need at least one reference")
    for index, reference in enumerate(references):
        if not reference.strip():
            raise ValueError(
                f"references[{index}] is empty: an error rate divides by the reference length,"
                " so every reference needs some text"
            )


def word_error_rate(predictions: list[str], references: list[str]) -> float:
    """Corpus WER with jiwer, ``(S + D + I) / N`` over words: the number ``evaluate.load("wer")`` gives.

    Errors and reference lengths are summed over the corpus before dividing, so a two-word
    sentence does not weigh as much as a twenty-word one. It can exceed 1: a hypothesis with many
    extra words has more insertions than the reference has words.
    """
    _checked(predictions, references)
    return float(jiwer.wer(list(references), list(predictions)))


def character_error_rate(predictions: list[str], references: list[str]) -> float:
    """Corpus CER with jiwer, ``(S + D + I) / N`` over characters with spaces counted: ``evaluate.load("cer")``.

    CER credits a word that is almost right ("helo" for "hello"), which WER counts as wholly
    wrong, so it moves earlier while a CTC model is learning to spell.
    """
    _checked(predictions, references)
    return float(jiwer.cer(list(references), list(predictions)))


def word_error_rates_by(
    predictions: list[str], references: list[str], groups: list[str]
) -> dict[str, tuple[float, float, int]]:
    """WER, CER and sentence count of each group (a file format, a voice...), groups sorted by name.

    Each group is scored over its sentences together, like the whole set, not as a mean of
    sentence scores: a long sentence weighs more than a short one.
    """
    rates = {}
    for name in sorted(set(groups)):
        chosen = [i for i, group in enumerate(groups) if group == name]
        hypotheses, truths = [predictions[i] for i in chosen], [references[i] for i in chosen]
        rates[name] = (word_error_rate(hypotheses, truths), character_error_rate(hypotheses, truths), len(chosen))
    return rates


def format_alignment(reference: str, hypothesis: str) -> str:
    """Draw the word alignment as three lines, REF, HYP and the S/D/I marks, to see where errors are.

    Each column is as wide as its longer word; ``***`` stands for the word one side lacks.
    """
    marks = {"equal": "", "substitute": "S", "delete": "D", "insert": "I"}
    ref_cells, hyp_cells, mark_cells = [], [], []
    for op, ref_word, hyp_word in align(_words(reference), _words(hypothesis)):
        ref_text, hyp_text = ref_word or "***", hyp_word or "***"
        width = max(len(ref_text), len(hyp_text))
        ref_cells.append(ref_text.ljust(width))
        hyp_cells.append(hyp_text.ljust(width))
        mark_cells.append(marks[op].ljust(width))
    lines = [
        "REF: " + " ".join(ref_cells),
        "HYP: " + " ".join(hyp_cells),
        "     " + " ".join(mark_cells),
    ]
    return "\n".join(line.rstrip() for line in lines)


class Metric(Protocol):
    """What the course needs from a metric: the ``compute`` call of an ``evaluate`` module."""

    def compute(self, *, predictions: list[str], references: list[str]) -> float: ...


_JIWER_METRICS: dict[str, Callable[[list[str], list[str]], float]] = {
    "wer": word_error_rate,
    "cer": character_error_rate,
}


@dataclass(frozen=True)
class JiwerMetric:
    """Stands in for ``evaluate.load(name)`` without the Hub: the same ``compute`` call, and the
    same number, since the Hub's ``wer`` and ``cer`` scripts call jiwer too."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in _JIWER_METRICS:
            raise ValueError(f"no jiwer implementation of metric {self.name!r}: use 'wer' or 'cer'")

    def compute(self, *, predictions: list[str], references: list[str]) -> float:
        return _JIWER_METRICS[self.name](predictions, references)


def load_metric(name: str, mode: str) -> Metric:
    """``evaluate.load(name)`` in ``hub`` mode, :class:`JiwerMetric` in ``offline`` mode.

    ``evaluate.load`` downloads the metric's script from the hub, so it fails without a network
    even when jiwer is installed; then the hub mode says so and carries on with the local
    metric rather than stopping a lesson over an identical number.
    """
    if mode == "offline":
        return JiwerMetric(name)
    if mode != "hub":
        raise ValueError(f"unknown mode {mode!r}: use 'offline' or 'hub'")
    import evaluate  # here, not at the top: importing it is slow and offline mode never needs it

    try:
        return evaluate.load(name)
    except Exception as error:  # no network, hub down, proxy...: every failure ends the same way
        fallback = JiwerMetric(name)
        reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line, however long
        print(
            f"note: evaluate.load({name!r}) failed ({reason});"
            " using jiwer directly (the same definition and number)"
        )
        return fallback


def reference_texts(processor: Wav2Vec2Processor, label_ids: np.ndarray) -> list[str]:
    """The label rows as text. The collator pads labels with -100 so the loss skips them; the
    tokenizer cannot decode -100, so it becomes ``<pad>``, which decoding drops (``np.where``
    makes a new array: the Trainer's labels are left as they were, where the guide overwrites
    them). Labels are text, not CTC frames: ``group_tokens=False`` keeps the double L of "HELLO"."""
    return processor.batch_decode(np.where(label_ids == -100, processor.tokenizer.pad_token_id, label_ids), group_tokens=False)


def logits_of(pred: EvalPrediction) -> np.ndarray:
    """The logits of an evaluation: some models return (logits, hidden states, ...), logits first."""
    return pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions


def make_guide_compute_metrics(
    processor: Wav2Vec2Processor, scorers: dict[str, Metric]
) -> Callable[[EvalPrediction], dict[str, float]]:
    """The guide's ``compute_metrics``: the argmax of every frame of the padded logits, decoded,
    then scored with each of ``scorers`` (e.g. ``{"wer": evaluate.load("wer")}``), loaded once, here.

    Kept to show what the guide teaches (notebook 04) and what it gets wrong: the Trainer hands
    over logits padded to the longest utterance of each batch, and the frames past an utterance's
    end are the model's guesses about padding, which it may spell as letters. The course trains and
    reports with :func:`make_compute_metrics`, which reads each utterance's own frames only.
    """

    def compute_metrics(pred: EvalPrediction) -> dict[str, float]:
        predictions = processor.batch_decode(np.argmax(logits_of(pred), axis=-1))
        references = reference_texts(processor, pred.label_ids)
        return {name: float(scorer.compute(predictions=predictions, references=references)) for name, scorer in scorers.items()}

    return compute_metrics


def make_compute_metrics(
    processor: Wav2Vec2Processor, geometry: ConvGeometry, scorers: dict[str, Metric]
) -> Callable[[EvalPrediction], dict[str, float]]:
    """The course's ``compute_metrics``: greedy decoding of each utterance over its own frames, then
    each of ``scorers``; the number ``python -m asr_helpers evaluate`` gives for the same model.

    The Trainer pads the logits of a batch to its longest utterance (and pads batches to each
    other with -100). The frames past an utterance's end are padding, and the guide's
    :func:`make_guide_compute_metrics` decodes them too: a model may spell letters there, which
    spoil the last word or add words. Here ``pred.label_ids`` is ``(labels, input_lengths)``,
    each utterance's length in samples beside its labels (:class:`~asr_helpers.training.CTCTrainer`
    hands them over), and ``geometry`` (``ConvGeometry.of(model.config)``) turns a length in
    samples into the number of frames the model made for it, as the model's own CTC loss counts them.
    """

    def compute_metrics(pred: EvalPrediction) -> dict[str, float]:
        if not isinstance(pred.label_ids, tuple):
            raise ValueError(
                "compute_metrics needs each utterance's length beside its labels, (labels, input_lengths):"
                " evaluate with asr_helpers.training.CTCTrainer, which hands them over"
            )
        label_ids, input_lengths = pred.label_ids
        frames = [geometry.frames(int(samples)) for samples in input_lengths]
        predictions = processor.batch_decode([row[:count].argmax(axis=-1) for row, count in zip(logits_of(pred), frames)])
        references = reference_texts(processor, label_ids)
        return {name: float(scorer.compute(predictions=predictions, references=references)) for name, scorer in scorers.items()}

    return compute_metrics
