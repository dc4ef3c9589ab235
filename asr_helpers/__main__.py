"""Command line: ``python -m asr_helpers train | transcribe | evaluate | lm | synth | demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from asr_helpers.beam_search import BeamSearchDecoder
    from asr_helpers.inference import Transcript

DEFAULT_MODEL_DIR = Path("outputs") / "wav2vec2-ctc"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asr_helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune Wav2Vec2 with CTC, evaluate, save")
    train.add_argument("--output-dir", type=Path, default=DEFAULT_MODEL_DIR)
    train.add_argument("--max-steps", type=int, help="optimizer steps (default: the recipe's: 450 offline, under 3 min on 2 CPU cores; 2,000 on the Hub with a GPU; 100 without)")
    train.add_argument("--mode", choices=("offline", "hub"), help="default: ASR_HELPERS_MODE, else detected")
    train.add_argument("--corpus", type=Path, help="train on this corpus folder (the layout `synth` writes), offline")
    train.add_argument("--on-bad-rows", choices=("fail", "drop"), default="fail",
                       help="rows the model cannot use (bad audio or transcript): stop with a report, or drop and report them")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")

    decoding = argparse.ArgumentParser(add_help=False)
    decoding.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    decoding.add_argument("--lm", type=Path, help="beam search with this ARPA n-gram model (from `lm`); its words are the lexicon (default: greedy)")
    decoding.add_argument("--lm-weight", type=float, help="with --lm: weight of the LM against the model (default: BeamSettings's)")
    decoding.add_argument("--beam-size", type=int, help="with --lm: hypotheses kept per frame (default: BeamSettings's)")
    decoding.add_argument("--batch-size", type=int, default=8)
    decoding.add_argument("--fast", action="store_true", help="compute the convolutions as FFTs and matrix products (same text, faster on CPU)")
    decoding.add_argument("--device", help="where the model runs: cpu, cuda, cuda:1, ... (default: cuda when a GPU is available, else cpu)")

    transcribe = commands.add_parser("transcribe", parents=[decoding], help="print FILE<TAB>TRANSCRIPT for each audio file")
    transcribe.add_argument("--timestamps", action="store_true", help="word start and end times in seconds (tsv: one FILE<TAB>START<TAB>END<TAB>WORD line per word)")
    transcribe.add_argument("--format", choices=("tsv", "json"), default="tsv", help='json: one {"file", "text"[, "words"]} object per line')
    transcribe.add_argument("files", nargs="+", type=Path)

    evaluate = commands.add_parser("evaluate", parents=[decoding], help="print wer=... cer=... on a corpus's test split")
    evaluation_set = evaluate.add_mutually_exclusive_group()
    evaluation_set.add_argument("--corpus", type=Path, help="a corpus folder in the layout `synth` writes (default: the shipped one)")
    evaluation_set.add_argument("--unseen", action="store_true",
                                help="the unseen set instead (new sentences and voices, 8-48 kHz files, wideband and telephone): a line per format, then all")

    lm = commands.add_parser("lm", help="estimate an n-gram language model from training transcripts, as an ARPA file")
    lm.add_argument("--out", type=Path, required=True)
    lm.add_argument("--order", type=int, default=3)
    source = lm.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, help="the training split of this corpus folder (default: the shipped one)")
    source.add_argument("--text", type=Path, help="a text file, one sentence per line")

    synth = commands.add_parser("synth", help="regenerate the offline corpus with espeak-ng")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--seed", type=int, default=14)
    synth.add_argument("--n-train", type=int, default=480, help="training utterances (a smaller corpus is a prefix of the default one)")
    synth.add_argument("--n-test", type=int, default=120, help="test utterances")

    demo = commands.add_parser("demo", help="a web page (on 127.0.0.1) to record or upload audio and read the transcript with word times; needs asr_helpers[demo]")
    demo.add_argument("--model", type=Path, help=f"default: {DEFAULT_MODEL_DIR} when `train` saved a model there, else notebook 05's course model (trained now if not cached)")
    demo.add_argument("--lm", type=Path, help="also beam search with this ARPA n-gram model (from `lm`), side by side with greedy")
    demo.add_argument("--port", type=int, help="default: the first free port from 7860")
    demo.add_argument("--device", help="where the model runs: cpu, cuda, ... (default: cuda when a GPU is available, else cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; problems with the user's files or data end as ``error: ...`` lines and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    elif args.command == "transcribe":
        return _transcribe(args)
    elif args.command == "evaluate":
        return _evaluate(args)
    elif args.command == "lm":
        return _lm(args)
    elif args.command == "demo":
        return _demo(args)
    else:
        from asr_helpers.synth import generate_corpus

        print(generate_corpus(args.out, seed=args.seed, n_train=args.n_train, n_test=args.n_test))
    return 0


def _train(args: argparse.Namespace) -> int:
    """Decide the mode once (a corpus folder means offline), then fine-tune, save and print the scores."""
    from asr_helpers.checks import BadRowsError, NonFiniteLossError
    from asr_helpers.data import resolve_mode
    from asr_helpers.training import fine_tune, is_main_process

    try:
        mode = resolve_mode(args.mode, corpus_dir=args.corpus, verbose=is_main_process())
        metrics = fine_tune(args.output_dir, mode, max_steps=args.max_steps, resume=args.resume,
                            on_bad_rows=args.on_bad_rows, corpus_dir=args.corpus)
    except (BadRowsError, NonFiniteLossError, FileNotFoundError, ValueError) as error:
        return _fail(error)
    if is_main_process():  # under torchrun, one report: the main process's
        print(f"saved model and processor to {args.output_dir}")
        print(f"wer={metrics['eval_wer']:.4f} cer={metrics['eval_cer']:.4f}")
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    """Each file's transcript (greedy, or with ``--lm`` the beam search), or its ``error:`` line."""
    from asr_helpers.audio import AudioDecodeError
    from asr_helpers.inference import transcribe

    try:
        model, processor, decoder = _load_decoding(args)
    except (FileNotFoundError, ValueError) as error:
        return _fail(error)
    results = transcribe(model, processor, args.files, decoder=decoder, batch_size=args.batch_size, fast=args.fast)
    for path, result in zip(args.files, results):
        if isinstance(result, AudioDecodeError):
            _fail(result)
        else:
            _print_transcript(path, result, args.format, args.timestamps)
    return 2 if any(isinstance(result, AudioDecodeError) for result in results) else 0


