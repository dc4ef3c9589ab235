#!/usr/bin/env python
"""Decoding after training: greedy against beam search, with a lexicon, with an n-gram LM; its speed
on CPU threads; and how close CTC word times come to known word boundaries.

Three goals (issue 15), each measured here on the model that ``python -m asr_helpers train`` saves:

- **accuracy**: beam + LM WER <= 0.8 x greedy WER on the course test split (120 files);
- **speed**: decoding with the LM >= 20x real time on 2 CPU threads;
- **timestamps**: word start times within 0.1 s of the truth for >= 90 % of the correctly
  recognised words, on recordings whose word boundaries are known: each word synthesised alone
  with espeak-ng (a test voice), its silence trimmed, the words joined with random pauses.

The LM is a Kneser-Ney trigram of the *training* transcripts (``asr_helpers.ngram``); its words are
the lexicon. Configurations: greedy (``argmax`` + ``batch_decode``, the baseline), and the course's
CTC prefix beam search (``asr_helpers.beam_search``, pure Python): lexicon-free (no word knowledge),
beam + lexicon (no LM), beam + lexicon + LM; and, where flashlight-text is installed, its C++
lexicon decoder with KenLM and the same settings (``asr_helpers.fast.flashlight_decoder``), the
decoder the course used before. WER
is also given on the unseen set (``asr_helpers/unseen``: 36 sentences in no template, new voices,
8-48 kHz files; many of their words are not in the lexicon, and a lexicon decoder can never write those).

Speed: each configuration is warmed up, then timed in ``--repeat`` interleaved passes (the order of
each pass rotates and is recorded); median and min-max. "decode" times the decoder alone on the
model's log-probabilities of all 120 files; "end to end" adds the model (``frame_log_probs``)::

    python -m asr_helpers train --output-dir /tmp/course-model          # 3-6 minutes
    python benchmarks/decoding.py --model /tmp/course-model               # about 2 minutes
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr_helpers import decoding, ngram  # noqa: E402
from asr_helpers.audio import load_audio, resample  # noqa: E402
from asr_helpers.data import CORPUS_DIR, load_offline_corpus, load_unseen_set  # noqa: E402
from asr_helpers.beam_search import BeamSearchDecoder, BeamSettings  # noqa: E402
from asr_helpers.inference import frame_logits, load_trained  # noqa: E402
from asr_helpers.metrics import align, character_error_rate, word_error_rate  # noqa: E402
from asr_helpers.synth import ACCENTS, SAMPLE_RATE, VARIANTS, speak  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402

def test_voice(rng: random.Random) -> tuple[str, int, int]:
    """A voice of the test split (variants the model never heard), speed and pitch as the corpus draws them."""
    return f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS['test'])}", rng.randint(150, 200), rng.randint(30, 70)


def trimmed(samples: np.ndarray, floor_db: float = -35.0) -> np.ndarray:
    """``samples`` without the leading and trailing frames (5 ms) quieter than ``floor_db`` below the
    loudest: espeak-ng pads each word with silence, and the truth is where the speech starts."""
    frame = SAMPLE_RATE // 200
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    rms = np.sqrt((frames**2).mean(axis=1)) + 1e-12
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def words_with_known_times(sentence: str, rng: random.Random) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """One sentence, each word synthesised alone and trimmed, joined with random pauses (0.1-0.5 s)
    after 0.3 s of silence; returns 16 kHz audio and each word's true start and end in seconds."""
    voice, speed, pitch = test_voice(rng)
    pieces, truth, cursor = [np.zeros(int(0.3 * SAMPLE_RATE))], [], 0.3
    for word in sentence.split():
        audio = trimmed(speak(word.lower(), voice, speed, pitch, 50))
        truth.append((word, cursor, cursor + len(audio) / SAMPLE_RATE))
        pause = np.zeros(int(rng.uniform(0.1, 0.5) * SAMPLE_RATE))
        pieces += [audio, pause]
        cursor += (len(audio) + len(pause)) / SAMPLE_RATE
    return resample(np.concatenate(pieces), SAMPLE_RATE, 16_000), truth


def start_errors(truth: list[tuple[str, float, float]], words: list[decoding.Word]) -> list[float]:
    """|predicted - true| start time of every correctly recognised word (an ``equal`` column of the alignment)."""
    errors, i, j = [], 0, 0
    for op, _, _ in align([w for w, _, _ in truth], [w.word for w in words]):
        if op == "equal":
            errors.append(abs(words[j].start - truth[i][1]))
        i += op in ("equal", "substitute", "delete")
        j += op in ("equal", "substitute", "insert")
    return errors


