import numpy as np
import pytest
import torch

from asr_helpers.collator import DataCollatorCTCWithPadding, padding_waste


def _features(processor, lengths, texts):
    rng = np.random.default_rng(0)
    return [
        {"input_values": rng.standard_normal(n).astype(np.float32).tolist(), "labels": processor.tokenizer(t)["input_ids"]}
        for n, t in zip(lengths, texts)
    ]


def guide_collator(processor, features):
    """The guide's collator, verbatim in behaviour, as the reference to match."""
    input_features = [{"input_values": f["input_values"]} for f in features]
    label_features = [{"input_ids": f["labels"]} for f in features]
    batch = processor.pad(input_features, padding="longest", return_tensors="pt")
    labels_batch = processor.pad(labels=label_features, padding="longest", return_tensors="pt")
    batch["labels"] = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
    return batch


def test_shapes_masks_and_minus_100(processor):
    features = _features(processor, [1600, 4000, 2400], ["HI", "I WANT TO PAY A BILL", "CAN YOU"])
    batch = DataCollatorCTCWithPadding(processor)(features)
    assert batch["input_values"].shape == (3, 4000)
    assert batch["attention_mask"].sum(dim=1).tolist() == [1600, 4000, 2400]
    assert torch.all(batch["input_values"][0, 1600:] == 0)
    label_lengths = [len(f["labels"]) for f in features]
    assert batch["labels"].shape == (3, max(label_lengths))
    for row, feature in zip(batch["labels"], features):
        n = len(feature["labels"])
        assert row[:n].tolist() == feature["labels"] and torch.all(row[n:] == -100)


def test_matches_the_guide(processor):
    features = _features(processor, [3000, 1234, 5000, 777], ["HI", "CHECK MY BALANCE", "A", "FREEZE MY CARD"])
    ours, guide = DataCollatorCTCWithPadding(processor)(features), guide_collator(processor, features)
    assert set(ours) == set(guide)
    for key in guide:
        assert torch.equal(ours[key], guide[key]), key


@pytest.mark.parametrize(("multiple", "expected"), [(None, 1234), (160, 1280), (1234, 1234)])
def test_pad_to_multiple_of(processor, multiple, expected):
    features = _features(processor, [1000, 1234], ["HI", "PAY"])
    batch = DataCollatorCTCWithPadding(processor, pad_to_multiple_of=multiple, pad_to_multiple_of_labels=8)(features)
    assert batch["input_values"].shape[1] == expected
    assert batch["labels"].shape[1] == 8
    assert batch["attention_mask"].sum().item() == 2234


def test_padding_waste():
    assert padding_waste([10, 10, 10, 10], 2) == 0.0
    assert padding_waste([1, 3], 2) == pytest.approx(1 - 4 / 6)
    lengths = [5, 100, 6, 90, 7, 95]
    assert padding_waste(sorted(lengths), 2) < padding_waste(lengths, 2)
    assert padding_waste([], 4) == 0.0
