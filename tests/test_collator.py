import numpy as np
import pytest
import torch

from asr_helpers.collator import DataCollatorCTCWithPadding, padding_waste
from asr_helpers.preprocessing import build_processor, build_vocab


def _features(processor, lengths, texts):
    rng = np.random.default_rng(0)
    return [
        {"input_values": rng.standard_normal(n).astype(np.float32).tolist(), "labels": processor.tokenizer(t)["input_ids"]}
        for n, t in zip(lengths, texts)
    ]


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


@pytest.fixture(scope="module")
def abc_processor(tmp_path_factory):
    """A processor over three letters, so that label ids can be written out by hand: A=3, B=4, C=5."""
    return build_processor(build_vocab(["ABC"]), tmp_path_factory.mktemp("abc"))


def test_a_hand_made_batch_pads_to_these_tensors(abc_processor):
    assert abc_processor.tokenizer.get_vocab() == {"<pad>": 0, "<unk>": 1, "|": 2, "A": 3, "B": 4, "C": 5}
    features = [
        {"input_values": [0.5, -1.0], "labels": [3, 4, 5]},        # 2 samples, "ABC"
        {"input_values": [1.0, 2.0, 3.0, 4.0], "labels": [5]},       # 4 samples, "C"
        {"input_values": [-2.0, 0.25, 7.0], "labels": [3, 3]},       # 3 samples, "AA"
    ]
    batch = DataCollatorCTCWithPadding(abc_processor)(features)
    assert set(batch) == {"input_values", "attention_mask", "labels"}
    torch.testing.assert_close(batch["input_values"], torch.tensor(
        [[0.5, -1.0, 0.0, 0.0],
         [1.0, 2.0, 3.0, 4.0],
         [-2.0, 0.25, 7.0, 0.0]]))  # padded with the feature extractor's 0.0, not normalised again
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].dtype == torch.long
    assert batch["labels"].tolist() == [[3, 4, 5], [5, -100, -100], [3, 3, -100]]  # padding is -100, not <pad> (0)

    rounded = DataCollatorCTCWithPadding(abc_processor, pad_to_multiple_of=3, pad_to_multiple_of_labels=4)(features[:2])
    torch.testing.assert_close(rounded["input_values"], torch.tensor(
        [[0.5, -1.0, 0.0, 0.0, 0.0, 0.0],
         [1.0, 2.0, 3.0, 4.0, 0.0, 0.0]]))
    assert rounded["attention_mask"].tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]]
    assert rounded["labels"].tolist() == [[3, 4, 5, -100], [5, -100, -100, -100]]


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
