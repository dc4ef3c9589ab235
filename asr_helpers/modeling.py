"""The Wav2Vec2 model with a CTC head: the guide's pre-trained base online, a small one offline;
and the same model's convolutions computed faster (FFTs and matrix products)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from transformers import AutoModelForCTC, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.preprocessing import pretrained_checkpoint


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
    processor: Wav2Vec2Processor, mode: str | None = None, *, freeze_feature_encoder: bool = False, seed: int = 0
) -> Wav2Vec2ForCTC:
    """A pre-trained Wav2Vec2 ready for CTC fine-tuning: ``facebook/wav2vec2-base`` (hub) or the
    shipped ``course-base`` checkpoint (offline), which already hears synthetic English speech.

    ``ctc_loss_reduction="mean"`` averages the loss over target lengths so long and short
    utterances weigh alike; the pad id doubles as the CTC blank. When the processor's vocabulary
    differs from the checkpoint's, the CTC head is created anew (seeded) for it, as it always is
    for wav2vec2-base, which has no head. Freezing the convolutional feature encoder, as the
    wav2vec2 paper does when fine-tuning, saves memory and about a third of the compute.
    """
    tokenizer = processor.tokenizer
    torch.manual_seed(seed)
    model = AutoModelForCTC.from_pretrained(
        pretrained_checkpoint(mode), ctc_loss_reduction="mean", pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer),
        ctc_zero_infinity=False,  # an impossible alignment must show as inf and be reported, not zeroed
        ignore_mismatched_sizes=True,
    )
    if freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """How many numbers the model learns (or holds)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------
# The same convolutions computed faster: FFTs and matrix products instead of direct convolutions.
# ---------------------------------------------------------------------------------------------

