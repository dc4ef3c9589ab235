#!/usr/bin/env python
"""The model that ``cpu_transcribe.py``'s table was measured with: the shipped ``course-base``
checkpoint fine-tuned on the offline corpus's train split with the course recipe (2 CPU cores,
a few minutes)::

    python benchmarks/finetune_course_base.py --out /tmp/course-finetuned --max-steps 300
    python benchmarks/cpu_transcribe.py --model /tmp/course-finetuned
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from asr_helpers.data import load_offline_corpus  # noqa: E402
from asr_helpers.inference import load_trained  # noqa: E402
from asr_helpers.preprocessing import prepare_dataset  # noqa: E402
from asr_helpers.training import build_trainer, course_training_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, default=ROOT / "asr_helpers" / "checkpoints" / "course-base")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-4, help="smaller than the from-scratch course's 2e-3")
    args = parser.parse_args(argv)

    model, processor = load_trained(args.base)
    model.train()
    data = prepare_dataset(load_offline_corpus(), processor)
    training = course_training_args(args.out, args.max_steps, learning_rate=args.lr, disable_tqdm=True)
    trainer = build_trainer(model, training, processor, data["train"], data["test"], "offline")
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(args.out))
    processor.save_pretrained(str(args.out))
    print(f"saved to {args.out}: WER {metrics['eval_wer']:.4f}, CER {metrics['eval_cer']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
