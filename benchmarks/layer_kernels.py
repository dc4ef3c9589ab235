#!/usr/bin/env python
"""What bounds the 12 Transformer layers of the fast profile, two thirds of its training step.

``step_breakdown.py`` shows that the layers run at about a quarter of the GPU's bf16 peak. This
script asks why, on the same batch (equal-length clips, bf16, dropout as in training):

1. **Kernel floor.** Every matrix product of a layer (Q, K, V, output, the two feed-forward
   products; forward, input gradient and weight gradient) and the attention (forward and
   backward, each SDPA backend) timed alone with CUDA events, times 12. Their sum is the least
   time the layers can take with these kernels, however well everything around them is fused.
2. **Where the compiled layers' time goes.** ``torch.profiler`` over a few forward + backward
   passes, the GPU time summed by kind of kernel: matrix products, attention, Triton (what
   ``torch.compile`` fused), other.
3. **Variants of the layers**, each fwd+bwd: ``eager``, ``compiled`` as in the fast profile, and
   compiled with changes (``+`` joins them): ``fused-qkv`` (the Q, K and V projections as one
   matrix product), ``aten-random`` (dropout masks from PyTorch's generator instead of Triton's),
   ``max-autotune`` (Inductor times Triton matrix products against cuBLAS), ``no-dropout`` (what
   dropout costs; not the model that is trained).

::

    python benchmarks/layer_kernels.py                 # about 1.5 min on an H200 (compilation)
    python benchmarks/layer_kernels.py --variants eager,compiled,compiled+fused-qkv --no-profile
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch._inductor.config
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from asr_helpers.fast.training import prepare_fast_model  # noqa: E402
from step_breakdown import RATE, VOCAB, layers_step, timed  # noqa: E402
from train_throughput import conv_lengths, flops_by_part, gpu_peak  # noqa: E402

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION}


def gemm_floor(config: Wav2Vec2Config, tokens: int, warmup: int, steps: int) -> list[dict]:
    """Each matrix product of one layer alone, bf16: forward, input gradient, weight gradient."""
    d, ff = config.hidden_size, config.intermediate_size
    shapes = {"Q, K, V, output (each)": (d, d, 4), "feed-forward in": (d, ff, 1), "feed-forward out": (ff, d, 1)}
    rows = []
    for name, (k, n, count) in shapes.items():
        x = torch.randn(tokens, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(tokens, n, device="cuda", dtype=torch.bfloat16)
        ms = sum(timed(fn, warmup, steps) for fn in (lambda: x @ w.t(), lambda: dy @ w, lambda: dy.t() @ x))
        rows.append({"part": name, "count_per_layer": count, "ms": ms, "tflops": 3 * 2 * tokens * k * n / ms / 1e9})
    return rows


def attention_floor(config: Wav2Vec2Config, batch: int, frames: int, warmup: int, steps: int) -> list[dict]:
    """SDPA forward + backward of one layer alone, per backend, with and without dropout."""
    heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    q, k, v = (torch.randn(batch, frames, heads, dim, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
               .requires_grad_() for _ in range(3))
    flops = 3 * 4.0 * batch * frames * frames * heads * dim
    rows = []
    for name, backend in BACKENDS.items():
        for dropout in (config.attention_dropout, 0.0):
            def run():
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(q, k, v, dropout_p=dropout).sum().backward()
            try:
                ms = timed(run, warmup, steps)
            except RuntimeError as error:  # a backend that does not take this case (e.g. dropout)
                print(f"  {name}, dropout {dropout}: not available ({str(error).splitlines()[0][:80]})")
                continue
            rows.append({"part": f"attention, {name}, dropout {dropout:g}", "ms": ms, "tflops": flops / ms / 1e9})
    return rows


def fused_qkv_forward(self, hidden_states, attention_mask=None, **kwargs):
    """Wav2Vec2Attention.forward with Q, K and V as one matrix product (weights concatenated)."""
    batch, frames, _ = hidden_states.shape
    weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
    bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
    qkv = F.linear(hidden_states, weight, bias).view(batch, frames, 3, self.num_heads, self.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, scale=self.scaling,
                                         dropout_p=self.dropout if self.training else 0.0)
    return self.out_proj(out.transpose(1, 2).reshape(batch, frames, -1)), None


def build_layers(config: Wav2Vec2Config, variant: str) -> torch.nn.ModuleList:
    """The 12 layers of a fresh model prepared as the fast profile, changed as ``variant`` says."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = prepare_fast_model(Wav2Vec2ForCTC(config).cuda().train(), compile=False)
    layers = model.wav2vec2.encoder.layers
    for layer in layers:
        if "fused-qkv" in variant:
            layer.attention.forward = fused_qkv_forward.__get__(layer.attention)
        if "no-dropout" in variant:
            layer.attention.dropout = 0.0
            for module in layer.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        if variant.startswith("compiled"):
            layer.compile(mode="max-autotune-no-cudagraphs" if "max-autotune" in variant else None)
    return layers


