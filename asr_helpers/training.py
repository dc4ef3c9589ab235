"""Training arguments and the Trainer: the guide's recipe in today's names, and a CPU course recipe."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments, Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.collator import DataCollatorCTCWithPadding
from asr_helpers.data import cache_dir, corpus_fingerprint, resolve_mode
from asr_helpers.metrics import make_compute_metrics
from asr_helpers.modeling import load_model
from asr_helpers.preprocessing import prepared_course_data


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


def course_training_args(output_dir: str | Path, max_steps: int = 300, **overrides) -> TrainingArguments:
    """The guide's recipe scaled to a small model on 2 CPU cores and a few minutes.

    Larger learning rate and short warm-up (a small model, few steps), no gradient checkpointing
    or fp16 (CPU), evaluation and a checkpoint every third of the run so the best one is kept.
    """
    every = max(1, math.ceil(max_steps / 3))
    settings = dict(
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=2e-3,
        warmup_steps=max(1, max_steps // 10),
        max_steps=max_steps,
        activation_checkpointing=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        fp16=False,
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


def build_trainer(
    model: Wav2Vec2ForCTC,
    args: TrainingArguments,
    processor: Wav2Vec2Processor,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    mode: str = "offline",
) -> Trainer:
    """The guide's Trainer: the processor goes in as ``processing_class`` (formerly ``tokenizer``)."""
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        data_collator=DataCollatorCTCWithPadding(processor=processor, padding="longest"),
        compute_metrics=make_compute_metrics(processor, mode),
    )


COURSE_STEPS = 300


def fine_tune(output_dir: str | Path, *, mode: str | None = None, max_steps: int = COURSE_STEPS) -> dict[str, float]:
    """The whole job of ``python -m asr_helpers train``: data, processor, model, train, evaluate, save."""
    mode = resolve_mode(mode)
    processor, prepared = prepared_course_data(mode)
    model = load_model(processor, mode, freeze_feature_encoder=mode == "hub")
    if mode == "hub":
        args = guide_training_args(output_dir, max_steps=max_steps)
    else:
        args = course_training_args(output_dir, max_steps)
    trainer = build_trainer(model, args, processor, prepared["train"], prepared["test"], mode)
    trainer.train()
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
