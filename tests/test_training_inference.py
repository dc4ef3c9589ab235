import inspect
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import pipeline

from asr_helpers import inference, training
from asr_helpers.__main__ import main
from asr_helpers.audio import load_audio, resample
from asr_helpers.fast.training import guide_arguments
from asr_helpers.inference import ctc_collapse, frame_logits, length_batches, load_trained, transcribe
from asr_helpers.metrics import character_error_rate, word_error_rate
from asr_helpers.modeling import count_parameters, load_model, small_config
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.training import RECIPES, build_trainer, course_model_dir, recipe_for, training_arguments
from conftest import guide_greedy, tone
from standin_hub import tiny_config, write_processor


def test_small_model_size_and_ctc_settings(processor, model):
    assert 0.5e6 < count_parameters(model) < 3.75e6  # at most 15 MB of float32 weights
    assert model.config.ctc_loss_reduction == "mean"
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id == 0
    assert model.lm_head.out_features == len(processor.tokenizer)
    frozen = load_model(processor, COURSE_CHECKPOINT, freeze_feature_encoder=True)
    assert not any(p.requires_grad for p in frozen.wav2vec2.feature_extractor.parameters())
    assert count_parameters(frozen, trainable_only=True) < count_parameters(frozen)


def test_small_config_frame_rate():
    config = small_config(10, 0)
    assert int(np.prod(config.conv_stride)) == 320  # one output frame per 20 ms at 16 kHz


def test_guide_arguments_in_todays_names(tmp_path):
    args = guide_arguments(tmp_path)
    assert args.train_sampling_strategy == "group_by_length" and args.length_column_name == "input_length"
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (8, 2)
    assert (args.learning_rate, args.warmup_steps, args.max_steps) == (1e-5, 500, 2000)
    assert args.eval_strategy == "steps" and args.metric_for_best_model == "wer" and not args.greater_is_better
    assert args.activation_checkpointing and args.fp16 == torch.cuda.is_available()
    assert args.eval_on_start and args.save_total_limit == 2 and args.seed == 42  # every recipe, the guide's too
    course = training_arguments(tmp_path, recipe_for("offline", 60, verbose=False))
    assert (course.eval_steps, course.save_steps, course.warmup_steps) == (20, 20, 6)
    assert not course.activation_checkpointing and course.load_best_model_at_end
    assert training_arguments(tmp_path, RECIPES["course"], seed=7).seed == 7  # overrides win


def test_recipe_for_scales_steps_in_proportion(capsys):
    recipe = recipe_for("offline", 30)
    assert recipe["name"] == "course" and recipe["max_steps"] == 30
    assert (recipe["warmup_steps"], recipe["eval_steps"], recipe["save_steps"], recipe["logging_steps"]) == (3, 10, 10, 1)
    assert recipe["learning_rate"] == RECIPES["course"]["learning_rate"]  # rates do not scale
    assert capsys.readouterr().out.startswith("recipe: course, 30 steps (")
    course = recipe_for("offline", verbose=False)
    assert (course["max_steps"], course["warmup_steps"], course["eval_steps"]) == (450, 45, 150)  # recipes.json's own
    assert recipe_for("offline", 3, verbose=False)["logging_steps"] == 1  # never 0
    assert RECIPES["course"]["max_steps"] == 450 and "name" not in RECIPES["course"]  # the data is left alone
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("mode", "steps", "expected"), [
    ("offline", 450, (45, 150, 150, 15)),  # the recipe as written
    ("offline", 90, (9, 30, 30, 3)),  # exact fractions stay exact: 150 * 90 / 450 is 30, not 31
    ("offline", 451, (46, 151, 151, 16)),  # 45.1, 150.3, 15.03: rounded up
    ("offline", 1, (1, 1, 1, 1)),  # never 0
    ("hub", 30, (3, 15, 15, 2)),  # 1.5 logging steps: 2
    ("hub", 7, (1, 4, 4, 1)),
])
def test_recipe_scaling_rounds_up_exact_fractions_only(mode, steps, expected):
    recipe = recipe_for(mode, steps, cuda=False, verbose=False)
    assert (recipe["warmup_steps"], recipe["eval_steps"], recipe["save_steps"], recipe["logging_steps"]) == expected


