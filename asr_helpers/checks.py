"""What CTC cannot learn from, caught early: every row it cannot use is found before training,
reported by file and never dropped silently, and a non-finite loss stops training at its step.

A row is unusable when its audio cannot be decoded, its transcript is empty or has characters
outside the vocabulary, or its audio is too short for the model's convolutions or gives fewer
frames than CTC needs to spell its transcript: such a row would crash the model or make the loss
infinite, often thousands of steps into a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from datasets import Dataset, DatasetDict
from torch.utils.hooks import RemovableHandle
from transformers import PretrainedConfig, TrainerCallback, Wav2Vec2Processor
from transformers.trainer_callback import TrainerState

from asr_helpers.audio import AudioDecodeError, audio_name, load_audio
from asr_helpers.text import normalize_text


@dataclass(frozen=True)
class ConvGeometry:
    """How a Wav2Vec2 model's convolutional feature encoder turns audio samples into output frames.

    Every frame sees ``min_samples`` samples (the receptive field) and a new frame starts every
    ``frame_samples`` samples. Audio shorter than the receptive field gives no frame at all, and
    CTC needs at least one frame per label: both limits come from the model, not from the data.
    """

    min_samples: int
    frame_samples: int

    @classmethod
    def of(cls, config: PretrainedConfig) -> ConvGeometry:
        """Read the limits off a config's ``conv_kernel`` and ``conv_stride`` (unpadded convolutions)."""
        field = 1
        for kernel, stride in zip(reversed(config.conv_kernel), reversed(config.conv_stride)):
            field = (field - 1) * stride + kernel
        return cls(min_samples=field, frame_samples=math.prod(config.conv_stride))

    def frames(self, samples: int) -> int:
        """How many frames the model outputs for ``samples`` input samples."""
        return 0 if samples < self.min_samples else (samples - self.min_samples) // self.frame_samples + 1


