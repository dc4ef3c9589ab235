#!/usr/bin/env python
"""Pre-train the offline course's small Wav2Vec2ForCTC checkpoint on synthetic general English.

The offline course fine-tunes this checkpoint on the MInDS-14-like corpus, as the online course
fine-tunes ``facebook/wav2vec2-base``: a model that already hears speech, meeting a new domain
of words. This script does the whole job, from nothing but the repository and a seed:

1. synthesise the pre-training corpus with ``generate_pretraining_corpus`` of this folder's
   ``pretraining_corpus.py`` (espeak-ng through :mod:`asr_helpers.synth`; general-English
   sentences, many voices, then ``--channels``: a telephone band at 8 kHz, or wideband and
   telephone audio with noise, room echo and any level; FLAC),
2. build the processor over the full alphabet (A-Z and the apostrophe), so any course text fits,
3. train ``Wav2Vec2ForCTC`` of :func:`asr_helpers.modeling.small_config` with CTC (bf16 on a GPU,
   length-bucketed batches of about ``--batch-seconds`` of audio, AdamW, warm-up + cosine decay),
4. measure WER/CER on the held-out split (voices and sentences never used in training) and, as
   a zero-shot check, on the course corpus's test split,
5. write the checkpoint (safetensors, processor, a model card README.md, training_log.json).

Reproduce the shipped checkpoint with the commands its card lists under "Reproduce": five runs of
6-9 minutes each on one H200 GPU with 16 CPU cores, synthesis included, each starting from the
previous one's weights (``--init-from``) on a corpus of another seed. ``--minutes`` fits a
run into a time budget (the speed of the first steps sets ``--max-steps``); the card records the
step count it settled on, so the listed commands repeat the run without it. Rewrite the card from
``training_log.json`` alone with ``--card-only``.

A few CPU steps on a tiny corpus, to check that it runs::

    python scripts/pretrain_checkpoint.py --out /tmp/ckpt --corpus /tmp/corpus --n-train 16 \\
        --n-heldout 4 --max-steps 2 --batch-seconds 10 --no-course-eval
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
for folder in (REPO, REPO / "scripts"):  # the package without installing it; pretraining_corpus beside this file
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor  # noqa: E402

import pretraining_corpus as pretrain  # noqa: E402
import speakers  # noqa: E402
from asr_helpers import synth  # noqa: E402
from asr_helpers.audio import TARGET_SAMPLING_RATE, resample  # noqa: E402
from asr_helpers.data import CORPUS_DIR  # noqa: E402
from asr_helpers.metrics import character_error_rate, word_error_rate, word_error_rates_by  # noqa: E402
from asr_helpers.modeling import COURSE_BASE_SIZE, small_config  # noqa: E402
from asr_helpers.preprocessing import build_processor, build_vocab  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"  # every character normalize_text can leave in a transcript
CALIBRATION_STEPS = (200, 400)  # steps timed to fit a run into --minutes (inside the warm-up, before any decay)
SPEED_MARGIN = 0.93  # evaluations and slower late steps: keep a margin when fitting the run into --minutes
BUCKET = 4000  # batches are padded to a multiple of 0.25 s: few shapes, so GPU kernels are planned once


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--corpus", type=Path, help="pre-training corpus folder (generated if it has no metadata.csv)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus, the initialisation and the batches")
    parser.add_argument("--n-train", type=int, default=32_000, help="training utterances to synthesise")
    parser.add_argument("--n-heldout", type=int, default=400, help="held-out utterances (held-out voices)")
    parser.add_argument(
        "--channels", choices=tuple(pretrain.CHANNELS), default="telephone",
        help="telephone: white noise and a telephone band, 8 kHz (the first runs); mixed: wideband and telephone, "
        "noise of three colours, room echo, any level (scripts/pretraining_data/channels.json)",
    )
    parser.add_argument(
        "--voices", choices=(pretrain.ESPEAK, "natural"), default=pretrain.ESPEAK,
        help="espeak-ng: espeak-ng only (the first runs); natural: espeak-ng, flite and festival voices of real speakers, "
        "each warped, sped up or slowed down (scripts/pretraining_data/natural_voices.json, scripts/speakers.py)",
    )
    parser.add_argument("--max-steps", type=int, default=11_000, help="optimizer steps (defines the schedule)")
    parser.add_argument(
        "--minutes", type=float, default=0.0,
        help="fit the run into this many minutes: the speed of the first steps sets --max-steps (0: no limit)",
    )
    parser.add_argument("--batch-seconds", type=float, default=400.0, help="audio seconds per batch, padding included")
    parser.add_argument("--lr", type=float, default=3.5e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=500, help="linear warm-up steps")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=2000, help="steps between held-out evaluations")
    parser.add_argument("--log-every", type=int, default=250, help="steps between progress lines")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="threads for synthesis and loading")
    parser.add_argument("--hidden", type=int, default=COURSE_BASE_SIZE["hidden_size"], help="Transformer width")
    parser.add_argument("--layers", type=int, default=COURSE_BASE_SIZE["num_layers"], help="Transformer layers")
    parser.add_argument("--ff", type=int, default=COURSE_BASE_SIZE["intermediate_size"], help="feed-forward width")
    parser.add_argument("--init-from", type=Path, help="start from this checkpoint's weights (to train longer in several runs)")
    parser.add_argument(
        "--card-only", action="store_true", help="only rewrite --out's README.md from its training_log.json and config.json"
    )
    parser.add_argument(
        "--domain-shift", type=Path,
        help="with --card-only: keep this benchmarks/domain_shift.py result in training_log.json and put its table in the card",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-course-eval", action="store_true", help="skip the zero-shot course test evaluation")
    return parser.parse_args(argv)


# --- data ----------------------------------------------------------------------------------------


def read_rows(metadata: Path) -> list[dict[str, str]]:
    with metadata.open(newline="") as handle:
        return list(csv.DictReader(handle))


def load_examples(
    root: Path, rows: list[dict[str, str]], processor: Wav2Vec2Processor, workers: int
) -> tuple[list[np.ndarray], list[list[int]], list[str]]:
    """Audio as the course prepares it (8 kHz FLAC -> 16 kHz, zero mean, unit variance) and labels."""

    def audio(row: dict[str, str]) -> np.ndarray:
        samples, rate = sf.read(root / row["file"], dtype="float32")
        values = processor.feature_extractor(resample(samples, rate), sampling_rate=TARGET_SAMPLING_RATE)
        return np.asarray(values["input_values"][0], dtype=np.float32)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(audio, rows))
    texts = [normalize_text(row["transcription"]) for row in rows]
    labels = processor.tokenizer(texts)["input_ids"]
    return arrays, labels, texts


class DeviceCorpus:
    """Every utterance in one flat tensor on the device, so a batch is one gather, not a data loader."""

    def __init__(self, arrays: list[np.ndarray], labels: list[list[int]], device: torch.device):
        self.lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.flat = torch.from_numpy(np.concatenate(arrays)).to(device)
        self.offsets = torch.from_numpy(offsets).to(device)
        self.length_t = torch.from_numpy(self.lengths).to(device)
        width = max(len(label) for label in labels)
        padded = np.full((len(labels), width), -100, dtype=np.int64)
        for i, label in enumerate(labels):
            padded[i, : len(label)] = label
        self.labels = torch.from_numpy(padded).to(device)
        self.label_lengths = np.array([len(label) for label in labels], dtype=np.int64)
        self.device = device

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: list[int], width: int | None = None) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, device=self.device)
        lengths = self.length_t[idx]
        width = width or padded_width(int(self.lengths[indices].max()))
        positions = torch.arange(width, device=self.device)
        inside = positions[None, :] < lengths[:, None]
        gather = (self.offsets[idx][:, None] + positions[None, :]).clamp_(max=self.flat.numel() - 1)
        values = torch.where(inside, self.flat[gather], 0.0)
        labels = self.labels[idx]
        labels = labels[:, : int(self.label_lengths[indices].max())]
        return {"input_values": values, "attention_mask": inside.long(), "labels": labels}


def padded_width(length: int) -> int:
    return int(math.ceil(length / BUCKET) * BUCKET)


def length_batches(lengths: np.ndarray, batch_samples: int, rng: np.random.Generator) -> list[tuple[list[int], int]]:
    """One epoch of ``(indices, padded width)`` batches, in random order.

    Utterances are grouped by padded width (a multiple of 0.25 s) and every batch of a group has
    the same size, ``batch_samples // width``, so an epoch uses one tensor shape per group: GPU
    kernels are chosen once per shape, not at every step. Members are shuffled within each group
    every epoch; those left over when a group is split move up to the next, wider group.
    """
    widths = np.array([padded_width(int(n)) for n in lengths])
    batches: list[tuple[list[int], int]] = []
    carry: list[int] = []
    for width in sorted(set(widths.tolist())):
        members = carry + rng.permutation(np.flatnonzero(widths == width)).tolist()
        size = max(1, batch_samples // width)
        full = len(members) - len(members) % size
        batches += [(members[i : i + size], width) for i in range(0, full, size)]
        carry = members[full:]
    if carry:
        batches.append((carry, int(widths.max())))
    return [batches[i] for i in rng.permutation(len(batches))]


def infinite_batches(lengths: np.ndarray, batch_samples: int, seed: int):
    epoch = 0
    while True:
        rng = np.random.default_rng([seed, epoch])
        for batch in length_batches(lengths, batch_samples, rng):
            yield epoch, batch
        epoch += 1


# --- model, evaluation ------------------------------------------------------------------------


def build_model(processor: Wav2Vec2Processor, args: argparse.Namespace) -> Wav2Vec2ForCTC:
    tokenizer = processor.tokenizer
    config = small_config(
        len(tokenizer), tokenizer.pad_token_id,
        hidden_size=args.hidden, num_layers=args.layers, intermediate_size=args.ff,
    )
    config.ctc_zero_infinity = True  # an impossible alignment (label longer than audio) adds no NaN
    torch.manual_seed(args.seed)
    return Wav2Vec2ForCTC(config)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def transcribe(model, corpus: DeviceCorpus, processor, batch_samples: int) -> list[str]:
    """Greedy CTC transcripts of every utterance of ``corpus``, in its order."""
    model.eval()
    order = np.argsort(corpus.lengths, kind="stable")
    predictions: dict[int, str] = {}
    current: list[int] = []

    def flush() -> None:
        batch = corpus.batch(current)
        with autocast(corpus.device):
            logits = model(batch["input_values"], attention_mask=batch["attention_mask"]).logits
        for index, text in zip(current, processor.batch_decode(logits.argmax(-1).cpu().numpy())):
            predictions[index] = text

    for index in order.tolist():
        if current and int(corpus.lengths[index]) * (len(current) + 1) > batch_samples:
            flush()
            current = []
        current.append(index)
    if current:
        flush()
    model.train()
    return [predictions[i] for i in range(len(corpus))]


def rates_by_voice(predictions: list[str], references: list[str], rows: list[dict[str, str]]) -> dict[str, dict]:
    """Held-out error rates per flite or festival voice, and for all espeak-ng variants together."""
    groups = [engine if (engine := engine_of(row)) == pretrain.ESPEAK else f"{engine} {row['voice']}" for row in rows]
    return {
        name: {"wer": round(wer, 4), "cer": round(cer, 4), "utterances": count}
        for name, (wer, cer, count) in word_error_rates_by(predictions, references, groups).items()
    }


def error_rates(predictions: list[str], references: list[str]) -> dict[str, float]:
    return {
        "wer": round(word_error_rate(predictions, references), 4),
        "cer": round(character_error_rate(predictions, references), 4),
    }


# --- the model card ----------------------------------------------------------------------------


def engine_of(row: dict[str, str]) -> str:
    """The row's engine: corpora made before flite and festival joined have no engine column."""
    return row.get("engine") or pretrain.ESPEAK