def test_hub_recipe_without_a_gpu_says_why_in_one_line(capsys):
    recipe = recipe_for("hub", cuda=False)
    assert recipe["name"] == "hub-cpu" and recipe["max_steps"] == 100
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"recipe: hub-cpu, 100 steps ({RECIPES['hub-cpu']['why']})"]
    assert lines[0].startswith("recipe: hub-cpu, 100 steps (no GPU: ")
    assert recipe_for("hub", cuda=True, verbose=False)["name"] == "guide"
    assert recipe_for("offline", cuda=True, verbose=False)["name"] == "course"  # offline is the course, GPU or not


def test_course_model_folder_changes_with_the_recipe_and_the_code(monkeypatch):
    folder = course_model_dir("offline", 30)
    assert folder.name.startswith("model-offline-30-") and folder == course_model_dir("offline", 30)
    assert course_model_dir("offline", 60) != folder
    getsource = inspect.getsource

    def edited(obj):  # as if someone changed the training code and saved it
        return getsource(obj) + ("\n# a changed default\n" if obj is training else "")

    monkeypatch.setattr(inspect, "getsource", edited)
    assert course_model_dir("offline", 30) != folder


TOY_TEXTS = ["HI", "PAY A BILL", "FREEZE MY CARD", "CHECK MY BALANCE"]


def _toy_audio(n=16):
    rng = np.random.default_rng(0)
    return [
        tone(150 + 40 * (i % 4), 0.6 + 0.1 * (i % 4), 16000)
        + 0.01 * rng.standard_normal(int((0.6 + 0.1 * (i % 4)) * 16000)).astype(np.float32)
        for i in range(n)
    ]


def _toy_dataset(processor, n=16):
    rows = []
    for i, audio in enumerate(_toy_audio(n)):
        values = processor(audio=audio, sampling_rate=16000)["input_values"][0]
        rows.append({"input_values": values, "labels": processor.tokenizer(TOY_TEXTS[i % 4])["input_ids"],
                     "input_length": len(values)})
    return Dataset.from_list(rows)


@pytest.mark.slow
def test_tiny_training_run_lowers_the_loss(processor, tmp_path):
    data = _toy_dataset(processor)
    model = load_model(processor, COURSE_CHECKPOINT, seed=0)
    args = training_arguments(tmp_path, recipe_for("offline", 30, verbose=False), logging_steps=1, learning_rate=1e-3,
                              eval_strategy="no", eval_on_start=False, save_strategy="no",
                              load_best_model_at_end=False, disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data, "offline")
    before = trainer.evaluate()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    after = trainer.evaluate()
    assert after["eval_loss"] < 0.7 * before["eval_loss"]
    # the Trainer's WER and CER are those of the model's transcripts, each read over its own
    # frames as transcribe reads them: the padding of the evaluation batch spells nothing
    texts = [result.text for result in transcribe(trainer.model.eval(), processor, _toy_audio())]
    references = [TOY_TEXTS[i % 4] for i in range(16)]
    assert after["eval_wer"] == pytest.approx(word_error_rate(texts, references), abs=1e-9)
    assert after["eval_cer"] == pytest.approx(character_error_rate(texts, references), abs=1e-9)


