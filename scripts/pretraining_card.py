"""The model card of a pre-trained course-base checkpoint, written from its ``training_log.json``.

``pretrain_checkpoint.py`` calls :func:`write_card` after a run, and again with ``--card-only`` to add
a ``benchmarks/domain_shift.py`` measurement. Its figures come from the run's report (corpus
statistics, training history, held-out rates) and from the corpus generator's constants, never typed
by hand; a test checks that the shipped card is what this module writes from its training log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pretraining_corpus as pretrain
import speakers
from asr_helpers import synth


def channel_text(channels: str, wideband_share: float = pretrain.WIDEBAND_SHARE) -> str:
    """The card's words for a corpus's channel (``--channels``, ``--wideband-share``), with the ranges it was drawn from."""
    if channels == "telephone":
        return (
            f"white noise at {pretrain.SNR_DB[0]:.0f}-{pretrain.SNR_DB[1]:.0f} dB SNR and a telephone band-pass (low edge"
            f" {pretrain.TELEPHONE_LOW_HZ[0]}-{pretrain.TELEPHONE_LOW_HZ[1]} Hz, high edge {pretrain.TELEPHONE_HIGH_HZ[0]}-"
            f"{pretrain.TELEPHONE_HIGH_HZ[1]} Hz); saved as 8 kHz 16-bit FLAC, as the course corpus is."
        )
    m = pretrain.MIXED
    return (
        f"`--channels mixed` (`scripts/pretraining_data/channels.json`): {wideband_share:.0%} of the rows wideband"
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
    return "\n- **Runs by channel**: " + "; ".join(f"{kind}: run {numbers}" for kind, numbers in runs.items()) + (
        f". The telephone corpus: {channel_text('telephone')}"
    )


def uses_natural_voices(stages: list[dict]) -> bool:
    """Whether any run of the checkpoint heard flite or festival (``--voices natural``)."""
    return any(stage.get("voices", pretrain.ESPEAK) != pretrain.ESPEAK for stage in stages)


def needs_engines(stages: list[dict]) -> str:
    """The Reproduce section's note on the synthesisers a ``--voices natural`` run needs."""
    if not uses_natural_voices(stages):
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


def share_args(args: dict) -> str:
    """The corpus call's ``espeak_share`` and ``wideband_share`` arguments, where the run set one other than the table's."""
    moved = pretrain.moved_shares(
        args.get("voices", pretrain.ESPEAK), args.get("espeak_share", pretrain.ESPEAK_SHARE),
        args.get("wideband_share", pretrain.WIDEBAND_SHARE),
    )
    return "".join(f", {name}={share:g}" for name, share in moved.items())


def natural_voices_text(data: dict, voices: str) -> str:
    """The card's words for the flite and festival voices of a ``--voices natural`` corpus, and their speakers."""
    if voices == pretrain.ESPEAK:
        return ""
    train, held = data["train"], data["heldout"]
    shares = ", ".join(f"{engine} {count:,}" for engine, count in train["engines"].items())
    return (
        f"\n- **Voices of recorded speakers** (`--voices natural`, `scripts/pretraining_data/natural_voices.json`): rows of the"
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


def saved_report(checkpoint: Path) -> dict:
    """A written checkpoint's report as :func:`write_card` takes it: its ``training_log.json``, and its
    ``config.json`` under ``"config"`` (the log leaves the configuration to the file the model loads)."""
    report = json.loads((checkpoint / "training_log.json").read_text())
    report["config"] = json.loads((checkpoint / "config.json").read_text())
    return report


def last_run_text(command: str) -> str:
    """The card's line on the last run's own command, and on what ``--minutes`` did if it set the steps."""
    minutes = "; `--minutes` fixed the number of steps from the speed of its first steps" if "--minutes" in command else ""
    return f"(The last run was `{command}`{minutes}.)"


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
        " The table describes the last run's corpus; each earlier run used the corpus of its own seed,"
        " made the same way, of the sizes its command under Reproduce gives (`--n-train`, `--n-heldout`)."
        if len(stages) > 1
        else ""
    )
    reproduce = "\n".join(stage["reproduce"] for stage in stages)
    notes = "".join(f"- Run {i}: {stage['note']}\n" for i, stage in enumerate(stages, 1) if "note" in stage)
    differences = f"\nWhere a run differs from its command above:\n\n{notes}" if notes else ""
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
tags: [wav2vec2, ctc, synthetic-speech, espeak-ng{', flite, festival' if uses_natural_voices(stages) else ''}, teaching]
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

Made by `generate_pretraining_corpus(seed={a['seed']}, channels="{a.get('channels', 'telephone')}", voices="{a.get('voices', pretrain.ESPEAK)}"{share_args(a)})` of `scripts/pretraining_corpus.py` with espeak-ng
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
- **Channel**: speed {pretrain.SPEED_WPM[0]}-{pretrain.SPEED_WPM[1]} words/min, pitch {pretrain.PITCH[0]}-{pretrain.PITCH[1]}, level {pretrain.AMPLITUDE[0]}-{pretrain.AMPLITUDE[1]}; then {channel_text(a.get('channels', 'telephone'), a.get('wideband_share', pretrain.WIDEBAND_SHARE))}{channel_history(stages)}{natural_voices_text(d, a.get('voices', pretrain.ESPEAK))}

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
{differences}
{last_run_text(report['command'])}

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
