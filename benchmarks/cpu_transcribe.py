#!/usr/bin/env python
"""CPU transcription speed: the transformers pipeline, as the guide calls it and as a user who knows it would, against ``transcribe``.

Every path gets the same files (default: the offline corpus's test split, 120 files) and does the
whole job, decoding and resampling each file included, on ``--threads`` CPU threads (default 2,
a classroom laptop). Paths:

- ``pipeline, 1 file at a time``: the guide's ``pipeline("automatic-speech-recognition")``
  called on one file's samples at a time;
- ``pipeline, batch_size=8``: the same pipeline given the whole list with ``batch_size=8``;
- ``pipeline, chunk_length_s=20, batch_size=8``: the same, recordings cut into 20 s chunks with
  the pipeline's own stride (``chunk_length_s / 6`` each side, written out), chunks batched by 8;
- ``transcribe, default modules``: ``asr_helpers.inference.transcribe`` as called by default
  (batches by length, the model's own convolution modules);
- ``transcribe(fast=True)``: the convolutions computed as matrix products and FFTs
  (``asr_helpers.fast.convolutions.convolutions_replaced``);
- ``transcribe(fast=True) int8``: the same on ``quantize_dynamic_int8(model)``.

The paths run in ``repeats.interleaved_order`` (an untimed warm-up pass of each, then
``--repeats`` timed rounds, the order rotated every round), and each is reported as the median
and min-max of its timed passes in "x real time" (audio seconds per wall second). The project's
paths are compared with the best pipeline configuration (highest median), and with the guide's
call. Also: WER against the reference transcripts, and how many texts equal the guide's
pipeline's. Writes ``<out>/cpu-<processor>.json``::

    python benchmarks/cpu_transcribe.py                      # 120 files, 5 timed rounds: about 2 minutes on 2 idle cores
    python benchmarks/cpu_transcribe.py --limit 8 --repeats 1 --out /tmp/cpu   # smoke test
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import transformers  # noqa: E402

from asr_helpers.audio import load_audio  # noqa: E402
from asr_helpers.data import CORPUS_DIR  # noqa: E402
from asr_helpers.fast.int8 import quantize_dynamic_int8  # noqa: E402
from asr_helpers.inference import load_trained, transcribe  # noqa: E402
from asr_helpers.metrics import word_error_rate  # noqa: E402
from asr_helpers.preprocessing import COURSE_CHECKPOINT  # noqa: E402
from asr_helpers.text import normalize_text  # noqa: E402
from repeats import cpu_name, machine, ratio, run_interleaved, run_order, slug, timed_spreads, write_json  # noqa: E402

DEFAULT_MODEL = COURSE_CHECKPOINT
GUIDE_PIPELINE = "pipeline, 1 file at a time (the guide)"

Transcriber = Callable[[Sequence[Path]], list[str]]


def test_split(corpus: Path, limit: int | None) -> tuple[list[Path], list[str]]:
    with (corpus / "metadata.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    rows = rows[:limit] if limit else rows
    return [corpus / row["file"] for row in rows], [normalize_text(row["transcription"]) for row in rows]


def pipeline_calls(batch_size: int, chunk_length_s: float) -> dict[str, dict]:
    """Keyword arguments of each pipeline configuration (beyond the guide's one-file call): what a
    user who knows the pipeline passes with the list of recordings. The stride is the pipeline's
    default (``chunk_length_s / 6`` on each side), written out so the JSON says which it was."""
    batched = {"batch_size": batch_size}
    chunked = {"chunk_length_s": chunk_length_s, "stride_length_s": chunk_length_s / 6, **batched}
    return {f"pipeline, batch_size={batch_size}": batched,
            f"pipeline, chunk_length_s={chunk_length_s:g}, batch_size={batch_size}": chunked}


def pipeline_paths(pipe, rate: int, batch_size: int, chunk_length_s: float) -> dict[str, Transcriber]:
    """The guide's call, one file at a time, and the configurations of :func:`pipeline_calls`."""

    def guide(paths: Sequence[Path]) -> list[str]:
        return [pipe(load_audio(str(p), rate))["text"] for p in paths]

    def called_with(kwargs: dict) -> Transcriber:
        return lambda paths: [out["text"] for out in pipe([load_audio(str(p), rate) for p in paths], **kwargs)]

    return {GUIDE_PIPELINE: guide, **{name: called_with(kw) for name, kw in pipeline_calls(batch_size, chunk_length_s).items()}}


def transcribe_paths(model, processor, batch_size: int) -> dict[str, Transcriber]:
    """The project's ``transcribe``: as called by default, with ``fast=True``, and in int8."""
    quantized = quantize_dynamic_int8(model)

    def texts(on, paths, **kwargs) -> list[str]:
        return [result.text for result in transcribe(on, processor, paths, batch_size=batch_size, **kwargs)]

    return {
        f"transcribe, batch {batch_size}, default modules": lambda ps: texts(model, ps),
        f"transcribe(fast=True), batch {batch_size}": lambda ps: texts(model, ps, fast=True),
        f"transcribe(fast=True) int8, batch {batch_size}": lambda ps: texts(quantized, ps, fast=True),
    }


def timed(run: Transcriber, files: Sequence[Path], audio_seconds: float, texts: dict[str, list[str]], name: str) -> dict:
    """One pass of a path over all files: its wall time and real-time factor; keeps its texts."""
    began = time.perf_counter()
    texts[name] = run(files)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "x_real_time": audio_seconds / seconds}