@pytest.mark.parametrize("load_best", [True, False], ids=["best checkpoint reloaded", "last step"])
def test_final_evaluation_is_that_of_the_model_the_trainer_ends_with(processor, tmp_path, load_best):
    """``fine_tune``'s final metrics are those the Trainer logged for the weights it ends with (the
    best checkpoint, reloaded, or the last step's): what a new evaluation of those weights gives."""
    data = _toy_dataset(processor, n=8)
    model = load_model(processor, COURSE_CHECKPOINT, seed=0)
    args = training_arguments(tmp_path, recipe_for("offline", 6, verbose=False), load_best_model_at_end=load_best, disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data, "offline")
    trainer.train()
    final = training.final_evaluation(trainer)
    again = trainer.evaluate()
    evaluated = [entry["step"] for entry in trainer.state.log_history if "eval_wer" in entry]
    assert evaluated == [0, 2, 4, 6, 6], "the final evaluate() above is the only one added"
    for key in ("eval_loss", "eval_wer", "eval_cer"):
        assert final[key] == pytest.approx(again[key], rel=1e-6, abs=1e-9), key


def test_trainer_gets_numpy_rows_and_the_same_batches(processor, model, tmp_path):
    data = _toy_dataset(processor, n=8)
    args = training_arguments(tmp_path, recipe_for("offline", 1, verbose=False), disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data, "offline")
    row = trainer.train_dataset[0]
    assert isinstance(row["input_values"], np.ndarray) and row["input_values"].dtype == np.float32
    fast = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    slow = trainer.data_collator([data[i] for i in range(4)])  # Python lists, as Arrow gives by default
    assert isinstance(data[0]["input_values"], list)
    for key in ("input_values", "attention_mask", "labels"):
        assert torch.equal(fast[key], slow[key]), key


def test_trainer_wer_reads_each_utterance_over_its_own_frames(processor, model, tmp_path):
    """An untrained CTC head spells letters everywhere, padding included: the Trainer's WER is still
    that of each recording transcribed alone, and the guide's compute_metrics differs from it."""
    data = _toy_dataset(processor, n=8)
    args = training_arguments(tmp_path, recipe_for("offline", 1, verbose=False), per_device_eval_batch_size=8, disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data, "offline")
    scores = trainer.evaluate()
    references = [TOY_TEXTS[i % 4] for i in range(8)]
    alone = [transcribe(model, processor, [audio])[0].text for audio in _toy_audio(8)]
    assert scores["eval_wer"] == pytest.approx(word_error_rate(alone, references), abs=1e-9)
    assert scores["eval_cer"] == pytest.approx(character_error_rate(alone, references), abs=1e-9)
    padded = guide_greedy(model, processor, _toy_audio(8))  # every frame of one padded batch, as the guide reads it
    assert character_error_rate(padded, references) > scores["eval_cer"] + 0.03  # letters spelled in the padding


def test_input_lengths_come_from_the_attention_mask_or_a_batch_of_one():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert training.input_lengths({"input_values": torch.zeros(2, 4), "attention_mask": mask}).tolist() == [3, 4]
    assert training.input_lengths({"input_values": torch.zeros(1, 7)}).tolist() == [7]
    with pytest.raises(ValueError, match="2 utterances without an attention mask.*per_device_eval_batch_size=1"):
        training.input_lengths({"input_values": torch.zeros(2, 7)})


def test_build_trainer_takes_a_torch_dataset_and_no_eval_set(processor, model, tmp_path):
    rows = _toy_dataset(processor, n=4).to_list()
    args = training_arguments(tmp_path, recipe_for("offline", 1, verbose=False), eval_strategy="no",
                              eval_on_start=False, save_strategy="no", load_best_model_at_end=False)
    trainer = build_trainer(model, args, processor, torch.utils.data.Subset(rows, range(4)), None, "offline")
    assert trainer.eval_dataset is None and len(trainer.train_dataset) == 4


def test_data_parallel_batch_splits_the_recipe_s_batch_evenly_or_refuses(capsys):
    assert training.data_parallel_batch(1) == {}
    assert training.data_parallel_batch(4)["per_device_train_batch_size"] == 2
    assert "4 processes x 2 examples = effective batch 8" in capsys.readouterr().out
    with pytest.raises(ValueError, match="^3 processes cannot share a batch of 8 evenly: use 1, 2, 4 or 8 processes$"):
        training.data_parallel_batch(3)


