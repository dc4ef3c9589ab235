"""From recordings and transcripts to model inputs: resampling, text normalisation, vocabulary, processor.

Wav2Vec2 was pre-trained on 16 kHz audio and its CTC tokenizer spells upper-case characters, so
every example is resampled to 16 kHz and every transcript is normalised to the vocabulary before
it becomes ``input_values`` and ``labels``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soxr
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import (
    AutoProcessor,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Processor,
)

from asr_helpers.data import cache_dir, corpus_fingerprint, load_minds14, read_audio, resolve_mode

TARGET_SAMPLING_RATE = 16_000
HUB_CHECKPOINT = "facebook/wav2vec2-base"
PAD, UNK, WORD_DELIMITER = "<pad>", "<unk>", "|"
SYMBOL_WORDS = {"&": " AND ", "%": " PERCENT ", "+": " PLUS ", "@": " AT "}
_ONES = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN".split()
_SCALES = ((10**9, "BILLION"), (10**6, "MILLION"), (1000, "THOUSAND"), (100, "HUNDRED"))
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()


def resample(array: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Change the sampling rate with soxr's high-quality filter (keeps duration and pitch)."""
    array = np.asarray(array, dtype=np.float32)
    if orig_sr == target_sr:
        return array
    return soxr.resample(array, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(source: str | bytes | dict, sampling_rate: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Decode any file soundfile reads (WAV, FLAC, OGG, MP3, SPHERE), mix to mono, resample."""
    array, rate = read_audio(source)
    return resample(array, rate, sampling_rate)


def number_to_words(number: int) -> str:
    """Spell a non-negative integer the way a speaker says it ("105" -> "ONE HUNDRED FIVE")."""
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    size, name = next(s for s in _SCALES if number >= s[0])
    high, rest = divmod(number, size)
    return f"{number_to_words(high)} {name}" + (f" {number_to_words(rest)}" if rest else "")


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


def load_processor(mode: str | None, texts: Iterable[str], save_dir: str | Path) -> Wav2Vec2Processor:
    """The guide's processor from the hub, or one built from the training texts offline."""
    if resolve_mode(mode, verbose=False) == "hub":
        return AutoProcessor.from_pretrained(HUB_CHECKPOINT)
    return build_processor(build_vocab(normalize_text(t) for t in texts), save_dir)


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


def prepare_dataset(
    dataset: Dataset | DatasetDict,
    processor: Wav2Vec2Processor,
    *,
    num_proc: int | None = None,
    batch_size: int = 32,
    text_column: str = "transcription",
) -> Dataset | DatasetDict:
    """Map :func:`prepare_batch` over every split, keeping only the model's columns."""
    splits = dataset.values() if isinstance(dataset, DatasetDict) else [dataset]
    unknown = check_vocab((t for split in splits for t in split[text_column]), processor)
    if unknown:
        raise ValueError(f"transcripts contain characters outside the vocabulary: {unknown}")
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


def prepared_course_data(mode: str | None = None) -> tuple[Wav2Vec2Processor, DatasetDict]:
    """Notebook 02's result in one call: the processor and the prepared train/test splits, cached."""
    mode = resolve_mode(mode, verbose=False)
    folder = cache_dir(f"prepared-{mode}-{corpus_fingerprint(mode)}")
    if (folder / "dataset" / "dataset_dict.json").is_file():
        return AutoProcessor.from_pretrained(folder / "processor"), load_from_disk(str(folder / "dataset"))
    raw = load_minds14(mode)
    processor = load_processor(mode, raw["train"]["transcription"], folder / "processor")
    processor.save_pretrained(folder / "processor")
    prepared = prepare_dataset(raw, processor)
    prepared.save_to_disk(str(folder / "dataset"))
    return processor, prepared