def timestamp_summary(errors: list[float], words: int) -> dict[str, float]:
    return {"correct_words": len(errors), "words": words, "median_s": float(np.median(errors)),
            "p90_s": float(np.percentile(errors, 90)), "within_0.1s": float(np.mean(np.array(errors) <= 0.1))}


def version(package: str) -> str | None:
    """The installed version of ``package``, or None (flashlight-text is optional)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder saved by `python -m asr_helpers train`")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timestamp-sentences", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "decoding-cpu.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()
    model, processor = load_trained(args.model, "cpu")
    corpus = load_offline_corpus(CORPUS_DIR)
    arpa = Path(tempfile.mkdtemp()) / "course-3gram.arpa"
    ngram.write_arpa(ngram.kneser_ney(ngram.sentences_from_text(corpus["train"]["transcription"]), 3), arpa)
    lexicon = ngram.read_arpa(arpa).vocabulary
    tokens, frame_s = processor.tokenizer.convert_ids_to_tokens(list(range(model.config.vocab_size))), decoding.frame_seconds(model, processor)
    decoders = {
        "greedy (batch_decode)": None,
        "beam": BeamSearchDecoder(tokens, frame_s),
        "beam + lexicon": BeamSearchDecoder(tokens, frame_s, words=lexicon),
        "beam + lexicon + LM": BeamSearchDecoder.for_model(model, processor, arpa),
    }
    try:
        from asr_helpers.fast.flashlight_decoder import FlashlightDecoder

        decoders["flashlight: beam + lexicon + LM"] = FlashlightDecoder(tokens, frame_s, arpa)
    except ImportError:
        print("flashlight-text is not installed: its decoder is left out")

    def texts(decoder, log_probs: list[torch.Tensor]) -> list[str]:
        if decoder is None:
            return processor.batch_decode([lp.argmax(dim=-1) for lp in log_probs])
        return [" ".join(w.word for w in decoder(lp)) for lp in log_probs]

    def frame_log_probs(arrays: list[np.ndarray]) -> list[torch.Tensor]:
        """The frames every decoder reads: those of ``transcribe``."""
        return [logits.log_softmax(dim=-1) for logits in frame_logits(model, processor, arrays)]

    # accuracy: the test split and the unseen sentences
    arrays = [load_audio(path) for path in corpus["test"]["path"]]  # the shipped files all load
    references = [normalize_text(t) for t in corpus["test"]["transcription"]]
    audio_s = sum(len(a) for a in arrays) / 16_000
    log_probs = frame_log_probs(arrays)
    unseen_set = load_unseen_set()
    unseen_refs = [normalize_text(s) for s in unseen_set["transcription"]]
    unseen_audio = [load_audio(path) for path in unseen_set["path"]]
    unseen_log_probs = frame_log_probs(unseen_audio)
    oov = sum(w not in set(lexicon) for s in unseen_refs for w in s.split())
    results = {}
    for name, decoder in decoders.items():
        hyps, unseen = texts(decoder, log_probs), texts(decoder, unseen_log_probs)
        results[name] = {"wer": word_error_rate(hyps, references), "cer": character_error_rate(hyps, references),
                         "unseen_wer": word_error_rate(unseen, unseen_refs), "unseen_examples": unseen[:3]}
    if "flashlight: beam + lexicon + LM" in decoders:
        pairs = [(texts(decoders["beam + lexicon + LM"], lp), texts(decoders["flashlight: beam + lexicon + LM"], lp))
                 for lp in (log_probs, unseen_log_probs)]
        agreement = {split: sum(a == b for a, b in zip(*pair)) for split, pair in zip(("test", "unseen"), pairs)}
    else:
        agreement = None
    sweep = [{"beam_size": beam, "lm_weight": weight,
              "wer": word_error_rate(texts(BeamSearchDecoder.for_model(model, processor, arpa, BeamSettings(beam_size=beam, lm_weight=weight)), log_probs), references)}
             for beam in (1, 5, 20, 50) for weight in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]

    # speed: warm-up, then interleaved passes in a rotating order
    jobs = {(name, kind): (lambda d=decoder, k=kind: texts(d, log_probs if k == "decode" else frame_log_probs(arrays)))
            for name, decoder in decoders.items() for kind in ("decode", "end to end")}
    for job in jobs.values():
        job()
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    order = []
    for repeat in range(args.repeat):
        keys = list(jobs)[repeat % len(jobs):] + list(jobs)[: repeat % len(jobs)]
        for key in keys:
            seconds[key].append(timed(jobs[key]))
            order.append(f"{key[0]} / {key[1]}")
    speed = [{"configuration": name, "kind": kind, "median_s": statistics.median(s), "min_s": min(s), "max_s": max(s),
              "x_real_time_median": audio_s / statistics.median(s), "x_real_time_min": audio_s / max(s),
              "x_real_time_max": audio_s / min(s)} for (name, kind), s in seconds.items()]

    # timestamps: words with known boundaries
    rng = random.Random(14)
    recordings = [words_with_known_times(s, rng) for s in references[: args.timestamp_sentences]]
    timing_log_probs = frame_log_probs([audio for audio, _ in recordings])
    errors: dict[str, list[float]] = {"greedy": [], "beam + lexicon + LM": [], "forced alignment": []}
    n_words = sum(len(truth) for _, truth in recordings)
    blank = processor.tokenizer.pad_token_id
    for (_, truth), lp in zip(recordings, timing_log_probs):
        errors["greedy"] += start_errors(truth, decoding.greedy_words(processor, lp, frame_s))
        errors["beam + lexicon + LM"] += start_errors(truth, decoders["beam + lexicon + LM"](lp))
        targets = processor.tokenizer(" ".join(w for w, _, _ in truth))["input_ids"]
        path = processor.tokenizer.convert_ids_to_tokens(decoding.forced_align(lp.numpy(), targets, blank))
        errors["forced alignment"] += start_errors(truth, decoding.words_from_frames(path, frame_s))
    timestamps = {name: timestamp_summary(e, n_words) for name, e in errors.items()}

    greedy_wer, lm_wer = results["greedy (batch_decode)"]["wer"], results["beam + lexicon + LM"]["wer"]
    lm_speed = next(s for s in speed if s["configuration"] == "beam + lexicon + LM" and s["kind"] == "end to end")
    goals = {"lm_wer_le_0.8_greedy": lm_wer <= 0.8 * greedy_wer,
             "lm_x_real_time_ge_20": lm_speed["x_real_time_min"] >= 20,
             "starts_within_0.1s_ge_90pct": timestamps["beam + lexicon + LM"]["within_0.1s"] >= 0.9}
    print(f"{len(arrays)} test files, {audio_s:.1f} s; LM {ngram.read_arpa_counts(arpa)}; {args.threads} threads, load {load_at_start[0]:.2f}")
    print(f"\n| decoding | test WER | test CER | unseen WER ({len(unseen_refs)} sentences, {oov} words not in the lexicon) |")
    for name, r in results.items():
        print(f"| {name} | {r['wer']:.4f} | {r['cer']:.4f} | {r['unseen_wer']:.4f} |")
    if agreement is not None:
        print(f"the course's decoder and flashlight's write the same words for {agreement['test']}/{len(arrays)} test "
              f"and {agreement['unseen']}/{len(unseen_refs)} unseen recordings")
    print("\n| decoding | kind | x real time, median (min-max) | seconds, median |")
    for s in speed:
        print(f"| {s['configuration']} | {s['kind']} | {s['x_real_time_median']:.0f} ({s['x_real_time_min']:.0f}-{s['x_real_time_max']:.0f}) | {s['median_s']:.3f} |")
    print("\n| word times from | correct words | start error median | 90th percentile | within 0.1 s |")
    for name, t in timestamps.items():
        print(f"| {name} | {t['correct_words']}/{t['words']} | {t['median_s']:.3f} s | {t['p90_s']:.3f} s | {100 * t['within_0.1s']:.1f} % |")
    print("\ngoals:", goals)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
        "load_average_at_start": load_at_start, "model": str(args.model), "files": len(arrays), "audio_seconds": audio_s,
        "versions": {name: version(name) for name in ("torch", "transformers", "numpy", "flashlight-text")},
        "lm": {"order": 3, "counts": ngram.read_arpa_counts(arpa), "lexicon_words": len(lexicon)},
        "settings": asdict(BeamSettings()), "accuracy": results, "same_words_as_flashlight": agreement, "unseen_oov_words": oov,
        "sweep": sweep, "speed": speed, "timing_order": order, "timestamps": timestamps, "goals": goals,
    }, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