def test_length_batches_groups_similar_lengths():
    batches = length_batches([50, 10, 40, 20, 30], batch_size=2)
    assert batches == [[1, 3], [4, 2], [0]]


def test_transcribe_any_rate_and_stereo(model, processor, write_audio):
    speech = tone(180, 1.0, 16000) + tone(520, 1.0, 16000)
    reference = guide_greedy(model, processor, [speech])[0]
    files = {
        "16k.wav": write_audio("16k.wav", speech, 16000),
        "stereo.flac": write_audio("stereo.flac", np.stack([speech, speech], axis=1), 16000),
        "8k.wav": write_audio("8k.wav", resample(speech, 16000, 8000), 8000),
        "44k.ogg": write_audio("44k.ogg", resample(speech, 16000, 44100), 44100),
    }
    texts = {name: result.text for name, result in zip(files, transcribe(model, processor, list(files.values()), batch_size=3))}
    assert texts["16k.wav"] == texts["stereo.flac"] == reference
    for name, path in files.items():  # batching by length changes nothing
        assert texts[name] == guide_greedy(model, processor, [load_audio(str(path))])[0]


def test_pipeline_matches_manual_path(model, processor, write_audio):
    """The guide's pipeline around an in-memory model: fed a 16 kHz float32 array (a file path would
    make it call the ffmpeg program), it gives the manual path's text."""
    speech = load_audio(str(write_audio("p.wav", tone(240, 0.8, 22050), 22050)))
    asr = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                   feature_extractor=processor.feature_extractor, device="cpu")
    assert asr(speech)["text"] == guide_greedy(model, processor, [speech])[0]


def test_load_trained_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model here"):
        load_trained(tmp_path, "cpu")


def test_load_trained_puts_the_model_on_the_device_it_is_given(model_dir, model, processor):
    loaded, loaded_processor = load_trained(model_dir, torch.device("cpu"))
    assert loaded.device == torch.device("cpu") and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert loaded_processor.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    with pytest.raises(TypeError, match="device"):
        load_trained(model_dir)  # no default: the caller decides


# --- the CTC collapse by hand -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_processor(tmp_path_factory):
    """wav2vec2-base's processor (``<s>``, ``</s>``, ``<unk>``, ``|`` and 27 characters), from the stand-in Hub's files."""
    from transformers import AutoProcessor

    folder = write_processor(tmp_path_factory.mktemp("wav2vec2-base"))
    tiny_config().save_pretrained(folder)  # the model type, by which AutoProcessor finds the tokenizer class
    return AutoProcessor.from_pretrained(folder)


PATHS = {  # frame by frame, "_" for the blank; written as tokens below
    "letters with a blank between repeats": "H H _ E L L _ L O",
    "empty": "",
    "only blanks": "_ _ _",
    "only delimiters": "| | _ |",
    "special tokens, some repeated": "<s> <s> H I </s> </s> _ </s>",
    "unknown between letters": "A <unk> <unk> _ <unk> B",
    "a run of delimiters": "A | | | B",
    "delimiters with blanks between them": "A | _ | _ _ | B",
    "leading and trailing delimiters": "| | A _ | B | |",
    "specials next to delimiters": "| <s> | <unk> | </s> |",
    "an apostrophe word": "I | ' | M",
}


@pytest.mark.parametrize("name", list(PATHS))
def test_ctc_collapse_writes_what_batch_decode_writes(name, hub_processor):
    tokenizer = hub_processor.tokenizer
    path = ["<pad>" if token == "_" else token for token in PATHS[name].split()]
    ids = tokenizer.convert_tokens_to_ids(path)
    assert tokenizer.convert_ids_to_tokens(ids) == path  # every token is in the vocabulary
    expected = hub_processor.batch_decode([ids])[0]
    assert ctc_collapse(path, blank=tokenizer.pad_token, delimiter=tokenizer.word_delimiter_token) == expected


