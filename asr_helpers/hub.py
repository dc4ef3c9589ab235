"""Sharing a fine-tuned model on the Hugging Face Hub (the guide's last step): who is logged in,
and pushing a saved model folder with its card.

The guide pushes with ``Trainer.push_to_hub()``, which saves the Trainer's model first, so its
folder always holds weights. A folder trained earlier (``python -m asr_helpers train``) is pushed
with :func:`push_model`, which checks first what ``HfApi.upload_folder`` would not: that the folder
holds a model that ``from_pretrained`` can load, so that no repository is made for a folder that
would only give a broken one.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitInfo, HfApi, get_token, is_offline_mode
from huggingface_hub.errors import HfHubHTTPError

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
"""The files ``from_pretrained`` loads weights from; a folder needs one of them."""
NOT_UPLOADED = ["checkpoint-*", "_*"]
"""What ``Trainer.push_to_hub`` leaves out too: intermediate checkpoints and private files."""


def hub_user(token: str | None = None) -> tuple[str | None, str | None]:
    """``(name, None)`` for the account of ``token`` (default: the saved login or ``HF_TOKEN``), or
    ``(None, why)`` with one line on why nothing can be pushed: offline mode, no login, a refused
    token or no answer from the Hub. The notebooks' Hub cells run only on a name."""
    if is_offline_mode():
        return None, "offline mode (HF_HUB_OFFLINE=1): nothing goes to the Hub"
    token = token or get_token()
    if token is None:
        return None, "not logged in: log in with notebook_login() (or `hf auth login` in a terminal)"
    try:
        return HfApi().whoami(token=token)["name"], None
    except HfHubHTTPError as error:
        return None, f"the Hub refused the saved token ({error.response.status_code}): log in again with notebook_login()"
    except Exception as error:  # no network, DNS, proxy, time-out: httpx2's errors, or httpx's under huggingface_hub 1.x
        reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line, however long
        return None, f"the Hub did not answer ({reason}): check the network"


def check_model_folder(folder: str | Path) -> Path:
    """``folder``, if it holds a model to push (a configuration and weights); else one line saying what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder, so no model to push")
    if not (folder / "config.json").is_file() or not any((folder / name).is_file() for name in WEIGHTS):
        raise FileNotFoundError(
            f"{folder}: no model here (config.json and model.safetensors): nothing pushed; "
            f"train one first (python -m asr_helpers train --output-dir {folder})"
        )
    return folder


def push_model(folder: str | Path, repo_id: str, token: str | None = None, private: bool | None = None) -> CommitInfo:
    """Push a saved model folder (weights, processor, card) to ``repo_id``, made if needed, as
    ``Trainer.push_to_hub`` uploads its output folder. Nothing is sent for a folder without a model."""
    folder = check_model_folder(folder)
    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo.repo_id, folder_path=folder, ignore_patterns=list(NOT_UPLOADED),
                             commit_message="Upload the fine-tuned model")
