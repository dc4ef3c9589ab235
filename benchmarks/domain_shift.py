#!/usr/bin/env python
"""How well the course model hears recordings unlike its corpus, before and after fine-tuning.

For each base checkpoint (the shipped ``course-base`` and, for comparison, the one shipped at
``--previous``, a git revision), this script measures greedy WER (no language model) on:

- the course corpus's test split (8 kHz telephone band, the course's sentences and test voices);
- the unseen set (``asr_helpers/unseen``: new sentences, voices no model heard, WAV/FLAC/OGG/MP3
  at 8-48 kHz, wideband and telephone band, some with noise and room echo), per file format;
- with ``--natural``: the course test sentences spoken, clean at 16 kHz, by each voice of a recorded
  speaker that pre-training holds out (flite and festival, ``scripts/pretraining_data/natural_voices.json``),
  WER and CER per voice (needs the Debian packages flite, festival, festvox-kallpc16k and the Nitech
  HTS voices: ``scripts/hts_voices.py``, ``$ASR_HELPERS_HTS_VOICES``);

each twice: as the file is, and through a fixed telephone front end (every input resampled to
8 kHz and back, so a wideband recording reaches the model band-limited like the corpus). Then it
fine-tunes each base with the offline course recipe (``asr_helpers.training.fine_tune``, as
``python -m asr_helpers train`` does, on ``--threads`` CPU threads) and measures again. Prints a
table and writes ``<out>/domain_shift.json``, which the checkpoint's card quotes::

    python benchmarks/domain_shift.py --natural    # the espeak-ng-only course-base of 379b9f6 and the shipped one: about 15 minutes on 2 cores
    python benchmarks/domain_shift.py --base old=REV:379b9f6 --base new=PATH:/some/course-base --natural --name natural_voices

Word error rates of a fine-tuned model move by about 0.01-0.02 with the thread count (floating-point
reduction order), so a rerun lands near, not on, these numbers.
"""

from __future__ import annotations

import argparse
import json
import re
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


def voice_error_rates(model_dir: Path, voices: dict[str, tuple[list[np.ndarray], list[str]]]) -> dict[str, dict]:
    """Greedy WER and CER of ``model_dir`` on each held-out natural voice (as the file is: no front end)."""
    model, processor = load_trained(model_dir, "cpu")
    hypotheses = [result.text for arrays, _ in voices.values() for result in transcribe(model, processor, arrays)]  # one voice a call
    references = [text for _, texts in voices.values() for text in texts]
    groups = [voice for voice, (_, texts) in voices.items() for _ in texts]
    rates = word_error_rates_by(hypotheses, references, groups)
    return {voice: {"wer": round(rates[voice][0], 4), "cer": round(rates[voice][1], 4)} for voice in voices}


def measure_base(
    folder: str, base: Path, sets: dict, work: Path, voices: dict, tuned: tuple[Path, float | None] | None = None
) -> dict:
    """The base as it is, then fine-tuned by the course recipe (from this base, into ``work / folder``), both measured.

    ``tuned``: a model that ``python -m asr_helpers train`` already fine-tuned from this base
    (elsewhere, e.g. on an idle machine) and the minutes that took, measured instead of fine-tuning again.
    """
    tuned, minutes = tuned or (None, None)
    if tuned is None:
        started = time.perf_counter()
        fine_tune(work / folder, "offline", checkpoint=base)
        minutes, tuned = round((time.perf_counter() - started) / 60, 2), work / folder
    result = {"base": word_error_rates(base, sets), "fine_tuned": word_error_rates(tuned, sets), "fine_tune_minutes": minutes}
    if voices:
        result["natural"] = {"base": voice_error_rates(base, voices), "fine_tuned": voice_error_rates(tuned, voices)}
    return result


