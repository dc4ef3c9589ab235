"""From recordings and transcripts to model inputs: resampling, text normalisation, vocabulary, processor.

Wav2Vec2 was pre-trained on 16 kHz audio and its CTC tokenizer spells upper-case characters, so
every example is resampled to 16 kHz and every transcript is normalised to the vocabulary before
it becomes ``input_values`` and ``labels``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soxr
import datasets
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import (
    AutoProcessor,
    PretrainedConfig,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Processor,
)

from asr_helpers.data import (
    AudioDecodeError,
    audio_name,
    cache_dir,
    corpus_fingerprint,
    load_minds14,
    read_audio,
    resolve_mode,
)
from asr_helpers.synth import CORPUS_DIR, spell_number

TARGET_SAMPLING_RATE = 16_000
HUB_CHECKPOINT = "facebook/wav2vec2-base"
COURSE_CHECKPOINT = Path(__file__).parent / "checkpoints" / "course-base"
PAD, UNK, WORD_DELIMITER = "<pad>", "<unk>", "|"
SYMBOL_WORDS = {"&": " AND ", "%": " PERCENT ", "+": " PLUS ", "@": " AT "}


def resample(array: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Change the sampling rate with soxr's high-quality filter (keeps duration and pitch)."""
    array = np.asarray(array, dtype=np.float32)
    if orig_sr == target_sr:
        return array
    return soxr.resample(array, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(source: str | bytes | dict, sampling_rate: int = TARGET_SAMPLING_RATE, *, min_samples: int = 0) -> np.ndarray:
    """Decode any file soundfile reads (WAV, FLAC, OGG, MP3, SPHERE), mix to mono, resample.

    ``min_samples`` (at ``sampling_rate``; :attr:`ConvGeometry.min_samples`) refuses a clip too
    short for the model's first frame with an :class:`AudioDecodeError`, instead of a convolution
    error deep inside the model.
    """
    array, rate = read_audio(source)
    return check_duration(resample(array, rate, sampling_rate), audio_name(source), min_samples, sampling_rate)


def check_duration(array: np.ndarray, name: str, min_samples: int, sampling_rate: int) -> np.ndarray:
    """``array`` if it has ``min_samples``; else an :class:`AudioDecodeError` naming ``name`` and both durations."""
    if len(array) < min_samples:
        have, need = (f"{1000 * samples / sampling_rate:.4g} ms" for samples in (len(array), min_samples))
        raise AudioDecodeError(f"{name}: too short ({have}; the model needs at least {need})")
    return array


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


WAV2VEC2_CONV = ConvGeometry(min_samples=400, frame_samples=320)
"""wav2vec2-base's feature encoder, which the course's small model copies: 25 ms windows, one every 20 ms at 16 kHz."""


def ctc_frames_needed(labels: Sequence[int]) -> int:
    """Frames CTC needs to spell ``labels``: one per label, plus a blank between two equal labels in a row."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def number_to_words(number: int) -> str:
    """Spell a non-negative integer the way a speaker says it ("105" -> "ONE HUNDRED FIVE"), with
    the corpus generator's speller (:func:`asr_helpers.synth.spell_number`) in the CTC alphabet."""
    return spell_number(number).upper()


def normalize_text(text: str) -> str:
    """Map a transcript onto the CTC alphabet: upper case letters, apostrophe and space.

    The rules, in order: accents are stripped (é -> E); digit runs are spelled out
    ("24" -> "TWENTY FOUR"); ``& % + @`` become words; other punctuation becomes a space, except
    an apostrophe inside a word ("I'M"); whitespace collapses. Any other symbol ($, €, emoji) is
    kept, so :func:`check_vocab` can report it instead of the row vanishing silently.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    text = re.sub(r"\d+", lambda m: f" {number_to_words(int(m.group()))} ", text)
    for symbol, word in SYMBOL_WORDS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"(?<=[A-Z])'(?=[A-Z])", "\0", text)
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.replace("\0", "'").split())


def build_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Character vocabulary from normalised texts: pad (the CTC blank) first, then unk, then ``|``.

    Spaces become ``|`` because the tokenizer splits on whitespace; the decoder turns ``|`` back
    into spaces between words.
    """
    chars = sorted({ch for text in texts for ch in text} - {" "})
    vocab = {PAD: 0, UNK: 1, WORD_DELIMITER: 2}
    vocab.update({ch: index for index, ch in enumerate(chars, start=len(vocab))})
    return vocab


def build_processor(vocab: dict[str, int], save_dir: str | Path) -> Wav2Vec2Processor:
    """A Wav2Vec2 processor made locally: tokenizer from ``vocab`` plus a 16 kHz feature extractor.

    ``return_attention_mask=True`` because the course model normalises its features per layer and
    so can ignore padding; results of batched inference then match one-at-a-time inference.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = save_dir / "vocab.json"
    vocab_file.write_text(json.dumps(vocab, indent=1, ensure_ascii=False) + "\n")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token=UNK, pad_token=PAD, word_delimiter_token=WORD_DELIMITER,
        bos_token=None, eos_token=None, do_lower_case=False,
    )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=TARGET_SAMPLING_RATE, padding_value=0.0,
        do_normalize=True, return_attention_mask=True,
    )
    processor = Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    processor.save_pretrained(save_dir)
    return processor


def pretrained_checkpoint(mode: str | None = None) -> str | Path:
    """Where the model we fine-tune comes from: wav2vec2-base on the hub, or course-base offline."""
    return HUB_CHECKPOINT if resolve_mode(mode, verbose=False) == "hub" else COURSE_CHECKPOINT


def load_processor(mode: str | None = None) -> Wav2Vec2Processor:
    """The processor of the model we fine-tune: wav2vec2-base's (hub) or course-base's (offline).

    A pre-trained CTC model comes with its vocabulary; course-base's was built with
    :func:`build_vocab` over A-Z and the apostrophe, so it spells any normalised English text.
    """
    return AutoProcessor.from_pretrained(pretrained_checkpoint(mode))


def check_vocab(texts: Iterable[str], processor: Wav2Vec2Processor) -> dict[str, int]:
    """Characters of normalised ``texts`` that the tokenizer would turn into ``<unk>``, with counts."""
    known = set(processor.tokenizer.get_vocab()) | {" "}
    unknown: dict[str, int] = {}
    for text in texts:
        for ch in normalize_text(text):
            if ch not in known:
                unknown[ch] = unknown.get(ch, 0) + 1
    return unknown


def prepare_batch(batch: dict, processor: Wav2Vec2Processor, text_column: str = "transcription") -> dict:
    """The guide's ``prepare_dataset`` for a batch: audio -> ``input_values``, text -> ``labels``."""
    rate = processor.feature_extractor.sampling_rate
    arrays = [load_audio(audio, rate) for audio in batch["audio"]]
    features = processor(audio=arrays, sampling_rate=rate)
    return {
        "input_values": features["input_values"],
        "labels": processor.tokenizer([normalize_text(t) for t in batch[text_column]])["input_ids"],
        "input_length": [len(array) for array in arrays],
    }


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
    text_column: str = "transcription",
) -> tuple[Dataset | DatasetDict, ValidationReport]:
    """Find the rows CTC training cannot use, then fail (default) or drop them, never silently.

    A row is unusable when its audio cannot be decoded, its transcript is empty or has characters
    outside the vocabulary, or (with the model's ``geometry``; ``None`` skips these) its audio is
    shorter than one frame or gives fewer frames than CTC needs for its labels: such a row would
    crash the model or make the loss infinite. Audio is decoded here and again by
    :func:`prepare_batch`: the price of knowing every bad row before any work is done.
    """
    if on_error not in ("fail", "drop"):
        raise ValueError(f"on_error must be 'fail' or 'drop', not {on_error!r}")
    splits = dict(dataset) if isinstance(dataset, DatasetDict) else {"dataset": dataset}
    bad = tuple(
        BadRow(name, index, *problem)
        for name, split in splits.items()
        for index, row in enumerate(split.select_columns(["audio", text_column]))
        if (problem := _row_problem(row["audio"], row[text_column], processor, geometry))
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


def prepare_dataset(
    dataset: Dataset | DatasetDict,
    processor: Wav2Vec2Processor,
    *,
    num_proc: int | None = None,
    batch_size: int = 32,
    text_column: str = "transcription",
    geometry: ConvGeometry | None = None,
    on_error: OnError = "fail",
) -> Dataset | DatasetDict:
    """Check every row with :func:`validate_dataset`, then map :func:`prepare_batch` over every split.

    Pass the model's ``geometry`` (e.g. ``ConvGeometry.of(model.config)`` or :data:`WAV2VEC2_CONV`)
    to also refuse audio too short or transcripts too long for it. Dropped rows are printed.
    """
    dataset, report = validate_dataset(dataset, processor, geometry, on_error=on_error, text_column=text_column)
    if report.bad:
        print(report)
    return _map_prepare_batch(dataset, processor, num_proc=num_proc, batch_size=batch_size, text_column=text_column)


def _map_prepare_batch(
    dataset: Dataset | DatasetDict,
    processor: Wav2Vec2Processor,
    *,
    num_proc: int | None = None,
    batch_size: int = 32,
    text_column: str = "transcription",
) -> Dataset | DatasetDict:
    splits = dataset.values() if isinstance(dataset, DatasetDict) else [dataset]
    columns = next(iter(splits)).column_names
    return dataset.map(
        prepare_batch,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=columns,
        fn_kwargs={"processor": processor, "text_column": text_column},
        desc="prepare_dataset",
    )


def prepared_course_data(
    mode: str | None = None, *, on_error: OnError = "fail", corpus_dir: str | Path | None = None
) -> tuple[Wav2Vec2Processor, DatasetDict]:
    """Notebook 02's result in one call: the processor and the prepared train/test splits, cached.

    Rows the course models cannot use (:func:`validate_dataset`) fail the call, or with
    ``on_error="drop"`` are dropped and reported on every call, cached or not. ``corpus_dir`` is an
    offline corpus folder to use instead of the shipped one (``metadata.csv`` and audio, as
    ``python -m asr_helpers synth`` writes).
    """
    mode = resolve_mode(mode or ("offline" if corpus_dir else None), verbose=False)
    if corpus_dir is not None and mode == "hub":
        raise ValueError(f"{corpus_dir}: a corpus folder is offline data; it cannot be combined with mode 'hub'")
    corpus = Path(corpus_dir or CORPUS_DIR)
    folder = cache_dir(f"prepared-{mode}-{corpus_fingerprint(mode, on_error, corpus_dir=corpus)}")
    if not (folder / "dataset" / "dataset_dict.json").is_file():
        raw = load_minds14(mode, corpus_dir=corpus)
        processor = load_processor(mode)
        processor.save_pretrained(folder / "processor")
        raw, report = validate_dataset(raw, processor, WAV2VEC2_CONV, on_error=on_error)
        if report.bad:
            (folder / "dropped.txt").write_text(f"{report}\n")
        with _quiet_datasets():  # a few seconds; the same output whether cached or not
            _map_prepare_batch(raw, processor).save_to_disk(str(folder / "dataset"))
    if (folder / "dropped.txt").is_file():
        print((folder / "dropped.txt").read_text(), end="")
    processor, prepared = AutoProcessor.from_pretrained(folder / "processor"), load_from_disk(str(folder / "dataset"))
    sizes = ", ".join(f"{split} {rows}" for split, rows in prepared.num_rows.items())
    print(f"prepared course data ({mode}): {sizes} examples, vocabulary of {len(processor.tokenizer)} tokens")
    return processor, prepared


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
