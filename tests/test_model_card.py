"""The model card written beside a fine-tuned model (asr_helpers/model_card.py): its metadata, its
text, and its numbers against what ``python -m asr_helpers evaluate`` measures on the same folder."""

from __future__ import annotations

import re

import pytest
from huggingface_hub import ModelCard
from transformers import TrainingArguments

from asr_helpers.__main__ import main
from asr_helpers.model_card import HYPERPARAMETERS, build_model_card, is_course_card
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.training import CTCTrainer, recipe_for

UNSEEN = {"all": (0.5, 0.2, 36), "telephone": (0.3, 0.1, 6), "wideband": (0.55, 0.22, 30)}


def card_for(mode: str, **kwargs) -> ModelCard:
    recipe = recipe_for(mode, cuda=True, verbose=False)
    card = build_model_card(mode, recipe, {"eval_wer": 0.12344, "eval_cer": 0.04}, {"train": 80, "test": 20}, UNSEEN, **kwargs)
    return ModelCard(str(card))  # parsed back from its text, as the Hub and ModelCard.load read it


def test_hub_card_names_wav2vec2_base_and_minds14():
    card = card_for("hub")
    assert card.data.base_model == "facebook/wav2vec2-base" and card.data.datasets == ["PolyAI/minds14"]
    assert (card.data.language, card.data.license, card.data.metrics) == ("en", "apache-2.0", ["wer", "cer"])
    wer, cer = card.data.eval_results
    assert (wer.metric_type, wer.metric_value, cer.metric_type, cer.metric_value) == ("wer", 0.1234, "cer", 0.04)
    assert (wer.dataset_type, wer.dataset_config, wer.dataset_split) == ("PolyAI/minds14", "en-US", "train")
    guide = recipe_for("hub", cuda=True, verbose=False)
    assert card.data.hyperparameters == {"recipe": "guide", "per_device_train_batch_size": 8, "seed": 42,
                                         **{key: guide[key] for key in HYPERPARAMETERS}}
    assert "MInDS-14 en-US (`PolyAI/minds14`)" in card.text and "80 utterances for training, 20 for the scores" in card.text
    assert "On the unseen set its WER is 0.500, against 0.123" in card.text


def test_offline_card_says_synthetic_voices_telephone_band_and_leaves_out_hub_names():
    card = card_for("offline")
    assert card.data.base_model is None and card.data.datasets is None  # course-base and the corpus are not on the Hub
    assert card.data.eval_results[0].dataset_split == "test" and card.data.hyperparameters["max_steps"] == 450
    assert "espeak-ng voices (synthetic speech, no human voice)" in card.text and "8 kHz FLAC" in card.text
    assert "| unseen set, wideband (30 files) | 0.550 | 0.220 |" in card.text
    assert "real voices" in card.text and "wideband recordings" in card.text


def test_own_corpus_card_claims_nothing_about_its_voices(tmp_path):
    card = card_for("offline", corpus_dir=tmp_path / "my_recordings")
    assert card.data.eval_results[0].dataset_name == "corpus folder my_recordings"
    assert "synthetic speech" not in card.text and "cannot say whose voices" in card.text


def test_push_keeps_the_course_card_and_drafts_one_otherwise(model, processor, tmp_path):
    """``Trainer.push_to_hub`` writes the Trainer's draft card first; CTCTrainer keeps the course's."""
    card_for("offline").save(tmp_path / "README.md")
    course_card = (tmp_path / "README.md").read_text()
    trainer = CTCTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"), processing_class=processor)
    trainer.create_model_card()
    assert (tmp_path / "README.md").read_text() == course_card and is_course_card(tmp_path / "README.md")
    (tmp_path / "README.md").unlink()
    trainer.create_model_card()
    assert (tmp_path / "README.md").is_file() and not is_course_card(tmp_path / "README.md")
    assert not is_course_card(COURSE_CHECKPOINT / "README.md")  # the shipped checkpoint's card is not a fine-tuned model's


@pytest.mark.slow  # the trained course model (conftest's course_training), and two evaluations of it
def test_trained_models_card_holds_the_wer_evaluate_prints(course_training, capsys):
    folder = course_training
    card = ModelCard.load(folder / "README.md")
    scores = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert main(["evaluate", "--model", str(folder)]) == 0
    evaluated = re.fullmatch(r"wer=([\d.]+) cer=([\d.]+)\n", capsys.readouterr().out)
    assert evaluated, "evaluate prints one wer=... cer=... line"
    wer, cer = map(float, evaluated.groups())
    assert abs(scores["wer"] - wer) <= 0.005 and abs(scores["cer"] - cer) <= 0.005, (scores, wer, cer)
    assert main(["evaluate", "--unseen", "--model", str(folder)]) == 0
    unseen = re.search(r"^all .* wer=([\d.]+) cer=([\d.]+)$", capsys.readouterr().out, re.MULTILINE)
    stated = re.search(r"On the unseen set its WER is ([\d.]+)", card.text)
    assert unseen and stated and abs(float(stated.group(1)) - float(unseen.group(1))) <= 0.0005, (stated, unseen)
    assert float(stated.group(1)) > 2 * wer  # what it cannot do: the unseen set is much harder than its test split