def test_ctc_collapse_examples():
    def collapse(frames: str) -> str:
        return ctc_collapse(frames.split(), blank="_", delimiter="|")

    assert collapse("H H _ E L L _ L O") == "HELLO"
    assert collapse("<s> <s> H I </s> </s> _ </s>") == "<s>HI</s></s>"  # a token is merged whole
    assert collapse("| | A _ | B | |") == "A B" and collapse("A | _ | B") == "A  B"
    assert collapse("") == collapse("_ |") == ""


@pytest.mark.parametrize("which", ["hub", "course"])
def test_ctc_collapse_agrees_with_batch_decode_on_random_paths(which, hub_processor, processor):
    """Paths over the whole vocabulary, the special tokens and the delimiter drawn often, as an
    under-trained model draws them; lengths from 0 frames."""
    chosen = hub_processor if which == "hub" else processor
    tokenizer = chosen.tokenizer
    vocab = tokenizer.get_vocab()
    frequent = [vocab[token] for token in (tokenizer.pad_token, tokenizer.unk_token, tokenizer.word_delimiter_token,
                                           tokenizer.bos_token, tokenizer.eos_token) if token in vocab]
    everything = list(vocab.values())
    rng = np.random.default_rng(0)
    paths = [[int(rng.choice(frequent if rng.random() < 0.6 else everything)) for _ in range(length)]
             for length in rng.integers(0, 40, size=400)]
    expected = chosen.batch_decode(paths)
    got = [ctc_collapse(tokenizer.convert_ids_to_tokens(ids), tokenizer.pad_token, tokenizer.word_delimiter_token) for ids in paths]
    assert got == expected
    assert any("  " in text for text in expected), "delimiters with a blank between them were drawn"
    if which == "hub":
        assert all(any(token in text for text in expected) for token in ("<s>", "</s>", "<unk>"))


def test_skipping_special_tokens_is_not_a_ctc_collapse(hub_processor):
    """Why the notebook keeps batch_decode's default: ``skip_special_tokens=True`` drops the blank
    with the special tokens before merging repeats, so the two L's of BILL become one."""
    ids = hub_processor.tokenizer.convert_tokens_to_ids(["B", "I", "L", "<pad>", "L", "<s>"])
    assert hub_processor.batch_decode([ids]) == ["BILL<s>"]
    assert hub_processor.batch_decode([ids], skip_special_tokens=True) == ["BIL"]


# --- the device, decided on the command line ------------------------------------------------------


def test_cli_device_cpu_transcribes_and_evaluates_and_says_so(model_dir, model, processor, write_audio, small_corpus, capsys):
    path = write_audio("a.wav", tone(200, 0.7, 22050), 22050)
    assert main(["transcribe", "--device", "cpu", "--model", str(model_dir), str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}\t{transcribe(model, processor, [path])[0].text}\n"
    assert err == "device: cpu\n"
    assert main(["evaluate", "--device", "cpu", "--model", str(model_dir), "--corpus", str(small_corpus)]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"wer=\d\.\d{4} cer=\d\.\d{4}\n", out)
    assert err.startswith("device: cpu\n") and err.count("device:") == 1  # then the progress bar


def test_cli_device_defaults_to_the_gpu_when_there_is_one(model_dir, write_audio, capsys):
    path = write_audio("a.wav", tone(200, 0.7, 22050), 22050)
    assert main(["transcribe", "--model", str(model_dir), str(path)]) == 0
    assert capsys.readouterr().err == f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}\n"


@pytest.mark.parametrize("device, message", [
    ("gpu", "--device gpu: not a device name (cpu, cuda, cuda:1, ...)"),
    ("cuda:99", "--device cuda:99: no cuda device is available here (use --device cpu)"
     if not torch.cuda.is_available() else f"--device cuda:99: this machine has {torch.cuda.device_count()} cuda device(s), numbered from 0"),
])
def test_cli_device_that_is_not_there_is_one_error_line(device, message, model_dir, capsys):
    for command in ("transcribe", "evaluate"):
        args = [command, "--device", device, "--model", str(model_dir)] + (["x.wav"] if command == "transcribe" else [])
        assert main(args) == 2
        assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.gpu
