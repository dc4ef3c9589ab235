#!/usr/bin/env python
"""What a GPU user waits for: the guide's 2,000 steps of wav2vec2-base, data preparation included, guide recipe against the fast profile.

``train_throughput.py`` measures warmed steps; a user waits for a whole first run: starting
Python, preparing the data, building the model, compiling, training, evaluating and saving
checkpoints. Here each recipe runs as such a first run, in a Python process of its own with
empty compilation caches (``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR``), and the process's
wall time is what counts:

1. **Corpus** (once, timed apart: it stands in for the download). ``--clips`` MInDS-14-like
   clips in the offline corpus's layout: 8 kHz FLAC noise with MInDS-14's lengths (gamma, mean
   9 s, 1.5 to 30 s, as ``train_throughput.py``) and random letter transcripts, 8 characters a
   second; a fifth held out for test, as the guide's ``train_test_split(test_size=0.2)``. The
   guide takes 100 rows; the default here is 160 (128 to train) so that an epoch is whole
   batches of the fast profile's 64 and both recipes train on the same 32,000 examples.
2. **Preparation** (in each process): ``load_offline_corpus`` + ``asr_helpers.cache.prepare_splits``:
   decode, resample to 16 kHz, normalise and check the transcripts, features and labels.
3. **Model**: wav2vec2-base's architecture with its checkpoint's settings (``Wav2Vec2Config()``,
   LayerDrop 0.1), random weights (no hub on the GPU machine; the guide loads the same shapes
   with ``from_pretrained``), a 30-character CTC head, mean CTC loss.
4. **Training** with the recipe's own arguments: the guide's (``guide_arguments`` +
   ``build_trainer``: 8 x 2, fp16, activation checkpointing, encoder trained, evaluation at the
   start and every 1,000 steps, checkpoints every 1,000, best model loaded at the end) or the fast
   profile's (``fast_training_args`` + ``make_fast``: the same recipe in 500 steps of 64).

The guide's 2,000 steps take longer than this benchmark may (``--project``, default ``guide``):
that process warms up for ``--warmup-epochs`` epochs, is timed over ``--timed-epochs`` more
(whole epochs: the exact length mix of the data), then evaluates and saves a checkpoint as at a
scheduled step and stops. Its total is then **projected**: the measured process wall time plus
the remaining steps at the measured warm time per step, plus the remaining scheduled evaluations
and checkpoints at the measured cost of one. Output and JSON say which totals are projected::

    python benchmarks/end_to_end.py                       # on a GPU: about 3 minutes on an H200
    python benchmarks/end_to_end.py --tiny --clips 40 --max-steps 8 --warmup-epochs 1 --timed-epochs 1 \\
        --mean-seconds 3 --out /tmp/e2e                   # smoke test on a CPU
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import Trainer, TrainerCallback, Wav2Vec2ForCTC, Wav2Vec2Processor  # noqa: E402

from asr_helpers.cache import prepare_splits  # noqa: E402
from asr_helpers.checks import ConvGeometry  # noqa: E402
from asr_helpers.data import load_offline_corpus  # noqa: E402
from asr_helpers.fast.training import fast_training_args, guide_arguments, make_fast  # noqa: E402
from asr_helpers.synth import EN_US_LANG_ID, METADATA_COLUMNS, SAMPLE_RATE, to_pcm16  # noqa: E402
from asr_helpers.training import build_trainer, recipe_for  # noqa: E402
from repeats import machine, slug, write_json  # noqa: E402
from train_throughput import base_config, clip_seconds, letter_processor, model_config, synchronize  # noqa: E402

RECIPES = ("guide", "fast")
STEP_FIELDS = ("max_steps", "warmup_steps", "eval_steps", "save_steps", "logging_steps")


# ----------------------------------------------------------------------------- corpus
def random_transcript(rng: np.random.Generator, seconds: float) -> str:
    """About 8 characters a second of random letters, a space after every five: words CTC can spell."""
    letters = rng.integers(0, 26, max(1, round(8 * seconds)))
    return "".join(" " if i % 6 == 5 else chr(ord("A") + k) for i, k in enumerate(letters)).strip()


def write_noise_corpus(folder: Path, clips: int, mean_s: float, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """MInDS-14-like noise clips in the offline corpus's layout (``metadata.csv``, ``train/`` and
    ``test/`` 8 kHz FLAC), readable by ``load_offline_corpus``; returns ``folder``."""
    rng = np.random.default_rng(seed)
    tests = round(clips * test_fraction)
    rows = []
    for index, seconds in enumerate(clip_seconds(rng, clips, mean_s)):
        split = "train" if index < clips - tests else "test"
        (folder / split).mkdir(parents=True, exist_ok=True)
        file = f"{split}/{split}_{index:04d}.flac"
        sf.write(folder / file, to_pcm16(0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))), SAMPLE_RATE,
                 format="FLAC", subtype="PCM_16")
        text = random_transcript(rng, seconds)
        rows.append(dict(file=file, split=split, transcription=text, english_transcription=text, intent_class=0,
                         lang_id=EN_US_LANG_ID, voice="noise", speed=0, pitch=0, duration_s=f"{seconds:.3f}"))
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder


# ----------------------------------------------------------------------------- one recipe, in its own process
class Timeline(TrainerCallback):
    """Where a training run's time goes: warm steps between two device synchronisations, and each
    pause for an evaluation or a checkpoint (from the end of the step before it).

    ``window`` is the pair of optimizer steps between which steps are timed. With ``stop_at``
    the run evaluates and saves there, as at a scheduled step, and stops, so that the cost of an
    evaluation and a checkpoint is measured too.
    """

    def __init__(self, window: tuple[int, int], stop_at: int | None, device: str):
        self.window, self.stop_at, self.device = window, stop_at, device
        self.marks: dict[int, float] = {}
        self.pauses: list[tuple[int, float]] = []
        self.last = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step == self.stop_at:
            control.should_evaluate = control.should_save = control.should_training_stop = True
        if step in self.window or control.should_evaluate or control.should_save:
            synchronize(self.device)  # only here: a sync every step would slow the run it measures
        self.last = time.perf_counter()
        if step in self.window:
            self.marks[step] = self.last

    def on_evaluate(self, args, state, control, **kwargs):
        self._pause(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        self._pause(state.global_step)

    def _pause(self, step: int) -> None:
        now = time.perf_counter()
        self.pauses.append((step, now - self.last))
        self.last = now

    def seconds_per_step(self) -> float:
        """Wall time per optimizer step inside the window, its evaluations and checkpoints left out."""
        first, last = self.window
        paused = sum(seconds for step, seconds in self.pauses if first <= step < last)
        return (self.marks[last] - self.marks[first] - paused) / (last - first)


def recipe_trainer(recipe: str, model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, prepared, out: Path,
                   max_steps: int) -> Trainer:
    """The recipe as its user runs it: the guide's arguments and Trainer as written, or the fast
    profile's (the same recipe at its batch). ``max_steps`` other than 2,000 scales the recipe's
    warm-up, evaluation, checkpoint and logging steps with it (smoke tests)."""
    steps = {key: value for key, value in recipe_for("hub", max_steps, cuda=True, verbose=False).items()
             if key in STEP_FIELDS}
    if recipe == "guide":
        args = guide_arguments(out, disable_tqdm=True, **steps)
        return build_trainer(model, args, processor, prepared["train"], prepared["test"], "offline")
    args = fast_training_args(out, disable_tqdm=True, **steps)
    return make_fast(build_trainer(model, args, processor, prepared["train"], prepared["test"], "offline"))


def steps_per_epoch(trainer: Trainer) -> int:
    args = trainer.args
    return math.ceil(len(trainer.train_dataset) / (args.per_device_train_batch_size * args.gradient_accumulation_steps))


def run_recipe(args: argparse.Namespace) -> dict:
    """The whole first run of one recipe in this process: prepare, build, train; where the time went."""
    import datasets

    datasets.disable_progress_bars()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    began = time.perf_counter()
    processor = letter_processor()
    base = base_config(args.tiny)
    prepared, _ = prepare_splits(load_offline_corpus(args.corpus), processor, ConvGeometry.of(base))
    prepared_at = time.perf_counter()
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(model_config(base, len(processor.tokenizer), base.layerdrop))
    built_at = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"e2e-{args.child}-") as out:
        trainer = recipe_trainer(args.child, model, processor, prepared, Path(out), args.max_steps)
        epoch, max_steps = steps_per_epoch(trainer), trainer.args.max_steps
        projected = args.child in args.project
        stop_at = (args.warmup_epochs + args.timed_epochs) * epoch if projected else None
        timeline = Timeline((args.warmup_epochs * epoch, stop_at or max_steps), stop_at, device)
        trainer.add_callback(timeline)
        trainer.train()
        trained_at = time.perf_counter()
        targs = trainer.args
    return dict(
        recipe=args.child, batch=targs.per_device_train_batch_size, accumulation=targs.gradient_accumulation_steps,
        precision="bf16" if targs.bf16 else "fp16" if targs.fp16 else "fp32",
        activation_checkpointing=bool(targs.activation_checkpointing),
        frozen_feature_encoder=not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters()),
        train_clips=len(prepared["train"]), test_clips=len(prepared["test"]), steps_per_epoch=epoch,
        max_steps=max_steps, eval_steps=targs.eval_steps, steps_run=trainer.state.global_step, stop_at=stop_at,
        examples=max_steps * targs.per_device_train_batch_size * targs.gradient_accumulation_steps,
        preparation_s=prepared_at - began, model_s=built_at - prepared_at, train_s=trained_at - built_at,
        window=timeline.window, seconds_per_step=timeline.seconds_per_step(), pauses=timeline.pauses,
    )


# ----------------------------------------------------------------------------- the parent: one process per recipe
def projected_seconds(run: dict) -> float:
    """A stopped run's wall time as if it had gone on to its last step: the remaining steps at the
    measured warm time per step, and the remaining scheduled evaluations and checkpoints at the
    cost of the one forced at the stop (which the full run would not have had, unless the stop
    falls on a scheduled step)."""
    stop, last, every = run["stop_at"], run["max_steps"], run["eval_steps"]
    forced = sum(seconds for step, seconds in run["pauses"] if step == stop)
    remaining = last // every - stop // every
    extra_pauses = remaining - (0 if stop % every == 0 else 1)
    return run["process_wall_s"] + (last - stop) * run["seconds_per_step"] + extra_pauses * forced


def run_in_process(recipe: str, args: argparse.Namespace, corpus: Path, scratch: Path) -> dict:
    """One recipe in a fresh Python process with empty compilation caches: a user's first run."""
    result = scratch / f"{recipe}.json"
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(scratch / f"inductor-{recipe}"),
           "TRITON_CACHE_DIR": str(scratch / f"triton-{recipe}")}
    command = [sys.executable, __file__, "--child", recipe, "--corpus", str(corpus), "--result", str(result),
               "--max-steps", str(args.max_steps), "--warmup-epochs", str(args.warmup_epochs),
               "--timed-epochs", str(args.timed_epochs), "--project", ",".join(args.project)]
    began = time.perf_counter()
    finished = subprocess.run(command + (["--tiny"] if args.tiny else []), env=env)
    wall = time.perf_counter() - began
    if finished.returncode:
        return {"recipe": recipe, "error": f"exit status {finished.returncode}", "process_wall_s": wall}
    run = {**json.loads(result.read_text()), "process_wall_s": wall, "projected": recipe in args.project}
    run["total_s"] = projected_seconds(run) if run["projected"] else wall
    return run


