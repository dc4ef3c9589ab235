import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Dataset

from asr_helpers.inference import greedy_decode, length_batches, load_trained, make_pipeline, transcribe
from asr_helpers.modeling import count_parameters, load_model, small_config
from asr_helpers.preprocessing import load_audio, resample
from asr_helpers.training import build_trainer, course_training_args, guide_training_args
from conftest import tone


def test_small_model_size_and_ctc_settings(processor, model):
    assert 0.5e6 < count_parameters(model) < 3.75e6  # at most 15 MB of float32 weights
    assert model.config.ctc_loss_reduction == "mean"
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id == 0
    assert model.lm_head.out_features == len(processor.tokenizer)
    frozen = load_model(processor, "offline", freeze_feature_encoder=True)
    assert not any(p.requires_grad for p in frozen.wav2vec2.feature_extractor.parameters())
    assert count_parameters(frozen, trainable_only=True) < count_parameters(frozen)


def test_small_config_frame_rate():
    config = small_config(10, 0)
    assert int(np.prod(config.conv_stride)) == 320  # one output frame per 20 ms at 16 kHz


def test_guide_arguments_in_todays_names(tmp_path):
    args = guide_training_args(tmp_path)
    assert args.train_sampling_strategy == "group_by_length" and args.length_column_name == "input_length"
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (8, 2)
    assert (args.learning_rate, args.warmup_steps, args.max_steps) == (1e-5, 500, 2000)
    assert args.eval_strategy == "steps" and args.metric_for_best_model == "wer" and not args.greater_is_better
    assert args.fp16 == torch.cuda.is_available()
    course = course_training_args(tmp_path, max_steps=90)
    assert (course.eval_steps, course.save_steps, course.warmup_steps) == (30, 30, 9)
    assert not course.activation_checkpointing and course.load_best_model_at_end


def _toy_dataset(processor, n=16):
    rng = np.random.default_rng(0)
    texts = ["HI", "PAY A BILL", "FREEZE MY CARD", "CHECK MY BALANCE"]
    rows = []
    for i in range(n):
        audio = tone(150 + 40 * (i % 4), 0.6 + 0.1 * (i % 4), 16000) + 0.01 * rng.standard_normal(
            int((0.6 + 0.1 * (i % 4)) * 16000)).astype(np.float32)
        values = processor(audio=audio, sampling_rate=16000)["input_values"][0]
        rows.append({"input_values": values, "labels": processor.tokenizer(texts[i % 4])["input_ids"],
                     "input_length": len(values)})
    return Dataset.from_list(rows)


def test_tiny_training_run_lowers_the_loss(processor, tmp_path):
    data = _toy_dataset(processor)
    model = load_model(processor, "offline", seed=0)
    args = course_training_args(tmp_path, max_steps=30, logging_steps=1, learning_rate=1e-3,
                                eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_cer"] and 0.0 <= metrics["eval_wer"]


def test_trainer_gets_numpy_rows_and_the_same_batches(processor, model, tmp_path):
    data = _toy_dataset(processor, n=8)
    args = course_training_args(tmp_path, max_steps=1, disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data)
    row = trainer.train_dataset[0]
    assert isinstance(row["input_values"], np.ndarray) and row["input_values"].dtype == np.float32
    fast = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    slow = trainer.data_collator([data[i] for i in range(4)])  # Python lists, as Arrow gives by default
    assert isinstance(data[0]["input_values"], list)
    for key in ("input_values", "attention_mask", "labels"):
        assert torch.equal(fast[key], slow[key]), key


def test_length_batches_groups_similar_lengths():
    batches = length_batches([50, 10, 40, 20, 30], batch_size=2)
    assert batches == [[1, 3], [4, 2], [0]]


def test_transcribe_any_rate_and_stereo(model, processor, write_audio):
    speech = tone(180, 1.0, 16000) + tone(520, 1.0, 16000)
    reference = greedy_decode(model, processor, [speech])[0]
    files = {
        "16k.wav": write_audio("16k.wav", speech, 16000),
        "stereo.flac": write_audio("stereo.flac", np.stack([speech, speech], axis=1), 16000),
        "8k.wav": write_audio("8k.wav", resample(speech, 16000, 8000), 8000),
        "44k.ogg": write_audio("44k.ogg", resample(speech, 16000, 44100), 44100),
    }
    texts = dict(zip(files, transcribe(model, processor, list(files.values()), batch_size=3)))
    assert texts["16k.wav"] == texts["stereo.flac"] == reference
    for name, path in files.items():  # batching by length changes nothing
        assert texts[name] == greedy_decode(model, processor, [load_audio(str(path))])[0]


def test_pipeline_matches_manual_path(model, processor, write_audio):
    speech = load_audio(str(write_audio("p.wav", tone(240, 0.8, 22050), 22050)))
    assert make_pipeline(model, processor)(speech)["text"] == greedy_decode(model, processor, [speech])[0]


def test_load_trained_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model here"):
        load_trained(tmp_path)


def test_cli_transcribe_prints_file_tab_text(model_dir, model, processor, write_audio):
    files = [write_audio("a.wav", tone(200, 0.7, 22050), 22050), write_audio("b.flac", tone(400, 1.1, 8000), 8000)]
    result = subprocess.run([sys.executable, "-m", "asr_helpers", "transcribe", "--model", str(model_dir), *map(str, files)],
                            capture_output=True, text=True, check=True)
    expected = transcribe(model, processor, files)
    assert result.stdout.splitlines() == [f"{f}\t{t}" for f, t in zip(files, expected)]
