"""The model card of a fine-tuned model: the ``README.md`` beside its weights, which the Hub shows.

Its metadata (``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData`, no network needed)
holds the language, licence, metrics and a ``model-index`` with the test WER and CER, the
Trainer's final evaluation, which decodes each utterance over its own frames: the number
``python -m asr_helpers evaluate`` prints for the same folder. Its text says what the model is for,
what it heard, and what it cannot do, with the WER measured on the unseen set
(:func:`~asr_helpers.data.load_unseen_set`), transcribed as notebook 06 does.

Offline, ``base_model`` and ``datasets`` are left out of the metadata: they name Hub
repositories, and ``course-base`` and the shipped corpus are not on the Hub; the text names them.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from asr_helpers.data import CORPUS_DIR, load_unseen_set
from asr_helpers.inference import load_trained, transcribe
from asr_helpers.metrics import character_error_rate, word_error_rate, word_error_rates_by
from asr_helpers.preprocessing import COURSE_BASE_VOICES
from asr_helpers.text import normalize_text

COURSE_TAG = "wav2vec2-ctc-course"
"""The tag that marks a card as written here (:func:`is_course_card`)."""
HYPERPARAMETERS = ("max_steps", "learning_rate", "warmup_steps", "gradient_accumulation_steps",
                   "activation_checkpointing", "per_device_eval_batch_size", "eval_steps", "save_steps")
"""The recipe's keys (``recipes.json``) that the card lists, besides the batch and seed every recipe shares."""


@dataclass(frozen=True)
class TrainingData:
    """What a model was fine-tuned and tested on, as the card names it."""

    name: str
    hub_id: str | None  # a Hub dataset id for the metadata, or None for data that is not on the Hub
    config: str | None
    split: str
    heard: str  # the card's "Data" paragraph; {train} and {test} are the numbers of utterances
    limits: str  # what the model cannot do, before the unseen-set numbers


MINDS14 = TrainingData(
    name="MInDS-14 en-US", hub_id="PolyAI/minds14", config="en-US", split="train",
    heard="MInDS-14 en-US (`PolyAI/minds14`): people calling an e-banking line, recorded at 8 kHz. Its "
          "only split, `train`, was cut to its first 100 rows and 20 % of them held out (seed 42): "
          "{train} utterances for training, {test} for the scores below.",
    limits="It learned from {train} recordings of one language (en-US), one topic (banking requests) and "
           "one channel (the 8 kHz telephone band): other topics, accents and wideband microphones lie "
           "outside what it heard, and the recipe is a demonstration, not a finished model.",
)
COURSE_CORPUS = TrainingData(
    name="course corpus (synthetic, MInDS-14-like)", hub_id=None, config=None, split="test",
    heard="The course's shipped corpus (`asr_helpers/corpus`, not a Hub dataset): banking requests "
          "written like MInDS-14's, spoken by espeak-ng voices (synthetic speech, no human voice) and "
          "saved as 8 kHz FLAC through a telephone band; {train} utterances for training and {test} for "
          "the scores below, whose voices and sentences training did not hear. Before it, `course-base` "
          "(shipped with the course, not on the Hub) was pre-trained on synthetic speech only.",
    limits=f"It has heard synthetic voices only ({COURSE_BASE_VOICES}), fine-tuned on the 8 kHz telephone "
           "band: real voices (yours, an "
           "accent, a noisy room, two speakers) are a larger shift than anything measured here, and "
           "wideband recordings (a laptop's microphone, 16-48 kHz) lie outside its fine-tuning data.",
)


def training_data(mode: str, corpus_dir: str | Path | None = None) -> TrainingData:
    """MInDS-14 (hub), the shipped corpus (offline), or a corpus folder of the learner's own."""
    if mode == "hub":
        return MINDS14
    if corpus_dir is None or Path(corpus_dir).resolve() == CORPUS_DIR.resolve():
        return COURSE_CORPUS
    name = Path(corpus_dir).resolve().name
    return TrainingData(
        name=f"corpus folder {name}", hub_id=None, config=None, split="test",
        heard=f"A corpus folder of its trainer's own (`{name}`, in the layout of `python -m asr_helpers synth`): "
              "{train} utterances for training and {test} for the scores below. The course cannot say "
              "whose voices or which channel it holds.",
        limits="It knows what that folder holds and no more: voices, words and channels unlike it are a shift.",
    )


def unseen_scores(folder: str | Path, device: str | torch.device) -> dict[str, tuple[float, float, int]]:
    """WER, CER and file count on the unseen set: ``all``, then each band (telephone, wideband).

    The model saved in ``folder``, loaded on ``device`` (the trained model's), transcribes every file
    with :func:`~asr_helpers.inference.transcribe` (greedy, batched by length), as notebook 06 and
    ``python -m asr_helpers evaluate --unseen`` do.
    """
    model, processor = load_trained(folder, device)
    rows = load_unseen_set()
    hypotheses = [result.text for result in transcribe(model, processor, rows["path"], batch_size=8)]
    references = [normalize_text(text) for text in rows["transcription"]]
    whole = (word_error_rate(hypotheses, references), character_error_rate(hypotheses, references), len(rows))
    return {"all": whole, **word_error_rates_by(hypotheses, references, list(rows["band"]))}