def _print_transcript(path: Path, result: Transcript, form: str, timestamps: bool) -> None:
    """One file's output: ``FILE<TAB>TEXT`` or, timed, a ``FILE<TAB>START<TAB>END<TAB>WORD`` line per
    word; or one JSON object per line."""
    if form == "json":
        record = {"file": str(path), "text": result.text}
        if timestamps:
            record["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in result.words]
        print(json.dumps(record, ensure_ascii=False))
    elif timestamps:
        for word in result.words:
            print(f"{path}\t{word.start:.2f}\t{word.end:.2f}\t{word.word}")
    else:
        print(f"{path}\t{result.text}")


def _evaluate(args: argparse.Namespace) -> int:
    """WER and CER of greedy or LM decoding on the test split of the shipped corpus or ``--corpus``,
    or, with ``--unseen``, on the unseen set: one line per file format, then the whole set."""
    from asr_helpers.audio import AudioDecodeError
    from asr_helpers.data import CORPUS_DIR, load_offline_corpus, load_unseen_set
    from asr_helpers.inference import transcribe
    from asr_helpers.metrics import word_error_rates_by
    from asr_helpers.text import normalize_text

    try:
        rows = load_unseen_set() if args.unseen else load_offline_corpus(args.corpus or CORPUS_DIR)["test"]
        model, processor, decoder = _load_decoding(args)
    except (FileNotFoundError, ValueError) as error:
        return _fail(error)
    results = transcribe(model, processor, rows["path"], decoder=decoder, batch_size=args.batch_size, fast=args.fast, progress=True)
    bad = [_fail(error) for error in results if isinstance(error, AudioDecodeError)]
    if bad:
        return 2  # a score over part of the set would not be comparable
    hypotheses = [result.text for result in results]
    references = [normalize_text(text) for text in rows["transcription"]]
    if not args.unseen:
        print(_scores(hypotheses, references))
        return 0
    bands = dict(zip(rows["format"], rows["band"]))
    for name, (wer, cer, files) in word_error_rates_by(hypotheses, references, list(rows["format"])).items():
        print(f"{name:<15} {bands[name]:<9} files={files:<3} wer={wer:.4f} cer={cer:.4f}")
    print(f"{'all':<25} files={len(rows):<3} " + _scores(hypotheses, references))
    return 0


def _scores(hypotheses: list[str], references: list[str]) -> str:
    """``wer=... cer=...``, four decimals, over these sentences together (not a mean of sentence scores)."""
    from asr_helpers.metrics import character_error_rate, word_error_rate

    return f"wer={word_error_rate(hypotheses, references):.4f} cer={character_error_rate(hypotheses, references):.4f}"


def _load_decoding(args: argparse.Namespace) -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor, BeamSearchDecoder | None]:
    """The model, its processor and, with ``--lm``, the beam search decoder (else ``None``: greedy)."""
    from dataclasses import replace

    from transformers.utils.logging import disable_progress_bar

    from asr_helpers.beam_search import BeamSearchDecoder, BeamSettings
    from asr_helpers.inference import load_trained

    disable_progress_bar()  # stderr is for one line per file that failed, and evaluate's own bar
    if args.lm is not None and not args.lm.is_file():
        raise FileNotFoundError(f"{args.lm}: no language model here (make one with `python -m asr_helpers lm --out {args.lm}`)")
    if args.lm is None and (args.lm_weight is not None or args.beam_size is not None):
        raise ValueError("--lm-weight and --beam-size tune the beam search: they need --lm")
    device = _device(args.device)
    model, processor = load_trained(args.model, device)
    decoder = None
    if args.lm is not None:
        chosen = {"lm_weight": args.lm_weight, "beam_size": args.beam_size}
        settings = replace(BeamSettings(), **{key: value for key, value in chosen.items() if value is not None})
        decoder = BeamSearchDecoder.for_model(model, processor, args.lm, settings)
    print(f"device: {device}", file=sys.stderr)  # once, when everything is loaded: set-up errors stay one line
    return model, processor, decoder