def test_cli_puts_the_model_on_the_gpu(model_dir, processor, write_audio, small_corpus, capsys, monkeypatch):
    """By default on a GPU machine: the model the command line loads ends on cuda, its text is the
    text of a model on cuda, and its logits are the CPU's within float tolerance."""
    loaded = []

    def spy(folder, device):
        loaded.append(load_trained(folder, device)[0])
        return loaded[-1], processor

    monkeypatch.setattr(inference, "load_trained", spy)
    path = write_audio("a.wav", tone(200, 0.7, 22050), 22050)
    assert main(["transcribe", "--model", str(model_dir), str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == "device: cuda\n"
    on_gpu = loaded[-1]
    assert on_gpu.device.type == "cuda" and all(p.is_cuda for p in on_gpu.parameters())
    assert out == f"{path}\t{transcribe(on_gpu, processor, [path])[0].text}\n"
    on_cpu, _ = load_trained(model_dir, "cpu")
    audio = load_audio(str(path))
    gpu_logits, cpu_logits = frame_logits(on_gpu, processor, [audio])[0], frame_logits(on_cpu, processor, [audio])[0]
    assert gpu_logits.device.type == "cpu" and gpu_logits.dtype == torch.float32  # returned to the CPU
    assert (gpu_logits - cpu_logits).abs().max() < 1e-2 * cpu_logits.abs().max()
    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus)]) == 0
    assert capsys.readouterr().err.startswith("device: cuda\n") and loaded[-1].device.type == "cuda"


def test_cli_transcribe_fast_prints_the_same_texts(model_dir, write_audio, capsys):
    files = [write_audio("a.wav", tone(200, 0.7, 22050), 22050), write_audio("b.flac", tone(400, 1.1, 8000), 8000)]
    assert main(["transcribe", "--model", str(model_dir), *map(str, files)]) == 0
    plain = capsys.readouterr().out
    assert main(["transcribe", "--fast", "--model", str(model_dir), *map(str, files)]) == 0
    assert capsys.readouterr().out == plain and len(plain.splitlines()) == 2


@pytest.mark.slow
def test_cli_transcribe_prints_file_tab_text(model_dir, model, processor, write_audio):
    files = [write_audio("a.wav", tone(200, 0.7, 22050), 22050), write_audio("b.flac", tone(400, 1.1, 8000), 8000)]
    result = subprocess.run([sys.executable, "-m", "asr_helpers", "transcribe", "--model", str(model_dir), *map(str, files)],
                            capture_output=True, text=True, check=True)
    expected = transcribe(model, processor, files)
    assert result.stdout.splitlines() == [f"{f}\t{t.text}" for f, t in zip(files, expected)]


def _evaluate_each_file(folder, capsys) -> tuple[float, float]:
    """``evaluate --batch-size 1``: the WER and CER of each test file transcribed alone."""
    assert main(["evaluate", "--model", str(folder), "--batch-size", "1"]) == 0
    alone = re.fullmatch(r"wer=([\d.]+) cer=([\d.]+)\n", capsys.readouterr().out)
    assert alone
    return float(alone.group(1)), float(alone.group(2))


@pytest.mark.slow
def test_trainer_wer_is_the_wer_of_each_file_alone(course_training, capsys):
    """The Trainer's final evaluation of the course model (recorded beside it, last) against
    ``evaluate --batch-size 1``. One model, one WER: the Trainer no longer reads the frames of
    padding (on one course model the guide's compute_metrics said 0.120 where the files alone said 0.075)."""
    trainer = json.loads((course_training / training.COMPLETE).read_text())
    wer, cer = _evaluate_each_file(course_training, capsys)
    assert abs(trainer["eval_wer"] - wer) <= 0.005 and abs(trainer["eval_cer"] - cer) <= 0.005, (trainer, wer, cer)
    assert 0.02 < wer < 0.15 and cer < 0.05  # a trained model: from 0.45 before fine-tuning
