"""Re-run notebooks offline on CPU and save them with their outputs, as committed and checked by nbval.

    python scripts/execute_notebooks.py                 # all notebooks, in order, one fresh cache
    python scripts/execute_notebooks.py notebooks/03_collator.ipynb
    python scripts/execute_notebooks.py --mode hub --output-dir /tmp/hub   # with HF_HOME set to a (stand-in) Hub cache

Each notebook runs in a fresh kernel from the notebooks/ folder, with the environment the test
suite uses (offline mode, a new cache folder), and prints its run time. Volatile metadata (cell
timings, widget state) is dropped so that notebooks stay clean in git. Before running, each
notebook's Colab badge and set-up cell are rewritten from the repository URL in pyproject.toml,
the one place it is written (``tests/test_notebooks.py`` checks that they agree): a fork changes
that URL and runs this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import re
import tomllib

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
SETUP_CELL = """\
# Set-up. In Colab: clone the course, then install it and only what Colab lacks or has too old for
# it, in versions that Colab's own packages accept (scripts/colab_setup.py). Locally: nothing to do.
import sys

if "google.colab" in sys.modules:
    import os, runpy, subprocess

    class SetupError(Exception):  # IPython shows it in one line, and "Run all" stops here
        _render_traceback_ = lambda self: [f"SetupError: {{self}}"]

    REPOSITORY = "{url}"
    if not os.path.isdir("/content/course"):
        clone = subprocess.run(["git", "clone", "--quiet", "--depth", "1", REPOSITORY, "/content/course"],
                               capture_output=True, text=True)
        if clone.returncode:
            raise SetupError(f"git clone {{REPOSITORY}} failed ({{' '.join(clone.stderr.split())}}): check the address "
                             "and the network. A fork writes its own in pyproject.toml [project.urls] Repository, "
                             "then runs python scripts/execute_notebooks.py to rewrite this cell.")
    runpy.run_path("/content/course/scripts/colab_setup.py")["main"]()

from asr_helpers.data import resolve_mode  # first: the package quiets tqdm's warning about notebook widgets

import datasets
from transformers.utils import logging

datasets.disable_progress_bars()  # the outputs show results, not how fast this machine loads and maps
logging.disable_progress_bar()
MODE = resolve_mode()  # "hub" when the Hugging Face Hub answers, else "offline" (shipped corpus and model)"""
"""The second cell of every notebook, formatted with :func:`repository_url`. Plain Python (no ``!``
or ``%`` lines): a failed ``!git clone`` would not stop the cell, and the tests can run it. A
failed clone stops it with one line, as ``scripts/colab_setup.py``'s own ``SetupError`` does
(``SystemExit`` would add IPython's banner and a "To exit" warning). The install itself lives in
``scripts/colab_setup.py``, where ``tests/test_colab.py`` resolves it."""


def repository_url() -> str:
    """The course's repository, written once, in pyproject.toml's ``[project.urls]``."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def colab_badge(path: Path) -> str:
    """The markdown badge that opens ``path`` (a notebook of the repository) in Colab."""
    github = repository_url().removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{github}/blob/main/notebooks/{path.name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"


def write_colab_cells(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Put the badge into the first (markdown) cell and the set-up cell second, from :func:`repository_url`."""
    notebook.cells[0].source = BADGE.sub(lambda _: colab_badge(path), notebook.cells[0].source)
    notebook.cells[1].source = SETUP_CELL.format(url=repository_url())


def clean(notebook: nbformat.NotebookNode) -> None:
    """Drop metadata that changes on every run and means nothing to a reader."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)


def execute(path: Path, timeout: int, output: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    write_colab_cells(notebook, path)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    clean(notebook)
    nbformat.write(notebook, output)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--mode", choices=("offline", "hub"), default="offline",
                        help="hub: the Hub cache in HF_HOME (offline: no download), e.g. the tests' stand-in")
    parser.add_argument("--output-dir", type=Path, help="write the executed notebooks here instead of in place")
    args = parser.parse_args(argv)
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", ASR_HELPERS_MODE=args.mode, TOKENIZERS_PARALLELISM="false")
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="asr_helpers_cache_") as fresh:  # removed at the end, whatever happens
        os.environ.setdefault("ASR_HELPERS_CACHE", fresh)
        total = 0.0
        for path in paths:
            output = (args.output_dir / path.name) if args.output_dir else path.resolve()
            output.parent.mkdir(parents=True, exist_ok=True)
            elapsed = execute(path.resolve(), args.timeout, output)
            total += elapsed
            print(f"{path.name:<28} {elapsed:6.1f} s", flush=True)
    print(f"{'total':<28} {total:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
