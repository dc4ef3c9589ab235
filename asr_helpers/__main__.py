"""Command line: ``python -m asr_helpers train | transcribe | synth``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_MODEL_DIR = Path("outputs") / "wav2vec2-ctc"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asr_helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune Wav2Vec2 with CTC, evaluate, save")
    train.add_argument("--output-dir", type=Path, default=DEFAULT_MODEL_DIR)
    train.add_argument("--max-steps", type=int, help="optimizer steps (default: the recipe's: 510 offline, under 3 min on 2 CPU cores; 2,000 on the Hub with a GPU; 100 without)")
    train.add_argument("--mode", choices=("offline", "hub"), help="default: ASR_HELPERS_MODE, else detected")
    train.add_argument("--corpus", type=Path, help="train on this corpus folder (the layout `synth` writes), offline")
    train.add_argument("--on-bad-rows", choices=("fail", "drop"), default="fail",
                       help="rows the model cannot use (bad audio or transcript): stop with a report, or drop and report them")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")

    transcribe = commands.add_parser("transcribe", help="print FILE<TAB>TRANSCRIPT for each audio file")
    transcribe.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    transcribe.add_argument("--batch-size", type=int, default=8)
    transcribe.add_argument("--fast", action="store_true", help="compute the convolutions as FFTs and matrix products (same text, faster on CPU)")
    transcribe.add_argument("files", nargs="+", type=Path)

    synth = commands.add_parser("synth", help="regenerate the offline corpus with espeak-ng")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--seed", type=int, default=14)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; problems with the user's files or data end as ``error: ...`` lines and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from asr_helpers.checks import BadRowsError
        from asr_helpers.training import NonFiniteLossError, fine_tune

        if args.corpus and args.mode == "hub":
            parser.error("--corpus is offline data: it cannot be combined with --mode hub")
        try:
            metrics = fine_tune(args.output_dir, mode=args.mode, max_steps=args.max_steps, resume=args.resume,
                                on_bad_rows=args.on_bad_rows, corpus_dir=args.corpus)
        except (BadRowsError, NonFiniteLossError, FileNotFoundError) as error:
            return _fail(error)
        print(f"saved model and processor to {args.output_dir}")
        print(f"wer={metrics['eval_wer']:.4f} cer={metrics['eval_cer']:.4f}")
    elif args.command == "transcribe":
        from transformers.utils.logging import disable_progress_bar

        from asr_helpers.audio import AudioDecodeError
        from asr_helpers.inference import load_trained, transcribe_each

        disable_progress_bar()  # stderr is for one line per file that failed
        try:
            model, processor = load_trained(args.model)
        except FileNotFoundError as error:
            return _fail(error)
        results = transcribe_each(model, processor, args.files, args.batch_size, fast=args.fast)
        for path, result in zip(args.files, results):
            if isinstance(result, AudioDecodeError):
                _fail(result)
            else:
                print(f"{path}\t{result}")
        return 2 if any(isinstance(result, AudioDecodeError) for result in results) else 0
    else:
        from asr_helpers.synth import generate_corpus

        print(generate_corpus(args.out, seed=args.seed))
    return 0


def _fail(error: Exception) -> int:
    """One ``error: ...`` line on stderr, no traceback: the message already names the file and the problem."""
    print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