def table(runs: list[dict]) -> str:
    """One line per recipe: where its process's time went, then its total, marked measured or projected."""
    head = (f"{'recipe':<8}{'batch':>7}{'prec':>6}{'start s':>9}{'prep s':>8}{'model s':>9}{'train s':>9}"
            f"{'s/step (warm)':>15}{'steps run':>12}{'process s':>11}   total for the recipe's steps")
    lines = [head, "-" * len(head)]
    for r in runs:
        if "error" in r:
            lines.append(f"{r['recipe']:<8} FAILED: {r['error']}")
            continue
        start = r["process_wall_s"] - r["preparation_s"] - r["model_s"] - r["train_s"]  # Python, imports, the rest
        lines.append(f"{r['recipe']:<8}{r['batch']:>4}x{r['accumulation']:<2}{r['precision']:>6}{start:>9.1f}"
                     f"{r['preparation_s']:>8.1f}{r['model_s']:>9.1f}{r['train_s']:>9.1f}{r['seconds_per_step']:>15.3f}"
                     f"{r['steps_run']:>6}/{r['max_steps']:<5}{r['process_wall_s']:>11.1f}   "
                     f"{r['total_s'] / 60:.1f} min ({'PROJECTED' if r['projected'] else 'measured'})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, of: guide, fast (default: %(default)s)")
    parser.add_argument("--project", default="guide",
                        help="recipes stopped early and projected to their last step ('' runs all in full; default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=recipe_for("hub", cuda=True, verbose=False)["max_steps"],
                        help="the guide recipe's steps; other values scale its schedule (default: %(default)s)")
    parser.add_argument("--warmup-epochs", type=int, default=2, help="untimed epochs of a projected run (default: %(default)s)")
    parser.add_argument("--timed-epochs", type=int, default=4, help="timed epochs of a projected run (default: %(default)s)")
    parser.add_argument("--clips", type=int, default=160, help="clips in the corpus, a fifth for test (default: %(default)s)")
    parser.add_argument("--mean-seconds", type=float, default=9.0)
    parser.add_argument("--tiny", action="store_true", help="a tiny model instead of wav2vec2-base (smoke test)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--child", choices=RECIPES, help=argparse.SUPPRESS)  # set by the parent for each process
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.project = [name for name in args.project.split(",") if name]
    args.recipes = [name for name in args.recipes.split(",") if name]
    unknown = set(args.recipes + args.project) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipe {', '.join(sorted(unknown))}: use {', '.join(RECIPES)}")
    return args


