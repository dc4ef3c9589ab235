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
5. write the checkpoint (safetensors, processor, training_log.json) and its model card README.md
   (``pretraining_card.py`` beside this file).

Reproduce the shipped checkpoint with the commands its card lists under "Reproduce": ten runs
of 3.5-8 minutes on one H200 GPU with 16 CPU cores and three of 28-75 minutes on 2 CPU cores, each
starting from the previous one's weights (``--init-from``) on a corpus of another seed. ``--minutes`` fits a
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

import pretraining_card as card  # noqa: E402
import pretraining_corpus as pretrain  # noqa: E402
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
    parser.add_argument(
        "--espeak-share", type=float, default=pretrain.ESPEAK_SHARE,
        help="with --voices natural: espeak-ng's share of the rows, flite and festival share the rest in the table's ratio",
    )
    parser.add_argument(
        "--wideband-share", type=float, default=pretrain.WIDEBAND_SHARE,
        help="with --channels mixed: the share of wideband rows, the others are telephone band",
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
    args = parser.parse_args(argv)
    if args.minutes and args.warmup_steps < CALIBRATION_STEPS[1]:
        # Steps after the warm-up follow the cosine of --max-steps: timed there, the run would decay on one
        # schedule until --minutes fixed the other, and the card's --max-steps command would not repeat it.
        parser.error(
            f"--minutes times steps {CALIBRATION_STEPS[0]}-{CALIBRATION_STEPS[1]}, which must lie inside the warm-up:"
            f" give --warmup-steps {CALIBRATION_STEPS[1]} or more (or --max-steps instead of --minutes)"
        )
    return args


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
        report = card.saved_report(args.out)
        if args.domain_shift:
            report["domain_shift"] = json.loads(args.domain_shift.read_text())
            log_report = {k: v for k, v in report.items() if k != "config"}
            (args.out / "training_log.json").write_text(json.dumps(log_report, indent=1) + "\n")
        card.write_card(args.out, report)
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
    moved = pretrain.moved_shares(args.voices, args.espeak_share, args.wideband_share)
    voices += "".join(f"-{name.removesuffix('_share')}{share:g}" for name, share in moved.items())
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
            espeak_share=args.espeak_share, wideband_share=args.wideband_share,
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
            # measured speed, inside the warm-up (parse_args): --max-steps of the card repeats its schedule.
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
    report["stages"] = [*card.earlier_stages(args.init_from), card.stage_summary(report)]
    card.write_card(args.out, report)
    log_report = {k: v for k, v in report.items() if k != "config"}
    (args.out / "training_log.json").write_text(json.dumps(log_report, indent=1) + "\n")
    log(f"checkpoint written to {args.out} ({report['size_mb']:.1f} MB) in {report['total_minutes']:.1f} min")
    return report


if __name__ == "__main__":
    main()
