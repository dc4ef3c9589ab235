"""Batching variable-length speech: the CTC data collator of the Transformers ASR guide."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Wav2Vec2Processor


@dataclass
class DataCollatorCTCWithPadding:
    """Pad audio and labels of one batch separately, to the longest item of *this* batch.

    Audio is padded with the feature extractor's padding value, with an attention mask when the
    feature extractor makes one (wav2vec2-base's does not: it reads the zeros as silence); labels
    are padded by the tokenizer and the padding is then replaced by -100, the index PyTorch's CTC
    loss (through Transformers) ignores, so padding never counts as a character to predict.
    ``pad_to_multiple_of`` rounds the padded audio length up (steadier shapes for GPUs);
    ``pad_to_multiple_of_labels`` does the same for labels.
    """

    processor: Wav2Vec2Processor
    padding: bool | str = "longest"
    pad_to_multiple_of: int | None = None
    pad_to_multiple_of_labels: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        audio = [{"input_values": feature["input_values"]} for feature in features]
        labels = [{"input_ids": feature["labels"]} for feature in features]
        batch = self.processor.feature_extractor.pad(
            audio, padding=self.padding, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
        )
        labels_batch = self.processor.tokenizer.pad(
            labels, padding=self.padding, pad_to_multiple_of=self.pad_to_multiple_of_labels, return_tensors="pt"
        )
        batch["labels"] = labels_batch["input_ids"].masked_fill(labels_batch["attention_mask"].ne(1), -100)
        return batch


def padding_waste(lengths: list[int], batch_size: int) -> float:
    """Fraction of a padded batch that is padding, over consecutive batches of ``lengths``.

    Compare random order with length-sorted order to see why grouping by length speeds training.
    """
    padded = real = 0
    for start in range(0, len(lengths), batch_size):
        chunk = lengths[start : start + batch_size]
        padded += max(chunk) * len(chunk)
        real += sum(chunk)
    return 1 - real / padded if padded else 0.0
