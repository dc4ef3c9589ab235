"""The guide's own path, end to end, against a stand-in Hub: the notebooks in hub mode (their
check cells asserting; outputs are not compared with the committed offline ones) and
``python -m asr_helpers train --mode hub``. The stand-in (``standin_hub.py``) is a Hugging Face
cache holding a small random model named ``facebook/wav2vec2-base`` and MInDS-14 rows in their
Parquet form, so the real ``from_pretrained``, ``load_dataset`` and ``evaluate.load`` code runs
with ``HF_HUB_OFFLINE=1``. Notebooks 03 and 06 also run against the stand-in's second variant
(another row order, a model that writes special tokens), so that their cells hold for any rows
and any model, not only for the offline ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from standin_hub import make_standin_hub

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory) -> Path:
    return make_standin_hub(tmp_path_factory.mktemp("hf_home"))


@pytest.fixture(scope="module")
def special_tokens_hub(tmp_path_factory) -> Path:
    return make_standin_hub(tmp_path_factory.mktemp("hf_home_special"), seed=1, variant="special-tokens")


def hub_environment(hub_home: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "HF_HOME": str(hub_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "ASR_HELPERS_MODE": "hub", "ASR_HELPERS_CACHE": str(cache), "CUDA_VISIBLE_DEVICES": ""}


def execute(path: Path, environment: dict[str, str]) -> nbformat.NotebookNode:
    """Execute ``path`` in a fresh kernel started with ``environment``; a failing cell raises."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=environment)
    return notebook


def execute_together(runs: list[tuple[Path, dict[str, str]]]) -> list[nbformat.NotebookNode]:
    """:func:`execute` of notebooks that do not depend on each other, two at a time, each kernel on one
    thread when there are several (two kernels of two OpenMP threads each on two cores wait on each other)."""
    threads = {"OMP_NUM_THREADS": "1"} if len(runs) > 1 else {}
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda run: execute(run[0], {**run[1], **threads}), runs))


@pytest.fixture(scope="module")
def executed(hub_home, special_tokens_hub, tmp_path_factory) -> dict[tuple[str, str], nbformat.NotebookNode]:
    """Every notebook against the stand-in Hub, and notebooks 03 and 06 against its special-tokens
    variant, by (variant, notebook). Notebooks before 05 run first, then 05 (it trains the model that
    the later ones load), then the later ones; the variant's 03 and 06 (which, run alone, trains its
    own model) go with the first and the last stage. Within a stage none depends on another."""
    main = hub_environment(hub_home, tmp_path_factory.mktemp("cache"))
    special = hub_environment(special_tokens_hub, tmp_path_factory.mktemp("cache_special"))
    trains = [path.name for path in NOTEBOOKS].index("05_training.ipynb")
    notebook = {path.name: path for path in NOTEBOOKS}
    stages = [
        [("base", path, main) for path in NOTEBOOKS[:trains]] + [("special-tokens", notebook["03_collator.ipynb"], special)],
        [("base", NOTEBOOKS[trains], main)],
        [("special-tokens", notebook["06_inference.ipynb"], special)] + [("base", path, main) for path in NOTEBOOKS[trains + 1 :]],
    ]
    done = {}
    for stage in stages:
        results = execute_together([(path, environment) for _, path, environment in stage])
        done |= {(variant, path.name): result for (variant, path, _), result in zip(stage, results)}
    return done


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))


def test_all_notebooks_in_order(executed):
    outputs = {name: printed(notebook) for (variant, name), notebook in executed.items() if variant == "base"}
    assert sorted(outputs) == [path.name for path in NOTEBOOKS]
    assert all("mode: hub (ASR_HELPERS_MODE=hub)" in text for text in outputs.values())
    assert all("all checks passed" in text for text in outputs.values())
    assert "no attention mask" in outputs["03_collator.ipynb"]
    assert "recipe: hub-cpu, 100 steps (no GPU" in outputs["05_training.ipynb"]


def test_notebooks_hold_for_other_rows_and_a_model_that_writes_special_tokens(executed):
    """Notebook 03 pads a batch whose first row is the longest; notebook 06, run alone (so it trains
    its model first, 100 steps on the CPU), collapses by hand, as ``batch_decode`` does, greedy paths full of
    ``<s>``, ``</s>`` and ``<unk>`` (its check cell compares every test file's)."""
    collator, inference = executed["special-tokens", "03_collator.ipynb"], executed["special-tokens", "06_inference.ipynb"]
    assert "all checks passed" in printed(collator) and "all checks passed" in printed(inference)
    shown = printed(collator)
    assert re.search(r"padded samples per row: \[0, [1-9]", shown), shown  # the first row is the longest
    by_hand = next(cell for cell in inference.cells if "inference.ctc_collapse(path" in cell.source)
    frames = "".join(output.get("text", "") for output in by_hand.outputs).splitlines()[0]
    assert re.search(r"<s>|</s>|<unk>", frames), frames  # the case this variant is for
    assert re.search(r"HYP .*(<s>|</s>|<unk>)", printed(inference)), "transcribe writes them too"


def test_cli_trains_in_hub_mode(hub_home, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "asr_helpers", "train", "--mode", "hub", "--max-steps", "10", "--output-dir", str(tmp_path / "model")],
        env=hub_environment(hub_home, tmp_path / "cache"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "mode: hub (asked for)" in lines
    assert any(line.startswith("recipe: hub-cpu, 10 steps (no GPU") for line in lines)
    assert lines[-1].startswith("wer=") and " cer=" in lines[-1]
    assert (tmp_path / "model" / "model.safetensors").is_file() and (tmp_path / "model" / "vocab.json").is_file()
