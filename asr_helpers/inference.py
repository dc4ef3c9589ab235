"""Turning audio into words with a fine-tuned model (notebook 06): one route, :func:`transcribe`,
from files or arrays to a :class:`Transcript` each, greedy or with a beam search, every word timed.

The command line (``transcribe``, ``evaluate``), notebooks 06 and 07 and the demo all go through
it. The device is chosen once, where a program starts (``python -m asr_helpers --device``, a
notebook's model cell): :func:`load_trained` puts the model there, and everything below follows the
model (``model.device``), returning logits on the CPU.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForCTC, AutoProcessor, Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.audio import AudioDecodeError, check_duration, load_audio
from asr_helpers.checks import ConvGeometry
from asr_helpers.decoding import Word, frame_seconds, greedy_words

CHUNK_LENGTH_S = 20.0
STRIDE_LENGTH_S = 4.0
GROUP = 32
"""Recordings per call to the model in :func:`transcribe`: a few batches' worth, so memory stays bounded and the bar moves."""
Decoder = Callable[[torch.Tensor], list[Word]]
"""A search over one recording's frames x tokens log-probabilities, e.g. :class:`~asr_helpers.beam_search.BeamSearchDecoder`."""


def load_trained(model_dir: str | Path, device: str | torch.device) -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor]:
    """A model saved by ``train`` (``save_pretrained``), on ``device`` and in eval mode, and its processor.

    ``device`` has no default: the caller decides it once (the command line's ``--device``), and
    the functions below run wherever the model is.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no trained model here (run `python -m asr_helpers train` first)")
    return AutoModelForCTC.from_pretrained(model_dir).to(device).eval(), AutoProcessor.from_pretrained(model_dir)


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


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped so each batch holds items of similar length: little padding to compute."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@dataclass(frozen=True)
class Transcript:
    """One recording's transcript: the text, and its words with their start and end in seconds."""

    text: str
    words: list[Word]


def transcribe(
    model: Wav2Vec2ForCTC,
    processor: Wav2Vec2Processor,
    audio: Sequence[str | Path | dict | np.ndarray],
    *,
    decoder: Decoder | None = None,
    batch_size: int = 8,
    fast: bool = False,
    progress: bool = False,
    chunk_length_s: float = CHUNK_LENGTH_S,
    stride_length_s: float = STRIDE_LENGTH_S,
) -> list[Transcript | AudioDecodeError]:
    """Transcribe files (any format and rate, mono or stereo), datasets audio dicts or 16 kHz arrays, in input order.

    Greedy by default, as the guide's pipeline: the argmax of every frame, ``processor.decode``d,
    with word times from its ``output_word_offsets``; with ``decoder`` (a beam search, notebook 07)
    its words. An input that cannot be used gets the :class:`AudioDecodeError` that says why in
    its place, and every other input is still transcribed: one bad file never costs the others (a
    caller that needs them all, like ``evaluate``, checks). Recordings longer than
    ``chunk_length_s`` go in overlapping chunks (:func:`frame_logits`), so memory depends on
    ``batch_size`` and the chunk length, not on the recording. ``fast=True`` computes the
    convolutions as FFTs and matrix products (:mod:`asr_helpers.fast.convolutions`: the same text,
    faster on CPU). ``progress`` draws a bar on stderr.
    """
    results: list = []
    for index, item in enumerate(audio):
        try:
            results.append(_model_audio(item, index, model, processor))
        except AudioDecodeError as error:
            results.append(error)
    good, frame_s = [i for i, result in enumerate(results) if isinstance(result, np.ndarray)], frame_seconds(model, processor)
    with tqdm(total=len(good), unit="file", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(good), GROUP):
            group = good[start : start + GROUP]
            logits = frame_logits(model, processor, [results[i] for i in group], batch_size,
                                  chunk_length_s=chunk_length_s, stride_length_s=stride_length_s, fast=fast)
            for index, frames in zip(group, logits):
                results[index] = _transcript(processor, frames.log_softmax(dim=-1), decoder, frame_s)
                bar.update()
    return results


def _transcript(processor: Wav2Vec2Processor, log_probs: torch.Tensor, decoder: Decoder | None, frame_s: float) -> Transcript:
    """Greedy: the CTC collapse of the argmax path (after the chunks are joined: a letter may span two); else ``decoder``'s words."""
    if decoder is None:
        return Transcript(processor.decode(log_probs.argmax(dim=-1)), greedy_words(processor, log_probs, frame_s))
    words = decoder(log_probs)
    return Transcript(" ".join(word.word for word in words), words)


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


def windows(samples: int, model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor,
            chunk_length_s: float = CHUNK_LENGTH_S, stride_length_s: float = STRIDE_LENGTH_S) -> list[Chunk]:
    """The windows :func:`frame_logits` cuts a recording of ``samples`` samples into: :func:`chunk_spans`
    with the chunk and stride rounded to whole frames of the model."""
    geometry, rate = ConvGeometry.of(model.config), processor.feature_extractor.sampling_rate
    hop = geometry.frame_samples
    chunk, stride = (hop * round(seconds * rate / hop) for seconds in (chunk_length_s, stride_length_s))
    if not geometry.min_samples <= stride < chunk / 2:
        raise ValueError(f"need {geometry.min_samples / rate:g} s <= stride_length_s < chunk_length_s / 2")
    return chunk_spans(samples, chunk, stride, hop)


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
    decoding and beam search (:func:`transcribe`) both start here.
    """
    geometry, rate = ConvGeometry.of(model.config), processor.feature_extractor.sampling_rate
    values = [processor.feature_extractor(array, sampling_rate=rate)["input_values"][0] for array in arrays]
    pieces = [(item, span) for item, v in enumerate(values)
              for span in windows(len(v), model, processor, chunk_length_s, stride_length_s)]
    kept: list[torch.Tensor] = [torch.empty(0)] * len(pieces)
    if fast:
        from asr_helpers.fast.convolutions import convolutions_replaced  # opt-in speed work, loaded only when asked
    with convolutions_replaced(model) if fast else nullcontext():
        for batch in length_batches([span.end - span.start for _, span in pieces], batch_size):
            cut = [values[item][span.start : span.end] for item, span in (pieces[i] for i in batch)]
            for i, logits in zip(batch, _padded_logits(model, processor, cut)):
                span = pieces[i][1]
                kept[i] = logits[: geometry.frames(span.end - span.start)][span.keep].float().cpu()
    joined: list[list[torch.Tensor]] = [[] for _ in values]
    for (item, _), logits in zip(pieces, kept):
        joined[item].append(logits)
    return [torch.cat(parts) for parts in joined]


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