def build_model_card(
    mode: str,
    recipe: dict,
    metrics: dict[str, float],
    sizes: dict[str, int],
    unseen: dict[str, tuple[float, float, int]],
    corpus_dir: str | Path | None = None,
) -> ModelCard:
    """The card of a model fine-tuned with ``recipe`` (:func:`~asr_helpers.training.recipe_for`) in
    ``mode``: ``metrics`` is the Trainer's final evaluation (``eval_wer``, ``eval_cer``), ``sizes``
    the utterances of each split, ``unseen`` :func:`unseen_scores`."""
    data = training_data(mode, corpus_dir)
    base = "facebook/wav2vec2-base" if mode == "hub" else None
    wer, cer = round(metrics["eval_wer"], 4), round(metrics["eval_cer"], 4)
    results = [
        EvalResult(task_type="automatic-speech-recognition", task_name="Speech recognition",
                   dataset_type=data.hub_id or "asr-course-corpus", dataset_name=data.name,
                   dataset_config=data.config, dataset_split=data.split, metric_type=name,
                   metric_name=name.upper(), metric_value=value)
        for name, value in (("wer", wer), ("cer", cer))
    ]
    hyperparameters = {"recipe": recipe["name"], "per_device_train_batch_size": 8, "seed": 42,
                       **{key: recipe[key] for key in HYPERPARAMETERS}}
    card_data = ModelCardData(
        base_model=base, datasets=[data.hub_id] if data.hub_id else None, language="en", license="apache-2.0",
        library_name="transformers", pipeline_tag="automatic-speech-recognition", metrics=["wer", "cer"],
        tags=["wav2vec2", "ctc", COURSE_TAG], model_name=f"wav2vec2 CTC, {data.name}", eval_results=results,
        hyperparameters=hyperparameters,
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{_text(data, base, wer, cer, sizes, unseen, hyperparameters)}")


def _text(data: TrainingData, base: str | None, wer: float, cer: float, sizes: dict[str, int],
          unseen: dict[str, tuple[float, float, int]], hyperparameters: dict) -> str:
    """The card's Markdown, in the sections of the shipped ``course-base`` card."""
    counts = {"train": sizes["train"], "test": sizes["test"]}
    rows = "\n".join(f"| unseen set, {name} ({files} files) | {w:.3f} | {c:.3f} |" for name, (w, c, files) in unseen.items())
    settings = "\n".join(f"| `{key}` | {value} |" for key, value in hyperparameters.items())
    return f"""# Wav2Vec2 with a CTC head, fine-tuned on {data.name}

A speech recognition model from the Wav2Vec2 + CTC course (`python -m asr_helpers train`, or
notebook 05): it writes short English banking requests ("what's my account balance") as upper-case
letters, without punctuation, with greedy CTC decoding and no language model. It was made to learn
from, not to serve customers. It starts from {f"`{base}`" if base else "`course-base`"}.

## Data

{data.heard.format(**counts)}

## Results (greedy CTC decoding, each utterance over its own frames)

| evaluation set | WER | CER |
| --- | ---: | ---: |
| {data.name}, `{data.split}` split ({counts["test"]} utterances) | {wer:.3f} | {cer:.3f} |
{rows}

The first line is the Trainer's final evaluation, the number `python -m asr_helpers evaluate`
prints for this folder. The unseen set (`asr_helpers/unseen`) holds 36 recordings of sentences
and espeak-ng voices that neither the course corpus nor `course-base` used, in six file formats
at 8-48 kHz, telephone band and wideband, some with noise or echo.

## What it cannot do

{data.limits.format(**counts)} On the unseen set its WER is {unseen["all"][0]:.3f}, against {wer:.3f}
on its own test split: expect more errors on recordings of your own.

## Training

| hyperparameter | value |
| --- | --- |
{settings}

The convolutional feature encoder stayed frozen; the Trainer kept the checkpoint with the lowest
evaluation WER. Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}.

## Use

```python
from transformers import pipeline

transcriber = pipeline("automatic-speech-recognition", model="path/or/user/repo")
print(transcriber(audio))  # a 16 kHz float32 NumPy array, or a file path (decoded by ffmpeg)
```
"""


def write_model_card(
    folder: str | Path,
    device: str | torch.device,
    *,
    mode: str,
    recipe: dict,
    metrics: dict[str, float],
    sizes: dict[str, int],
    corpus_dir: str | Path | None = None,
) -> ModelCard:
    """Write ``README.md`` beside the model saved in ``folder``, after measuring it on ``device`` on the unseen set."""
    card = build_model_card(mode, recipe, metrics, sizes, unseen_scores(folder, device), corpus_dir)
    card.save(Path(folder) / "README.md")
    return card


def is_course_card(path: str | Path) -> bool:
    """Whether ``path`` is a card written here: ``Trainer.push_to_hub`` would replace it with its draft."""
    path = Path(path)
    return path.is_file() and COURSE_TAG in (ModelCard.load(path).data.tags or [])