def corpus_stats(rows: list[dict[str, str]]) -> dict[str, object]:
    words = {w for row in rows for w in normalize_text(row["transcription"]).split()}
    espeak = [row for row in rows if engine_of(row) == pretrain.ESPEAK]
    variants = sorted({row["voice"].split("+")[1] for row in espeak})
    engines = {engine_of(row): 0 for row in rows}
    for row in rows:
        engines[engine_of(row)] += 1
    return {
        "engines": engines,
        "natural_voices": sorted({f"{engine_of(row)} {row['voice']}" for row in rows if engine_of(row) != pretrain.ESPEAK}),
        "utterances": len(rows),
        "hours": round(sum(float(row["duration_s"]) for row in rows) / 3600, 2),
        "distinct_sentences": len({pretrain.sentence_key(row["transcription"]) for row in rows}),
        "distinct_words": len(words),
        "voices": len({row["voice"] for row in rows}),
        "variants": variants,
        "accents": sorted({row["voice"].split("+")[0] for row in espeak}),
    }


def espeak_version() -> str:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
        return " ".join(out.split()[:4])
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def channel_text(channels: str) -> str:
    """The card's words for a corpus's channel (``--channels``), with the ranges it was drawn from."""
    if channels == "telephone":
        return (
            f"white noise at {pretrain.SNR_DB[0]:.0f}-{pretrain.SNR_DB[1]:.0f} dB SNR and a telephone band-pass (low edge"
            f" {pretrain.TELEPHONE_LOW_HZ[0]}-{pretrain.TELEPHONE_LOW_HZ[1]} Hz, high edge {pretrain.TELEPHONE_HIGH_HZ[0]}-"
            f"{pretrain.TELEPHONE_HIGH_HZ[1]} Hz); saved as 8 kHz 16-bit FLAC, as the course corpus is."
        )
    m = pretrain.MIXED
    return (
        f"`--channels mixed` (`scripts/pretraining_data/channels.json`): {m['wideband_share']:.0%} of the rows wideband"
        f" (a microphone's band, {m['wide_low_hz'][0]}-{m['wide_low_hz'][1]} Hz up to {m['wide_high_hz'][0]}-{m['wide_high_hz'][1]} Hz,"
        f" saved as 16 kHz FLAC), the others a telephone band ({pretrain.TELEPHONE_LOW_HZ[0]}-{pretrain.TELEPHONE_LOW_HZ[1]} Hz up to"
        f" {pretrain.TELEPHONE_HIGH_HZ[0]}-{pretrain.TELEPHONE_HIGH_HZ[1]} Hz, saved at 8 kHz); white, pink or brown noise at"
        f" {m['snr_db'][0]:.0f}-{m['snr_db'][1]:.0f} dB SNR on {m['noise_share']:.0%}; room echo (RT60 {m['rt60_s'][0]}-{m['rt60_s'][1]} s)"
        f" on {m['echo_share']:.0%}; peak level {m['peak_dbfs'][0]:.0f} to {m['peak_dbfs'][1]:.0f} dBFS. Every file reaches the model resampled to 16 kHz."
    )


