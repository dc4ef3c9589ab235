"""The Wav2Vec2 model with a CTC head (notebook 05): the guide's pre-trained base online, the
shipped course-base offline, and the small configuration both course models are made from."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCTC, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Processor


COURSE_BASE_SIZE = {"hidden_size": 256, "num_layers": 6, "intermediate_size": 512}  # 3.5 M parameters, 14 MB


def small_config(
    vocab_size: int, pad_token_id: int, *, hidden_size: int = 192, num_layers: int = 4, intermediate_size: int = 384
) -> Wav2Vec2Config:
    """A ~1.4 M-parameter Wav2Vec2 that trains on 2 CPU cores in minutes.

    Same architecture as wav2vec2-base (7 convolutions with a 320-sample hop, 20 ms per output
    frame at 16 kHz, then a Transformer) but narrower and shallower. Per-layer feature normalisation
    (``feat_extract_norm="layer"``) lets the model use an attention mask, so padding is ignored.
    The defaults are the quick model of the tests; the shipped checkpoint is wider and deeper
    (:data:`COURSE_BASE_SIZE`), affordable on CPU because fine-tuning freezes the convolutions.
    """
    return Wav2Vec2Config(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        conv_dim=(64,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=intermediate_size,
        num_conv_pos_embeddings=64,
        num_conv_pos_embedding_groups=16,
        hidden_dropout=0.0,
        activation_dropout=0.0,
        attention_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.05,
        ctc_loss_reduction="mean",
    )


def load_model(
    processor: Wav2Vec2Processor, checkpoint: str | Path, *, freeze_feature_encoder: bool = False, seed: int = 0
) -> Wav2Vec2ForCTC:
    """A pre-trained Wav2Vec2 ready for CTC fine-tuning, from ``checkpoint``: ``facebook/wav2vec2-base``
    (hub) or the shipped ``course-base`` (offline), which already hears synthetic English speech
    (:func:`~asr_helpers.preprocessing.pretrained_checkpoint` gives a mode's).

    ``ctc_loss_reduction="mean"`` averages the loss over target lengths so long and short
    utterances weigh alike; the pad id doubles as the CTC blank. When the processor's vocabulary
    differs from the checkpoint's, the CTC head is created anew (seeded) for it, as it always is
    for wav2vec2-base, which has no head. Freezing the convolutional feature encoder, as the
    wav2vec2 paper does when fine-tuning, saves memory and about a third of the compute.
    """
    tokenizer = processor.tokenizer
    torch.manual_seed(seed)
    model = AutoModelForCTC.from_pretrained(
        checkpoint, ctc_loss_reduction="mean", pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer),
        ctc_zero_infinity=False,  # an impossible alignment must show as inf and be reported, not zeroed
        ignore_mismatched_sizes=True,
    )
    if freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """How many numbers the model learns (or holds)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