def summary(where: dict, args: argparse.Namespace, corpus_s: float, runs: list[dict]) -> dict:
    """The JSON: machine, corpus, method (what is measured, what projected), the runs and the headline."""
    totals = {r["recipe"]: r["total_s"] for r in runs if "error" not in r}
    return dict(
        **where, model="wav2vec2-base architecture (Wav2Vec2Config(), LayerDrop 0.1), random init"
                       + (" [TINY]" if args.tiny else ""),
        corpus=dict(clips=args.clips, mean_seconds=args.mean_seconds, test_fraction=0.2, seconds_to_write=corpus_s),
        method=dict(process="each recipe in its own Python process, empty torch.compile caches",
                    total="process wall time: Python start, imports, preparation, model, training with its "
                          "evaluations and checkpoints",
                    projected=f"{args.project}: stopped after {args.warmup_epochs}+{args.timed_epochs} epochs; "
                              "total = process wall + remaining steps x warm s/step + remaining evaluations "
                              "and checkpoints x the measured one"),
        fast_vs_guide_wall_time=totals["guide"] / totals["fast"] if {"guide", "fast"} <= set(totals) else None,
        runs=runs,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        write_json(args.result, run_recipe(args))
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = machine(device)
    path = args.out / f"end_to_end-{slug(where['gpu'] or 'cpu')}{'-tiny' if args.tiny else ''}.json"
    print(f"device: {where['gpu'] or where['cpu']}; {where['versions']}", flush=True)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="e2e-") as scratch:
        began = time.perf_counter()
        corpus = write_noise_corpus(Path(scratch) / "corpus", args.clips, args.mean_seconds)
        corpus_s = time.perf_counter() - began
        print(f"corpus: {args.clips} clips written in {corpus_s:.1f} s (stands in for the download; not in the totals)",
              flush=True)
        for recipe in args.recipes:
            print(f"--- {recipe} in its own process", flush=True)
            runs.append(run_in_process(recipe, args, corpus, Path(scratch)))
            write_json(path, summary(where, args, corpus_s, runs))  # after every recipe: a cut-off run keeps the rest
    print()
    print(table(runs))
    speedup = summary(where, args, corpus_s, runs)["fast_vs_guide_wall_time"]
    if speedup:
        print(f"the fast profile's first run ends {speedup:.1f}x sooner than the guide's")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