def channel_history(stages: list[dict]) -> str:
    """Which runs heard which channels: the first runs only the telephone band."""
    kinds = [stage.get("channels", "telephone") for stage in stages]
    if len(set(kinds)) < 2:
        return ""
    runs = {kind: ", ".join(str(i) for i, k in enumerate(kinds, 1) if k == kind) for kind in dict.fromkeys(kinds)}
    return "- **Runs by channel**: " + "; ".join(f"{kind}: run {numbers}" for kind, numbers in runs.items()) + (
        f". The telephone corpus: {channel_text('telephone')}"
    )


def needs_engines(stages: list[dict]) -> str:
    """The Reproduce section's note on the synthesisers a ``--voices natural`` run needs."""
    if all(stage.get("voices", pretrain.ESPEAK) == pretrain.ESPEAK for stage in stages):
        return ""
    packages = " ".join(pretrain.NATURAL["packages"].values()).split()
    return (
        f"Runs with `--voices natural` need the Debian packages {', '.join(packages[:-1])} and {packages[-1]} beside espeak-ng,"
        f" and the Nitech HTS voices: `python scripts/hts_voices.py --out DIR`, then `{synth.HTS_VOICES_ENV}=DIR`.\n\n"
    )


def recorded(split: dict) -> str:
    """How many of a split's voices are flite or festival voices, for the card's corpus table."""
    count = len(split.get("natural_voices", ()))
    return f" + {count} flite and festival voices" if count else ""