def fft_length(n: int) -> int:
    """The smallest length of at least ``n`` whose only prime factors are 2, 3 and 5: FFTs of such
    lengths are fast, and the next one is never far (540 for 530, 1024 for 1001)."""
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def fft_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int) -> torch.Tensor:
    """``nn.functional.conv1d`` (zero padding, stride 1) computed through FFTs, in float32.

    wav2vec2's positional convolution has a kernel of 128 frames and 16 groups of 48 channels:
    directly, 128 multiply-adds per frame, input and output channel, which cuDNN's grouped bf16
    kernels run at a few percent of a GPU's speed. In the frequency domain the same product is,
    per group and frequency, one 48 x 48 complex matrix product: about 30 times fewer operations,
    done as large batched matrix products. float32 throughout, so it is as exact as the direct
    convolution (errors of order 1e-6), and autograd differentiates it as it is.
    """
    out_channels, group_inputs, kernel = weight.shape
    batch, _, length = x.shape
    out_length = length + 2 * padding - kernel + 1
    n = fft_length(length + 2 * padding)  # no wrap-around for the outputs kept
    with torch.autocast(x.device.type, enabled=False):
        signal = torch.fft.rfft(torch.nn.functional.pad(x.float(), (padding, 0)), n=n)  # (batch, channels, freq)
        filters = torch.fft.rfft(weight.float(), n=n).conj()  # cross-correlation, as conv1d: (out, in/groups, freq)
        freqs = signal.shape[-1]
        signal = signal.view(batch, groups, group_inputs, freqs).permute(1, 3, 0, 2)  # (group, freq, batch, in)
        filters = filters.view(groups, out_channels // groups, group_inputs, freqs).permute(0, 3, 2, 1)  # (group, freq, in, out)
        mixed = torch.matmul(signal, filters).permute(2, 0, 3, 1).reshape(batch, out_channels, freqs)
        out = torch.fft.irfft(mixed, n=n)[..., :out_length]
        if bias is not None:
            out = out + bias.float()[:, None]
    return out.to(x.dtype)


def _fft_conv_forward(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv``'s forward through :func:`fft_conv1d`, with its current (weight-normalised) weight."""
    return fft_conv1d(x, conv.weight, conv.bias, conv.padding[0], conv.groups)


def conv1d_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """``nn.functional.conv1d`` (no padding) on channels-last input, ``(batch, time, channels)``,
    as one matrix product over the gathered windows; returns ``(batch, frames, out_channels)``.

    On a GPU, cuDNN picks a convolution algorithm per input shape, and for many of the lengths of
    length-grouped batches its heuristic picks a slow one (timing each new shape instead,
    ``cudnn.benchmark``, costs seconds per bucket); a matrix product runs at the same rate at
    every length. On a CPU the matrix product is faster than the direct convolution as well, and
    channels-last needs no transposes between the layers.
    """
    out_channels, in_channels, kernel = weight.shape
    windows = x.unfold(1, kernel, stride).transpose(2, 3)  # (batch, frames, kernel, in_channels), a view
    batch, frames = windows.shape[:2]
    # gathered as runs of contiguous channels (fast to copy), so the kernel is flattened in that order too
    flat_weight = weight.transpose(1, 2).reshape(out_channels, kernel * in_channels)
    return torch.nn.functional.linear(windows.reshape(batch, frames, kernel * in_channels), flat_weight, bias)


def channel_norm(x: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:
    """wav2vec2-base's ``GroupNorm`` with one group per channel (each channel normalised over
    time) on channels-last ``(batch, time, channels)`` input, in two passes over ``x``: statistics
    accumulated in float32, then one multiply-add in ``x``'s precision."""
    if norm.num_groups != norm.num_channels:
        raise ValueError(f"channel_norm needs one group per channel, not {norm.num_groups} groups of {norm.num_channels} channels")
    mean = x.mean(1, keepdim=True, dtype=torch.float32)
    square = torch.linalg.vector_norm(x, 2, dim=1, keepdim=True, dtype=torch.float32).square() / x.shape[1]
    scale = torch.rsqrt((square - mean.square()).clamp_min(0) + norm.eps) * norm.weight.float()
    shift = norm.bias.float() - mean * scale
    return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))


def feature_encoder_as_matmuls(encoder: torch.nn.Module, input_values: torch.Tensor) -> torch.Tensor:
    """The forward pass of wav2vec2's convolutional feature encoder, every convolution a matrix
    product (:func:`conv1d_as_matmul`) in channels-last layout; the same ``(batch, channels,
    frames)`` result as the module's own ``forward``."""
    hidden = input_values[:, :, None]
    for layer in encoder.conv_layers:
        hidden = conv1d_as_matmul(hidden, layer.conv.weight, layer.conv.bias, layer.conv.stride[0])
        norm = getattr(layer, "layer_norm", None)
        if isinstance(norm, torch.nn.GroupNorm):
            hidden = channel_norm(hidden, norm)
        elif norm is not None:
            hidden = norm(hidden)  # LayerNorm over channels: channels-last already
        hidden = layer.activation(hidden)
    return hidden.transpose(1, 2)


def replace_convolutions(model: Wav2Vec2ForCTC) -> Wav2Vec2ForCTC:
    """Compute the model's convolutions as FFTs and matrix products; returns the model.

    The positional convolution goes through FFTs (:func:`fft_conv1d`), the feature encoder through
    matrix products (:func:`feature_encoder_as_matmuls`). Only the modules' ``forward`` changes:
    the weights (and the weight normalisation), the state dict and saved checkpoints stay those of
    the plain model, and the results are the same up to rounding. The fast training profile does
    this on a GPU (``benchmarks/step_breakdown.py``: 29 -> 5 ms and 24 -> 17 ms of a wav2vec2-base
    step), :func:`~asr_helpers.inference.transcribe` on every device (the course model transcribes
    about 1.3 times faster on 2 CPU cores: ``benchmarks/cpu_transcribe.py``).
    """
    encoder, conv = _convolution_modules(model)
    encoder.forward = partial(feature_encoder_as_matmuls, encoder)
    conv.forward = partial(_fft_conv_forward, conv)
    return model


def _convolution_modules(model: Wav2Vec2ForCTC) -> tuple[torch.nn.Module, torch.nn.Conv1d]:
    """The two modules whose ``forward`` :func:`replace_convolutions` changes: the feature encoder
    and the positional convolution."""
    return model.base_model.feature_extractor, model.base_model.encoder.pos_conv_embed.conv


@contextmanager
def convolutions_replaced(model: Wav2Vec2ForCTC) -> Iterator[Wav2Vec2ForCTC]:
    """:func:`replace_convolutions` for the duration of a ``with`` block; afterwards the modules
    compute with their own ``forward`` again (or with what they had before)."""
    modules = _convolution_modules(model)
    before = [vars(module).get("forward") for module in modules]
    replace_convolutions(model)
    try:
        yield model
    finally:
        for module, forward in zip(modules, before):
            if forward is None:
                del module.forward
            else:
                module.forward = forward
