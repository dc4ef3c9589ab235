"""Turning audio into text with a fine-tuned model: the pipeline and the manual greedy CTC path.

The device is chosen once, where a program starts (``python -m asr_helpers --device``, a notebook's
model cell): :func:`load_trained` puts the model there, and everything below follows the model
(``model.device``), returning logits on the CPU.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCTC, AutoProcessor, Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.audio import AudioDecodeError, check_duration, load_audio
from asr_helpers.checks import ConvGeometry

CHUNK_LENGTH_S = 20.0
STRIDE_LENGTH_S = 4.0


def load_trained(model_dir: str | Path, device: str | torch.device) -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor]:
    """A model saved by ``train`` (``save_pretrained``), on ``device`` and in eval mode, and its processor.

    ``device`` has no default: the caller decides it once (the command line's ``--device``), and
    the functions below run wherever the model is.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no trained model here (run `python -m asr_helpers train` first)")
    return AutoModelForCTC.from_pretrained(model_dir).to(device).eval(), AutoProcessor.from_pretrained(model_dir)


@torch.inference_mode()
def ctc_logits(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """Frame-by-token scores for a batch of 16 kHz arrays (padded to the longest)."""
    inputs = processor(
        audio=list(arrays), sampling_rate=processor.feature_extractor.sampling_rate,
        padding=True, return_tensors="pt",
    )
    return model(**inputs.to(model.device)).logits


def ctc_collapse(path: Sequence[str], blank: str, delimiter: str) -> str:
    """The text of a frame-by-frame token path, as ``batch_decode`` writes it (its default arguments).

    1. merge each run of one token into one: ``L L L`` -> ``L``, ``| |`` -> ``|``; a token is one
       unit, also when its name has several characters (``<unk> <unk>`` -> ``<unk>``);
    2. drop the blanks: ``L _ L`` keeps two L's, which step 1 alone would have merged;
    3. write the delimiter as a space, join, and strip the spaces at both ends.

    The other special tokens (``<s>``, ``</s>``, ``<unk>``), which a model early in training can
    still choose, are written as they are, and ``| _ |`` leaves two spaces: ``batch_decode`` does
    the same. (``skip_special_tokens=True`` drops them, but together with the blanks *before*
    step 1, so it also merges the letters that a blank kept apart.)
    """
    merged = [token for token, _run in itertools.groupby(path)]
    return "".join(" " if token == delimiter else token for token in merged if token != blank).strip()


def greedy_decode(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, arrays: Sequence[np.ndarray]) -> list[str]:
    """The manual path of the guide: logits -> argmax per frame -> ``batch_decode``.

    ``batch_decode`` does the CTC collapse: merge repeated tokens, then drop blanks (``<pad>``).
    """
    predicted_ids = torch.argmax(ctc_logits(model, processor, arrays), dim=-1)
    return processor.batch_decode(predicted_ids)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped so each batch holds items of similar length: little padding to compute."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def transcribe(
    model: Wav2Vec2ForCTC,
    processor: Wav2Vec2Processor,
    audio: Sequence[str | Path | dict | np.ndarray],
    batch_size: int = 8,
    *,
    chunk_length_s: float = CHUNK_LENGTH_S,
    stride_length_s: float = STRIDE_LENGTH_S,
    fast: bool = False,
) -> list[str]:
    """Transcribe files (any rate, mono or stereo), datasets audio dicts or 16 kHz arrays, batched by length, in input order.

    Recordings longer than ``chunk_length_s`` are transcribed in overlapping chunks (see
    :func:`chunk_spans`), so memory depends on ``batch_size`` and the chunk length, not on the
    recording. ``fast=True`` computes the model's convolutions as FFTs and matrix products
    (:func:`~asr_helpers.fast.convolutions.convolutions_replaced`: the same texts, about 1.3
    times faster on 2 CPU cores). The first input that cannot be used raises
    :class:`AudioDecodeError`; :func:`transcribe_each` transcribes the others anyway.
    """
    arrays = [_model_audio(item, index, model, processor) for index, item in enumerate(audio)]
    return _transcribe_arrays(model, processor, arrays, batch_size, chunk_length_s, stride_length_s, fast)


def transcribe_each(
    model: Wav2Vec2ForCTC,
    processor: Wav2Vec2Processor,
    audio: Sequence[str | Path | dict | np.ndarray],
    batch_size: int = 8,
    *,
    chunk_length_s: float = CHUNK_LENGTH_S,
    stride_length_s: float = STRIDE_LENGTH_S,
    fast: bool = False,
) -> list[str | AudioDecodeError]:
    """:func:`transcribe`, except that an input that cannot be used gets its error in its place
    and every other input is still transcribed: one bad file must not cost the good ones."""
    results: list[str | AudioDecodeError | np.ndarray] = []
    for index, item in enumerate(audio):
        try:
            results.append(_model_audio(item, index, model, processor))
        except AudioDecodeError as error:
            results.append(error)
    good = [index for index, result in enumerate(results) if isinstance(result, np.ndarray)]
    texts = _transcribe_arrays(
        model, processor, [results[i] for i in good], batch_size, chunk_length_s, stride_length_s, fast
    )
    for index, text in zip(good, texts):
        results[index] = text
    return results


def _model_audio(item: str | Path | dict | np.ndarray, index: int, model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor) -> np.ndarray:
    """One input as a float32 array at the model's rate, refused if shorter than the model's first frame."""
    rate, min_samples = processor.feature_extractor.sampling_rate, ConvGeometry.of(model.config).min_samples
    if isinstance(item, np.ndarray):
        return check_duration(np.asarray(item, dtype=np.float32), f"audio[{index}]", min_samples, rate)
    return load_audio(item if isinstance(item, dict) else str(item), rate, min_samples=min_samples)


@dataclass(frozen=True)
class Chunk:
    """A window ``[start, end)`` of a recording, in samples, and which of its output frames to keep."""

    start: int
    end: int
    keep: slice


def chunk_spans(length: int, chunk: int, stride: int, frame_samples: int) -> list[Chunk]:
    """Windows of ``chunk`` samples over a recording, overlapping their neighbours by ``stride`` on each side.

    The transformers pipeline's ``chunk_length_s``/``stride_length_s`` scheme: the first and last
    ``stride`` samples of a window are only context, and the frames there come from the neighbour
    that has them in its middle, so every frame is computed with context on both sides and kept
    exactly once. All sizes are multiples of ``frame_samples``, so a window's frames are frames
    of the whole recording; a recording up to ``chunk`` long is one window.
    """
    step = chunk - 2 * stride
    last = step * max(0, math.ceil((length - chunk) / step))
    return [
        Chunk(
            start,
            min(start + chunk, length),
            slice(0 if start == 0 else stride // frame_samples, None if start == last else (chunk - stride) // frame_samples),
        )
        for start in range(0, last + 1, step)
    ]


def frame_logits(
    model: Wav2Vec2ForCTC,
    processor: Wav2Vec2Processor,
    arrays: Sequence[np.ndarray],
    batch_size: int = 8,
    *,
    chunk_length_s: float = CHUNK_LENGTH_S,
    stride_length_s: float = STRIDE_LENGTH_S,
    fast: bool = False,
) -> list[torch.Tensor]:
    """Frames x tokens logits of each 16 kHz recording, whatever its length.

    Each recording is normalised whole, cut into overlapping chunks (:func:`chunk_spans`) that
    are batched by length, and each chunk's middle frames are kept and joined, so frame ``t`` of
    the result starts at ``t`` x 20 ms of the recording, however many chunks it took. Greedy
    decoding (:func:`transcribe`) and beam search (:mod:`asr_helpers.decoding`) both start here.
    """
    geometry = ConvGeometry.of(model.config)
    rate, hop = processor.feature_extractor.sampling_rate, geometry.frame_samples
    chunk, stride = (hop * round(seconds * rate / hop) for seconds in (chunk_length_s, stride_length_s))
    if not geometry.min_samples <= stride < chunk / 2:
        raise ValueError(f"need {geometry.min_samples / rate:g} s <= stride_length_s < chunk_length_s / 2")
    values = [processor.feature_extractor(array, sampling_rate=rate)["input_values"][0] for array in arrays]
    pieces = [(item, span) for item, v in enumerate(values) for span in chunk_spans(len(v), chunk, stride, hop)]
    kept: list[torch.Tensor] = [torch.empty(0)] * len(pieces)
    if fast:
        from asr_helpers.fast.convolutions import convolutions_replaced  # opt-in speed work, loaded only when asked
    with convolutions_replaced(model) if fast else nullcontext():
        for batch in length_batches([span.end - span.start for _, span in pieces], batch_size):
            windows = [values[item][span.start : span.end] for item, span in (pieces[i] for i in batch)]
            for i, logits in zip(batch, _padded_logits(model, processor, windows)):
                span = pieces[i][1]
                kept[i] = logits[: geometry.frames(span.end - span.start)][span.keep].float().cpu()
    joined: list[list[torch.Tensor]] = [[] for _ in values]
    for (item, _), logits in zip(pieces, kept):
        joined[item].append(logits)
    return [torch.cat(parts) for parts in joined]


def _transcribe_arrays(
    model: Wav2Vec2ForCTC,
    processor: Wav2Vec2Processor,
    arrays: Sequence[np.ndarray],
    batch_size: int,
    chunk_length_s: float,
    stride_length_s: float,
    fast: bool,
) -> list[str]:
    """Greedy decoding of :func:`frame_logits`: the CTC collapse comes after joining the chunks (a letter may span two)."""
    logits = frame_logits(model, processor, arrays, batch_size, chunk_length_s=chunk_length_s,
                          stride_length_s=stride_length_s, fast=fast)
    return [processor.decode(frames.argmax(dim=-1)) for frames in logits]


@torch.inference_mode()
def _padded_logits(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, values: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Logits for already normalised windows, padded to the longest with an attention mask.

    A processor that makes no attention mask (wav2vec2-base's) belongs to a model that would hear
    the padding as silence and change its group-normalised features: its windows go one at a time.
    """
    if not processor.feature_extractor.return_attention_mask:
        return [_padded_logits_of(model, processor, [v])[0] for v in values]
    return list(_padded_logits_of(model, processor, values))


def _padded_logits_of(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, values: Sequence[np.ndarray]) -> torch.Tensor:
    inputs = processor.feature_extractor.pad([{"input_values": v} for v in values], padding=True, return_tensors="pt")
    return model(**inputs.to(model.device)).logits
