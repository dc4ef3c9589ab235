#!/usr/bin/env python
"""Training throughput: the guide's recipe, as written and with a frozen encoder, against the fast profile.

The model is wav2vec2-base's architecture (``Wav2Vec2Config()``: 7 convolutions of 512 channels,
12 Transformer layers of 768) with random weights: the hub is out of reach, and the arithmetic is
that of the pre-trained checkpoint. The audio is synthetic noise with MInDS-14-like lengths
(gamma distributed, mean 9 s, 1.5 to 30 s) and character labels of 8 per second. Each run trains
through the project's own code (``guide_arguments`` + ``build_trainer``, or
``fast_training_args`` + ``make_fast``) for one length sweep of warm-up (compilation
included), then times two more sweeps between two device synchronisations.

Configurations (``--runs``): ``guide``, the guide as written (feature encoder trained, 8 x 2, fp16,
activation checkpointing); ``guide-frozen``, the same with the feature encoder frozen (as the
project's ``fine_tune`` does); ``fast``, the fast profile; also ``fast-eager`` (not compiled) and
``fast-b<N>`` (batch N). Run one after another in one process, whichever ran first was 2 to 4
times slower (issue 17), so they run in ``repeats.interleaved_order``: an untimed warm-up run of
each, then ``--repeats`` timed rounds with the order rotated; each configuration is reported as
the median and min-max of its timed runs, and every run starts from the process's initial
backend switches (the fast profile turns cuDNN attention off and TF32 on for the whole process).
The headline is the fast profile against the guide as written; against the frozen encoder too.

Length grouping (``train_sampling_strategy="group_by_length"``) sorts each "megabatch" of shuffled
clips longest first, so consecutive batches sweep from long to short clips. Each run therefore
gets the first ``4 x sweep x batch`` clips, which makes every megabatch exactly ``--sweep``
batches, and times whole sweeps: guide and fast profile see the same length distribution.

Reported per run: audio seconds and examples per second, MFU (model FLOPs of the real audio,
counted analytically, over the GPU's dense bf16 peak), peak memory, padding, mean training loss.
The results go to ``<out>/<gpu-name>.json`` (``--out``, default ``benchmarks/results``)::

    python benchmarks/train_throughput.py                              # on a GPU, about 4 minutes on an H200
    python benchmarks/train_throughput.py --device cpu --tiny --sweep 2 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import gc
import operator
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import TrainerCallback, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Processor  # noqa: E402

from asr_helpers.fast.training import (  # noqa: E402
    fast_batch_size,
    fast_training_args,
    guide_arguments,
    make_fast,
    seed_length_grouping,
)
from asr_helpers.preprocessing import build_processor  # noqa: E402
from asr_helpers.training import build_trainer  # noqa: E402
from repeats import machine, ratio, run_interleaved, run_order, slug, timed_spreads, write_json  # noqa: E402

RATE = 16_000
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
DENSE_BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H20": 148.0, "GH200": 989.0, "A100": 312.0,
                          "A10G": 70.0, "L4": 121.0, "L40S": 362.0, "RTX 4090": 165.0}
DEFAULT_RUNS = "guide,guide-frozen,fast"


# ----------------------------------------------------------------------------- model FLOPs
def conv_lengths(config: Wav2Vec2Config, samples: int) -> list[int]:
    """Output length of each feature-encoder convolution for ``samples`` input samples."""
    lengths, length = [], samples
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        lengths.append(length)
    return lengths


def flops_by_part(config: Wav2Vec2Config, samples: int, vocab: int) -> dict[str, float]:
    """Forward FLOPs (2 per multiply-add) of one unpadded example, by part of the model.

    Convolutions, linear layers, attention scores and values, the positional convolution and the
    CTC head; normalisations, activations and the loss are left out (under 1 %).
    """
    lengths = conv_lengths(config, samples)
    channels_in, encoder = 1, 0.0
    for length, channels, kernel in zip(lengths, config.conv_dim, config.conv_kernel):
        encoder += 2.0 * length * channels * channels_in * kernel
        channels_in = channels
    frames, d, ff = lengths[-1], config.hidden_size, config.intermediate_size
    per_layer = 2.0 * frames * (4 * d * d + 2 * d * ff) + 4.0 * frames * frames * d  # QKVO + FFN, QK^T + AV
    return {
        "encoder": encoder,
        "projection": 2.0 * frames * config.conv_dim[-1] * d,
        "positional": 2.0 * frames * d * (d // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings,
        "layers": config.num_hidden_layers * per_layer,
        "head": 2.0 * frames * d * vocab,
    }


def forward_flops(config: Wav2Vec2Config, samples: int, vocab: int) -> tuple[float, float]:
    """Forward FLOPs of one unpadded example: (feature encoder, the rest)."""
    parts = flops_by_part(config, samples, vocab)
    return parts["encoder"], sum(v for k, v in parts.items() if k != "encoder")


def train_flops(config: Wav2Vec2Config, samples: int, vocab: int, frozen_encoder: bool) -> float:
    """Training FLOPs of one example: forward + backward (2x forward) of what is trained, forward
    only of a frozen feature encoder (no gradient flows into it)."""
    encoder, rest = forward_flops(config, samples, vocab)
    return (1.0 if frozen_encoder else 3.0) * encoder + 3.0 * rest


def check_flops_against_torch(config: Wav2Vec2Config, vocab: int, seconds: float = 2.0) -> dict:
    """Cross-check :func:`train_flops` with ``torch.utils.flop_counter`` on one CPU training step."""
    from torch.utils.flop_counter import FlopCounterMode

    model = Wav2Vec2ForCTC(model_config(config, vocab, layerdrop=0.0, attn="eager")).train()
    model.freeze_feature_encoder()
    model.config.mask_time_prob = 0.0
    samples = int(seconds * RATE)
    audio = torch.randn(1, samples)
    labels = torch.randint(1, vocab, (1, int(8 * seconds)))
    with FlopCounterMode(display=False) as counter:
        model(input_values=audio, labels=labels).loss.backward()
    counted = counter.get_total_flops()
    analytic = train_flops(model.config, samples, vocab, frozen_encoder=True)
    # torch's counter takes the grouped positional convolution's backward for an ungrouped one
    # (16x too much for grad_input), so compare without that module as well
    pos = sum(counter.get_flop_counts().get("Wav2Vec2ForCTC.wav2vec2.encoder.pos_conv_embed", {}).values())
    d, frames = model.config.hidden_size, conv_lengths(model.config, samples)[-1]
    pos_analytic = 3 * 2.0 * frames * d * (d // model.config.num_conv_pos_embedding_groups) * model.config.num_conv_pos_embeddings
    return {"seconds": seconds, "torch_flop_counter": counted, "analytic": analytic, "ratio": analytic / counted,
            "ratio_without_positional_conv": (analytic - pos_analytic) / (counted - pos)}


# ----------------------------------------------------------------------------- data
def clip_seconds(rng: np.random.Generator, n: int, mean_s: float) -> np.ndarray:
    """MInDS-14-like durations: gamma distributed (shape 4) around ``mean_s``, clipped to 1.5-30 s."""
    return np.clip(rng.gamma(4.0, mean_s / 4.0, n), 1.5, 30.0)


class SyntheticSpeech(torch.utils.data.Dataset):
    """Noise clips with MInDS-14-like durations and random character labels (8 per second)."""

    def __init__(self, n: int, vocab: int, mean_s: float = 9.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        seconds = clip_seconds(rng, n, mean_s)
        self.lengths = (seconds * RATE).astype(int).tolist()
        self.offsets = rng.integers(0, RATE, n).tolist()
        self.labels = [rng.integers(3, vocab, max(1, round(8 * s))).tolist() for s in seconds]
        self.pool = rng.standard_normal(31 * RATE + RATE).astype(np.float32)  # sliced, not copied

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> dict:
        start = self.offsets[i]
        return {"input_values": self.pool[start : start + self.lengths[i]], "labels": self.labels[i],
                "input_length": self.lengths[i]}


def letter_processor() -> Wav2Vec2Processor:
    """A processor like wav2vec2-base's: the 30 characters, 16 kHz, no attention mask (the base
    model's group-normalised encoder cannot use one, so its processor returns none)."""
    with tempfile.TemporaryDirectory() as folder:
        vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{ch: i + 3 for i, ch in enumerate(LETTERS)}}
        processor = build_processor(vocab, folder)
    processor.feature_extractor.return_attention_mask = False
    return processor


