"""Pushing a model to the Hub and loading it back, against the Hub-compatible server of
``tests/hub_server.py``: the real ``huggingface_hub`` client, over HTTP, with no mocks.

``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read when ``huggingface_hub`` is imported, and this
session imported it offline, so the pushes and pulls run in a subprocess pointed at the server,
with a fresh ``HF_HOME`` (nothing cached) and the server's token in ``HF_TOKEN``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from asr_helpers.data import CORPUS_DIR
from asr_helpers.hub import check_model_folder, hub_user
from hub_server import GOOD_TOKEN, USER, serve

# The guide's steps, as notebooks 05 and 06 run them online: a Trainer with push_to_hub=True,
# trainer.push_to_hub(), then pipeline(model=repo_id) and from_pretrained(repo_id).
PUSH_AND_PULL = r'''
import json, sys
import torch
from huggingface_hub import HfApi, hf_hub_download
from transformers import AutoModelForCTC, AutoProcessor, TrainingArguments, pipeline
from asr_helpers.audio import load_audio
from asr_helpers.hub import hub_user
from asr_helpers.inference import transcribe
from asr_helpers.training import CTCTrainer

folder, name, token, audio_file = sys.argv[1:]
local_model, local_processor = AutoModelForCTC.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
args = TrainingArguments(output_dir=folder, push_to_hub=True, hub_model_id=name, hub_token=token, report_to="none")
trainer = CTCTrainer(model=local_model, args=args, processing_class=local_processor)
commit = trainer.push_to_hub()
repo_id = trainer.hub_model_id

speech = load_audio(audio_file)
hub_model = AutoModelForCTC.from_pretrained(repo_id)
hub_processor = AutoProcessor.from_pretrained(repo_id)
local_weights, hub_weights = local_model.state_dict(), hub_model.state_dict()
print(json.dumps({
    "user": hub_user(),
    "repo_id": repo_id,
    "commit": commit.oid,
    "revision_sha": HfApi().model_info(repo_id, revision=commit.oid).sha,
    "hub_pipeline": pipeline("automatic-speech-recognition", model=repo_id)(speech)["text"],
    "local_pipeline": pipeline("automatic-speech-recognition", model=folder)(speech)["text"],
    "hub_transcribe": transcribe(hub_model, hub_processor, [audio_file])[0].text,
    "local_transcribe": transcribe(local_model, local_processor, [audio_file])[0].text,
    "same_weights": local_weights.keys() == hub_weights.keys() and all(torch.equal(local_weights[k], hub_weights[k]) for k in local_weights),
    "card": open(hf_hub_download(repo_id, "README.md")).read(),
}))
'''

# What must be refused: a bad token (by the Trainer and by push_model) and a folder with no model;
# then push_model with the good token.
REFUSALS = r'''
import json, sys
from transformers import AutoModelForCTC, AutoProcessor, TrainingArguments
from asr_helpers.hub import hub_user, push_model
from asr_helpers.training import CTCTrainer

folder, empty, bad = sys.argv[1:]
errors = {"user": hub_user(), "bad_user": hub_user(bad)}
args = TrainingArguments(output_dir=folder, push_to_hub=True, hub_model_id="refused", hub_token=bad, report_to="none")
attempts = {
    "trainer": lambda: CTCTrainer(model=AutoModelForCTC.from_pretrained(folder), args=args,
                                  processing_class=AutoProcessor.from_pretrained(folder)).push_to_hub(),
    "push_model": lambda: push_model(folder, "learner/refused", token=bad),
    "no_weights": lambda: push_model(empty, "learner/empty"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        errors[name] = None
    except Exception as error:
        errors[name] = [type(error).__name__, str(error)]
errors["pushed"] = push_model(folder, "pushed").oid  # the same folder with the good token (HF_TOKEN)
print(json.dumps(errors))
'''


def run_against(hub, script: str, *args: str, tmp_path: Path) -> dict:
    """Run ``script`` in a fresh interpreter that talks to ``hub``, and return the JSON it printed last."""
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": GOOD_TOKEN,
           "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_offline_mode_names_why_nothing_is_pushed():
    """This session is offline (conftest): the notebooks' Hub cells print this one line and skip."""
    assert hub_user() == (None, "offline mode (HF_HUB_OFFLINE=1): nothing goes to the Hub")


