#!/usr/bin/env python
"""What a user of the demo page waits for: a 10-second clip, once uploaded, to its transcript, word table
and figure; greedy decoding, on ``--threads`` CPU threads (default 2, a classroom laptop).

Paths, all on the same file (course test recordings joined to ``--seconds``, a 16 kHz WAV: speech the
model knows, so the words and the figure are those of a real transcript):

- ``respond``: :func:`asr_helpers.demo.respond`, what the page's button runs: read and resample the
  file, the model, greedy words, the table and the figure;
- ``transcriber only``: the same without the table and the figure (:class:`asr_helpers.demo.Transcriber`);
- ``HTTP API``: ``gradio_client`` against the app served on 127.0.0.1 in this process: the upload,
  the queue, ``respond``, and the response with the figure as an image (``--no-http`` leaves it out).

They run in ``repeats.interleaved_order`` (an untimed warm-up round, then ``--repeats`` timed rounds,
the order rotated each round); each is reported as the median and min-max of its timed runs, with the
order and the machine's load average (before and after) written out with them. Writes
``<out>/demo_latency-<processor>.json``::

    python benchmarks/demo_latency.py                          # the course model (trained first if not cached), 5 rounds
    python benchmarks/demo_latency.py --model DIR --repeats 3 --out /tmp/demo
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr_helpers import demo  # noqa: E402
from asr_helpers.audio import load_audio  # noqa: E402
from asr_helpers.data import CORPUS_DIR  # noqa: E402
from repeats import cpu_name, machine, run_interleaved, run_order, slug, timed_spreads, write_json  # noqa: E402


def clip(seconds: float, folder: Path) -> Path:
    """Course test recordings, in order, joined and cut to ``seconds``, as a 16 kHz float WAV."""
    parts, total = [], 0
    for path in sorted((CORPUS_DIR / "test").glob("*.flac")):
        parts.append(load_audio(str(path)))
        total += len(parts[-1])
        if total >= seconds * 16_000:
            break
    out = folder / f"clip-{seconds:g}s.wav"
    sf.write(out, np.concatenate(parts)[: int(seconds * 16_000)], 16_000, subtype="FLOAT")
    return out


def timed(call: Callable[[], object]) -> dict:
    start = time.perf_counter()
    call()
    return {"seconds": time.perf_counter() - start}


def http_client(transcriber: demo.Transcriber):
    """The page served on a free port of 127.0.0.1 in this process, and a client for it."""
    from gradio_client import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = demo.build_page(transcriber)
    demo.launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
    return app, Client(f"http://127.0.0.1:{port}/", verbose=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a saved model folder (default: the offline course model, trained now if not cached)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the clip (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up round (default: %(default)s)")
    parser.add_argument("--no-http", action="store_true", help="leave out the HTTP API path")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model is None:
        from asr_helpers.training import course_model

        args.model = course_model("offline")
    transcriber = demo.Transcriber.load(args.model, None, "cpu")
    folder = Path(tempfile.mkdtemp(prefix="demo_latency_"))
    os.environ.setdefault("GRADIO_TEMP_DIR", str(folder / "gradio"))
    path = clip(args.seconds, folder)
    where = machine("cpu")
    print(f"{args.seconds:g} s clip; model {args.model}; {args.threads} threads; {where['cpu']}, {where['cores']} cores, "
          f"load average {where['load_average_at_start'][0]:.2f}; torch {torch.__version__}", flush=True)

    paths: dict[str, Callable[[], object]] = {
        "respond (the page's function)": lambda: demo.respond(transcriber, str(path)),
        "transcriber only (no table, no figure)": lambda: transcriber(path),
    }
    app = None
    if not args.no_http:
        from gradio_client import handle_file

        app, client = http_client(transcriber)
        paths["HTTP API (upload, queue, respond, response)"] = lambda: client.predict(handle_file(str(path)), api_name="/transcribe")
    results = run_interleaved({name: lambda call=call: timed(call) for name, call in paths.items()}, args.repeats)
    if app is not None:
        app.close()
    spreads = timed_spreads(results, "seconds")
    load_after = os.getloadavg()
    text = " ".join(w.word for w in transcriber(path).greedy)

    print(f"\norder: {' | '.join(run_order(results))}\n")
    print(f"{'path':<46} {'median s':>9} {'min-max s':>13} {'runs':>5}")
    for name, spread in spreads.items():
        print(f"{name:<46} {spread['median']:>9.3f} {spread['min']:>6.3f}-{spread['max']:<6.3f} {spread['n']:>5}")
    print(f"load average: {where['load_average_at_start'][0]:.2f} before, {load_after[0]:.2f} after; transcript: {text}")

    summary = dict(
        **where, gradio=demo.gr.__version__, load_average_at_end=load_after, threads=args.threads, model=str(args.model), clip_seconds=args.seconds,
        method=dict(repeats=args.repeats, warmup_round="one untimed run of every path first",
                    order="round r runs the paths rotated by r-1 places", runs_in_order=run_order(results),
                    statistic="median and min-max of the timed runs, wall-clock seconds"),
        results=spreads, runs=results, transcript=text,
    )
    out = args.out / f"demo_latency-{slug(cpu_name())}.json"
    write_json(out, summary)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
