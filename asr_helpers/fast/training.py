"""The fast training profile: the guide's recipe (same model, same samples, same schedule) computed faster.

Opt-in speed work for GPUs (``benchmarks/train_throughput.py`` measures it): bf16, no activation
checkpointing or gradient accumulation, the batch that fits, FlashAttention, convolutions as FFTs
and matrix products, compiled Transformer layers, padding to bucket lengths. Nothing in the
notebooks or the command line uses it unless asked.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments, Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.collator import DataCollatorCTCWithPadding
from asr_helpers.fast.convolutions import replace_convolutions
from asr_helpers.training import RECIPES, training_arguments


def guide_arguments(output_dir: str | Path, **overrides) -> TrainingArguments:
    """The guide's recipe on a GPU as :func:`~asr_helpers.training.training_arguments` writes it;
    ``overrides`` change any argument (``max_steps=...`` does not rescale the others)."""
    return training_arguments(output_dir, RECIPES["guide"], **overrides)


FAST_PAD_MULTIPLE = 2560
"""Audio is padded up to a multiple of 0.16 s (8 output frames): length-grouped batches fall into
a few bucket shapes, which keeps compiled kernels and the CUDA caching allocator reusable."""


def fast_batch_size(memory_bytes: int | None = None) -> int:
    """The per-device batch of the fast profile: the largest power of two that fits on this GPU.

    wav2vec2-base without activation checkpointing keeps about 25 MB per second of audio in bf16;
    length grouping puts ~25 s clips together, so 80 % of the memory in GiB, rounded down to a
    power of two, bounds the batch (80 GB -> 64, 40 GB -> 32, 24 GB -> 16), between 4 and 64.
    ``auto_find_batch_size`` in :func:`fast_training_args` still shrinks it if a batch runs out.
    Without a GPU it is the guide's effective batch, 16.
    """
    if memory_bytes is None:
        if not torch.cuda.is_available():
            return 16
        memory_bytes = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    gib = 0.8 * memory_bytes / 2**30
    return int(min(64, max(4, 2 ** math.floor(math.log2(max(gib, 1))))))


def fast_mechanics(
    cuda: bool | None = None,
    bf16_supported: bool | None = None,
    capability: tuple[int, int] | None = None,
    cpu_count: int | None = None,
) -> dict:
    """How the fast profile computes on this machine (arguments default to what torch sees).

    GPU with bf16 (Ampere and later): bf16 autocast, TF32 for what stays in float32. GPU without
    bf16 (T4, V100): fp16 with loss scaling, no TF32. CPU: float32. Everywhere: no activation
    checkpointing, no gradient accumulation (set by :func:`fast_training_args`). On a GPU also the
    fused AdamW kernel, data loading in worker processes into pinned memory copied without
    blocking, OOM retry with a smaller batch, and no per-step NaN check (it synchronises).
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return dict(
            bf16=False, fp16=False, activation_checkpointing=False, optim="adamw_torch",
            dataloader_num_workers=0, dataloader_pin_memory=False,
        )
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported(including_emulation=False)
    if capability is None:
        capability = torch.cuda.get_device_capability()
    workers = min(8, max(2, (cpu_count or os.cpu_count() or 2) // 2))
    settings = dict(
        bf16=bool(bf16_supported), fp16=not bf16_supported, activation_checkpointing=False,
        optim="adamw_torch_fused", dataloader_num_workers=workers, dataloader_pin_memory=True,
        dataloader_persistent_workers=True, dataloader_prefetch_factor=4,
        accelerator_config={"non_blocking": True}, logging_nan_inf_filter=False, auto_find_batch_size=True,
    )
    if tuple(capability) >= (8, 0):
        settings["tf32"] = True
    return settings


def fast_training_args(
    output_dir: str | Path, *, batch_size: int | None = None, lr_scaling: str = "sqrt", **overrides
) -> TrainingArguments:
    """The guide's recipe with the fast profile's mechanics: same model, same samples, same schedule.

    ``overrides`` change the guide's recipe as for :func:`~asr_helpers.training.training_arguments` (learning rate, steps and
    warm-up for its effective batch of ``per_device_train_batch_size × gradient_accumulation_steps``,
    16 by default). The fast profile then trains ``batch_size`` examples per step without
    accumulation (default :func:`fast_batch_size`) and rescales the recipe so the run sees the same
    samples: step counts (max, warm-up, eval, save, logging) shrink by the batch ratio and the
    learning rate grows by its square root (``lr_scaling="sqrt"``, the square-root rule for Adam;
    ``"linear"`` or ``"none"`` also work). Evaluation keeps the recipe's batch: one utterance at a
    time for wav2vec2-base, whose features change with padding (:class:`~asr_helpers.training.CTCTrainer`).
    Mechanics come from :func:`fast_mechanics`; a mechanics setting passed in ``overrides`` wins.
    Use with :func:`make_fast`.
    """
    reference = guide_arguments(output_dir, **overrides)
    reference_batch = reference.per_device_train_batch_size * reference.gradient_accumulation_steps
    batch = batch_size or fast_batch_size()
    ratio = reference_batch / batch
    factors = {"sqrt": math.sqrt(batch / reference_batch), "linear": batch / reference_batch, "none": 1.0}
    if lr_scaling not in factors:
        raise ValueError(f"lr_scaling must be one of {', '.join(factors)}, not {lr_scaling!r}")

    def steps(value):  # counts scale with the batch; fractions (ratios of the run) and -1/None stay
        return value if value is None or value < 1 else max(1, math.ceil(value * ratio))

    changes = dict(
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        per_device_eval_batch_size=reference.per_device_eval_batch_size,
        learning_rate=reference.learning_rate * factors[lr_scaling],
        max_steps=steps(reference.max_steps),
        warmup_steps=steps(reference.warmup_steps),
        logging_steps=steps(reference.logging_steps),
    )
    eval_steps, save_steps = steps(reference.eval_steps), steps(reference.save_steps)
    if eval_steps and save_steps and reference.eval_steps >= 1 and reference.save_steps >= 1:
        # load_best_model_at_end needs save_steps to stay a multiple of eval_steps
        save_steps = eval_steps * max(1, round(reference.save_steps / reference.eval_steps))
    changes.update(eval_steps=eval_steps, save_steps=save_steps)
    changes.update({key: value for key, value in fast_mechanics().items() if key not in overrides})
    return guide_arguments(output_dir, **{**overrides, **changes})


def fast_collator(processor: Wav2Vec2Processor, pad_to_multiple_of: int = FAST_PAD_MULTIPLE) -> DataCollatorCTCWithPadding:
    """The guide's collator, padding audio up to bucket lengths and labels to a multiple of 8."""
    return DataCollatorCTCWithPadding(
        processor=processor, padding="longest", pad_to_multiple_of=pad_to_multiple_of, pad_to_multiple_of_labels=8
    )


def can_compile() -> bool:
    """``torch.compile`` pays on a CUDA GPU that Triton supports (compute capability 7.0 or newer)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (7, 0)


def prepare_fast_model(
    model: Wav2Vec2ForCTC,
    *,
    compile: bool | None = None,
    freeze_feature_encoder: bool = True,
    fast_convolutions: bool | None = None,
) -> Wav2Vec2ForCTC:
    """The model settings of the fast profile, in place; returns the model.

    PyTorch's fused attention (SDPA) with FlashAttention on a GPU (this switches cuDNN's attention
    off for the whole process: it builds a plan for every new batch shape), the frozen
    convolutional feature encoder (the wav2vec2 paper's fine-tuning), no activation checkpointing,
    the convolutions as FFTs and matrix products (``fast_convolutions``, by default on a GPU:
    :func:`~asr_helpers.fast.convolutions.replace_convolutions`), and on a GPU (``compile=None``:
    :func:`can_compile`) ``torch.compile`` of each Transformer layer: regional compilation, one
    compiled graph reused by the 12 identical layers, dynamic in the batch and length dimensions.
    LayerDrop, SpecAugment and the CTC loss stay eager, so the weights and the loss are those of
    the plain model.
    """
    if freeze_feature_encoder:
        model.freeze_feature_encoder()
    if getattr(model, "is_activation_checkpointing", False):  # transformers >= 5.2x names
        model.activation_checkpointing_disable()
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    if getattr(model, "_supports_sdpa", False):
        model.set_attn_implementation("sdpa")
    if torch.cuda.is_available():
        # cuDNN's attention (SDPA's first choice on Hopper) builds a plan for every new shape,
        # about 6 ms of CPU per layer and step with length-grouped batches: FlashAttention has none
        torch.backends.cuda.enable_cudnn_sdp(False)
    if torch.cuda.is_available() if fast_convolutions is None else fast_convolutions:
        replace_convolutions(model)
    if can_compile() if compile is None else compile:
        import torch._dynamo as dynamo

        limit = "recompile_limit" if hasattr(dynamo.config, "recompile_limit") else "cache_size_limit"
        setattr(dynamo.config, limit, max(64, getattr(dynamo.config, limit)))  # room for eval mode too
        for layer in model.base_model.encoder.layers:
            layer.compile()
    return model


def make_fast(
    trainer: Trainer, *, compile: bool | None = None, freeze_feature_encoder: bool = True, fast_convolutions: bool | None = None
) -> Trainer:
    """The fast profile on a trainer of :func:`~asr_helpers.training.build_trainer` (its ``args`` from
    :func:`fast_training_args`), before it trains: the model prepared by :func:`prepare_fast_model`,
    in place, and the bucketing :func:`fast_collator`. Returns the trainer."""
    prepare_fast_model(trainer.model, compile=compile, freeze_feature_encoder=freeze_feature_encoder,
                       fast_convolutions=fast_convolutions)
    trainer.data_collator = fast_collator(trainer.processing_class)
    return seed_length_grouping(trainer)


def seed_length_grouping(trainer: Trainer) -> Trainer:
    """Make the order of length-grouped batches depend on the seed alone; returns the trainer.

    Trainer's length-grouped sampler shuffles with PyTorch's global random generator, which
    gradient accumulation, checkpointing and the optimizer also draw from, so two recipes on the
    same data and seed see different batches after the first epoch. With its own generator seeded
    by ``data_seed`` (else ``seed``) they see the same samples in the same order.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    make_sampler = trainer._get_train_sampler

    def seeded_sampler(train_dataset=None):
        sampler = make_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler) and sampler.generator is None:
            seed = trainer.args.data_seed if trainer.args.data_seed is not None else trainer.args.seed
            sampler.generator = torch.Generator().manual_seed(seed)
        return sampler

    trainer._get_train_sampler = seeded_sampler
    return trainer
