"""Training arguments and the Trainer: the guide's recipe in today's names, and a CPU course recipe."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.hooks import RemovableHandle
from transformers import Trainer, TrainerCallback, TrainingArguments, Wav2Vec2ForCTC, Wav2Vec2Processor
from transformers.trainer_callback import TrainerState

from asr_helpers.collator import DataCollatorCTCWithPadding
from asr_helpers.data import cache_dir, corpus_fingerprint, resolve_mode
from asr_helpers.metrics import make_compute_metrics
from asr_helpers.modeling import load_model, replace_convolutions
from asr_helpers.preprocessing import OnError, prepared_course_data


def guide_training_args(output_dir: str | Path, **overrides) -> TrainingArguments:
    """The guide's hyper-parameters, spelled for transformers 5.x.

    ``group_by_length=True`` became ``train_sampling_strategy="group_by_length"`` (with
    ``length_column_name``), ``evaluation_strategy`` became ``eval_strategy`` and
    ``gradient_checkpointing`` became ``activation_checkpointing``. ``fp16`` needs a GPU, so it is
    on only when CUDA is there; ``push_to_hub`` is off (no hub account assumed).
    """
    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        learning_rate=1e-5,
        warmup_steps=500,
        max_steps=2000,
        activation_checkpointing=True,
        fp16=torch.cuda.is_available(),
        train_sampling_strategy="group_by_length",
        length_column_name="input_length",
        eval_strategy="steps",
        per_device_eval_batch_size=8,
        save_steps=1000,
        eval_steps=1000,
        logging_steps=25,
        load_best_model_at_end=True,
        metric_for_best_model="wer",
        greater_is_better=False,
        push_to_hub=False,
        report_to="none",
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


COURSE_STEPS = 510
"""Training steps of the offline course: under 3 minutes on 2 CPU cores (about 0.3 s a step)."""


def course_training_args(output_dir: str | Path, max_steps: int = COURSE_STEPS, **overrides) -> TrainingArguments:
    """The guide's recipe scaled to a small model on 2 CPU cores and a few minutes.

    Larger learning rate and short warm-up (a small model, few steps), no activation checkpointing
    or fp16 (CPU), evaluation before training (the baseline) and then with a checkpoint every
    third of the run, so the best one is kept.
    """
    every = max(1, math.ceil(max_steps / 3))
    settings = dict(
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=2.5e-3,
        warmup_steps=max(1, max_steps // 10),
        max_steps=max_steps,
        activation_checkpointing=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        fp16=False,
        eval_on_start=True,
        eval_steps=every,
        save_steps=every,
        save_total_limit=2,
        logging_steps=max(1, max_steps // 30),
        per_device_eval_batch_size=16,
        dataloader_num_workers=0,
        seed=42,
        data_seed=42,
    )
    settings.update(overrides)
    return guide_training_args(output_dir, **settings)


def training_args_for(mode: str, output_dir: str | Path, max_steps: int) -> TrainingArguments:
    """The guide's recipe for the pre-trained base model (hub), the course recipe offline."""
    if mode == "hub":
        return guide_training_args(output_dir, max_steps=max_steps)
    return course_training_args(output_dir, max_steps)


def as_arrays(dataset: Dataset) -> Dataset:
    """``dataset`` with rows as NumPy arrays: a 3-second clip is one array, not 48,000 Python floats."""
    return dataset.with_format("numpy") if isinstance(dataset, Dataset) else dataset


def build_trainer(
    model: Wav2Vec2ForCTC,
    args: TrainingArguments,
    processor: Wav2Vec2Processor,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    mode: str = "offline",
) -> Trainer:
    """The guide's Trainer: the processor goes in as ``processing_class`` (formerly ``tokenizer``).

    The datasets are handed over as NumPy rows (:func:`as_arrays`), which the collator pads
    about 8 times faster than the Python lists Arrow gives by default.
    """
    return Trainer(
        model=model,
        args=args,
        train_dataset=as_arrays(train_dataset),
        eval_dataset=as_arrays(eval_dataset),
        processing_class=processor,
        data_collator=DataCollatorCTCWithPadding(processor=processor, padding="longest"),
        compute_metrics=make_compute_metrics(processor, mode),
    )


class NonFiniteLossError(RuntimeError):
    """Training stopped at a NaN or infinite loss, before the optimizer used it; the message names the step and batch."""