def test_a_hub_that_does_not_answer_is_named_in_one_line(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0", "HF_TOKEN": GOOD_TOKEN,
           "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "from asr_helpers.hub import hub_user; print(hub_user())"],
                            env=env, capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.startswith("(None, 'the Hub did not answer (ConnectError: ") and result.stdout.count("\n") == 1
    assert result.stdout.endswith("): check the network')\n")


def test_a_folder_without_a_model_is_refused_in_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as error:
        check_model_folder(tmp_path)
    assert str(error.value).startswith(f"{tmp_path}: no model here (config.json and model.safetensors): nothing pushed")
    assert "\n" not in str(error.value)


@pytest.mark.slow  # two subprocesses that import torch and transformers: about 15 s
def test_bad_token_and_empty_folder_are_refused_then_push_model_uploads_the_model(model_dir, tmp_path):
    folder, empty = tmp_path / "model", tmp_path / "empty"
    shutil.copytree(model_dir, folder)
    (folder / "checkpoint-1").mkdir()  # a Trainer's checkpoint: never uploaded
    (folder / "checkpoint-1" / "optimizer.pt").write_bytes(b"state")
    empty.mkdir()
    (empty / "README.md").write_text("a card, but no model\n")
    before = folder_bytes(folder)
    with serve() as hub:
        errors = run_against(hub, REFUSALS, str(folder), str(empty), "hf_not_a_token", tmp_path=tmp_path)
    assert errors["user"] == [USER, None]
    assert errors["bad_user"][0] is None and errors["bad_user"][1].startswith("the Hub refused the saved token (401)")
    for attempt in ("trainer", "push_model"):  # refused at repo creation, before anything is saved or sent
        kind, message = errors[attempt]
        assert kind == "HfHubHTTPError", errors
        assert message.startswith(f"Client error '401 Unauthorized' for url '{hub.endpoint}/api/repos/create'"), message
        assert message.endswith("\n\nInvalid credentials in Authorization header"), message
    assert errors["no_weights"] == ["FileNotFoundError", f"{empty}: no model here (config.json and model.safetensors): "
                                    f"nothing pushed; train one first (python -m asr_helpers train --output-dir {empty})"]
    assert folder_bytes(folder) == before, "a push, refused or not, must not rewrite the folder"
    posts = [(path, status) for method, path, status in hub.requests if method == "POST"]
    assert posts == [("/api/repos/create", 401), ("/api/repos/create", 401),  # refused: no preupload, no commit
                     ("/api/repos/create", 200), ("/api/models/learner/pushed/preupload/main", 200),
                     ("/api/models/learner/pushed/commit/main", 200)]
    assert list(hub.repos) == [f"{USER}/pushed"] and hub.repos[f"{USER}/pushed"].main == errors["pushed"]
    pushed = hub.repos[f"{USER}/pushed"].commits[errors["pushed"]]
    assert set(pushed) == {".gitattributes", *(path for path in before if not path.startswith("checkpoint-"))}
    assert all(pushed[path] == before[path] for path in before if not path.startswith("checkpoint-"))
    assert not (tmp_path / "hf_home" / "hub").exists() or not any((tmp_path / "hf_home" / "hub").rglob("*.safetensors"))


@pytest.mark.slow  # the trained course model (conftest's course_training)
def test_push_to_hub_then_pipeline_from_the_hub_gives_the_local_transcript(course_training, tmp_path):
    trained = course_training
    folder = tmp_path / "my_awesome_asr_mind_model"
    folder.mkdir()
    for path in trained.iterdir():  # the saved model and its card, without the checkpoints
        if path.is_file():
            shutil.copy(path, folder)
    local_card = ModelCard.load(folder / "README.md")
    audio_file = CORPUS_DIR / "test" / "test_0000.flac"  # "what's my account balance"
    with serve() as hub:
        pulled = run_against(hub, PUSH_AND_PULL, str(folder), "my_awesome_asr_mind_model", GOOD_TOKEN, str(audio_file),
                             tmp_path=tmp_path)
    assert pulled["user"] == [USER, None] and pulled["repo_id"] == f"{USER}/my_awesome_asr_mind_model"
    assert pulled["commit"] == pulled["revision_sha"] == hub.repos[pulled["repo_id"]].main
    assert pulled["same_weights"] is True
    transcripts = {pulled[key] for key in ("hub_pipeline", "local_pipeline", "hub_transcribe", "local_transcribe")}
    assert len(transcripts) == 1 and "ACCOUNT BALANCE" in transcripts.pop(), pulled
    pushed = set(hub.repos[pulled["repo_id"]].commits[pulled["commit"]])
    assert {"README.md", "config.json", "model.safetensors", "processor_config.json", "vocab.json"} <= pushed
    assert not any(path.startswith("checkpoint-") for path in pushed)
    hub_card = ModelCard(pulled["card"])  # the course's card, not the Trainer's draft
    assert hub_card.data.eval_results == local_card.data.eval_results and "wav2vec2-ctc-course" in hub_card.data.tags
    downloads = {path for method, path, status in hub.requests if method == "GET" and status == 200}
    assert any(path.startswith(f"/{pulled['repo_id']}/resolve/") and path.endswith("/model.safetensors") for path in downloads)
