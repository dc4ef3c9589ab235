"""What notebooks rebuild, cached: each notebook runs alone by redoing earlier notebooks' work once.

A cache key is made of the settings and of the source code of every module that made the
artefact, so changing ``normalize_text`` or a recipe makes a new entry instead of serving stale
prepared data or models.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import datasets
from datasets import DatasetDict, load_from_disk
from transformers import AutoProcessor, Wav2Vec2Processor

from asr_helpers import audio, checks, data, preprocessing, text
from asr_helpers.checks import WAV2VEC2_CONV, OnError, validate_dataset
from asr_helpers.data import CORPUS_DIR, load_minds14, resolve_mode
from asr_helpers.preprocessing import normalize_transcription, prepare_dataset, pretrained_checkpoint

PREPARATION_MODULES: tuple[ModuleType, ...] = (audio, checks, data, preprocessing, text, sys.modules[__name__])
"""The code that turns a corpus into prepared rows (this module's ``prepare_splits`` too): part of every key built on them."""


def cache_dir(*parts: str) -> Path:
    """Where notebooks keep what they rebuild (``ASR_HELPERS_CACHE``, else ``~/.cache/asr_helpers``)."""
    root = Path(os.environ.get("ASR_HELPERS_CACHE", Path.home() / ".cache" / "asr_helpers"))
    return root.joinpath(*parts)


def fingerprint(mode: str, *settings: object, modules: tuple[ModuleType, ...] = PREPARATION_MODULES,
                corpus_dir: Path = CORPUS_DIR) -> str:
    """A short key: the mode, ``settings``, the source of ``modules`` and the offline corpus.

    A corpus folder other than the shipped one also contributes its files' paths, sizes and
    modification times: learners fix their recordings in place, and a fixed file must not be
    served from the cache as it was.
    """
    digest = hashlib.sha256(f"{mode}|{settings}".encode())
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    if mode == "offline":
        digest.update((corpus_dir / "metadata.csv").read_bytes())
    if mode == "offline" and Path(corpus_dir).resolve() != CORPUS_DIR.resolve():
        for path in sorted(Path(corpus_dir).resolve().rglob("*")):
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def prepare_splits(raw: DatasetDict, processor: Wav2Vec2Processor, *, on_error: OnError = "fail",
                   num_proc: int | None = None) -> tuple[DatasetDict, checks.ValidationReport]:
    """Notebook 02's steps on a loaded corpus: normalise transcripts, check every row, ``prepare_dataset``."""
    raw = raw.map(normalize_transcription)
    raw, report = validate_dataset(raw, processor, WAV2VEC2_CONV, on_error=on_error)
    prepared = raw.map(prepare_dataset, fn_kwargs={"processor": processor},
                       remove_columns=raw.column_names["train"], num_proc=num_proc)
    return prepared, report


def prepared_course_data(
    mode: str | None = None, *, on_error: OnError = "fail", corpus_dir: str | Path | None = None
) -> tuple[Wav2Vec2Processor, DatasetDict]:
    """Notebook 02's result in one call: the processor and the prepared train/test splits, cached.

    Rows the course models cannot use (:func:`~asr_helpers.checks.validate_dataset`) fail the
    call, or with ``on_error="drop"`` are dropped and reported on every call, cached or not.
    ``corpus_dir`` is an offline corpus folder to use instead of the shipped one.
    """
    mode = resolve_mode(mode or ("offline" if corpus_dir else None), verbose=False)
    if corpus_dir is not None and mode == "hub":
        raise ValueError(f"{corpus_dir}: a corpus folder is offline data; it cannot be combined with mode 'hub'")
    corpus = Path(corpus_dir or CORPUS_DIR)
    folder = cache_dir(f"prepared-{mode}-{fingerprint(mode, on_error, corpus_dir=corpus)}")
    if not (folder / "dataset" / "dataset_dict.json").is_file():
        processor = AutoProcessor.from_pretrained(pretrained_checkpoint(mode))
        processor.save_pretrained(folder / "processor")
        with _quiet_datasets():  # a few seconds; the same output whether cached or not
            prepared, report = prepare_splits(load_minds14(mode, corpus_dir=corpus), processor, on_error=on_error)
            if report.bad:
                (folder / "dropped.txt").write_text(f"{report}\n")
            prepared.save_to_disk(str(folder / "dataset"))  # last: its presence marks a complete entry
    if (folder / "dropped.txt").is_file():
        print((folder / "dropped.txt").read_text(), end="")
    processor, prepared = AutoProcessor.from_pretrained(folder / "processor"), load_from_disk(str(folder / "dataset"))
    sizes = ", ".join(f"{split} {rows}" for split, rows in prepared.num_rows.items())
    print(f"prepared course data ({mode}): {sizes} examples, vocabulary of {len(processor.tokenizer)} tokens")
    return processor, prepared


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
