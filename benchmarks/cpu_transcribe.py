#!/usr/bin/env python
"""CPU transcription speed: the guide's pipeline, one file at a time, against the project's path.

Every path gets the same files (default: the offline corpus's test split, 120 files) and does the
whole job, decoding and resampling each file included, on ``--threads`` CPU threads (default 2,
a classroom laptop). Paths:

- ``pipeline``: the guide's ``pipeline("automatic-speech-recognition")`` around the model
  called on one file's samples at a time;
- ``naive batches``: ``greedy_decode`` on batches of files in input order,
  padded to the longest (what batching looks like without grouping by length);
- ``transcribe fp32``: ``asr_helpers.inference.transcribe(..., fast=True)``, which batches by length
  and computes the convolutions as matrix products and FFTs (``asr_helpers.fast.convolutions.convolutions_replaced``);
- ``transcribe fp32, direct convs``: ``transcribe`` as it is called by default (the model's own
  convolution modules), to show what computing them differently brings;
- ``transcribe int8``: ``transcribe(..., fast=True)`` on ``quantize_dynamic_int8(model)``.

Reported: real-time factor as "x real time" (audio seconds per wall second; best of ``--repeat``
passes, the paths interleaved in each pass),
speed-up over the pipeline, WER against the reference transcripts, and how many texts equal the
pipeline's. Writes ``benchmarks/results/cpu-<processor>.json``::

    python benchmarks/cpu_transcribe.py                      # course-base checkpoint, 2 threads
    python benchmarks/cpu_transcribe.py --model /tmp/bench-model --limit 20 --repeat 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import transformers  # noqa: E402

from asr_helpers.audio import load_audio  # noqa: E402
from asr_helpers.data import CORPUS_DIR  # noqa: E402
from asr_helpers.fast.int8 import quantize_dynamic_int8  # noqa: E402
from asr_helpers.inference import greedy_decode, load_trained, transcribe  # noqa: E402
from asr_helpers.metrics import word_error_rate  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402

DEFAULT_MODEL = ROOT / "asr_helpers" / "checkpoints" / "course-base"


def test_split(corpus: Path, limit: int | None) -> tuple[list[Path], list[str]]:
    with (corpus / "metadata.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    rows = rows[:limit] if limit else rows
    return [corpus / row["file"] for row in rows], [normalize_text(row["transcription"]) for row in rows]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a saved model folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="8,32",
                        help="comma-separated batch sizes for transcribe; the first also for naive batches (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes per path; the best counts")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test files")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model, processor = load_trained(args.model)
    files, references = test_split(args.corpus, args.limit)
    rate = processor.feature_extractor.sampling_rate
    audio_seconds = sum(len(load_audio(str(f), rate)) for f in files) / rate
    load = os.getloadavg()
    print(f"{len(files)} files, {audio_seconds:.1f} s of audio; model {args.model}; {args.threads} threads; "
          f"{cpu_name()}, {os.cpu_count()} cores, load average {load[0]:.2f}; torch {torch.__version__}", flush=True)

    pipe = transformers.pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                                 feature_extractor=processor.feature_extractor, device="cpu")
    quantized = quantize_dynamic_int8(model)

    def pipeline_path(paths):
        return [pipe(load_audio(str(p), rate))["text"] for p in paths]

    sizes = [int(b) for b in args.batch_sizes.split(",")]

    def naive_path(paths):
        texts = []
        for start in range(0, len(paths), sizes[0]):
            arrays = [load_audio(str(p), rate) for p in paths[start : start + sizes[0]]]
            texts += greedy_decode(model, processor, arrays)
        return texts

    paths = {"pipeline (1 file at a time)": pipeline_path, f"naive batches of {sizes[0]}": naive_path}
    for size in sizes:
        paths[f"transcribe fp32, batch {size}"] = lambda ps, size=size: transcribe(model, processor, ps, size, fast=True)
    paths[f"transcribe fp32, batch {sizes[0]}, direct convs"] = lambda ps: transcribe(model, processor, ps, sizes[0])
    for size in sizes:
        paths[f"transcribe int8, batch {size}"] = lambda ps, size=size: transcribe(
            quantized, processor, ps, size, fast=True
        )
    for run in paths.values():
        run(files[:4])  # warm-up: first calls allocate and pick kernels
    times: dict[str, list[float]] = {name: [] for name in paths}
    texts: dict[str, list[str]] = {}
    for _ in range(args.repeat):  # interleaved, so that a slow spell of a shared machine hits every path
        for name, run in paths.items():
            began = time.perf_counter()
            texts[name] = run(files)
            times[name].append(time.perf_counter() - began)
    results = []
    for name in paths:
        best = min(times[name])
        results.append(dict(name=name, seconds=best, all_seconds=times[name], x_real_time=audio_seconds / best,
                            wer=word_error_rate(texts[name], references), texts=texts[name]))
        print(f"{name}: x{results[-1]['x_real_time']:.1f} real time, WER {results[-1]['wer']:.4f}", flush=True)

    base = results[0]
    for r in results:
        r["speedup_vs_pipeline"] = r["x_real_time"] / base["x_real_time"]
        r["equal_to_pipeline"] = sum(a == b for a, b in zip(r["texts"], base["texts"]))

    print(f"\n{'path':<40}{'x real time':>12}{'speed-up':>10}{'WER':>8}{'= pipeline':>12}")
    for r in results:
        print(f"{r['name']:<40}{r['x_real_time']:>12.1f}{r['speedup_vs_pipeline']:>9.2f}x{r['wer']:>8.4f}"
              f"{r['equal_to_pipeline']:>7}/{len(files)}")

    summary = dict(
        cpu=cpu_name(), cores=os.cpu_count(), threads=args.threads, load_average_at_start=load,
        model=str(args.model), files=len(files), audio_seconds=audio_seconds, batch_sizes=sizes,
        repeat=args.repeat, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
        versions=dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                      numpy=np.__version__),
        pipeline_x_real_time=base["x_real_time"],
        results=[{k: v for k, v in r.items() if k != "texts"} for r in results],
        texts={r["name"]: r["texts"] for r in results}, references=references,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu-{re.sub(r'[^a-z0-9]+', '-', cpu_name().lower()).strip('-')}.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
