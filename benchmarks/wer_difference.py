#!/usr/bin/env python
"""Is one fine-tuned model's WER really lower than another's? A paired bootstrap over the files.

The unseen set has 36 files (342 words), so on it one model can beat another by a few words by
chance. This script transcribes the course test split and the unseen set with each model (greedy,
as ``domain_shift.py`` does), counts each file's word errors, then resamples the files with
replacement, the same files for both models (10,000 times, seed 0). It reports the difference of
the two corpus WERs, its 95 % interval, and the share of resamples where the second model is not
worse (the paired bootstrap of Bisani and Ney, ICASSP 2004). The first model is the baseline::

    python benchmarks/wer_difference.py old=<old fine-tuned> "run 10=<run 10 fine-tuned>" --name wer_difference

An interval that contains 0 means the set cannot tell the two models apart.

``--heldout DIR`` adds the held-out split of a pre-training corpus folder (``scripts/pretraining_corpus.py``:
sentences and voices its training split lacks), one set per engine group. It is larger than the unseen
set and measures no goal, so a choice can be made on it and then checked on the unseen set.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr_helpers.audio import load_audio  # noqa: E402
from asr_helpers.inference import load_trained, transcribe  # noqa: E402
from asr_helpers.metrics import count_errors  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402
from domain_shift import load_sets  # noqa: E402

RESAMPLES = 10_000


def errors_per_file(hypotheses: list[str], references: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word errors (S + D + I) and reference words of each file: their sums give the corpus WER."""
    counts = [count_errors(reference.split(), hypothesis.split()) for reference, hypothesis in zip(references, hypotheses, strict=True)]
    errors = np.array([c.substitutions + c.deletions + c.insertions for c in counts])
    return errors, np.array([c.reference_length for c in counts])


def paired_bootstrap(
    errors_a: np.ndarray, errors_b: np.ndarray, words: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, float]:
    """WER of B minus WER of A on the set, its 95 % interval over resampled file sets, and how often B <= A.

    Both models are scored on the same resampled files (paired), so what the files have in common,
    a hard recording or a long sentence, cancels out of the difference.
    """
    picks = np.random.default_rng(seed).integers(0, len(words), size=(resamples, len(words)))
    totals = words[picks].sum(axis=1)
    differences = (errors_b[picks].sum(axis=1) - errors_a[picks].sum(axis=1)) / totals
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "difference": round(float((errors_b.sum() - errors_a.sum()) / words.sum()), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "share_not_worse": round(float(np.mean(differences <= 0)), 4),
    }


def heldout_sets(folder: Path) -> dict[str, tuple[list[np.ndarray], list[str], list[str]]]:
    """The held-out rows of a pre-training corpus folder, as two sets: espeak-ng voices, and flite's and festival's."""
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise SystemExit(f"--heldout {folder}: no metadata.csv (a folder that scripts/pretraining_corpus.py wrote)")
    with metadata.open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["split"] == "heldout"]
    if not rows:
        raise SystemExit(f"--heldout {folder}: metadata.csv has no heldout rows")
    sets = {}
    for name, engines in ((f"{folder.name} espeak-ng", {"espeak-ng"}), (f"{folder.name} flite, festival", {"flite", "festival"})):
        chosen = [row for row in rows if row["engine"] in engines]
        if chosen:
            sets[name] = ([load_audio(folder / row["file"]) for row in chosen],
                          [normalize_text(row["transcription"]) for row in chosen], [])
    return sets


def compare(models: dict[str, Path], sets: dict) -> dict[str, dict]:
    """Each model's WER per set, and each model after the first against the first (the baseline)."""
    counted: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for label, folder in models.items():
        model, processor = load_trained(folder, "cpu")
        counted[label] = {
            name: errors_per_file([result.text for result in transcribe(model, processor, arrays)], references)
            for name, (arrays, references, _) in sets.items()
        }
    baseline, *others = models
    results: dict[str, dict] = {}
    for name in sets:
        words = counted[baseline][name][1]
        row = {"files": len(words), "words": int(words.sum()),
               "wer": {label: round(float(counted[label][name][0].sum() / words.sum()), 4) for label in models}}
        row["against_" + baseline] = {
            label: paired_bootstrap(counted[baseline][name][0], counted[label][name][0], words) for label in others
        }
        results[name] = row
    return results


def print_table(results: dict[str, dict], baseline: str) -> None:
    print(f"| set | files | words | model | WER | minus {baseline} | 95 % interval | resamples not worse |")
    print("| --- | ---: | ---: | --- | ---: | ---: | --- | ---: |")
    for name, row in results.items():
        for label, wer in row["wer"].items():
            versus = row["against_" + baseline].get(label)
            extra = (f"{versus['difference']:+.3f} | [{versus['low']:+.3f}, {versus['high']:+.3f}] | {versus['share_not_worse']:.1%}"
                     if versus else "| |")
            print(f"| {name} | {row['files']} | {row['words']} | {label} | {wer:.3f} | {extra} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="LABEL=folder", help="fine-tuned models; the first is the baseline")
    parser.add_argument("--heldout", type=Path, action="append", default=[], metavar="DIR",
                        help="also a pre-training corpus folder's held-out split (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--note", default="", help="a sentence on where the models come from, kept in the result")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="wer_difference", help="the result file's name, without .json")
    args = parser.parse_args()
    models = {label: Path(folder) for label, folder in (spec.split("=", 1) for spec in args.models)}
    for label, folder in models.items():
        if not (folder / "model.safetensors").is_file():
            raise SystemExit(f"{label}={folder}: no model.safetensors in {folder}")
    if len(models) < 2:
        raise SystemExit("give at least two models: a baseline, then the ones to compare with it")
    torch.set_num_threads(args.threads)
    sets = load_sets()
    for folder in args.heldout:
        sets |= heldout_sets(folder)
    results = compare(models, sets)
    baseline = next(iter(models))
    print_table(results, baseline)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    method = {"resamples": RESAMPLES, "seed": 0, "interval": "2.5th-97.5th percentile of the resampled differences"}
    path.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "method": method,
                                "note": args.note, "results": results}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
