"""Bad audio and text get clear errors, good items survive, long audio is chunked, training resumes exactly.

Every test here runs with outgoing network connections refused: offline mode must not need them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, Dataset, DatasetDict
from safetensors.torch import load_file
from transformers import Wav2Vec2ForCTC

from asr_helpers.__main__ import main
from asr_helpers.audio import AudioDecodeError, load_audio
from asr_helpers.cache import prepare_splits
from asr_helpers.checks import BadRowsError, ConvGeometry, NonFiniteLossError, StopOnNonFiniteLoss, ctc_frames_needed, validate_dataset
from asr_helpers.data import CORPUS_DIR
from asr_helpers.inference import chunk_spans, transcribe
from asr_helpers.modeling import load_model, small_config
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.training import (
    COMPLETE,
    build_trainer,
    last_checkpoint,
    recipe_for,
    training_arguments,
)
from conftest import BASE_CONV, SENTENCES, guide_greedy, tone


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse every internet connection, and fail the test if anything even tried."""
    attempts = []
    original = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network access in an offline test: {address}")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
    assert attempts == []


# --- transcribe: one bad file among good ones ------------------------------------------------


def _encoded(seconds: float, format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(300, seconds, 16000), 16000, format=format, subtype=subtype)
    return buffer.getvalue()


def _nan_wav(path: Path) -> None:
    samples = tone(300, 0.5, 16000)
    samples[100] = np.nan
    sf.write(path, samples, 16000, subtype="FLOAT")


