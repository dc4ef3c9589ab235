"""From recordings and transcripts to model inputs (notebook 02): vocabulary, processor, ``prepare_dataset``.

Wav2Vec2 was pre-trained on 16 kHz audio and its CTC tokenizer spells upper-case characters, so
every example is resampled to 16 kHz (:mod:`asr_helpers.audio`) and every transcript is
normalised to the vocabulary (:mod:`asr_helpers.text`) before it becomes ``input_values`` and
``labels``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

from asr_helpers.audio import TARGET_SAMPLING_RATE, load_audio
from asr_helpers.data import Mode
from asr_helpers.text import normalize_text

HUB_CHECKPOINT = "facebook/wav2vec2-base"
COURSE_CHECKPOINT = Path(__file__).parent / "checkpoints" / "course-base"
COURSE_BASE_VOICES = "espeak-ng's, and flite and festival voices made from recordings of a few speakers"
"""The voices `course-base` heard in pre-training (its card lists them): the model card and the demo page say it."""
PAD, UNK, WORD_DELIMITER = "<pad>", "<unk>", "|"


def pretrained_checkpoint(mode: Mode) -> str | Path:
    """Where the model we fine-tune comes from: wav2vec2-base on the hub, or course-base offline.

    Both come with their processor, so ``AutoProcessor.from_pretrained`` and
    ``AutoModelForCTC.from_pretrained`` take this one name in either mode.
    """
    return HUB_CHECKPOINT if mode == "hub" else COURSE_CHECKPOINT


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


def normalize_transcription(example: dict) -> dict:
    """The guide's ``uppercase`` step, for every ``Dataset.map``: the transcript in the CTC alphabet
    (:func:`~asr_helpers.text.normalize_text` also spells digits and drops punctuation)."""
    return {"transcription": normalize_text(example["transcription"])}


def prepare_dataset(example: dict, processor: Wav2Vec2Processor) -> dict:
    """The guide's ``prepare_dataset``: audio -> ``input_values``, transcript -> ``labels``, plus
    ``input_length`` for length-grouped batches.

    The guide reads ``example["audio"]["array"]`` from a column cast to
    ``Audio(sampling_rate=16_000)``; here :func:`~asr_helpers.audio.load_audio` decodes and
    resamples instead (see :mod:`asr_helpers.audio`). Map it with ``fn_kwargs={"processor": processor}``.
    """
    rate = processor.feature_extractor.sampling_rate
    audio = load_audio(example["audio"], rate)
    batch = processor(audio=audio, sampling_rate=rate, text=example["transcription"])
    return {"input_values": batch["input_values"][0], "labels": batch["labels"], "input_length": len(audio)}
