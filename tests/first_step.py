"""The offline course's first evaluation and first training step, set up as ``python -m asr_helpers train``
sets them up (``training_arguments``, ``data_parallel_batch``, ``build_trainer``), for the loss tests.

    python tests/first_step.py OUT [PER_DEVICE ACCUMULATION]
    python -m torch.distributed.run --nproc_per_node 2 tests/first_step.py OUT

writes the main process's log (``OUT/log.json``): the evaluation before the first step and the
first step's loss and gradient norm. Two runs that see the same examples must log the same
numbers, so everything that would make them differ besides the batching is set aside: the
training examples come in the dataset's order (a length-grouped order depends on the batch size),
and SpecAugment and the dropout before the CTC head, random draws whose shapes follow the batch,
are off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from asr_helpers.cache import prepared_course_data
from asr_helpers.modeling import load_model
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.training import build_trainer, data_parallel_batch, is_main_process, recipe_for, training_arguments, world_size


def first_step(out: Path, per_device: int | None = None, accumulation: int = 1, *, evaluate: bool = True) -> list[dict]:
    """The log of one evaluation (``evaluate``) and one training step; ``per_device`` defaults to
    the recipe's batch split over the processes."""
    batch = data_parallel_batch(world_size())
    if per_device is not None:
        batch["per_device_train_batch_size"] = per_device
    args = training_arguments(
        out, recipe_for("offline", 1, verbose=False), **batch, gradient_accumulation_steps=accumulation,
        train_sampling_strategy="sequential", eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        eval_on_start=evaluate, logging_steps=1, disable_tqdm=True,
    )
    with args.main_process_first():
        processor, prepared = prepared_course_data("offline")
    model = load_model(processor, COURSE_CHECKPOINT, freeze_feature_encoder=True)
    model.config.mask_time_prob = 0.0
    model.dropout.p = 0.0
    trainer = build_trainer(model, args, processor, prepared["train"], prepared["test"], "offline")
    trainer.train()
    return trainer.state.log_history


if __name__ == "__main__":
    out = Path(sys.argv[1])
    sizes = [int(value) for value in sys.argv[2:]]
    log = first_step(out, *sizes)
    if is_main_process():
        (out / "log.json").write_text(json.dumps(log))