def _device(name: str | None) -> torch.device:
    """``--device``, checked, or the default: the GPU when there is one. Decided here, once: the model
    goes there, and the code below follows the model (the decoders read its logits on the CPU)."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device name (cpu, cuda, cuda:1, ...)") from None
    count = {"cpu": 1, "cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available())}.get(device.type, 0)
    if count == 0:
        raise ValueError(f"--device {name}: no {device.type} device is available here (use --device cpu)")
    if (device.index or 0) >= count:
        raise ValueError(f"--device {name}: this machine has {count} {device.type} device(s), numbered from 0")
    return device


def _lm(args: argparse.Namespace) -> int:
    """Write the n-gram model of the training transcripts (or of ``--text``) and say what it holds."""
    from asr_helpers.data import CORPUS_DIR, load_offline_corpus
    from asr_helpers.ngram import kneser_ney, read_arpa_counts, sentences_from_text, write_arpa

    try:
        if args.text is not None and not args.text.is_file():
            raise FileNotFoundError(f"{args.text}: no such text file")
        if args.text is not None:
            lines = args.text.read_text(encoding="utf-8").splitlines()
        else:
            lines = load_offline_corpus(args.corpus or CORPUS_DIR)["train"]["transcription"]
        sentences = sentences_from_text(lines)
        path = write_arpa(kneser_ney(sentences, args.order), args.out)
    except (FileNotFoundError, UnicodeDecodeError, ValueError) as error:
        return _fail(error)
    counts = ", ".join(f"{count} {n}-grams" for n, count in read_arpa_counts(path).items())
    print(f"wrote {path}: {counts} from {len(sentences)} sentences")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Serve the demo page until Ctrl+C. Without ``--model``: the model ``train`` saved by default, as
    ``transcribe`` takes it, else the course model notebooks 06-08 use."""
    try:
        from asr_helpers import demo
    except ImportError as error:
        return _fail(ImportError(f"the demo needs gradio: pip install 'asr_helpers[demo]' ({error})"))
    from asr_helpers.data import resolve_mode
    from asr_helpers.training import course_model

    try:
        device = _device(args.device)
        model_dir = args.model or (DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "config.json").is_file() else course_model(resolve_mode()))
        app = demo.build_app(model_dir, args.lm, device)
    except (FileNotFoundError, ValueError) as error:
        return _fail(error)
    demo.launch(app, server_port=args.port)
    return 0


def _fail(error: Exception) -> int:
    """One ``error: ...`` line on stderr, no traceback: the message already names the file and the problem."""
    print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
