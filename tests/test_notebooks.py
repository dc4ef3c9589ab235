"""The notebooks against the package: Colab cells written from one URL, and the cells that spell
out the guide's calls (``TrainingArguments``, ``Trainer``, ``from_pretrained``) agreeing with the
helpers the command line uses, so ``python -m asr_helpers train`` trains as notebook 05 does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoProcessor, EvalPrediction

from asr_helpers import training
from asr_helpers.modeling import load_model
from asr_helpers.preprocessing import COURSE_CHECKPOINT

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _execute_notebooks_script():
    spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "scripts" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(notebook: str, marker: str) -> str:
    """The source of the one code cell of ``notebook`` that contains ``marker``."""
    cells = [c.source for c in nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells
             if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{notebook}: {len(cells)} code cells contain {marker!r}"
    return cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge_and_setup_cell_come_from_the_repository_url(path):
    script = _execute_notebooks_script()
    url = script.repository_url()
    assert url.startswith("https://github.com/")
    notebook = nbformat.read(path, as_version=4)
    assert script.colab_badge(path) in notebook.cells[0].source
    assert f"/blob/main/notebooks/{path.name})" in script.colab_badge(path)
    assert notebook.cells[1].source == script.SETUP_CELL.format(url=url)


def test_setup_cell_installs_through_colab_setup_and_never_the_lock():
    """Colab's install is scripts/colab_setup.py's one pip command (resolved by tests/test_colab.py):
    the lock would replace dozens of Colab's packages, and a shell line (``!git clone``) that fails
    would not stop the cell, so the cell is plain Python; a failed clone stops it with one line
    (tests/test_colab.py runs it in IPython)."""
    script = _execute_notebooks_script()
    cell = script.SETUP_CELL.format(url=script.repository_url())
    compile(cell, "setup-cell", "exec")
    assert "scripts/colab_setup.py" in cell and f'"{script.repository_url()}"' in cell
    assert "requirements.txt" not in cell and "--constraint" not in cell
    assert not any(line.lstrip().startswith(("!", "%")) for line in cell.splitlines())
    assert "SystemExit" not in cell and "_render_traceback_" in cell, "a failed clone stops the cell in one line"
    assert cell.endswith('\nMODE = resolve_mode()  # "hub" when the Hugging Face Hub answers, else "offline" (shipped corpus and model)')


@pytest.mark.parametrize("mode,cuda", [("offline", False), ("hub", False), ("hub", True)])
def test_training_arguments_cell_is_what_the_cli_uses(mode, cuda, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # fp16 and pinning as on this machine
    recipe = training.recipe_for(mode, cuda=cuda, verbose=False)
    source = _cell("05_training.ipynb", "training_args = TrainingArguments(")
    scope = {"recipe": recipe, "model_dir": tmp_path}
    exec(source.replace("model_dir = training.course_model_dir(MODE)", ""), scope)
    cell_args = scope["training_args"].to_dict()
    assert cell_args == training.training_arguments(tmp_path, recipe).to_dict()
    assert cell_args["max_steps"] == {"offline": 450, "hub": 2000 if cuda else 100}[mode]
    assert cell_args["eval_on_start"] is True


def test_model_cell_is_what_the_cli_loads():
    processor = AutoProcessor.from_pretrained(COURSE_CHECKPOINT)
    scope = {"processor": processor, "MODE": "offline"}
    source = _cell("05_training.ipynb", "AutoModelForCTC.from_pretrained(")
    exec(source.split("config = model.config")[0], scope)
    cell_model, cli_model = scope["model"], load_model(processor, COURSE_CHECKPOINT, freeze_feature_encoder=True)
    cell_state, cli_state = cell_model.state_dict(), cli_model.state_dict()
    assert cell_state.keys() == cli_state.keys()
    assert all(torch.equal(cell_state[key], cli_state[key]) for key in cell_state)
    frozen = lambda model: sorted(name for name, p in model.named_parameters() if not p.requires_grad)  # noqa: E731
    assert frozen(cell_model) == frozen(cli_model) != []
    assert cell_model.config.ctc_loss_reduction == cli_model.config.ctc_loss_reduction == "mean"


def test_trainer_cell_is_what_the_cli_builds(model, processor, tmp_path):
    rows = {"input_values": [np.ones(800, dtype=np.float32), np.ones(1200, dtype=np.float32)],
            "labels": [[3, 4, 5], [5, 4]], "input_length": [800, 1200]}
    prepared = {"train": Dataset.from_dict(rows), "test": Dataset.from_dict(rows)}
    args = training.training_arguments(tmp_path, training.recipe_for("offline", 2, verbose=False))
    scope = {"model": model, "training_args": args, "processor": processor, "prepared": prepared, "MODE": "offline"}
    exec(_cell("05_training.ipynb", "trainer = CTCTrainer("), scope)
    cell, cli = scope["trainer"], training.build_trainer(model, args, processor, prepared["train"], prepared["test"], "offline")
    assert type(cell) is type(cli) is training.CTCTrainer
    assert not cell.model_accepts_loss_kwargs and not cli.model_accepts_loss_kwargs
    assert type(cell.data_collator) is type(cli.data_collator) and cell.data_collator.padding == cli.data_collator.padding
    assert cell.processing_class is cli.processing_class is processor
    batch = [cell.train_dataset[i] for i in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(cell.data_collator(batch).values(), cli.data_collator(batch).values()))
    logits = np.random.default_rng(0).normal(size=(2, 5, len(processor.tokenizer))).astype(np.float32)
    labels = np.array([[3, 4, 5], [5, 4, -100]])
    prediction = EvalPrediction(predictions=logits, label_ids=(labels, np.array([1680, 1040])))  # 5 and 3 frames
    assert cell.compute_metrics(prediction) == cli.compute_metrics(prediction)
    assert set(cell.compute_metrics(prediction)) == {"wer", "cer"}