BAD_FILES = {  # name: (how to make it, the message after "error: PATH: ")
    "missing.wav": (lambda path: None, r"no such file"),
    "empty.wav": (lambda path: path.write_bytes(b""), r"empty file"),
    "folder.wav": (lambda path: path.mkdir(), r"not a file"),
    "notes.wav": (lambda path: path.write_text("these are my notes, not audio"),
                  r"not a readable audio file \(Format not recognised\.\)"),
    "phone.m4a": (lambda path: path.write_bytes(b"\0\0\0\x20ftypM4A \0\0\0\0M4A mp42isom" + bytes(4000)),
                  r"not a readable audio file \(Format not recognised\.\)"),
    "cut.wav": (lambda path: path.write_bytes(_encoded(1.0, "WAV", "PCM_16")[:16044]),
                r"truncated \(the header announces 1\.00 s, the file holds 0\.50 s\)"),
    "cut.mp3": (lambda path: path.write_bytes(_encoded(3.0, "MP3", "MPEG_LAYER_III")[:1200]),  # libmpg123 warns on fd 2
                r"truncated \(the header announces 3\.00 s, the file holds 0\.\d\d s\)"),
    "cut.flac": (lambda path: path.write_bytes(_encoded(1.0, "FLAC", "PCM_16")[:3000]),
                 r"corrupt audio \(flac decoder lost sync\.\)"),
    "cut.ogg": (lambda path: path.write_bytes(_encoded(1.0, "OGG", "VORBIS")[:2000]),
                r"not a readable audio file \(Supported file format but file is malformed\.\)"),
    "nan.wav": (_nan_wav, r"corrupt audio \(NaN or infinite samples\)"),
    "click.wav": (lambda path: sf.write(path, tone(300, 0.005, 16000), 16000),
                  r"too short \(5 ms; the model needs at least 25 ms\)"),
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_cli_transcribe_reports_a_bad_file_and_transcribes_the_good_ones(bad, model, processor, model_dir, write_audio, capfd):
    good = [write_audio("first.wav", tone(200, 0.7, 22050), 22050), write_audio("last.flac", tone(400, 1.1, 8000), 8000)]
    make, message = BAD_FILES[bad]
    bad_path = good[0].parent / bad
    make(bad_path)
    code = main(["transcribe", "--device", "cpu", "--model", str(model_dir), str(good[0]), str(bad_path), str(good[1])])
    out, err = capfd.readouterr()  # file descriptors: C libraries write to stderr directly
    assert code == 2
    assert out.splitlines() == [f"{path}\t{result.text}" for path, result in zip(good, transcribe(model, processor, good))]
    assert "Traceback" not in err
    device, error = err.splitlines()  # where the model runs, then the bad file's one line
    assert device == "device: cpu"
    assert re.fullmatch(f"error: {re.escape(str(bad_path))}: {message}", error)


def test_cli_transcribe_exit_code_is_0_when_all_files_work(model_dir, write_audio, capsys):
    assert main(["transcribe", "--device", "cpu", "--model", str(model_dir), str(write_audio("ok.wav", tone(200, 0.4, 16000), 16000))]) == 0
    assert capsys.readouterr().err == "device: cpu\n"  # and no error line


def test_cli_transcribe_without_a_model_is_one_error_line(tmp_path, capsys):
    assert main(["transcribe", "--model", str(tmp_path), "a.wav"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: no trained model here (run `python -m asr_helpers train` first)\n"


def test_transcribe_keeps_each_error_in_its_place_and_transcribes_the_rest(model, processor):
    speech, click = tone(200, 0.6, 16000), tone(200, 0.01, 16000)
    results = transcribe(model, processor, [speech, click, speech])
    assert results[0] == results[2] and results[0].text == guide_greedy(model, processor, [speech])[0]
    assert isinstance(results[1], AudioDecodeError)
    assert str(results[1]) == "audio[1]: too short (10 ms; the model needs at least 25 ms)"


def test_conv_geometry_is_read_from_the_config(model):
    assert ConvGeometry.of(model.config) == BASE_CONV  # small and base
    assert (BASE_CONV.min_samples, BASE_CONV.frame_samples) == (400, 320)  # 25 ms, 20 ms
    lengths = [399, 400, 719, 720, 16000, 12345]
    expected = model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
    assert [BASE_CONV.frames(n) for n in lengths] == expected
    assert BASE_CONV.frames(0) == 0
    assert ctc_frames_needed([5, 5, 6, 5]) == 5  # a blank between the two 5s


# --- long recordings ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [100, 320_000, 320_001, 500_000, 2_880_000])
def test_chunks_keep_every_frame_of_the_recording_once(length):
    chunks = chunk_spans(length, chunk=320_000, stride=64_000, frame_samples=320)
    assert chunks[0].start == 0 and chunks[-1].end == length
    assert all(c.end - c.start <= 320_000 for c in chunks)
    kept = [
        frame
        for c in chunks
        for frame in range(c.start // 320, c.start // 320 + BASE_CONV.frames(c.end - c.start))[c.keep]
    ]
    assert kept == list(range(BASE_CONV.frames(length)))


def _recording(seconds: float) -> np.ndarray:
    """Corpus utterances end to end, at the corpus's 8 kHz, until ``seconds`` long."""
    rows = list(csv.DictReader((CORPUS_DIR / "metadata.csv").open()))
    pieces, total = [], 0
    for row in rows:
        samples, _ = sf.read(CORPUS_DIR / row["file"], dtype="float32")
        pieces.append(samples)
        total += len(samples)
        if total >= seconds * 8000:
            return np.concatenate(pieces)[: int(seconds * 8000)]
    raise AssertionError("corpus too short")


def test_multi_minute_file_is_transcribed_whole_in_bounded_chunks(processor, tmp_path):
    """A 3-minute file through 20 s windows gives exactly the text of decoding it in one piece.

    Exact equality needs a model whose frames depend on bounded context: the convolutions alone
    (no attention layers, which see the whole input), narrow to be quick. Chunk and stride sizes
    are the defaults; with attention, chunking changes the text a little, as in the pipeline.
    """
    config = small_config(len(processor.tokenizer), processor.tokenizer.pad_token_id)
    config.num_hidden_layers, config.conv_dim = 0, (16,) * 7
    torch.manual_seed(0)
    local = Wav2Vec2ForCTC(config).eval()
    path = tmp_path / "meeting.flac"
    sf.write(path, _recording(180), 8000)
    seen = []
    hook = local.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_values"].shape),
                                           with_kwargs=True)
    chunked = transcribe(local, processor, [path], batch_size=4)[0].text
    hook.remove()
    whole = guide_greedy(local, processor, [load_audio(str(path))])[0]
    assert chunked == whole and len(whole) > 500
    assert max(shape[1] for shape in seen) == 20 * 16000  # never the whole 3 minutes at once
    assert max(shape[0] for shape in seen) <= 4  # at most batch_size windows per forward pass


def test_chunked_transcript_length_follows_the_duration(model, processor):
    one, three = (len(transcribe(model, processor, [_recording(s)], chunk_length_s=8, stride_length_s=2)[0].text) for s in (20, 60))
    assert 2.5 < three / one < 3.5


# --- datasets: bad rows are found, then fail (default) or are dropped with a report --------------


def _rows_dataset(folder: Path, rows: list[tuple[str, float | None, str]]) -> Dataset:
    """Rows of (file name, seconds of 8 kHz tone, or None for a text file, transcript)."""
    for name, seconds, _ in rows:
        if seconds is None:
            (folder / name).write_text("not audio")
        else:
            sf.write(folder / name, tone(250, seconds, 8000), 8000)
    return Dataset.from_dict(
        {"audio": [{"path": str(folder / name), "bytes": None} for name, *_ in rows], "transcription": [t for *_, t in rows]}
    ).cast_column("audio", Audio(decode=False))


GOOD_ROWS = [("good0.flac", 1.25, SENTENCES[0]), ("good1.flac", 1.5, SENTENCES[1])]
BAD_ROWS = {  # problem: (row, message after the path)
    "unusable audio": (("notes.flac", None, SENTENCES[2]), r"not a readable audio file \(Format not recognised\.\)"),
    "empty transcript": (("silence.flac", 1.0, " ... "), r"empty transcript ' \.\.\. '"),
    "characters outside the vocabulary": (("euro.flac", 1.0, "pay € now"), r"characters outside the vocabulary: \{'€': 1\}"),
    "transcript too long for the audio": (("rushed.flac", 0.3, SENTENCES[3]),
                                          r"31 labels need 32 frames, but 0\.30 s of audio gives 14"),
}


@pytest.mark.parametrize("problem", list(BAD_ROWS))
def test_bad_dataset_row_fails_by_default_naming_its_file(problem, processor, tmp_path):
    row, message = BAD_ROWS[problem]
    dataset = _rows_dataset(tmp_path, [GOOD_ROWS[0], row, GOOD_ROWS[1]])
    with pytest.raises(BadRowsError) as caught:
        validate_dataset(dataset, processor, BASE_CONV)
    lines = str(caught.value).splitlines()
    assert lines[0] == '1 of 3 rows cannot be used for CTC training; fix them, or drop them with on_error="drop" (--on-bad-rows drop):'
    assert lines[1] == f"  {problem}: 1 row, e.g."
    assert re.fullmatch(rf"    dataset\[1\] {tmp_path / row[0]}: {message}", lines[2])


@pytest.mark.parametrize("problem", list(BAD_ROWS))
def test_bad_dataset_row_is_dropped_on_request_and_reported(problem, processor, tmp_path):
    row, _ = BAD_ROWS[problem]
    kept, report = validate_dataset(_rows_dataset(tmp_path, [GOOD_ROWS[0], row, GOOD_ROWS[1]]), processor,
                                    BASE_CONV, on_error="drop")
    assert kept["transcription"] == [GOOD_ROWS[0][2], GOOD_ROWS[1][2]]  # the good rows survive, in order
    assert [(bad.index, bad.problem) for bad in report.bad] == [(1, problem)]
    assert str(report).startswith("1 of 3 rows cannot be used for CTC training; dropped them:")


def test_too_short_audio_row_is_dropped_by_prepare_splits_with_a_report(processor, tmp_path):
    train = _rows_dataset(tmp_path, [GOOD_ROWS[0], ("click.flac", 0.01, "hi"), GOOD_ROWS[1]])
    prepared, report = prepare_splits(DatasetDict(train=train, test=train.select([0])), processor, BASE_CONV, on_error="drop")
    assert prepared["train"]["input_length"] == [20000, 24000]
    assert str(report).splitlines()[1:] == [
        "  unusable audio: 1 row, e.g.",
        f"    train[1] {tmp_path / 'click.flac'}: too short (10 ms; the model needs at least 25 ms)",
    ]


def test_nan_loss_stops_training_naming_step_and_batch_before_the_weights_change(processor, tmp_path):
    """validate_dataset would have caught this row; the guard is for data that skipped it."""
    rows = [(tone(150 + 40 * i, 0.8, 16000), "PAY A BILL") for i in range(7)] + [(tone(200, 0.2, 16000), "FREEZE MY CARD")]
    data = Dataset.from_list([
        {"input_values": processor(audio=audio, sampling_rate=16000)["input_values"][0],
         "labels": processor.tokenizer(text)["input_ids"], "input_length": len(audio)}
        for audio, text in rows
    ])
    model = load_model(processor, COURSE_CHECKPOINT, seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = training_arguments(tmp_path, recipe_for("offline", 3, verbose=False), eval_strategy="no", save_strategy="no",
                              load_best_model_at_end=False, eval_on_start=False, disable_tqdm=True)
    trainer = build_trainer(model, args, processor, data, data, "offline")
    trainer.add_callback(StopOnNonFiniteLoss())
    with pytest.raises(NonFiniteLossError, match=r"^step 1: training loss is inf on a batch of 8 rows \(transcripts .*'FREEZE MY CARD'"):
        trainer.train()
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


# --- the train command: bad rows, resume after a kill --------------------------------------------


def _corpus(folder: Path, rows: list[dict]) -> Path:
    """A corpus folder in the shipped layout from metadata rows, with their audio where the shipped corpus has it."""
    folder.mkdir()
    for row in rows:
        (folder / row["file"]).parent.mkdir(exist_ok=True)
        if (CORPUS_DIR / row["file"]).is_file():
            shutil.copy(CORPUS_DIR / row["file"], folder / row["file"])
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def shipped_rows() -> list[dict]:
    return list(csv.DictReader((CORPUS_DIR / "metadata.csv").open(newline="")))


@pytest.fixture(scope="module")
def tiny_rows(shipped_rows) -> list[dict]:
    """16 short training rows and 8 test rows spelled with the training rows' letters."""
    train = sorted((r for r in shipped_rows if r["split"] == "train"), key=lambda r: float(r["duration_s"]))[:16]
    letters = {ch for row in train for ch in row["transcription"].upper()}
    test = [r for r in shipped_rows if r["split"] == "test" and set(r["transcription"].upper()) <= letters][:8]
    assert len(test) == 8
    return train + test


@pytest.mark.slow
def test_train_on_a_corpus_with_bad_rows_fails_with_a_report_or_drops_them(tiny_rows, tmp_path, capsys):
    bad = [dict(tiny_rows[0], transcription=""), dict(tiny_rows[1], file="train/missing.flac")]
    corpus = _corpus(tmp_path / "corpus", bad + tiny_rows[2:])
    command = ["train", "--corpus", str(corpus), "--output-dir", str(tmp_path / "out"), "--max-steps", "1"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 of 24 rows cannot be used for CTC training; fix them, or drop them")
    assert f"train[0] {corpus / tiny_rows[0]['file']}: empty transcript ''" in err
    assert f"train[1] {corpus / 'train/missing.flac'}: no such file" in err

    assert main([*command, "--on-bad-rows", "drop"]) == 0
    out = capsys.readouterr().out
    assert "2 of 24 rows cannot be used for CTC training; dropped them:" in out
    assert "prepared course data (offline): train 14, test 8 examples" in out


KILL_AFTER_SAVE = """
import os, signal, socket, sys

def refuse(self, address):  # offline mode must not need the network
    raise OSError(f"network access in an offline test: {address}")

socket.socket.connect = refuse
from transformers import TrainerCallback
import asr_helpers.training as training

class Kill(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == int(os.environ["KILL_AT_STEP"]):
            os.kill(os.getpid(), signal.SIGKILL)  # as abrupt as a disconnected runtime

build = training.build_trainer

def build_with_kill(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(Kill())
    return trainer

training.build_trainer = build_with_kill
from asr_helpers.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    assert last_checkpoint(tmp_path) is None
    for step, complete in ((2, True), (10, True), (12, False)):  # killed while saving checkpoint-12
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


@pytest.mark.slow
def test_train_resume_after_a_kill_matches_an_uninterrupted_run(tiny_rows, tmp_path, capsys):
    corpus = _corpus(tmp_path / "corpus", tiny_rows)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    command = ["train", "--corpus", str(corpus), "--max-steps", "6"]  # a checkpoint every 2 steps
    assert main([*command, "--output-dir", str(straight)]) == 0
    straight_out = capsys.readouterr().out

    run = subprocess.run([sys.executable, "-c", KILL_AFTER_SAVE, *command, "--output-dir", str(killed)],
                         env={**os.environ, "KILL_AT_STEP": "4"}, capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (killed / "model.safetensors").exists()

    assert main([*command, "--output-dir", str(killed), "--resume"]) == 0
    resumed_out = capsys.readouterr().out
    assert f"resuming from {killed / 'checkpoint-4'}" in resumed_out
    final = [line for line in straight_out.splitlines() if line.startswith("wer=")]
    assert final == [line for line in resumed_out.splitlines() if line.startswith("wer=")] and len(final) == 1
    # equal up to float rounding: an earlier test in this process may have changed torch's thread count
    final_straight, final_resumed = ({key: value for key, value in json.loads((run / COMPLETE).read_text()).items()
                                      if key in ("eval_loss", "eval_wer", "eval_cer")} for run in (straight, killed))
    assert len(final_straight) == 3 and final_resumed == pytest.approx(final_straight, rel=1e-4)
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not list(killed.glob("checkpoint-*")), "the completed run's checkpoints are removed"
