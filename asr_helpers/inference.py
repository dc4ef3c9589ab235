"""Turning audio into text with a fine-tuned model: the pipeline and the manual greedy CTC path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCTC, AutoProcessor, Wav2Vec2ForCTC, Wav2Vec2Processor, pipeline

from asr_helpers.preprocessing import load_audio


def load_trained(model_dir: str | Path) -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor]:
    """A model and processor saved by ``train`` (``save_pretrained``), in eval mode."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no trained model here (run `python -m asr_helpers train` first)")
    return AutoModelForCTC.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir)


def make_pipeline(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor):
    """The guide's ``pipeline("automatic-speech-recognition")`` around an in-memory model.

    Feed it a float32 NumPy array at the model's sampling rate (:func:`load_audio` makes one):
    transformers 5.x refuses a plain list, and a file path makes it call the ffmpeg program.
    """
    return pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=processor.tokenizer,
        feature_extractor=processor.feature_extractor,
        device="cpu" if not torch.cuda.is_available() else 0,
    )


@torch.inference_mode()
def ctc_logits(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """Frame-by-token scores for a batch of 16 kHz arrays (padded to the longest)."""
    inputs = processor(
        audio=list(arrays), sampling_rate=processor.feature_extractor.sampling_rate,
        padding=True, return_tensors="pt",
    )
    return model(**inputs.to(model.device)).logits


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
    audio: Sequence[str | Path | np.ndarray],
    batch_size: int = 8,
) -> list[str]:
    """Transcribe files (any rate, mono or stereo) or 16 kHz arrays, batched by length, in input order."""
    rate = processor.feature_extractor.sampling_rate
    arrays = [np.asarray(a, dtype=np.float32) if isinstance(a, np.ndarray) else load_audio(str(a), rate) for a in audio]
    texts = [""] * len(arrays)
    for batch in length_batches([len(a) for a in arrays], batch_size):
        for index, text in zip(batch, greedy_decode(model, processor, [arrays[i] for i in batch])):
            texts[index] = text
    return texts