def ctc_frames_needed(labels: Sequence[int]) -> int:
    """Frames CTC needs to spell ``labels``: one per label, plus a blank between two equal labels in a row."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def check_vocab(texts: Iterable[str], processor: Wav2Vec2Processor) -> dict[str, int]:
    """Characters of normalised ``texts`` that the tokenizer would turn into ``<unk>``, with counts."""
    known = set(processor.tokenizer.get_vocab()) | {" "}
    unknown: dict[str, int] = {}
    for text in texts:
        for ch in normalize_text(text):
            if ch not in known:
                unknown[ch] = unknown.get(ch, 0) + 1
    return unknown


OnError = Literal["fail", "drop"]


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be trained on: where it is, what kind of problem, and a line naming its file."""

    split: str
    index: int
    problem: str
    message: str


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate_dataset` found; ``str()`` gives counts per problem and examples by path."""

    rows: int
    bad: tuple[BadRow, ...]
    dropped: bool

    def __str__(self) -> str:
        if not self.bad:
            return f"all {self.rows} rows are usable"
        action = "dropped them" if self.dropped else 'fix them, or drop them with on_error="drop" (--on-bad-rows drop)'
        lines = [f"{len(self.bad)} of {self.rows} rows cannot be used for CTC training; {action}:"]
        for problem in dict.fromkeys(row.problem for row in self.bad):
            rows = [row for row in self.bad if row.problem == problem]
            lines.append(f"  {problem}: {len(rows)} row{'s' * (len(rows) > 1)}, e.g.")
            lines += [f"    {row.split}[{row.index}] {row.message}" for row in rows[:3]]
            lines += [f"    and {len(rows) - 3} more"] if len(rows) > 3 else []
        return "\n".join(lines)


class BadRowsError(ValueError):
    """Raised by :func:`validate_dataset` with ``on_error="fail"``; the message is the report."""

    def __init__(self, report: ValidationReport):
        super().__init__(str(report))
        self.report = report


def validate_dataset(
    dataset: Dataset | DatasetDict,
    processor: Wav2Vec2Processor,
    geometry: ConvGeometry | None,
    *,
    on_error: OnError = "fail",
) -> tuple[Dataset | DatasetDict, ValidationReport]:
    """Find the rows CTC training cannot use, then fail (default) or drop them, never silently.

    A row is unusable when its audio cannot be decoded, its transcript is empty or has characters
    outside the vocabulary, or (with the model's ``geometry``; ``None`` skips these) its audio is
    shorter than one frame or gives fewer frames than CTC needs for its labels: such a row would
    crash the model or make the loss infinite. Audio is decoded here and again by
    :func:`~asr_helpers.preprocessing.prepare_dataset`: the price of knowing every bad row before any work is done.
    """
    if on_error not in ("fail", "drop"):
        raise ValueError(f"on_error must be 'fail' or 'drop', not {on_error!r}")
    splits = dict(dataset) if isinstance(dataset, DatasetDict) else {"dataset": dataset}
    bad = tuple(
        BadRow(name, index, *problem)
        for name, split in splits.items()
        for index, row in enumerate(split.select_columns(["audio", "transcription"]))
        if (problem := _row_problem(row["audio"], row["transcription"], processor, geometry))
    )
    report = ValidationReport(sum(split.num_rows for split in splits.values()), bad, dropped=on_error == "drop")
    if bad and on_error == "fail":
        raise BadRowsError(report)
    for name, split in splits.items():
        drop = {row.index for row in bad if row.split == name}
        splits[name] = split.select([i for i in range(split.num_rows) if i not in drop]) if drop else split
    return (DatasetDict(splits) if isinstance(dataset, DatasetDict) else splits["dataset"]), report


def _row_problem(
    audio: dict, text: str | None, processor: Wav2Vec2Processor, geometry: ConvGeometry | None
) -> tuple[str, str] | None:
    """``(problem, message)`` for an unusable row, ``None`` for a good one; cheap text checks first."""
    name = audio_name(audio)
    normalized = normalize_text(text or "")
    if not normalized:
        return "empty transcript", f"{name}: empty transcript {text!r}"
    unknown = check_vocab([normalized], processor)
    if unknown:
        return "characters outside the vocabulary", f"{name}: characters outside the vocabulary: {unknown}"
    rate = processor.feature_extractor.sampling_rate
    try:
        samples = len(load_audio(audio, rate, min_samples=geometry.min_samples if geometry else 0))
    except AudioDecodeError as error:
        return "unusable audio", str(error)
    if geometry is None:
        return None
    labels = processor.tokenizer(normalized)["input_ids"]
    needed, frames = ctc_frames_needed(labels), geometry.frames(samples)
    if needed > frames:
        return "transcript too long for the audio", (
            f"{name}: {len(labels)} labels need {needed} frames, but {samples / rate:.2f} s of audio gives {frames}"
        )
    return None


class NonFiniteLossError(RuntimeError):
    """Training stopped at a NaN or infinite loss, before the optimizer used it; the message names the step and batch."""


class StopOnNonFiniteLoss(TrainerCallback):
    """Stop training at the first NaN or infinite training loss, naming the step and the batch's transcripts.

    Left alone, the Trainer logs the average of earlier losses in its place
    (``logging_nan_inf_filter``) and gradient clipping turns the infinite gradients into NaN
    weights: the run goes on, silently ruined. A forward hook checks each training loss before
    ``backward``, so the weights stay as they were and the last checkpoint is sound for a resume
    once the bad rows are fixed or dropped (:func:`~asr_helpers.checks.validate_dataset`).
    """

    def __init__(self) -> None:
        self._hook: RemovableHandle | None = None

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._remove_hook()
        self._hook = model.register_forward_hook(partial(self._check, state, processing_class), with_kwargs=True)

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hook()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _check(self, state: TrainerState, processor: Wav2Vec2Processor, module, args, kwargs, output) -> None:
        loss = getattr(output, "loss", None)
        if not module.training or loss is None or torch.isfinite(loss).all():
            return
        self._remove_hook()
        labels = kwargs["labels"]
        texts = processor.batch_decode(labels.masked_fill(labels < 0, processor.tokenizer.pad_token_id), group_tokens=False)
        raise NonFiniteLossError(
            f"step {state.global_step + 1}: training loss is {loss.item()} on a batch of {len(texts)} rows "
            f"(transcripts {', '.join(map(repr, texts))}); stopped before the optimizer used it. "
            "A transcript too long for its audio makes the CTC loss infinite: check the rows with validate_dataset"
        )
