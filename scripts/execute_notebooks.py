"""Re-run notebooks offline on CPU and save them with their outputs, as committed and checked by nbval.

    python scripts/execute_notebooks.py                 # all notebooks, in order, one fresh cache
    python scripts/execute_notebooks.py notebooks/03_collator.ipynb

Each notebook runs in a fresh kernel from the notebooks/ folder, with the environment the test
suite uses (offline mode, a new cache folder), and prints its run time. Volatile metadata (cell
timings, widget state) is dropped so that notebooks stay clean in git.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def clean(notebook: nbformat.NotebookNode) -> None:
    """Drop metadata that changes on every run and means nothing to a reader."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)


def execute(path: Path, timeout: int) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    clean(notebook)
    nbformat.write(notebook, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", ASR_HELPERS_MODE="offline", TOKENIZERS_PARALLELISM="false")
    os.environ.setdefault("ASR_HELPERS_CACHE", tempfile.mkdtemp(prefix="asr_helpers_cache_"))
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    total = 0.0
    for path in paths:
        elapsed = execute(path.resolve(), args.timeout)
        total += elapsed
        print(f"{path.name:<28} {elapsed:6.1f} s", flush=True)
    print(f"{'total':<28} {total:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