class StopOnNonFiniteLoss(TrainerCallback):
    """Stop training at the first NaN or infinite training loss, naming the step and the batch's transcripts.

    Left alone, the Trainer logs the average of earlier losses in its place
    (``logging_nan_inf_filter``) and gradient clipping turns the infinite gradients into NaN
    weights: the run goes on, silently ruined. A forward hook checks each training loss before
    ``backward``, so the weights stay as they were and the last checkpoint is sound for a resume
    once the bad rows are fixed or dropped (:func:`~asr_helpers.preprocessing.validate_dataset`).
    """

    def __init__(self) -> None:
        self._hook: RemovableHandle | None = None

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._remove_hook()
        self._hook = model.register_forward_hook(partial(self._check, state, processing_class), with_kwargs=True)

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hook()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _check(self, state: TrainerState, processor: Wav2Vec2Processor, module, args, kwargs, output) -> None:
        loss = getattr(output, "loss", None)
        if not module.training or loss is None or torch.isfinite(loss).all():
            return
        self._remove_hook()
        labels = kwargs["labels"]
        texts = processor.batch_decode(labels.masked_fill(labels < 0, processor.tokenizer.pad_token_id), group_tokens=False)
        raise NonFiniteLossError(
            f"step {state.global_step + 1}: training loss is {loss.item()} on a batch of {len(texts)} rows "
            f"(transcripts {', '.join(map(repr, texts))}); stopped before the optimizer used it. "
            "A transcript too long for its audio makes the CTC loss infinite: check the rows with validate_dataset"
        )


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder in ``output_dir``, or ``None``.

    The Trainer writes ``trainer_state.json`` last, so a folder without it is a save cut short by
    the very interruption we are recovering from: it is skipped for the one before.
    """
    complete = {
        int(folder.name.removeprefix("checkpoint-")): folder
        for folder in Path(output_dir).glob("checkpoint-*")
        if folder.name.removeprefix("checkpoint-").isdigit() and (folder / "trainer_state.json").is_file()
    }
    return complete[max(complete)] if complete else None


def fine_tune(
    output_dir: str | Path,
    *,
    mode: str | None = None,
    max_steps: int = COURSE_STEPS,
    resume: bool = False,
    on_bad_rows: OnError = "fail",
    corpus_dir: str | Path | None = None,
) -> dict[str, float]:
    """The whole job of ``python -m asr_helpers train``: data, processor, model, train, evaluate, save.

    ``resume`` continues from the newest complete checkpoint in ``output_dir``: the Trainer
    restores weights, optimizer, schedule, random state and place in the data, so the result is
    that of an uninterrupted run. The convolutional feature encoder stays frozen, as the wav2vec2
    paper and the guide's first edition do: it already hears speech, and on CPU its backward
    pass would cost two thirds of every step. ``on_bad_rows`` and ``corpus_dir`` go to
    :func:`~asr_helpers.preprocessing.prepared_course_data`; a NaN or infinite loss stops the run
    with :class:`NonFiniteLossError`.
    """
    mode = resolve_mode(mode or ("offline" if corpus_dir else None))
    processor, prepared = prepared_course_data(mode, on_error=on_bad_rows, corpus_dir=corpus_dir)
    model = load_model(processor, mode, freeze_feature_encoder=True)
    args = training_args_for(mode, output_dir, max_steps)
    trainer = build_trainer(model, args, processor, prepared["train"], prepared["test"], mode)
    trainer.add_callback(StopOnNonFiniteLoss())
    checkpoint = last_checkpoint(output_dir) if resume else None
    if resume:
        print(f"resuming from {checkpoint}" if checkpoint else f"no complete checkpoint in {output_dir}: starting from step 0")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = trainer.evaluate()
    trainer.save_model(str(output_dir))
    processor.save_pretrained(str(output_dir))
    return metrics


def course_model_dir(mode: str | None = None, max_steps: int = COURSE_STEPS) -> Path:
    """Where notebook 05 saves the fine-tuned model, so later notebooks find it."""
    mode = resolve_mode(mode, verbose=False)
    return cache_dir(f"model-{mode}-{max_steps}-{corpus_fingerprint(mode, max_steps)}")


def course_model(mode: str | None = None, max_steps: int = COURSE_STEPS) -> Path:
    """Notebook 05's result in one call: the fine-tuned model's folder, trained now if not cached."""
    folder = course_model_dir(mode, max_steps)
    if not (folder / "model.safetensors").is_file():
        fine_tune(folder, mode=mode, max_steps=max_steps)
    return folder


# ---------------------------------------------------------------------------------------------
# The fast profile: the guide's recipe (same model, same samples, same schedule) computed faster.
# ---------------------------------------------------------------------------------------------

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
    import os

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

    ``overrides`` describe the recipe as for :func:`guide_training_args` (learning rate, steps and
    warm-up for its effective batch of ``per_device_train_batch_size × gradient_accumulation_steps``,
    16 by default). The fast profile then trains ``batch_size`` examples per step without
    accumulation (default :func:`fast_batch_size`) and rescales the recipe so the run sees the same
    samples: step counts (max, warm-up, eval, save, logging) shrink by the batch ratio and the
    learning rate grows by its square root (``lr_scaling="sqrt"``, the square-root rule for Adam;
    ``"linear"`` or ``"none"`` also work). Mechanics come from :func:`fast_mechanics`; a mechanics
    setting passed in ``overrides`` wins. Use with :func:`build_fast_trainer`.
    """
    reference = guide_training_args(output_dir, **overrides)
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
        per_device_eval_batch_size=max(reference.per_device_eval_batch_size, batch),
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
    return guide_training_args(output_dir, **{**overrides, **changes})


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
    :func:`~asr_helpers.modeling.replace_convolutions`), and on a GPU (``compile=None``:
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


def build_fast_trainer(
    model: Wav2Vec2ForCTC,
    args: TrainingArguments,
    processor: Wav2Vec2Processor,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    mode: str = "offline",
    *,
    compile: bool | None = None,
    freeze_feature_encoder: bool = True,
    fast_convolutions: bool | None = None,
) -> Trainer:
    """:func:`build_trainer` with the fast profile: the model prepared by :func:`prepare_fast_model`
    and the bucketing :func:`fast_collator`. Pass ``args`` from :func:`fast_training_args`."""
    prepare_fast_model(model, compile=compile, freeze_feature_encoder=freeze_feature_encoder, fast_convolutions=fast_convolutions)
    trainer = build_trainer(model, args, processor, train_dataset, eval_dataset, mode)
    trainer.data_collator = fast_collator(processor)
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