def natural_voices_text(data: dict, voices: str) -> str:
    """The card's words for the flite and festival voices of a ``--voices natural`` corpus, and their speakers."""
    if voices == pretrain.ESPEAK:
        return ""
    train, held = data["train"], data["heldout"]
    shares = ", ".join(f"{engine} {count:,}" for engine, count in train["engines"].items())
    return (
        f"- **Voices of recorded speakers** (`--voices natural`, `scripts/pretraining_data/natural_voices.json`): rows of the"
        f" train split by engine: {shares}. Trained on: {', '.join(train['natural_voices'])}. Never trained on, whole"
        f" speakers (kal and awb are heard through no engine): {', '.join(held['natural_voices'])}. Each flite or festival row"
        f" is a drawn speaker (`scripts/speakers.py`): the spectrum warped by {speakers.WARP[0]}-{speakers.WARP[1]}"
        f" (vocal-tract length: formants and pitch together), tempo x{speakers.TEMPO[0]}-{speakers.TEMPO[1]},"
        f" a level drift of up to {speakers.LEVEL_DRIFT_DB[1]:.0f} dB, pauses of {speakers.PAUSE_S[0]}-{speakers.PAUSE_S[1]} s"
        f" before and after; flite's mean pitch is drawn too. Same sentences, channels and seeds as the espeak-ng rows."
    )


def heldout_voice_rows(report: dict) -> str:
    """Rows of the card's results table: the held-out split per flite or festival voice."""
    return "".join(
        f"| held-out split, {name} (a speaker never trained on; warped, channels as in training): {rates['utterances']} utterances"
        f" | {rates['wer']:.3f} | {rates['cer']:.3f} |\n"
        for name, rates in report.get("heldout_by_voice", {}).items()
        if name != pretrain.ESPEAK
    )


def domain_shift_table(result: dict | None) -> str:
    """The card's before/after table from ``benchmarks/domain_shift.py`` (no front end; greedy decoding)."""
    if not result:
        return ""
    rows = []
    for label, measured in result["results"].items():
        for stage in ("base", "fine_tuned"):
            row = measured[stage]["none"]
            formats = sorted(k for k in row if k not in ("course_test", "unseen"))
            rows.append(f"| {label} | {stage.replace('_', ' ')} | {row['course_test']:.3f} | {row['unseen']:.3f} | "
                        + " | ".join(f"{row[f]:.3f}" for f in formats) + " |")
    header = "| checkpoint | stage | course test | unseen, all | " + " | ".join(formats) + " |"
    front_end = "; ".join(
        f"{label}: {m['fine_tuned']['telephone']['unseen']:.3f} (without it {m['fine_tuned']['none']['unseen']:.3f})"
        for label, m in result["results"].items()
    )
    minutes = " and ".join(f"{m['fine_tune_minutes']:.1f}" for m in result["results"].values())
    natural = natural_voice_table(result)
    return f"""
### Before and after the course's fine-tuning, and on recordings unlike the corpus

`python benchmarks/domain_shift.py` ({result['threads']} CPU threads, torch {result['torch']}): the course
test split, and the unseen set of `asr_helpers/unseen` (36 recordings: new sentences, voices no model
heard, one column per file format; `python -m asr_helpers evaluate --unseen` prints the same split).
"fine tuned" is `python -m asr_helpers train`'s recipe from that checkpoint ({minutes} min from start to saved
model, loading, four evaluations and saving included). Greedy decoding through `transcribe` (no language
model, no front end).{(" " + result["note"]) if result.get("note") else ""}

{header}
| --- | --- | ---: | ---: | {' | '.join('---:' for _ in formats)} |
{chr(10).join(rows)}

A fixed telephone front end (every input resampled to 8 kHz and back) instead of wideband training,
on the unseen set after fine-tuning: {front_end}. It helps a model that heard only the telephone
band, but training on both bands helps far more, and a model that heard both loses by it.
{natural}"""