def best_pipeline(speeds: dict[str, dict]) -> str:
    """The pipeline configuration with the highest median speed: the fair baseline."""
    return max((name for name in speeds if name.startswith("pipeline")), key=lambda name: speeds[name]["median"])


def compare(speeds: dict[str, dict], texts: dict[str, list[str]], references: list[str]) -> list[dict]:
    """Per path: speed, speed-up over the best pipeline configuration and over the guide's call,
    WER, and texts equal to the guide's pipeline's."""
    best = best_pipeline(speeds)
    return [dict(name=name, x_real_time=speed, vs_best_pipeline=ratio(speed, speeds[best]),
                 vs_guide_pipeline=ratio(speed, speeds[GUIDE_PIPELINE]), wer=word_error_rate(texts[name], references),
                 equal_to_guide_pipeline=sum(a == b for a, b in zip(texts[name], texts[GUIDE_PIPELINE])))
            for name, speed in speeds.items()]


def table(rows: list[dict], best: str, files: int) -> str:
    head = f"{'path':<48}{'x real time median (min-max)':>30}{'vs best pipeline':>18}{'WER':>8}{'= guide pipeline':>18}"
    lines = [head, "-" * len(head)]
    for r in rows:
        s, v = r["x_real_time"], r["vs_best_pipeline"]
        lines.append(f"{r['name']:<48}{s['median']:>11.1f} ({s['min']:.1f}-{s['max']:.1f}){'':>5}"
                     f"{v['median']:>6.2f}x ({v['min']:.2f}-{v['max']:.2f}){r['wer']:>8.4f}"
                     f"{r['equal_to_guide_pipeline']:>11}/{files}")
    return "\n".join(lines) + f"\nbest pipeline configuration: {best}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a saved model folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="for the pipeline and transcribe (default: %(default)s)")
    parser.add_argument("--chunk-length-s", type=float, default=20.0, help="the chunked pipeline's chunks (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up round (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test files")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, processor = load_trained(args.model, "cpu")
    files, references = test_split(args.corpus, args.limit)
    rate = processor.feature_extractor.sampling_rate
    audio_seconds = sum(len(load_audio(str(f), rate)) for f in files) / rate
    where = machine("cpu")
    print(f"{len(files)} files, {audio_seconds:.1f} s of audio; model {args.model}; {args.threads} threads; "
          f"{where['cpu']}, {where['cores']} cores, load average {where['load_average_at_start'][0]:.2f}; "
          f"torch {torch.__version__}", flush=True)

    pipe = transformers.pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                                 feature_extractor=processor.feature_extractor, device="cpu")
    paths = {**pipeline_paths(pipe, rate, args.batch_size, args.chunk_length_s),
             **transcribe_paths(model, processor, args.batch_size)}
    texts: dict[str, list[str]] = {}
    runs = {name: lambda name=name: timed(paths[name], files, audio_seconds, texts, name) for name in paths}
    results = run_interleaved(runs, args.repeats)
    speeds = timed_spreads(results, "x_real_time")
    rows = compare(speeds, texts, references)
    best = best_pipeline(speeds)
    print(f"\norder: {' | '.join(run_order(results))}\n")
    print(table(rows, best, len(files)))

    summary = dict(
        **where, threads=args.threads, model=str(args.model), files=len(files),
        audio_seconds=audio_seconds, batch_size=args.batch_size,
        pipeline_calls=pipeline_calls(args.batch_size, args.chunk_length_s),
        method=dict(repeats=args.repeats, warmup_round="one untimed pass of every path first",
                    order="round r runs the paths rotated by r-1 places", runs_in_order=run_order(results),
                    statistic="median and min-max of the timed passes; speed-ups: ratio of medians, "
                              "range from slowest/fastest to fastest/slowest"),
        best_pipeline=best, results=rows, runs=results, texts=texts, references=references,
    )
    path = args.out / f"cpu-{slug(cpu_name())}.json"
    write_json(path, summary)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
