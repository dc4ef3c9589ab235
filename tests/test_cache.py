"""Honest caches: a key changes with everything that changes the artefact, an interrupted save is
never served, a cached model is reused by a new process, and the mode is decided once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import transformers

from asr_helpers import data, training
from asr_helpers.cache import _written_whole, checkpoint_digest, fingerprint
from asr_helpers.preprocessing import COURSE_CHECKPOINT


@pytest.fixture
def checkpoint_copy(tmp_path):
    folder = tmp_path / "course-base"
    shutil.copytree(COURSE_CHECKPOINT, folder)
    return folder


def test_the_key_follows_the_checkpoint_s_bytes_not_its_card(checkpoint_copy):
    key = fingerprint("offline", "fail", checkpoint=checkpoint_copy)
    assert key == fingerprint("offline", "fail", checkpoint=COURSE_CHECKPOINT)  # the same bytes elsewhere
    (checkpoint_copy / "README.md").write_text("another card\n")
    assert fingerprint("offline", "fail", checkpoint=checkpoint_copy) == key  # prose changes no result
    weights = bytearray((checkpoint_copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # one bit of one weight: a retrained course-base
    (checkpoint_copy / "model.safetensors").write_bytes(bytes(weights))
    assert fingerprint("offline", "fail", checkpoint=checkpoint_copy) != key
    assert checkpoint_digest("facebook/wav2vec2-base") == "facebook/wav2vec2-base"  # a Hub name: its own cache follows it


def test_the_key_follows_the_library_versions(monkeypatch):
    key = fingerprint("offline", "fail", checkpoint=COURSE_CHECKPOINT)
    monkeypatch.setattr(transformers, "__version__", "99.0")
    assert fingerprint("offline", "fail", checkpoint=COURSE_CHECKPOINT) != key


def test_the_model_key_ignores_the_recipe_s_prose(monkeypatch):
    folder = training.course_model_dir("offline")
    monkeypatch.setitem(training.RECIPES, "course", {**training.RECIPES["course"], "why": "reworded"})
    assert training.course_model_dir("offline") == folder
    monkeypatch.setitem(training.RECIPES, "course", {**training.RECIPES["course"], "learning_rate": 2 * training.RECIPES["course"]["learning_rate"]})
    assert training.course_model_dir("offline") != folder


def test_an_interrupted_save_is_not_served_but_resumed(monkeypatch):
    folder = training.course_model_dir("offline", 7)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"cut short")  # the processor and the marker never came
    calls = []

    def fake_fine_tune(output_dir, mode, **kwargs):
        calls.append((output_dir, mode, kwargs))
        (output_dir / training.COMPLETE).write_text("{}\n")

    monkeypatch.setattr(training, "fine_tune", fake_fine_tune)
    assert training.course_model("offline", 7) == folder
    assert calls == [(folder, "offline", {"max_steps": 7, "resume": True})]
    assert training.course_model("offline", 7) == folder and len(calls) == 1  # complete now: served as it is
    shutil.rmtree(folder)


@pytest.mark.slow
def test_the_mode_is_decided_once_and_a_new_process_reuses_the_model(monkeypatch, capsys):
    """Flaky wifi: the Hub check fails, then answers. The mode decided at the start holds for the
    whole training (a second check would have loaded MInDS-14 and failed here), and a second
    ``course_model`` call in a new process serves the model without training."""
    monkeypatch.delenv("ASR_HELPERS_MODE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    answers = iter([False, True])
    checks = []
    monkeypatch.setattr(data, "_hub_reachable", lambda: checks.append(1) or next(answers))
    mode = data.resolve_mode()
    folder = training.course_model(mode, max_steps=2)
    assert mode == "offline" and len(checks) == 1
    assert folder.name.startswith("model-offline-2-") and (folder / training.COMPLETE).is_file()
    assert not list(folder.glob("checkpoint-*")), "the Trainer's checkpoints are removed once the model is saved"
    assert set(json.loads((folder / training.COMPLETE).read_text())) >= {"eval_wer", "eval_cer", "eval_loss"}
    capsys.readouterr()
    marker = (folder / training.COMPLETE).stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-c", "from asr_helpers.training import course_model; print(course_model('offline', 2))"],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout == f"{folder}\n", "no recipe line, no training log: the cached model, as it is"
    assert (folder / training.COMPLETE).stat().st_mtime_ns == marker


def test_an_entry_appears_whole_or_not_at_all(tmp_path):
    """Prepared data is written aside and renamed into place: while it is written, and after a
    failed write, there is no entry to read; if another process put the entry first, it stays."""
    folder = tmp_path / "prepared-offline-abc"
    with pytest.raises(RuntimeError, match="cut short"), _written_whole(folder) as partial:
        (partial / "processor").mkdir()
        assert not folder.exists(), "a reader sees no entry while it is written"
        raise RuntimeError("cut short")
    assert list(tmp_path.iterdir()) == [], "a failed write leaves nothing"
    with _written_whole(folder) as partial:
        (partial / "mine.txt").write_text("first\n")
    with _written_whole(folder) as partial:  # a second process that prepared the same data meanwhile
        (partial / "mine.txt").write_text("second\n")
    assert [path.name for path in tmp_path.iterdir()] == [folder.name] and (folder / "mine.txt").read_text() == "first\n"