def natural_voice_table(result: dict) -> str:
    """The card's table of WER and CER per held-out flite or festival voice (``domain_shift.py --natural``)."""
    measured = {label: m["natural"] for label, m in result["results"].items() if "natural" in m}
    if not measured:
        return ""
    voices = list(next(iter(measured.values()))["base"])
    rows = "\n".join(
        f"| {label} | {stage.replace('_', ' ')} | " + " | ".join(f"{rates[v]['wer']:.3f} / {rates[v]['cer']:.3f}" for v in voices) + " |"
        for label, stages in measured.items()
        for stage, rates in stages.items()
    )
    return f"""
The course test sentences said by the speakers that pre-training holds out (clean, 16 kHz; WER / CER, greedy):

| checkpoint | stage | {' | '.join(voices)} |
| --- | --- | {' | '.join('---:' for _ in voices)} |
{rows}
"""


def write_card(out: Path, report: dict) -> None:
    c, a, t, d = report["config"], report["args"], report["train"], report["data"]
    train, held = d["train"], d["heldout"]
    zero_shot = report.get("course_test_zero_shot")
    course_line = (
        f"| course corpus test split (7 unseen course voices, banking sentences), before any fine-tuning"
        f" | {zero_shot['wer']:.3f} | {zero_shot['cer']:.3f} |"
        if zero_shot
        else ""
    )
    stages = report["stages"]
    earlier_data = (
        " The table describes the last run's corpus; each earlier run used its own seed's corpus,"
        " made the same way with the same sizes."
        if len(stages) > 1
        else ""
    )
    reproduce = "\n".join(stage["reproduce"] for stage in stages)
    stages_text = ""
    if len(stages) > 1:
        rows = "\n".join(
            f"| {i} | {st['seed']} | {st.get('voices', pretrain.ESPEAK)} | {st['steps']:,} | {st['audio_hours_seen']:,.0f} | {st['train_minutes']:.1f} min"
            f" | {st['heldout']['wer']:.3f} | {st['hardware']} |"
            for i, st in enumerate(stages, 1)
        )
        stages_text = (
            f"The checkpoint was trained in {len(stages)} runs, each starting from the previous one's weights"
            f" (`--init-from`), on the corpus of its own seed; every run has its own warm-up and decay."
            f" Held-out WER is measured on each run's own held-out split.\n\n"
            "| run | seed | voices | steps | hours of audio seen | training time | held-out WER | hardware |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
            f"{rows}\n\n{needs_engines(stages)}Run, in order:\n\n"
        )
    card = f"""---
language: en
license: apache-2.0
library_name: transformers
pipeline_tag: automatic-speech-recognition
tags: [wav2vec2, ctc, synthetic-speech, espeak-ng, flite, festival, teaching]
---

# course-base: a small Wav2Vec2 CTC model pre-trained on synthetic speech, telephone band and wideband

The starting point of the **offline** course: a {report['parameters'] / 1e6:.2f} M-parameter
`Wav2Vec2ForCTC` that already transcribes synthetic English speech, so that fine-tuning it on the
MInDS-14-like course corpus (banking requests, new words, new voices) shows what fine-tuning
`facebook/wav2vec2-base` shows online: a model that hears speech learns a new domain in minutes.
It was trained with CTC only, on labelled synthetic speech (no self-supervised stage).

## Architecture

`Wav2Vec2ForCTC` with the configuration of `asr_helpers.modeling.small_config` (`config.json`):
7 convolutions of {c['conv_dim'][0]} channels (320-sample hop, one frame per 20 ms at 16 kHz), layer-normalised
features, a {c['num_hidden_layers']}-layer pre-LN Transformer (hidden {c['hidden_size']}, {c['num_attention_heads']} heads, feed-forward {c['intermediate_size']}),
a linear CTC head over {c['vocab_size']} tokens: `<pad>` (the CTC blank), `<unk>`, `|` (word delimiter), the
apostrophe and A-Z. Input: 16 kHz audio normalised to zero mean and unit variance, with an
attention mask (the processor in this folder does all that). {report['parameters']:,} parameters,
`model.safetensors` in float32 ({report['size_mb']:.1f} MB).

## Data

Made by `generate_pretraining_corpus(seed={a['seed']}, channels="{a.get('channels', 'telephone')}", voices="{a.get('voices', pretrain.ESPEAK)}")` of `scripts/pretraining_corpus.py` with espeak-ng
({report['espeak']}){', flite 2.2 and festival 2.5 (Debian)' if a.get('voices', pretrain.ESPEAK) != pretrain.ESPEAK else ''}; nothing of it ships, the seed regenerates it.{earlier_data}

| split | utterances | hours | distinct sentences | distinct words | voices |
| --- | --- | --- | --- | --- | --- |
| train | {train['utterances']:,} | {train['hours']} | {train['distinct_sentences']:,} | {train['distinct_words']:,} | {train['voices']} ({len(train['accents'])} accents x {len(train['variants'])} variants{recorded(train)}) |
| held-out | {held['utterances']:,} | {held['hours']} | {held['distinct_sentences']:,} | {held['distinct_words']:,} | {held['voices']} ({len(held['accents'])} accents x {len(held['variants'])} variants{recorded(held)}) |

- **Sentences**: half are general English from the grammar `scripts/pretraining_data/grammar.json` (home, food,
  weather, travel, animals, school, times and dates; numbers spelled as words), half are lists of
  {pretrain.WORD_LIST_LENGTH[0]}-{pretrain.WORD_LIST_LENGTH[1]} words from an everyday lexicon of {len(pretrain.pretraining_words()):,} words (`scripts/pretraining_data/words.txt`),
  which teach spelling over many words. The lexicon is general English, so some course words are in
  it, as in any English corpus; no sentence is a sentence of the course templates, and no sentence
  is in both splits.
- **Voices**: every English accent of espeak-ng ({', '.join(train['accents'])}) with the
  "train" variants of `scripts/pretraining_data/voices.json`. Never heard in training: the course test variants
  ({', '.join(synth.VARIANTS['test'])}), on which the course measures fine-tuning, and the held-out
  variants {', '.join(pretrain.VARIANTS['heldout'])}. Whispered, robotic and heavy-echo variants are not used.
- **Channel**: speed {pretrain.SPEED_WPM[0]}-{pretrain.SPEED_WPM[1]} words/min, pitch {pretrain.PITCH[0]}-{pretrain.PITCH[1]}, level {pretrain.AMPLITUDE[0]}-{pretrain.AMPLITUDE[1]}; then {channel_text(a.get('channels', 'telephone'))}
{channel_history(stages)}
{natural_voices_text(d, a.get('voices', pretrain.ESPEAK))}

## Training

| | |
| --- | --- |
| initialisation | {f"the weights of `{a['init_from']}`" if a.get('init_from') else f"random (`torch.manual_seed({a['seed']})`)"} |
| steps | {t['steps']:,} of {a['max_steps']:,} planned ({t['epochs']:.1f} epochs, {t['audio_hours_seen']:,.0f} hours of audio seen) |
| batch | length-bucketed, about {a['batch_seconds']:.0f} s of audio (padding included), {t['mean_batch_size']:.0f} utterances on average |
| optimiser | AdamW, peak learning rate {a['lr']:g}, weight decay {a['weight_decay']:g}, {a['warmup_steps']:,}-step linear warm-up, cosine decay to 5 %, gradient clipping at 1.0 |
| precision | {t['precision']} |
| loss | CTC, mean over target lengths (`ctc_loss_reduction="mean"`, `ctc_zero_infinity=True`), SpecAugment time masks as in `small_config` |
| hardware | {t['hardware']} |
| time | {t['train_minutes']:.1f} min of training, {report['total_minutes']:.1f} min in all (synthesis {report['synth_minutes']:.1f} min, loading {report['load_minutes']:.1f} min) |
| software | Python {report['python']}, torch {report['torch']}, transformers {report['transformers']} |
| final training loss | {t['final_loss']:.3f} |

## Results (greedy CTC decoding, no language model)

| evaluation set | WER | CER |
| --- | --- | --- |
| pre-training held-out split: {held['utterances']} utterances, held-out voices and sentences | {report['heldout']['wer']:.3f} | {report['heldout']['cer']:.3f} |
{heldout_voice_rows(report)}{course_line}
{domain_shift_table(report.get('domain_shift'))}
## Use

```python
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor
model = Wav2Vec2ForCTC.from_pretrained("asr_helpers/checkpoints/course-base")
processor = Wav2Vec2Processor.from_pretrained("asr_helpers/checkpoints/course-base")
```

## Reproduce

{stages_text}```bash
{reproduce}
```

(The last run was `{report['command']}`; `--minutes` fixed the number of steps from the GPU's speed.)

The seed fixes the corpus, the initialisation and the batch order; GPU kernels are not bit-exact,
so a rerun lands near, not exactly on, these numbers. `training_log.json` holds the loss and
evaluation history of this run.
"""
    (out / "README.md").write_text(card)


