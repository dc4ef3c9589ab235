"""Training (notebook 05): the guide's ``TrainingArguments`` in today's names, its ``Trainer`` with
the loss and the WER of a CTC model corrected (:class:`CTCTrainer`), and ``fine_tune``, the whole
job of ``python -m asr_helpers train``.

The recipes (steps, warm-up, learning rate...) are data, in ``recipes.json``: the guide's for
wav2vec2-base on a GPU, a short one for wav2vec2-base without a GPU, and the offline course's.
Notebook 05 writes the ``TrainingArguments(...)`` call out; :func:`training_arguments` is the
same call for the command line (``tests/test_notebooks.py`` checks they agree).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments, Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers import collator, metrics, model_card, modeling
from asr_helpers.cache import PREPARATION_MODULES, cache_dir, fingerprint, prepared_course_data
from asr_helpers.checks import ConvGeometry, OnError, StopOnNonFiniteLoss
from asr_helpers.collator import DataCollatorCTCWithPadding
from asr_helpers.data import Mode
from asr_helpers.metrics import load_metric, make_compute_metrics
from asr_helpers.modeling import load_model
from asr_helpers.preprocessing import pretrained_checkpoint

RECIPES: dict[str, dict] = json.loads((Path(__file__).parent / "recipes.json").read_text())
COMPLETE = "training_complete.json"
"""Written last into a saved model folder, with the final evaluation: a folder without it is an interrupted save."""
_SCALED = ("warmup_steps", "eval_steps", "save_steps", "logging_steps")


def recipe_for(mode: Mode, max_steps: int | None = None, *, cuda: bool | None = None, verbose: bool = True) -> dict:
    """The recipe for ``mode``: the guide's (hub, GPU), ``hub-cpu`` (hub, no GPU) or ``course`` (offline).

    ``max_steps`` lengthens or shortens it, scaling warm-up, evaluation, saving and logging in
    proportion. ``verbose`` prints which recipe and why, in one line.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    name = "course" if mode == "offline" else "guide" if cuda else "hub-cpu"
    recipe = dict(RECIPES[name], name=name)
    if max_steps is not None and max_steps != recipe["max_steps"]:
        base = recipe["max_steps"]  # whole numbers only: 150 * 90 / 450 is 30, and floats could make it 31
        recipe.update({key: max(1, -(-recipe[key] * max_steps // base)) for key in _SCALED}, max_steps=max_steps)
    if verbose:
        print(f"recipe: {name}, {recipe['max_steps']} steps ({recipe['why']})")
    return recipe


def training_arguments(output_dir: str | Path, recipe: dict, **overrides) -> TrainingArguments:
    """Notebook 05's ``TrainingArguments(...)``: the guide's arguments, today's names, ``recipe``'s values.

    ``group_by_length=True`` became ``train_sampling_strategy="group_by_length"`` (with
    ``length_column_name``), ``evaluation_strategy`` became ``eval_strategy`` and
    ``gradient_checkpointing`` became ``activation_checkpointing``. ``eval_on_start`` adds an
    evaluation before the first step: the baseline the curves start from. ``fp16`` needs a GPU;
    ``push_to_hub`` is off (no Hub account assumed).
    """
    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=recipe["gradient_accumulation_steps"],
        learning_rate=recipe["learning_rate"],
        warmup_steps=recipe["warmup_steps"],
        max_steps=recipe["max_steps"],
        activation_checkpointing=recipe["activation_checkpointing"],
        fp16=torch.cuda.is_available(),
        train_sampling_strategy="group_by_length",
        length_column_name="input_length",
        eval_strategy="steps",
        eval_on_start=True,
        per_device_eval_batch_size=recipe["per_device_eval_batch_size"],
        save_steps=recipe["save_steps"],
        eval_steps=recipe["eval_steps"],
        logging_steps=recipe["logging_steps"],
        load_best_model_at_end=True,
        metric_for_best_model="wer",
        greater_is_better=False,
        push_to_hub=False,
        report_to="none",
        save_total_limit=2,
        seed=42,
        data_seed=42,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    return TrainingArguments(**{**settings, **overrides})


class CTCTrainer(Trainer):
    """The guide's ``Trainer``, corrected on two points where transformers 5.23 misjudges a CTC model.

    **The loss.** ``Wav2Vec2ForCTC.forward`` takes ``**kwargs``, and from that alone the Trainer
    concludes that the model divides its loss by ``num_items_in_batch``, the label tokens of the
    whole accumulated batch on all processes. So it does not divide the loss by the gradient
    accumulation steps, and under data parallelism (``average_tokens_across_devices``, on by
    default) it multiplies the loss by the number of processes to undo an average the model never
    took. The CTC loss ignores ``num_items_in_batch``: it is already the mean over the batch's
    utterances (``ctc_loss_reduction="mean"``). Here the Trainer knows that the model takes no
    loss kwargs: it divides each micro-batch's mean by the accumulation steps and DDP averages the
    processes' gradients, so the logged loss and the gradient are those of the mean CTC loss of the
    effective batch, whatever the number of processes and accumulation steps.
    (``average_tokens_across_devices=False`` alone would fix the processes but not the
    accumulation, and would still hand the model an argument it ignores.)

    **The WER.** :meth:`prediction_step` hands each utterance's length in samples to
    ``compute_metrics`` beside its labels, so that it decodes only the frames of the utterance
    (:func:`~asr_helpers.metrics.make_compute_metrics`); the lengths travel with the labels, so
    they are gathered across processes in the same order. They come from the attention mask. A
    model without one (wav2vec2-base) is evaluated one utterance at a time, as the guide's and
    hub-cpu recipes say (``per_device_eval_batch_size=1``): its group-normalised features change
    with padding, so a padded batch would not be the model's answer for each utterance anyway.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # what Trainer.__init__ guessed from the **kwargs of forward

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        if labels is None:
            return loss, logits, labels
        return loss, logits, (labels, input_lengths(inputs).to(labels.device))

    def create_model_card(self, *args, **kwargs) -> None:
        """Keep the course's card (:mod:`asr_helpers.model_card`): ``push_to_hub`` would replace it with the Trainer's draft."""
        if not model_card.is_course_card(Path(self.args.output_dir) / "README.md"):
            super().create_model_card(*args, **kwargs)


def input_lengths(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each utterance's length in samples: from the attention mask, or the width of a batch of one.

    A padded batch without an attention mask is refused: nothing tells where each utterance ends,
    and a model that makes no mask hears the padding (its features change with it).
    """
    if "attention_mask" in batch:
        return batch["attention_mask"].sum(dim=-1)
    values = batch["input_values"]
    if len(values) > 1:
        raise ValueError(
            f"an evaluation batch of {len(values)} utterances without an attention mask: a model whose processor makes"
            " none hears the padding, so evaluate it one utterance at a time (per_device_eval_batch_size=1)"
        )
    return torch.tensor([values.shape[-1]])


def build_trainer(
    model: Wav2Vec2ForCTC,
    args: TrainingArguments,
    processor: Wav2Vec2Processor,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    mode: Mode,
) -> CTCTrainer:
    """Notebook 05's ``CTCTrainer(...)`` for the command line: the processor as ``processing_class``
    (formerly ``tokenizer``), notebook 03's collator and notebook 04's ``compute_metrics``, which
    reads the model's frames through its convolutions' geometry.

    ``datasets`` datasets are handed over as NumPy rows (``with_format("numpy")``), which the
    collator pads about 8 times faster than the Python lists Arrow gives by default; other
    datasets (a torch ``Subset`` in the benchmarks, or no evaluation set) go as they are.
    """
    scorers = {name: load_metric(name, mode) for name in ("wer", "cer")}
    return CTCTrainer(
        model=model,
        args=args,
        train_dataset=_numpy_rows(train_dataset),
        eval_dataset=_numpy_rows(eval_dataset),
        processing_class=processor,
        data_collator=DataCollatorCTCWithPadding(processor=processor, padding="longest"),
        compute_metrics=make_compute_metrics(processor, ConvGeometry.of(model.config), scorers),
    )


def _numpy_rows(dataset: Dataset | None):
    return dataset.with_format("numpy") if isinstance(dataset, Dataset) else dataset


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder in ``output_dir``, or ``None``.

    transformers' ``get_last_checkpoint`` takes the highest number even when that save was cut
    short by the very interruption we are recovering from; the Trainer writes
    ``trainer_state.json`` last, so a folder without it is skipped for the one before.
    """
    complete = {
        int(folder.name.removeprefix("checkpoint-")): folder
        for folder in Path(output_dir).glob("checkpoint-*")
        if folder.name.removeprefix("checkpoint-").isdigit() and (folder / "trainer_state.json").is_file()
    }
    return complete[max(complete)] if complete else None


def fine_tune(
    output_dir: str | Path,
    mode: Mode,
    *,
    checkpoint: str | Path | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    on_bad_rows: OnError = "fail",
    corpus_dir: str | Path | None = None,
) -> dict[str, float]:
    """The whole job of ``python -m asr_helpers train``, as notebooks 02-05 do it: data, processor,
    model, train, evaluate, save, write the model card (:mod:`~asr_helpers.model_card`), and mark
    the folder complete, last (:func:`mark_complete`).

    ``mode`` comes decided (:func:`~asr_helpers.data.resolve_mode`, at the program's start);
    ``checkpoint`` is the model to fine-tune, by default the mode's
    (:func:`~asr_helpers.preprocessing.pretrained_checkpoint`). ``max_steps`` defaults to the
    recipe's (:func:`recipe_for`). ``resume`` continues from the newest complete checkpoint in
    ``output_dir``: the Trainer restores weights, optimizer, schedule, random state and place in the
    data, so the result is that of an uninterrupted run. The convolutional feature encoder stays
    frozen, as the wav2vec2 paper does: it already hears speech, and on CPU its backward pass would
    cost two thirds of every step. ``on_bad_rows`` and ``corpus_dir`` go to
    :func:`~asr_helpers.cache.prepared_course_data`; a NaN or infinite loss stops the run with
    :class:`NonFiniteLossError`.

    Started by ``torchrun --nproc_per_node N`` (or ``accelerate launch``), it trains data-parallel:
    the recipe's batch of 8 is split across the N processes (:func:`data_parallel_batch`), so the
    effective batch, the learning rate and the schedule stay the recipe's; the main process
    prepares the data first and the others read it from the cache; only the main process saves.
    """
    checkpoint = pretrained_checkpoint(mode) if checkpoint is None else checkpoint
    recipe = recipe_for(mode, max_steps, verbose=is_main_process())
    args = training_arguments(output_dir, recipe, **data_parallel_batch(world_size()))
    with args.main_process_first(desc="preparing the data"):
        processor, prepared = prepared_course_data(mode, checkpoint=checkpoint, on_error=on_bad_rows, corpus_dir=corpus_dir)
    model = load_model(processor, checkpoint, freeze_feature_encoder=True)
    trainer = build_trainer(model, args, processor, prepared["train"], prepared["test"], mode)
    trainer.add_callback(StopOnNonFiniteLoss())
    last = last_checkpoint(output_dir) if resume else None
    if resume and trainer.is_world_process_zero():
        print(f"resuming from {last}" if last else f"no complete checkpoint in {output_dir}: starting from step 0")
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    metrics_ = final_evaluation(trainer)
    trainer.save_model(str(output_dir))  # the Trainer saves on the main process only
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(output_dir))
        model_card.write_model_card(output_dir, trainer.model.device, mode=mode, recipe=recipe, metrics=metrics_,
                                    sizes=prepared.num_rows, corpus_dir=corpus_dir)
        mark_complete(output_dir, metrics_)
    return metrics_


def final_evaluation(trainer: Trainer) -> dict[str, float]:
    """The evaluation of the model the Trainer ended with: the best checkpoint's, reloaded
    (``load_best_model_at_end``), or the last step's when no checkpoint was better than the start.

    The Trainer evaluated exactly those weights at that step, so its logged metrics are that
    model's and are taken as they are; evaluating again would cost as much as a dozen steps of the
    course recipe and give the same numbers. Without such a log entry, it evaluates.
    """
    state = trainer.state
    step = state.best_global_step if trainer.args.load_best_model_at_end and state.best_model_checkpoint else state.global_step
    logged = [entry for entry in state.log_history if entry.get("step") == step and "eval_loss" in entry]
    if not logged:
        return trainer.evaluate()
    return {key: value for key, value in logged[-1].items() if key != "step"}


def mark_complete(output_dir: str | Path, metrics_: dict[str, float]) -> None:
    """Write :data:`COMPLETE` with the final evaluation, once the model, its processor and its card
    are saved: a folder without it is an interrupted save, never served as a model. Then remove the
    Trainer's ``checkpoint-N`` folders, whose optimizer state only a resume of this run could use."""
    (Path(output_dir) / COMPLETE).write_text(json.dumps(metrics_, indent=1) + "\n")
    for folder in Path(output_dir).glob("checkpoint-*"):
        shutil.rmtree(folder)


def world_size() -> int:
    """How many processes ``torchrun`` or ``accelerate launch`` started (``WORLD_SIZE``), 1 without them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this is the process that prints and saves (``RANK`` 0, or no launcher)."""
    return int(os.environ.get("RANK", "0")) == 0


def data_parallel_batch(world_size: int, batch: int = 8) -> dict:
    """Per-process batch for ``world_size`` data-parallel processes: the recipe's ``batch`` split
    evenly, so the effective batch, and with it the learning rate and schedule, stay the recipe's
    (a larger effective batch would need another learning rate: a different recipe, not a faster one).
    """
    if world_size == 1:
        return {}
    per_process = batch // world_size
    if batch % world_size:
        raise ValueError(f"{world_size} processes cannot share a batch of {batch} evenly: use 1, 2, 4 or 8 processes")
    if is_main_process():
        print(f"data parallel: {world_size} processes x {per_process} examples = effective batch {per_process * world_size}"
              f" (the recipe's {batch}); learning rate and schedule unchanged")
    settings: dict = {"per_device_train_batch_size": per_process}
    if not torch.cuda.is_available():  # transformers 5.23 makes CPU processes data-parallel only when told so
        settings.update(ddp_backend="gloo", use_cpu=True)
    return settings


TRAINING_MODULES = (*PREPARATION_MODULES, collator, metrics, model_card, modeling)
"""The code behind a trained model and its card, besides this module: part of the model cache key."""


def course_model_dir(mode: Mode, max_steps: int | None = None) -> Path:
    """Where notebook 05 saves the fine-tuned model, so later notebooks find it. The key holds the
    recipe's numbers (not its prose), the base checkpoint's bytes, the library versions and the code."""
    recipe = recipe_for(mode, max_steps, verbose=False)
    settings = {key: value for key, value in recipe.items() if key != "why"}
    key = fingerprint(mode, settings, checkpoint=pretrained_checkpoint(mode), modules=(*TRAINING_MODULES, sys.modules[__name__]))
    return cache_dir(f"model-{mode}-{recipe['max_steps']}-{key}")


def course_model(mode: Mode, max_steps: int | None = None) -> Path:
    """Notebook 05's result in one call: the fine-tuned model's folder, trained now if not cached.

    A folder without :data:`COMPLETE` is an interrupted run: it resumes from its last checkpoint.
    """
    folder = course_model_dir(mode, max_steps)
    if not (folder / COMPLETE).is_file():
        fine_tune(folder, mode, max_steps=max_steps, resume=folder.is_dir())
    return folder
