#!/usr/bin/env python
"""Where one training step of the fast profile goes: each part of wav2vec2-base timed alone.

``train_throughput.py`` measures whole steps; this script splits one step of the fast profile
(bf16 autocast, FlashAttention, frozen feature encoder, convolutions as FFTs and matrix products,
fused AdamW) into the parts a fix would target, times each alone on the same batch (CUDA
events, median of ``--steps`` after ``--warmup``) and prints a table with each part's share of the
whole step and its model TFLOP/s. Batches of equal-length clips, so there is no padding and the
attention has no mask (the fast profile's buckets come close to that). Variants (``--variants``): ``eager`` (the fast
profile without compilation), ``eager-cudnn-benchmark`` (cuDNN picks its convolution algorithms by
timing them), ``compiled`` (the fast profile's compiled Transformer layers, dynamic shapes, as after
its second bucket shape). Two rows show what the feature encoder and the positional convolution
cost as cuDNN convolutions, before :func:`~asr_helpers.fast.convolutions.replace_convolutions`::

    python benchmarks/step_breakdown.py --batch-sizes 64,128      # about 1 min on an H200
    python benchmarks/step_breakdown.py --variants eager,eager-cudnn-benchmark,compiled
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from asr_helpers.fast.training import prepare_fast_model  # noqa: E402
from train_throughput import flops_by_part, gpu_peak, train_flops  # noqa: E402

RATE = 16_000
VOCAB = 32
CHARS_PER_SECOND = 8


def timed(fn, warmup: int, steps: int) -> float:
    """Median milliseconds of ``fn()`` on the GPU, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cpu_timed(fn, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def layers_step(layers: list[torch.nn.Module], hidden: torch.Tensor) -> callable:
    """A callable doing forward and backward through ``layers`` in turn (bf16 autocast on a GPU);
    a Transformer layer may return a tuple whose first item is the hidden states."""
    def run():
        with torch.autocast(hidden.device.type, dtype=torch.bfloat16, enabled=hidden.is_cuda):
            out = hidden
            for layer in layers:
                result = layer(out)
                out = result[0] if isinstance(result, tuple) else result
        out.float().sum().backward()
    return run


def parts(model: Wav2Vec2ForCTC, batch: int, seconds: float, device: str = "cuda") -> dict[str, callable]:
    """One callable per part of a training step, each doing exactly that part's work."""
    base = model.wav2vec2
    audio = torch.randn(batch, int(seconds * RATE), device=device)
    labels = torch.randint(1, VOCAB, (batch, int(seconds * CHARS_PER_SECOND)), device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=device == "cuda")
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
    with torch.no_grad(), autocast:
        features = base.feature_extractor(audio).transpose(1, 2)
    frames = features.shape[1]
    hidden = torch.randn(batch, frames, model.config.hidden_size, device=device, requires_grad=True)

    def full_step():
        with autocast:
            loss = model(audio, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def feature_encoder():
        with torch.no_grad(), autocast:
            base.feature_extractor(audio)

    def projection_and_positional_conv():
        with autocast:
            projected, _ = base.feature_projection(features)
            out = projected + base.encoder.pos_conv_embed(projected)
        out.float().sum().backward()

    transformer_layers = layers_step([base.encoder.layer_norm, *base.encoder.layers], hidden)

    def head_and_ctc_loss():
        with autocast:
            logits = model.lm_head(hidden)
        log_probs = torch.nn.functional.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        loss = torch.nn.functional.ctc_loss(
            log_probs, labels, torch.full((batch,), frames, device=device), torch.full((batch,), labels.shape[1], device=device),
            blank=0, reduction="mean", zero_infinity=False,
        )
        loss.backward()

    def optimizer_step():
        for p in model.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    conv = base.encoder.pos_conv_embed.conv
    positions = torch.randn(batch, model.config.hidden_size, frames, device=device, requires_grad=True)

    def positional_conv_cudnn():  # the direct grouped convolution the FFT replaces
        with autocast:
            out = torch.nn.Conv1d.forward(conv, positions)
        out.float().sum().backward()

    encoder = base.feature_extractor

    def feature_encoder_cudnn():  # the module's own forward: cuDNN convolutions
        with torch.no_grad(), autocast:
            type(encoder).forward(encoder, audio)

    def spec_augment_masks():  # numpy on the CPU, every training step
        _compute_mask_indices((batch, frames), model.config.mask_time_prob, model.config.mask_time_length, min_masks=2)

    return {
        "whole step": full_step,
        "feature encoder (frozen, forward)": feature_encoder,
        "  feature encoder as cuDNN convolutions (before)": feature_encoder_cudnn,
        "projection + positional conv (fwd+bwd)": projection_and_positional_conv,
        "  positional conv as cuDNN's grouped conv (before)": positional_conv_cudnn,
        "12 Transformer layers (fwd+bwd)": transformer_layers,
        "CTC head + loss (fwd+bwd)": head_and_ctc_loss,
        "clip + fused AdamW": optimizer_step,
        "SpecAugment masks (CPU)": spec_augment_masks,
    }


def part_flops(config: Wav2Vec2Config, samples: int, batch: int) -> dict[str, float]:
    """Model FLOPs of each timed part (train_throughput.py's analytic count; backward = 2 x forward)."""
    f = {k: v * batch for k, v in flops_by_part(config, samples, VOCAB).items()}
    return {
        "whole step": train_flops(config, samples, VOCAB, frozen_encoder=True) * batch,
        "feature encoder (frozen, forward)": f["encoder"],
        "  feature encoder as cuDNN convolutions (before)": f["encoder"],
        "  positional conv as cuDNN's grouped conv (before)": 3 * f["positional"],
        "projection + positional conv (fwd+bwd)": 3 * (f["projection"] + f["positional"]),
        "12 Transformer layers (fwd+bwd)": 3 * f["layers"],
        "CTC head + loss (fwd+bwd)": 3 * f["head"],
    }


VARIANTS = ("eager", "eager-cudnn-benchmark", "compiled")


def breakdown(config: Wav2Vec2Config, variant: str, batch: int, args, gpu: str, peak: float | None) -> list[dict]:
    """Time every part of one step of ``variant`` at ``batch``; print the table, return its rows."""
    torch.manual_seed(0)
    np.random.seed(0)
    model = prepare_fast_model(Wav2Vec2ForCTC(config).cuda().train(), compile=variant == "compiled")
    if variant == "compiled":  # as the fast profile after its second bucket shape: dynamic kernels
        torch._dynamo.config.automatic_dynamic_shapes = False
        torch._dynamo.config.assume_static_by_default = False
    flops = part_flops(config, int(args.seconds * RATE), batch)
    whole, rows = None, []
    print(f"\n{gpu}, batch {batch} x {args.seconds:g} s, bf16 autocast, {variant}")
    print("| part | ms | share of step | model TFLOP/s |\n| --- | ---: | ---: | ---: |")
    for name, fn in parts(model, batch, args.seconds).items():
        ms = cpu_timed(fn, args.steps) if "CPU" in name else timed(fn, args.warmup, args.steps)
        whole = whole or ms
        tflops = flops[name] / ms / 1e9 if name in flops else None
        rows.append({"variant": variant, "batch": batch, "part": name.strip(), "ms": round(ms, 2),
                     "share": round(ms / whole, 3), "tflops": round(tflops, 1) if tflops else None})
        print(f"| {name} | {ms:.1f} | {ms / whole:.0%} | {f'{tflops:.0f}' if tflops else ''} |")
    mfu = flops["whole step"] / whole / 1e9 / peak if peak else None
    print(f"whole step: {batch * args.seconds / whole * 1000:,.0f} audio-s/s" + (f", MFU {mfu:.3f}" if mfu else ""))
    del model
    torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="64")
    parser.add_argument("--seconds", type=float, default=9.0, help="length of every clip")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variants", default="eager", help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    gpu = torch.cuda.get_device_name()
    peak = gpu_peak(gpu, None)
    config = Wav2Vec2Config(vocab_size=VOCAB, pad_token_id=0, layerdrop=0.0, ctc_loss_reduction="mean")
    results = []
    for variant in variants:
        torch.backends.cudnn.benchmark = variant != "eager"
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            results += breakdown(config, variant, batch, args, gpu, peak)
    args.out.mkdir(parents=True, exist_ok=True)
    name = gpu.lower().replace(" ", "-")
    out = args.out / f"step_breakdown-{name}.json"
    out.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "seconds": args.seconds,
                               "peak_tflops": peak, "parts": results}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