class CountingCollator:
    """Wraps a collator; adds the batch's real audio samples and model FLOPs (popped before the model)."""

    def __init__(self, collator, flops_of):
        self.collator, self.flops_of = collator, flops_of

    def __call__(self, features):
        batch = self.collator(features)
        lengths = [len(f["input_values"]) for f in features]
        # plain floats: they stay on the host (a tensor would go to the GPU and cost a sync to read)
        batch["_real_samples"] = [float(sum(lengths)), float(sum(self.flops_of(n) for n in lengths))]
        return batch


class Meter:
    """Counts what the training steps consumed; read at the window's edges by :class:`Window`."""

    def __init__(self):
        self.real = self.padded = self.examples = self.flops = 0.0
        self.losses: list[torch.Tensor] = []

    def wrap(self, trainer):
        step = trainer.training_step

        def counted(model, inputs, num_items_in_batch=None):
            real = inputs.pop("_real_samples")
            self.real += real[0]
            self.flops += real[1]
            self.padded += inputs["input_values"].numel()
            self.examples += inputs["input_values"].shape[0]
            loss = step(model, inputs, num_items_in_batch)
            self.losses.append(loss.detach().float())
            return loss

        trainer.training_step = counted

    def snapshot(self) -> tuple[float, float, float, float, int]:
        return self.real, self.padded, self.examples, self.flops, len(self.losses)


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work, so that a clock read after it covers that work."""
    if device == "cuda":
        torch.cuda.synchronize()


class Window(TrainerCallback):
    """Times optimizer steps ``warmup`` to ``warmup + steps`` between device synchronisations."""

    def __init__(self, meter: Meter, warmup: int, steps: int, device: str):
        self.meter, self.warmup, self.steps, self.device = meter, warmup, steps, device
        self.start = self.end = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            synchronize(self.device)
            self.start = (time.perf_counter(), self.meter.snapshot())
        elif state.global_step == self.warmup + self.steps:
            synchronize(self.device)
            self.end = (time.perf_counter(), self.meter.snapshot())
            control.should_training_stop = True


# ----------------------------------------------------------------------------- process-wide switches
_SDPA_BACKENDS = ("cudnn", "flash", "mem_efficient", "math")
_FP32_PRECISION = ("backends", "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv",
                   "backends.cudnn.rnn")  # torch's TF32 switches, the parent first: setting it sets its children


def backend_switches() -> dict[str, object]:
    """The process-wide switches a profile may flip and the next run in the process would inherit:
    ``prepare_fast_model`` turns cuDNN attention off, ``TrainingArguments(tf32=True)`` turns TF32 on."""
    switches: dict[str, object] = {f"sdp.{name}": getattr(torch.backends.cuda, f"{name}_sdp_enabled")()
                                   for name in _SDPA_BACKENDS}
    switches.update({f"fp32_precision.{path}": operator.attrgetter(path)(torch).fp32_precision for path in _FP32_PRECISION})
    switches["cudnn.benchmark"] = torch.backends.cudnn.benchmark
    return switches


def set_backend_switches(switches: dict[str, object]) -> None:
    """Put back what :func:`backend_switches` read, so every run starts as if it were the process's first."""
    for name, value in switches.items():
        kind, _, what = name.partition(".")
        if kind == "sdp":
            getattr(torch.backends.cuda, f"enable_{what}_sdp")(value)
        elif kind == "fp32_precision":
            operator.attrgetter(what)(torch).fp32_precision = value
        else:
            torch.backends.cudnn.benchmark = value