def natural_voice_sets() -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """The course test sentences said by every held-out flite and festival voice, clean, at 16 kHz."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from pretraining_corpus import NATURAL, require_engines  # noqa: PLC0415  (scripts/, not the package)

    from asr_helpers.synth import speak_festival, speak_flite  # noqa: PLC0415

    require_engines("natural")
    texts = list(load_offline_corpus(CORPUS_DIR)["test"]["transcription"])
    speakers = {"flite": lambda text, voice: speak_flite(text, voice, None, TARGET_SAMPLING_RATE),
                "festival": lambda text, voice: speak_festival(text, voice, TARGET_SAMPLING_RATE)}
    return {
        f"{engine} {voice}": ([speakers[engine](text, voice).astype(np.float32) for text in texts], [normalize_text(t) for t in texts])
        for engine, split_voices in NATURAL["voices"].items()
        for voice in split_voices["heldout"]
    }


def tuned_model(spec: str) -> tuple[Path, float | None]:
    """``folder@minutes`` (or ``folder``) of ``--tuned``: a fine-tuned model and how long its fine-tune took."""
    folder, _, minutes = spec.partition("@")
    if not (Path(folder) / "model.safetensors").is_file():
        raise SystemExit(f"--tuned {spec}: {folder} holds no model.safetensors")
    return Path(folder), float(minutes) if minutes else None


def work_folders(labels: list[str]) -> dict[str, str]:
    """A folder name for each base label, its words joined by '-' ("run 12c" -> "run-12c"): every label
    gets its own, so ``--keep`` holds every fine-tuned model, not the last of labels that share a first word."""
    folders = {label: re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-") or "base" for label in labels}
    if len(set(folders.values())) < len(folders):
        raise SystemExit(f"--base labels {labels} would share a folder ({sorted(folders.values())}): name them apart")
    return folders


def base_checkpoint(spec: str, work: Path) -> Path:
    """``REV:<git revision>`` (course-base as committed there) or ``PATH:<folder>``."""
    kind, _, value = spec.partition(":")
    if kind == "REV":
        return checkpoint_at(value, work / f"base-{value}")
    if kind == "PATH" and (Path(value) / "model.safetensors").is_file():
        return Path(value)
    raise SystemExit(f"--base {spec}: give REV:<git revision> or PATH:<checkpoint folder with model.safetensors>")


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
    natural = {label: result["natural"] for label, result in results.items() if "natural" in result}
    if natural:
        voices = list(next(iter(natural.values()))["base"])
        print("\n| base | stage | " + " | ".join(f"{v} WER | {v} CER" for v in voices) + " |")
        print("| --- | --- | " + " | ".join("---: | ---:" for _ in voices) + " |")
        for label, stages in natural.items():
            for stage, rates in stages.items():
                cells = " | ".join(f"{rates[v]['wer']:.3f} | {rates[v]['cer']:.3f}" for v in voices)
                print(f"| {label} | {stage.replace('_', ' ')} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--previous", default="379b9f6", help="git revision whose course-base to compare with")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (a classroom laptop has 2)")
    parser.add_argument(
        "--base", action="append", metavar="LABEL=REV:rev|PATH:folder",
        help="a base checkpoint to measure (repeatable); default: the --previous revision's and the shipped one",
    )
    parser.add_argument(
        "--tuned", action="append", default=[], metavar="LABEL=folder",
        help="the model fine-tuned from --base LABEL already (python -m asr_helpers train) and its minutes, as LABEL=folder@minutes:"
        " measure it, do not fine-tune",
    )
    parser.add_argument("--note", default="", help="a sentence on how the models were made, kept in the result (e.g. where --tuned ran)")
    parser.add_argument("--natural", action="store_true", help="also the held-out flite and festival voices (WER, CER)")
    parser.add_argument("--keep", type=Path, help="keep the fine-tuned models in this folder (one per base label)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="domain_shift", help="the result file's name, without .json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = load_sets()
    voices = natural_voice_sets() if args.natural else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        if args.base:
            bases = {label: base_checkpoint(spec, work) for label, spec in (b.split("=", 1) for b in args.base)}
        else:
            bases = {f"previous ({args.previous})": checkpoint_at(args.previous, work / "previous-base"), "shipped": ROOT / CHECKPOINT}
        tuned = {label: tuned_model(spec) for label, spec in (t.split("=", 1) for t in args.tuned)}
        folders = work_folders(list(bases))
        results = {
            label: measure_base(folders[label], base, sets, work, voices, tuned.get(label)) for label, base in bases.items()
        }
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "note": args.note, "results": results}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
