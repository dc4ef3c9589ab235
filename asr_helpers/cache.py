"""What notebooks rebuild, cached: each notebook runs alone by redoing earlier notebooks' work once.

A cache key is made of everything that changes the artefact: the settings, the source code of
every module that made it, the bytes of the base checkpoint and the versions of torch, transformers
and datasets. Changing ``normalize_text``, a recipe, course-base or a library makes a new entry
instead of serving stale prepared data or models. An entry counts only once it is whole (prepared
data is written aside and renamed into place, a model folder gets its marker last), so neither an
interrupted run nor a second process reading while the first writes sees part of one.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import datasets
import torch
import transformers
from datasets import DatasetDict, load_from_disk
from transformers import AutoConfig, AutoProcessor, Wav2Vec2Processor

from asr_helpers import audio, checks, data, preprocessing, text
from asr_helpers.checks import ConvGeometry, OnError, validate_dataset
from asr_helpers.data import CORPUS_DIR, Mode, load_minds14
from asr_helpers.preprocessing import normalize_transcription, prepare_dataset, pretrained_checkpoint

PREPARATION_MODULES: tuple[ModuleType, ...] = (audio, checks, data, preprocessing, text, sys.modules[__name__])
"""The code that turns a corpus into prepared rows (this module's ``prepare_splits`` too): part of every key built on them."""


def cache_dir(*parts: str) -> Path:
    """Where notebooks keep what they rebuild (``ASR_HELPERS_CACHE``, else ``~/.cache/asr_helpers``)."""
    root = Path(os.environ.get("ASR_HELPERS_CACHE", Path.home() / ".cache" / "asr_helpers"))
    return root.joinpath(*parts)


def fingerprint(mode: Mode, *settings: object, checkpoint: str | Path | None, modules: tuple[ModuleType, ...] = PREPARATION_MODULES,
                corpus_dir: Path = CORPUS_DIR) -> str:
    """A short key: the mode, ``settings``, the base ``checkpoint`` (:func:`checkpoint_digest`; ``None``
    for what no model makes, like a language model), the library versions, the source of ``modules``
    and the offline corpus.

    A corpus folder other than the shipped one also contributes its files' paths, sizes and
    modification times: learners fix their recordings in place, and a fixed file must not be
    served from the cache as it was.
    """
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}"
    digest = hashlib.sha256(f"{mode}|{settings}|{versions}|{checkpoint and checkpoint_digest(checkpoint)}".encode())
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    if mode == "offline":
        digest.update((corpus_dir / "metadata.csv").read_bytes())
    if mode == "offline" and Path(corpus_dir).resolve() != CORPUS_DIR.resolve():
        for path in sorted(Path(corpus_dir).resolve().rglob("*")):
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def checkpoint_digest(checkpoint: str | Path) -> str:
    """What identifies a base checkpoint: a local folder by the bytes of its files (weights, config,
    processor; not its card's prose), a Hub model by its name (the Hub's own cache follows its revisions)."""
    folder = Path(checkpoint)
    if not folder.is_dir():
        return str(checkpoint)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".md"):
        digest.update(f"{path.relative_to(folder)}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def prepare_splits(raw: DatasetDict, processor: Wav2Vec2Processor, geometry: ConvGeometry, *,
                   on_error: OnError = "fail") -> tuple[DatasetDict, checks.ValidationReport]:
    """Notebook 02's steps on a loaded corpus: normalise transcripts, check every row against the
    model's frame ``geometry``, ``prepare_dataset``."""
    raw = raw.map(normalize_transcription)
    raw, report = validate_dataset(raw, processor, geometry, on_error=on_error)
    prepared = raw.map(prepare_dataset, fn_kwargs={"processor": processor}, remove_columns=raw.column_names["train"])
    return prepared, report


def prepared_course_data(
    mode: Mode, *, checkpoint: str | Path | None = None, on_error: OnError = "fail", corpus_dir: str | Path | None = None
) -> tuple[Wav2Vec2Processor, DatasetDict]:
    """Notebook 02's result in one call: the processor and the prepared train/test splits, cached.

    The processor is ``checkpoint``'s: without one, the mode's own base model
    (:func:`~asr_helpers.preprocessing.pretrained_checkpoint`). Rows the model cannot use
    (:func:`~asr_helpers.checks.validate_dataset`) fail the call, or with ``on_error="drop"`` are
    dropped and reported on every call, cached or not. ``corpus_dir`` is an offline corpus folder to
    use instead of the shipped one (:func:`~asr_helpers.data.resolve_mode` refused it with ``hub``).
    """
    checkpoint = pretrained_checkpoint(mode) if checkpoint is None else checkpoint
    corpus = Path(corpus_dir or CORPUS_DIR)
    folder = cache_dir(f"prepared-{mode}-{fingerprint(mode, on_error, checkpoint=checkpoint, corpus_dir=corpus)}")
    if not folder.is_dir():
        processor = AutoProcessor.from_pretrained(checkpoint)
        geometry = ConvGeometry.of(AutoConfig.from_pretrained(checkpoint))
        with _quiet_datasets():  # a few seconds; the same output whether cached or not
            prepared, report = prepare_splits(load_minds14(mode, corpus_dir=corpus), processor, geometry, on_error=on_error)
        with _written_whole(folder) as partial:
            processor.save_pretrained(partial / "processor")
            if report.bad:
                (partial / "dropped.txt").write_text(f"{report}\n")
            with _quiet_datasets():
                prepared.save_to_disk(str(partial / "dataset"))
    if (folder / "dropped.txt").is_file():
        print((folder / "dropped.txt").read_text(), end="")
    processor, prepared = AutoProcessor.from_pretrained(folder / "processor"), load_from_disk(str(folder / "dataset"))
    sizes = ", ".join(f"{split} {rows}" for split, rows in prepared.num_rows.items())
    print(f"prepared course data ({mode}): {sizes} examples, vocabulary of {len(processor.tokenizer)} tokens")
    return processor, prepared


@contextmanager
def _written_whole(folder: Path) -> Iterator[Path]:
    """A sibling folder to write an entry into, renamed to ``folder`` once it is complete: another
    process (two notebooks at once, a second ``torchrun`` rank) sees the whole entry or none, and an
    interrupted write leaves no entry. If another process finished the same entry first, it is kept."""
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        partial.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
