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
    train.add_argument("--max-steps", type=int, default=300)
    train.add_argument("--mode", choices=("offline", "hub"), help="default: ASR_HELPERS_MODE, else detected")

    transcribe = commands.add_parser("transcribe", help="print FILE<TAB>TRANSCRIPT for each audio file")
    transcribe.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    transcribe.add_argument("--batch-size", type=int, default=8)
    transcribe.add_argument("files", nargs="+", type=Path)

    synth = commands.add_parser("synth", help="regenerate the offline corpus with espeak-ng")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--seed", type=int, default=14)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from asr_helpers.training import fine_tune

        metrics = fine_tune(args.output_dir, mode=args.mode, max_steps=args.max_steps)
        print(f"saved model and processor to {args.output_dir}")
        print(f"wer={metrics['eval_wer']:.4f} cer={metrics['eval_cer']:.4f}")
    elif args.command == "transcribe":
        from asr_helpers.inference import load_trained, transcribe

        model, processor = load_trained(args.model)
        for path, text in zip(args.files, transcribe(model, processor, args.files, args.batch_size)):
            print(f"{path}\t{text}")
    else:
        from asr_helpers.synth import generate_corpus

        print(generate_corpus(args.out, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