def kernel_kind(name: str) -> str:
    """The kind of a CUDA kernel, from its name: cuBLAS names its Hopper matrix products nvjet or
    xmma, PyTorch's attention kernels say flash/fmha/attention, Inductor's fused kernels triton."""
    name = name.lower()
    if any(key in name for key in ("flash", "fmha", "attention", "cudnn_generated")):
        return "attention"
    if any(key in name for key in ("gemm", "cutlass", "nvjet", "xmma", "wgmma", "cublas", "s16816")):
        return "matrix products"
    if "triton" in name:
        return "Triton (fused by compile)"
    return "other"


def profile_kinds(run, passes: int = 3) -> dict[str, float]:
    """GPU milliseconds per pass of ``run`` by kind of kernel, from torch.profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(passes):
            run()
        torch.cuda.synchronize()
    kinds: dict[str, float] = {}
    top = []
    for event in prof.key_averages():
        if event.device_type != DeviceType.CUDA:
            continue
        us = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
        kinds[kernel_kind(event.key)] = kinds.get(kernel_kind(event.key), 0.0) + us / 1000 / passes
        top.append((us / 1000 / passes, event.key))
    for ms, key in sorted(top, reverse=True)[:12]:
        print(f"    {ms:7.2f} ms  {kernel_kind(key):<26} {key[:90]}")
    return kinds


VARIANTS = ("eager", "compiled", "compiled+fused-qkv", "compiled+aten-random", "compiled+no-dropout",
            "compiled+max-autotune")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=9.0, help="length of every clip")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS[:5]), help=f"from: {', '.join(VARIANTS)}")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiler breakdown")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    known = {part for variant in VARIANTS for part in variant.split("+")}
    for variant in chosen:
        unknown = set(variant.split("+")) - known
        if unknown or variant.split("+")[0] not in ("eager", "compiled"):
            parser.error(f"unknown variant {variant!r}: start with eager or compiled, then +{', +'.join(sorted(known - {'eager', 'compiled'}))}")
    if not torch.cuda.is_available():
        print("layer_kernels.py needs a CUDA GPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    gpu = torch.cuda.get_device_name()
    peak = gpu_peak(gpu, None)
    config = Wav2Vec2Config(layerdrop=0.0, vocab_size=VOCAB)
    samples = int(args.seconds * RATE)
    frames = conv_lengths(config, samples)[-1]
    tokens = args.batch * frames
    layer_flops = 3 * flops_by_part(config, samples, VOCAB)["layers"] * args.batch
    layers_n = config.num_hidden_layers
    print(f"{gpu}, batch {args.batch} x {args.seconds:g} s = {tokens:,} frames, {layers_n} layers, "
          f"{layer_flops / 1e12:.2f} TFLOP per fwd+bwd")

    gemms = gemm_floor(config, tokens, args.warmup, args.steps)
    attention = attention_floor(config, args.batch, frames, args.warmup, args.steps)
    print("\n| kernel (one layer, fwd+bwd) | ms | TFLOP/s |\n| --- | ---: | ---: |")
    for row in gemms + attention:
        print(f"| {row['part']} | {row['ms']:.3f} | {row['tflops']:.0f} |")
    gemm_ms = layers_n * sum(r["ms"] * r["count_per_layer"] for r in gemms)
    attention_ms = {r["part"]: layers_n * r["ms"] for r in attention}
    best_attention = min(ms for part, ms in attention_ms.items() if part.endswith(f"dropout {config.attention_dropout:g}"))
    floor_ms = gemm_ms + best_attention
    print(f"\nfloor of the {layers_n} layers: matrix products {gemm_ms:.1f} ms + fastest attention with dropout "
          f"{best_attention:.1f} ms = {floor_ms:.1f} ms ({layer_flops / floor_ms / 1e9:.0f} TFLOP/s)")

    hidden = torch.randn(args.batch, frames, config.hidden_size, device="cuda", requires_grad=True)
    torch._dynamo.config.automatic_dynamic_shapes = False  # as the fast profile after its second shape
    torch._dynamo.config.assume_static_by_default = False
    variants, kinds = [], {}
    print("\n| layers | ms | TFLOP/s | × floor | first call s |\n| --- | ---: | ---: | ---: | ---: |")
    for variant in chosen:
        torch._inductor.config.fallback_random = "aten-random" in variant
        layers = build_layers(config, variant)
        run = layers_step(layers, hidden)
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        first = time.perf_counter() - start
        ms = timed(run, args.warmup, args.steps)
        variants.append({"variant": variant, "ms": ms, "tflops": layer_flops / ms / 1e9, "first_call_s": first})
        print(f"| {variant} | {ms:.1f} | {layer_flops / ms / 1e9:.0f} | {ms / floor_ms:.2f} | {first:.0f} |", flush=True)
        if variant == "compiled" and not args.no_profile:
            kinds = profile_kinds(run)
            print("    by kind: " + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))
        del layers
        torch.cuda.empty_cache()

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"layer_kernels-{gpu.lower().replace(' ', '-')}.json"
    path.write_text(json.dumps({
        "gpu": gpu, "torch": torch.__version__, "peak_tflops": peak, "batch": args.batch, "seconds": args.seconds,
        "frames": frames, "layers_tflop": layer_flops / 1e12, "gemms_per_layer": gemms, "attention_per_layer": attention,
        "floor_ms": floor_ms, "gemm_floor_ms": gemm_ms, "attention_floor_ms": best_attention,
        "compiled_by_kind_ms": kinds, "variants": variants,
    }, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