# ----------------------------------------------------------------------------- runs
def model_config(base: Wav2Vec2Config, vocab: int, layerdrop: float, attn: str | None = None) -> Wav2Vec2Config:
    """``base`` with the guide's CTC head settings (mean loss, pad as blank) for a ``vocab``-token tokenizer."""
    config = Wav2Vec2Config(**{**base.to_dict(), "vocab_size": vocab, "pad_token_id": 0, "layerdrop": layerdrop,
                               "ctc_loss_reduction": "mean"})
    if attn:
        config._attn_implementation = attn
    return config


def base_config(tiny: bool) -> Wav2Vec2Config:
    """wav2vec2-base's architecture and its checkpoint's dropout settings (``Wav2Vec2Config()``
    defaults), or a tiny stand-in for smoke tests on a CPU."""
    if not tiny:
        return Wav2Vec2Config()
    return Wav2Vec2Config(conv_dim=(32,) * 7, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def run_batch(name: str, args) -> int:
    """The batch the length-grouped sampler sees: the guide's 8 x 2 = 16, or the fast profile's."""
    if not name.startswith("fast"):
        return 16
    return int(name.split("-b")[1]) if "-b" in name else args.batch_size


def run_one(name: str, args, processor, master, config, device: str) -> dict:
    """One training run of ``name`` (see the module's docstring), from the initial backend switches."""
    set_backend_switches(args.initial_switches)
    vocab = len(processor.tokenizer)
    fast = name.startswith("fast")
    dataset = torch.utils.data.Subset(master, range(4 * args.sweep * run_batch(name, args)))
    frozen = name != "guide"
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(model_config(config, vocab, args.layerdrop))
    if name == "guide-frozen":
        model.freeze_feature_encoder()  # as the project's fine_tune does for wav2vec2-base
    common = dict(max_steps=args.warmup + args.steps + 1, eval_strategy="no", eval_on_start=False, save_strategy="no",
                  load_best_model_at_end=False, logging_steps=10_000, disable_tqdm=True, report_to="none",
                  seed=0, data_seed=0, use_cpu=device == "cpu")
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    if fast:
        targs = fast_training_args(out, batch_size=run_batch(name, args), **common)
        # fast_training_args rescales a recipe's step counts to its bigger batch (same samples);
        # here the run must last the same number of *optimizer steps* as the timing window
        targs.max_steps = common["max_steps"]
        trainer = make_fast(build_trainer(model, targs, processor, dataset, None, "offline"),
                            compile=False if name == "fast-eager" else None if device == "cuda" else args.compile)
    else:
        targs = guide_arguments(out, **common)
        trainer = seed_length_grouping(build_trainer(model, targs, processor, dataset, None, "offline"))
    flops_of = lambda n, trained=model.config: train_flops(trained, n, vocab, frozen)  # noqa: E731
    trainer.data_collator = CountingCollator(trainer.data_collator, flops_of)
    meter = Meter()
    meter.wrap(trainer)
    window = Window(meter, args.warmup, args.steps, device)
    trainer.add_callback(window)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - began
    if window.end is None:
        raise RuntimeError(f"{name}: training stopped before the timed window ended")
    (t0, s0), (t1, s1) = window.start, window.end
    seconds = t1 - t0
    real, padded, examples, flops = (b - a for a, b in zip(s0[:4], s1[:4]))
    losses = torch.stack(meter.losses[s0[4] : s1[4]]).cpu().numpy()
    result = dict(
        batch=targs.per_device_train_batch_size, accumulation=targs.gradient_accumulation_steps,
        precision="bf16" if targs.bf16 else "fp16" if targs.fp16 else "fp32",
        activation_checkpointing=bool(targs.activation_checkpointing), frozen_feature_encoder=frozen,
        compiled=fast and name != "fast-eager" and (device == "cuda" or args.compile),
        optimizer=str(targs.optim.value if hasattr(targs.optim, "value") else targs.optim),
        dataloader_workers=targs.dataloader_num_workers, timed_steps=args.steps, warmup_steps=args.warmup,
        timed_seconds=seconds, warmup_and_compile_seconds=total - seconds,
        audio_s_per_s=real / RATE / seconds, samples_per_s=examples / seconds,
        model_tflops_per_s=flops / seconds / 1e12, padding=1 - real / padded,
        loss=float(np.mean(losses)), loss_finite=bool(np.isfinite(losses).all()),
        peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
    )
    del trainer, model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def matmul_tflops(device: str) -> float | None:
    """bf16 8192^3 matrix product rate on random data (the measured ceiling), median of 10."""
    if device != "cuda":
        return None
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * 8192**3 / float(np.median(times)) / 1e12


def gpu_peak(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key in sorted(DENSE_BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            return DENSE_BF16_PEAK_TFLOPS[key]
    return None


# ----------------------------------------------------------------------------- report
HEADLINES = {"fast_vs_guide": "fast profile vs the guide as written (the headline)",
             "fast_vs_guide-frozen": "fast profile vs the guide with the encoder frozen"}


def headline(spreads: dict[str, dict]) -> dict[str, dict | None]:
    """The fast profile's speed-up (audio-s/s) over the guide as written, and over the guide with
    the encoder frozen: ratio of medians and its least to most favourable range."""
    fast = spreads.get("fast")
    return {f"fast_vs_{base}": ratio(fast, spreads[base]) if fast and base in spreads else None
            for base in ("guide", "guide-frozen")}


def span(s: dict, digits: int = 0) -> str:
    """``median (min-max)`` of a spread, for the table."""
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def table(results: list[dict], peak: float | None) -> str:
    """One line per configuration: median (min-max) over its timed runs, then the fixed settings."""
    rates, tflops = timed_spreads(results, "audio_s_per_s"), timed_spreads(results, "model_tflops_per_s")
    head = (f"{'run':<14}{'batch':>7}{'prec':>6}{'audio-s/s median (min-max)':>30}{'MFU':>7}"
            f"{'peak GiB':>10}{'pad %':>7}{'loss':>8}")
    lines = [head, "-" * len(head)]
    for name, rate in rates.items():
        timed = [r for r in results if r["name"] == name and not r["warmup"] and "error" not in r]
        first = timed[0]
        mfu = f"{tflops[name]['median'] / peak:.3f}" if peak else "n/a"
        memory = f"{max(r['peak_memory_gib'] for r in timed):.1f}" if first["peak_memory_gib"] is not None else "n/a"
        lines.append(f"{name:<14}{first['batch']:>4}x{first['accumulation']:<2}{first['precision']:>6}{span(rate):>30}"
                     f"{mfu:>7}{memory:>10}{100 * first['padding']:>7.1f}"
                     f"{float(np.median([r['loss'] for r in timed])):>8.3f}")
    for key, value in headline(rates).items():
        if value:
            lines.append(f"{HEADLINES[key]}: {value['median']:.1f}x ({value['min']:.1f}-{value['max']:.1f})")
    return "\n".join(lines)


def summarize(results, args, device, peak, measured, config, vocab, dataset) -> dict:
    """The JSON: machine, method (order, repeats, warm-up), spreads, headline and every run."""
    rates = timed_spreads(results, "audio_s_per_s")
    tflops = timed_spreads(results, "model_tflops_per_s")
    return dict(
        **machine(device), device=device, peak_tflops_dense_bf16=peak, measured_bf16_matmul_tflops=measured,
        method=dict(repeats=args.repeats, warmup_round="one untimed run of every configuration first",
                    order="round r runs the configurations rotated by r-1 places", runs_in_order=run_order(results),
                    statistic="median and min-max of the timed runs",
                    backend_switches="reset to the process's initial values before every run"),
        audio_s_per_s=rates, model_tflops_per_s=tflops,
        mfu={name: {k: v / peak for k, v in s.items() if k != "n"} for name, s in tflops.items()} if peak else None,
        speedup=headline(rates),
        model="wav2vec2-base architecture (Wav2Vec2Config() defaults), random init" + (" [TINY]" if args.tiny else ""),
        layerdrop=args.layerdrop,
        train_gflop_per_audio_second=train_flops(config, RATE * 9, vocab, True) / 9 / 1e9,
        data=dict(clips=len(dataset), mean_seconds=float(np.mean(dataset.lengths) / RATE),
                  distribution="gamma(shape 4, mean 9 s) clipped to 1.5-30 s; each run takes the first 4 x sweep x batch"),
        sweep=args.sweep, warmup_steps=args.warmup, timed_steps=args.steps, cudnn_benchmark=args.cudnn_benchmark,
        runs=results,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help="comma-separated: guide, guide-frozen, fast, fast-eager, fast-b<N> (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up round (default: %(default)s)")
    parser.add_argument("--sweep", type=int, default=10,
                        help="batches per length sweep: one sweep of warm-up, two timed (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=None, help="fast profile batch (default: fast_batch_size())")
    parser.add_argument("--mean-seconds", type=float, default=9.0)
    parser.add_argument("--layerdrop", type=float, default=0.0,
                        help="wav2vec2-base's checkpoint uses 0.1; 0 keeps every layer so the FLOP count is exact")
    parser.add_argument("--tiny", action="store_true", help="a tiny model instead of wav2vec2-base (smoke test)")
    parser.add_argument("--compile", action="store_true", help="compile on CPU too (on CUDA the profile decides)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU (default: by GPU name)")
    parser.add_argument("--check-flops", action="store_true", help="compare the FLOP count with torch's counter (CPU)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its convolution algorithms for each new shape (torch.backends.cudnn.benchmark)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --device cpu")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device
    config = base_config(args.tiny)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    args.initial_switches = backend_switches()
    if args.batch_size is None:
        args.batch_size = fast_batch_size() if device == "cuda" else 16
    processor = letter_processor()
    vocab = len(processor.tokenizer)
    if args.check_flops:
        print(check_flops_against_torch(config, vocab))

    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    args.warmup, args.steps = args.sweep, 2 * args.sweep
    dataset = SyntheticSpeech(4 * args.sweep * max(run_batch(r, args) for r in runs), vocab, args.mean_seconds)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = gpu_peak(gpu, args.peak_tflops) if device == "cuda" else args.peak_tflops
    print(f"device: {gpu}; dense bf16 peak used for MFU: {peak} TFLOP/s; {len(dataset)} clips, "
          f"mean {np.mean(dataset.lengths) / RATE:.2f} s; {machine(device)['versions']}", flush=True)
    measured = matmul_tflops(device)
    if measured:
        print(f"bf16 8192^3 matmul measured: {measured:.0f} TFLOP/s", flush=True)

    path = args.out / f"{slug(gpu)}{'-tiny' if args.tiny else ''}.json"

    def save(results: list[dict]) -> None:
        last = results[-1]
        if "error" not in last:
            print(f"{last['name']}: {last['audio_s_per_s']:.0f} audio-s/s, {last['model_tflops_per_s']:.1f} TFLOP/s, "
                  f"loss {last['loss']:.3f}, warm-up {last['warmup_and_compile_seconds']:.0f} s", flush=True)
        write_json(path, summarize(results, args, device, peak, measured, config, vocab, dataset))

    configs = {name: lambda name=name: run_one(name, args, processor, dataset, config, device) for name in runs}
    results = run_interleaved(configs, args.repeats, save)
    print(f"\norder: {' | '.join(run_order(results))}\n")
    print(table(results, peak))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
