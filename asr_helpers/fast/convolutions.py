"""The same convolutions computed faster: FFTs and matrix products instead of direct convolutions.

Opt-in speed work (the fast training profile uses it on a GPU, ``transcribe(fast=True)`` on any
device): only the modules' ``forward`` changes, so weights, state dicts and checkpoints stay those
of the plain model. It relies on transformers' attribute names for Wav2Vec2's modules
(``feature_extractor.conv_layers[i].conv``, ``encoder.pos_conv_embed.conv``); the tests in
``tests/test_fast.py`` check the results against the model's own modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from transformers import Wav2Vec2ForCTC


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
    step), :func:`~asr_helpers.inference.transcribe` with ``fast=True`` (the course model transcribes
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
