#!/usr/bin/env python
"""Same samples, same loss: the guide's recipe and the fast profile train the offline course model.

Both runs fine-tune the offline course's model (``load_model(processor, COURSE_CHECKPOINT)``: the shipped
``course-base`` checkpoint with a CTC head for the corpus's vocabulary, feature encoder frozen as
for wav2vec2-base) on the shipped MInDS-14-like corpus with one recipe, given for the guide's
effective batch of 16 (learning rate ``--lr``, 10 % warm-up, ``--samples`` examples in all). The guide profile computes
it as 8 x 2 with fp16 and activation checkpointing; the fast profile as one batch of 16
(``fast-b16``: exactly the same optimisation) and as its large default batch with the learning
rate scaled by the square root of the batch ratio (``fast``). Both see the same examples in the same
order (``seed_length_grouping``). The training loss is logged every ``--log-every`` examples
and each model is evaluated on the test split at the end::

    python benchmarks/loss_curves.py                         # on a GPU (a few minutes)
    python benchmarks/loss_curves.py --samples 96 --log-every 32 --runs guide,fast-b16   # CPU smoke test

Writes ``loss_curves-<device>.json`` and ``.png`` to ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ASR_HELPERS_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402

from asr_helpers.cache import prepared_course_data  # noqa: E402
from asr_helpers.fast.training import (  # noqa: E402
    fast_training_args,
    guide_arguments,
    make_fast,
    seed_length_grouping,
)
from asr_helpers.modeling import load_model  # noqa: E402
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.training import build_trainer  # noqa: E402

REFERENCE_BATCH = 16


def run(name: str, args, processor, data) -> dict:
    steps = max(1, args.samples // REFERENCE_BATCH)
    recipe = dict(
        learning_rate=args.lr, warmup_steps=max(1, steps // 10), max_steps=steps,
        logging_steps=max(1, args.log_every // REFERENCE_BATCH), eval_strategy="no", eval_on_start=False,
        save_strategy="no", load_best_model_at_end=False, seed=0, data_seed=0, disable_tqdm=True, report_to="none",
    )
    out = Path(tempfile.mkdtemp(prefix=f"curves-{name}-"))
    model = load_model(processor, COURSE_CHECKPOINT, seed=0, freeze_feature_encoder=True)
    if name == "guide":
        targs = guide_arguments(out, **recipe)
        trainer = seed_length_grouping(build_trainer(model, targs, processor, data["train"], data["test"], "offline"))
    else:
        batch = int(name.split("-b")[1]) if "-b" in name else None
        targs = fast_training_args(out, batch_size=batch, **recipe)
        trainer = make_fast(build_trainer(model, targs, processor, data["train"], data["test"], "offline"))
    began = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - began
    metrics = trainer.evaluate()
    batch = targs.per_device_train_batch_size * targs.gradient_accumulation_steps
    # CTCTrainer logs the mean loss of the effective batch, accumulated or not
    curve = [(entry["step"] * batch, entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    return dict(
        name=name, batch=targs.per_device_train_batch_size, accumulation=targs.gradient_accumulation_steps,
        precision="bf16" if targs.bf16 else "fp16" if targs.fp16 else "fp32", learning_rate=targs.learning_rate,
        max_steps=targs.max_steps, warmup_steps=targs.warmup_steps, train_seconds=seconds,
        samples=[s for s, _ in curve], loss=[loss for _, loss in curve],
        eval_loss=metrics["eval_loss"], eval_wer=metrics["eval_wer"], eval_cer=metrics["eval_cer"],
    )


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(r["samples"], r["loss"], label=f"{r['name']} ({r['batch']}x{r['accumulation']}, {r['precision']}, "
                                                f"lr {r['learning_rate']:.1e}): eval WER {r['eval_wer']:.3f}")
    ax.set(xlabel="training examples seen", ylabel="CTC training loss (mean per example)", yscale="log", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="guide,fast-b16,fast", help="comma-separated (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=4800, help="examples in all (default: 10 epochs of 480)")
    parser.add_argument("--lr", type=float, default=5e-4, help="learning rate for the effective batch of 16")
    parser.add_argument("--log-every", type=int, default=160, help="examples between loss logs")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    processor, data = prepared_course_data("offline")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        print(f"--- {name}", flush=True)
        results.append(run(name, args, processor, data))
        r = results[-1]
        print(f"{name}: final train loss {r['loss'][-1]:.3f}, eval loss {r['eval_loss']:.3f}, WER {r['eval_wer']:.3f}, "
              f"CER {r['eval_cer']:.3f}, {r['train_seconds']:.0f} s", flush=True)
        summary = dict(device=device, samples=args.samples, reference_batch=REFERENCE_BATCH, lr_for_reference_batch=args.lr,
                       train_examples=len(data["train"]), test_examples=len(data["test"]),
                       versions=dict(torch=torch.__version__, transformers=transformers.__version__), runs=results)
        (args.out / f"loss_curves-{slug}.json").write_text(json.dumps(summary, indent=1) + "\n")

    print(f"\n{'run':<10}{'batch':>7}{'lr':>9}{'steps':>7}" + "".join(f"{s:>10}" for s in ("loss@25%", "loss@50%", "final"))
          + f"{'eval loss':>11}{'WER':>7}{'CER':>7}{'train s':>9}")
    for r in results:
        at = lambda f: r["loss"][min(len(r["loss"]) - 1, max(0, math.ceil(f * len(r["loss"])) - 1))]  # noqa: E731
        print(f"{r['name']:<10}{r['batch']:>4}x{r['accumulation']:<2}{r['learning_rate']:>9.1e}{r['max_steps']:>7}"
              f"{at(0.25):>10.3f}{at(0.5):>10.3f}{r['loss'][-1]:>10.3f}{r['eval_loss']:>11.3f}{r['eval_wer']:>7.3f}"
              f"{r['eval_cer']:>7.3f}{r['train_seconds']:>9.0f}")
    plot(results, args.out / f"loss_curves-{slug}.png", f"Same samples, same loss? offline corpus, {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