def stage_summary(report: dict) -> dict:
    """One training run, as the card of a checkpoint trained in several runs lists it."""
    t = report["train"]
    return {
        "reproduce": report["reproduce"],
        "seed": report["args"]["seed"],
        "channels": report["args"].get("channels", "telephone"),
        "voices": report["args"].get("voices", pretrain.ESPEAK),
        "steps": t["steps"],
        "audio_hours_seen": round(t["audio_hours_seen"], 1),
        "train_minutes": round(t["train_minutes"], 2),
        "hardware": t["hardware"],
        "heldout": report["heldout"],
    }


def earlier_stages(init_from: Path | None) -> list[dict]:
    """The runs that made the --init-from checkpoint (from its training_log.json), oldest first."""
    log_file = init_from / "training_log.json" if init_from else None
    if log_file is None or not log_file.is_file():
        return []
    previous = json.loads(log_file.read_text())
    return previous.get("stages") or [stage_summary(previous)]


def reproduce_command(argv: list[str], max_steps: int) -> str:
    """The run's command with the step count it settled on instead of its time budget."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--minutes", "--max-steps"):
            skip = True
        elif not arg.startswith(("--minutes=", "--max-steps=")):
            kept.append(arg)
    return "python scripts/pretrain_checkpoint.py " + " ".join(shlex.quote(a) for a in [*kept, "--max-steps", str(max_steps)])


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.card_only:
        log_file = args.out / "training_log.json"
        report = json.loads(log_file.read_text())
        if args.domain_shift:
            report["domain_shift"] = json.loads(args.domain_shift.read_text())
            log_file.write_text(json.dumps(report, indent=1) + "\n")
        report["config"] = json.loads((args.out / "config.json").read_text())
        write_card(args.out, report)
        log(f"model card rewritten: {args.out / 'README.md'}")
        return report
    started = time.perf_counter()
    device = torch.device(args.device)
    random.seed(args.seed)
    np.random.seed(args.seed)  # Wav2Vec2's SpecAugment masks are drawn with numpy
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # batch shapes repeat (see length_batches)
    command = "python scripts/pretrain_checkpoint.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    log(f"command: {command}")
    log(f"device {device}, torch {torch.__version__}, {os.cpu_count()} CPUs")

    voices = "" if args.voices == pretrain.ESPEAK else f"-{args.voices}"
    corpus_dir = args.corpus or REPO / ".cache" / f"pretrain-corpus-{args.channels}{voices}-seed{args.seed}-{args.n_train}-{args.n_heldout}"
    metadata = corpus_dir / "metadata.csv"
    t0 = time.perf_counter()
    if metadata.is_file() and len(read_rows(metadata)) == args.n_train + args.n_heldout:
        log(f"reusing the corpus in {corpus_dir}")
    else:
        log(f"synthesising {args.n_train} + {args.n_heldout} utterances into {corpus_dir}")
        metadata = pretrain.generate_pretraining_corpus(
            corpus_dir, seed=args.seed, n_train=args.n_train, n_heldout=args.n_heldout,
            workers=args.workers, progress=False, channels=args.channels, voices=args.voices,
        )
    synth_s = time.perf_counter() - t0
    rows = read_rows(metadata)
    by_split = {split: [row for row in rows if row["split"] == split] for split in pretrain.SPLITS}
    data = {split: corpus_stats(split_rows) for split, split_rows in by_split.items()}
    log(f"corpus ready in {synth_s:.0f} s: " + json.dumps({s: {k: v for k, v in d.items() if k not in ('variants', 'accents')} for s, d in data.items()}))

    args.out.mkdir(parents=True, exist_ok=True)
    processor = build_processor(build_vocab([ALPHABET]), args.out)
    t0 = time.perf_counter()
    train_arrays, train_labels, _ = load_examples(corpus_dir, by_split["train"], processor, args.workers)
    held_arrays, held_labels, held_texts = load_examples(corpus_dir, by_split["heldout"], processor, args.workers)
    train = DeviceCorpus(train_arrays, train_labels, device)
    heldout = DeviceCorpus(held_arrays, held_labels, device)
    del train_arrays, held_arrays
    course = None
    if not args.no_course_eval:
        course_rows = [r for r in read_rows(CORPUS_DIR / "metadata.csv") if r["split"] == "test"]
        course_arrays, course_labels, course_texts = load_examples(CORPUS_DIR, course_rows, processor, args.workers)
        course = DeviceCorpus(course_arrays, course_labels, device)
    load_s = time.perf_counter() - t0
    log(f"audio loaded and on {device} in {load_s:.0f} s")

    if args.init_from:
        model = Wav2Vec2ForCTC.from_pretrained(args.init_from).to(device)
        if model.config.vocab_size != len(processor.tokenizer):
            raise ValueError(f"{args.init_from} has {model.config.vocab_size} tokens, this processor {len(processor.tokenizer)}")
        log(f"starting from the weights of {args.init_from}")
    else:
        model = build_model(processor, args).to(device)
    model.train()
    parameters = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-8, **({"fused": True} if device.type == "cuda" else {}),
    )
    warmup = args.warmup_steps

    def lr_at(step: int) -> float:  # step counts from 1
        if step <= warmup:
            return args.lr * step / warmup
        progress = (step - warmup) / max(1, args.max_steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    batch_samples = int(args.batch_seconds * TARGET_SAMPLING_RATE)
    batches = infinite_batches(train.lengths, batch_samples, args.seed)
    log(f"model: {parameters:,} parameters; {args.max_steps} steps, batches of ~{args.batch_seconds:.0f} s, peak lr {args.lr:g}")

    history: list[dict] = []
    running_loss, running_n, audio_seen, utterances_seen = 0.0, 0, 0.0, 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_train = time.perf_counter()
    t_window, audio_window = t_train, 0.0
    step, epoch, loss_value, t_calibration = 0, 0, float("nan"), 0.0
    while step < args.max_steps:
        elapsed = time.perf_counter() - t_train
        if step == CALIBRATION_STEPS[0]:
            t_calibration = elapsed
        if args.minutes and step == CALIBRATION_STEPS[1]:
            # The schedule must end when the time does, so the run's length is fixed once, from the
            # measured speed, before the decay starts; --max-steps of the card reproduces it exactly.
            # The first steps are left out of the timing: each new batch shape plans its kernels then.
            rate = (CALIBRATION_STEPS[1] - CALIBRATION_STEPS[0]) / (elapsed - t_calibration)
            fits = int(step + (args.minutes * 60 - elapsed) * rate * SPEED_MARGIN)
            if fits < args.max_steps:
                log(f"{args.minutes} min fit about {fits} steps: --max-steps {args.max_steps} -> {fits}")
                args.max_steps = fits
        if args.minutes and elapsed > args.minutes * 60 * 1.1:
            log(f"time limit of {args.minutes} min (+10 %) reached at step {step}")
            break
        epoch, (indices, width) = next(batches)
        batch = train.batch(indices, width)
        step += 1
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        with autocast(device):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = float(train.lengths[indices].sum()) / TARGET_SAMPLING_RATE
        audio_seen += seconds
        audio_window += seconds
        utterances_seen += len(indices)
        running_loss += loss.detach()
        running_n += 1
        if step % args.log_every == 0 or step == args.max_steps:
            loss_value = float(running_loss) / running_n
            now = time.perf_counter()
            log(
                f"step {step}/{args.max_steps} epoch {epoch} loss {loss_value:.3f} lr {lr_at(step):.2e}"
                f" | {audio_window / (now - t_window):,.0f} audio-s/s | {audio_seen / 3600:,.1f} h seen"
                f" | {(now - t_train) / 60:.1f} min"
            )
            history.append({"step": step, "loss": round(loss_value, 4), "lr": lr_at(step), "minutes": round((now - t_train) / 60, 2)})
            running_loss, running_n, t_window, audio_window = 0.0, 0, now, 0.0
        if step % args.eval_every == 0 and step < args.max_steps:
            rates = error_rates(transcribe(model, heldout, processor, batch_samples), held_texts)
            log(f"step {step}: held-out WER {rates['wer']:.3f} CER {rates['cer']:.3f}")
            history.append({"step": step, "heldout": rates})
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t_train
    if running_n:
        loss_value = float(running_loss) / running_n

    predictions = transcribe(model, heldout, processor, batch_samples)
    held_rates = error_rates(predictions, held_texts)
    log(f"final held-out WER {held_rates['wer']:.3f} CER {held_rates['cer']:.3f}")
    for prediction, reference in list(zip(predictions, held_texts))[:5]:
        log(f"  REF {reference}\n             HYP {prediction}")
    report: dict = {"heldout": held_rates, "heldout_by_voice": rates_by_voice(predictions, held_texts, by_split["heldout"])}
    log(f"held-out by voice: {report['heldout_by_voice']}")
    if course is not None:
        course_rates = error_rates(transcribe(model, course, processor, batch_samples), course_texts)
        log(f"course test split, zero-shot: WER {course_rates['wer']:.3f} CER {course_rates['cer']:.3f}")
        report["course_test_zero_shot"] = course_rates

    model.save_pretrained(args.out)
    hardware = (
        f"1 x {torch.cuda.get_device_name(device)}, {os.cpu_count()} CPU cores"
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
    )
    report.update(
        {
            "command": command,
            "reproduce": reproduce_command(argv if argv is not None else sys.argv[1:], args.max_steps),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "config": model.config.to_dict(),
            "parameters": parameters,
            "size_mb": (args.out / "model.safetensors").stat().st_size / 1e6,
            "data": data,
            "espeak": espeak_version(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "synth_minutes": synth_s / 60,
            "load_minutes": load_s / 60,
            "train": {
                "steps": step,
                "epochs": utterances_seen / max(1, len(train)),
                "audio_hours_seen": audio_seen / 3600,
                "mean_batch_size": utterances_seen / max(1, step),
                "train_minutes": train_s / 60,
                "precision": "bf16 autocast, float32 weights" if device.type == "cuda" else "float32",
                "hardware": hardware,
                "final_loss": loss_value,
            },
            "history": history,
        }
    )
    report["total_minutes"] = (time.perf_counter() - started) / 60
    report["stages"] = [*earlier_stages(args.init_from), stage_summary(report)]
    write_card(args.out, report)
    log_report = {k: v for k, v in report.items() if k != "config"}
    (args.out / "training_log.json").write_text(json.dumps(log_report, indent=1) + "\n")
    log(f"checkpoint written to {args.out} ({report['size_mb']:.1f} MB) in {report['total_minutes']:.1f} min")
    return report


if __name__ == "__main__":
    main()
