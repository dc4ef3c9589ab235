#!/usr/bin/env python
"""How well the course model hears recordings unlike its corpus, before and after fine-tuning.

For each base checkpoint (the shipped ``course-base`` and, for comparison, the one shipped at
``--previous``, a git revision), this script measures greedy WER (no language model) on:

- the course corpus's test split (8 kHz telephone band, the course's sentences and test voices);
- the unseen set (``asr_helpers/unseen``: new sentences, voices no model heard, WAV/FLAC/OGG/MP3
  at 8-48 kHz, wideband and telephone band, some with noise and room echo), per file format;

each twice: as the file is, and through a fixed telephone front end (every input resampled to
8 kHz and back, so a wideband recording reaches the model band-limited like the corpus). Then it
fine-tunes each base with the offline course recipe (``asr_helpers.training.fine_tune``, as
``python -m asr_helpers train`` does, on ``--threads`` CPU threads) and measures again. Prints a
table and writes ``<out>/domain_shift.json``, which the checkpoint's card quotes::

    python benchmarks/domain_shift.py --previous 66a514a    # two fine-tunes: about 10 minutes on 2 cores

Word error rates of a fine-tuned model move by about 0.01-0.02 with the thread count (floating-point
reduction order), so a rerun lands near, not on, these numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr_helpers.audio import TARGET_SAMPLING_RATE, load_audio, resample  # noqa: E402
from asr_helpers.data import CORPUS_DIR, load_offline_corpus, load_unseen_set  # noqa: E402
from asr_helpers.inference import load_trained, transcribe  # noqa: E402
from asr_helpers.metrics import word_error_rate, word_error_rates_by  # noqa: E402
from asr_helpers.preprocessing import COURSE_CHECKPOINT  # noqa: E402
from asr_helpers.synth import SAMPLE_RATE as TELEPHONE_RATE  # noqa: E402  (the corpus's 8 kHz)
from asr_helpers.text import normalize_text  # noqa: E402
from asr_helpers.training import fine_tune  # noqa: E402

CHECKPOINT = COURSE_CHECKPOINT.relative_to(ROOT)  # as git names it


def telephone_front_end(array: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz -> 16 kHz: what a wideband recording keeps of itself on a phone line."""
    return resample(resample(array, TARGET_SAMPLING_RATE, TELEPHONE_RATE), TELEPHONE_RATE)


FRONT_ENDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"none": lambda array: array, "telephone": telephone_front_end}


def checkpoint_at(revision: str, folder: Path) -> Path:
    """The course-base checkpoint as it was at git ``revision``, written into ``folder``."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", revision, f"{CHECKPOINT}/"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        blob = subprocess.run(["git", "show", f"{revision}:{name}"], cwd=ROOT, capture_output=True, check=True).stdout
        (folder / Path(name).name).write_bytes(blob)
    return folder


def word_error_rates(model_dir: Path, sets: dict[str, tuple[list[np.ndarray], list[str], list[str]]]) -> dict[str, dict]:
    """WER of ``model_dir`` on each set, per front end; the unseen set also per file format (its groups)."""
    model, processor = load_trained(model_dir, "cpu")
    results: dict[str, dict] = {}
    for front_end, apply in FRONT_ENDS.items():
        row: dict[str, float] = {}
        for name, (arrays, references, groups) in sets.items():
            hypotheses = [result.text for result in transcribe(model, processor, [apply(array) for array in arrays])]
            row[name] = round(word_error_rate(hypotheses, references), 4)
            for group, (wer, _, _) in word_error_rates_by(hypotheses, references, groups).items():
                row[group] = round(wer, 4)
        results[front_end] = row
    return results


def measure_base(label: str, base: Path, sets: dict, work: Path) -> dict:
    """The base as it is, then fine-tuned by the course recipe (from this base), both measured."""
    started = time.perf_counter()
    fine_tune(work / label, "offline", checkpoint=base)
    minutes = (time.perf_counter() - started) / 60
    return {
        "base": word_error_rates(base, sets),
        "fine_tuned": word_error_rates(work / label, sets),
        "fine_tune_minutes": round(minutes, 2),
    }


def load_sets() -> dict[str, tuple[list[np.ndarray], list[str], list[str]]]:
    """Audio at 16 kHz, normalised references and groups (file formats) of both evaluation sets."""
    test = load_offline_corpus(CORPUS_DIR)["test"]
    unseen = load_unseen_set()
    return {
        "course_test": ([load_audio(p) for p in test["path"]], [normalize_text(t) for t in test["transcription"]], []),
        "unseen": ([load_audio(p) for p in unseen["path"]], [normalize_text(t) for t in unseen["transcription"]], unseen["format"]),
    }


def print_table(results: dict[str, dict]) -> None:
    formats = sorted(k for k in next(iter(results.values()))["base"]["none"] if k not in ("course_test", "unseen"))
    print("| base | stage | front end | course test | unseen, all | " + " | ".join(formats) + " |")
    print("| --- | --- | --- | ---: | ---: | " + " | ".join("---:" for _ in formats) + " |")
    for label, result in results.items():
        for stage in ("base", "fine_tuned"):
            for front_end, row in result[stage].items():
                cells = [row["course_test"], row["unseen"], *(row[f] for f in formats)]
                print(f"| {label} | {stage.replace('_', ' ')} | {front_end} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--previous", default="66a514a", help="git revision whose course-base to compare with")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (a classroom laptop has 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = load_sets()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bases = {f"previous ({args.previous})": checkpoint_at(args.previous, work / "previous-base"), "shipped": ROOT / CHECKPOINT}
        results = {label: measure_base(label.split()[0], base, sets, work) for label, base in bases.items()}
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "domain_shift.json"
    path.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "results": results}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
