"""Audio in: decode any file soundfile reads, mix to mono, resample, refuse what a model cannot use.

``datasets`` 5.x decodes audio through torchcodec, whose PyPI wheels need a CUDA build of torch
and fail to load next to the CPU wheel, so the course keeps audio columns as
``Audio(decode=False)`` (a path and/or raw bytes) and decodes them here with soundfile (WAV,
FLAC, OGG, MP3, NIST SPHERE) and soxr.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_SAMPLING_RATE = 16_000


class AudioDecodeError(ValueError):
    """Audio that cannot become model input (missing, not audio, corrupt, too short); the message names the file and why."""


def audio_name(source: str | os.PathLike | bytes | dict) -> str:
    """How errors and reports name an audio source: its path, else ``<bytes>``."""
    if isinstance(source, dict):
        return source.get("path") or "<bytes>"
    return "<bytes>" if isinstance(source, bytes) else str(source)


def read_audio(source: str | os.PathLike | bytes | dict) -> tuple[np.ndarray, int]:
    """Decode a file (path, raw bytes, or a datasets ``{"path", "bytes"}`` dict) to mono float32.

    A datasets dict is read from its bytes when it has them: Hub datasets store the audio in the
    Parquet file, and their ``path`` names a file on the machine that made them, not this one.
    Stereo is averaged to mono: the models hear one channel. Errors become one
    :class:`AudioDecodeError` line that names the file and the problem.
    """
    label = audio_name(source)
    if isinstance(source, dict):
        source = source["bytes"] if source.get("bytes") else source["path"]
    if isinstance(source, bytes):
        if not source:
            raise AudioDecodeError(f"{label}: empty file")
        data, rate = _decode(io.BytesIO(source), label, _looks_like_mp3(source[:4]))
    else:
        path = Path(source)
        if not path.exists():
            raise AudioDecodeError(f"{label}: no such file")
        if not path.is_file():
            raise AudioDecodeError(f"{label}: not a file")
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{label}: empty file")
        with path.open("rb") as handle:
            data, rate = _decode(path, label, _looks_like_mp3(handle.read(4)))
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{label}: no audio samples")
    if not np.isfinite(data).all():  # float WAVs can hold them; one would make the loss NaN
        raise AudioDecodeError(f"{label}: corrupt audio (NaN or infinite samples)")
    return data.mean(axis=1, dtype=np.float32), rate


def _looks_like_mp3(head: bytes) -> bool:
    """An ID3 tag or an MPEG frame sync: the one format whose C decoder (libmpg123) prints to stderr."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


# libsndfile notes a WAV whose data chunk runs past the end of the file, then reads what is there.
_SHORT_DATA_CHUNK = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = 0x7FFFF000  # streaming writers (sox, ffmpeg) put 0x7ffff000 or 0xffffffff here


def _decode(source: Path | io.BytesIO, label: str, mp3: bool) -> tuple[np.ndarray, int]:
    """Open (a failure means a format soundfile cannot read), then read (a failure means damaged data)."""
    with _c_stderr_kept_unless_failed() if mp3 else nullcontext():
        return _open_and_read(source, label)


def _open_and_read(source: Path | io.BytesIO, label: str) -> tuple[np.ndarray, int]:
    try:
        audio = sf.SoundFile(source)
    except sf.LibsndfileError as error:
        # libsndfile says "does not exist" of some damaged MP3s; the file was checked to exist
        detail = "damaged or unrecognised data" if "does not exist" in error.error_string else error.error_string
        raise AudioDecodeError(f"{label}: not a readable audio file ({detail})") from None
    with audio:
        try:
            data = audio.read(dtype="float32", always_2d=True)
        except RuntimeError as error:  # soundfile's LibsndfileError is one: damaged data shows while reading
            detail = getattr(error, "error_string", str(error)).removeprefix("Error : ")
            raise AudioDecodeError(f"{label}: corrupt audio ({detail})") from None
        _refuse_truncated(audio, len(data), label)
        return data, audio.samplerate


@contextmanager
def _c_stderr_kept_unless_failed() -> Iterator[None]:
    """Hold what libmpg123 prints straight to file descriptor 2 about a damaged MP3 meanwhile.

    A file that fails gets one :class:`AudioDecodeError` line, so the decoder's chatter about it
    is dropped; a file that decodes keeps its warnings, which may be the only hint of damage.
    Only MP3s go through here: redirecting a process-wide descriptor is not thread-safe.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except AudioDecodeError:
            raise
        else:
            held.seek(0)
            os.write(saved, held.read())
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _refuse_truncated(audio: sf.SoundFile, frames_read: int, label: str) -> None:
    """A file cut short (an interrupted copy or upload) may decode without error: compare with its header.

    For a WAV, libsndfile counts the frames it finds and logs the size the header announced; for
    other formats ``audio.frames`` is the header's count (an MP3's Xing header). 1 % of slack
    allows for MP3s whose length libsndfile can only estimate.
    """
    seconds = frames_read / audio.samplerate
    announced = audio.frames / audio.samplerate
    match = _SHORT_DATA_CHUNK.search(audio.extra_info)
    if match:
        declared_bytes, present_bytes = map(int, match.groups())
        if 0 < present_bytes < declared_bytes < _UNKNOWN_LENGTH:
            announced = seconds * declared_bytes / present_bytes
    if seconds < 0.99 * announced:
        raise AudioDecodeError(f"{label}: truncated (the header announces {announced:.2f} s, the file holds {seconds:.2f} s)")


def resample(array: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Change the sampling rate with soxr's high-quality filter (keeps duration and pitch)."""
    array = np.asarray(array, dtype=np.float32)
    if orig_sr == target_sr:
        return array
    return soxr.resample(array, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(source: str | bytes | dict, sampling_rate: int = TARGET_SAMPLING_RATE, *, min_samples: int = 0) -> np.ndarray:
    """:func:`read_audio`, then :func:`resample` to ``sampling_rate``: what the guide's
    ``cast_column("audio", Audio(sampling_rate=16_000))`` gives as ``["audio"]["array"]``.

    ``min_samples`` (at ``sampling_rate``; :attr:`~asr_helpers.checks.ConvGeometry.min_samples`)
    refuses a clip too short for the model's first frame with an :class:`AudioDecodeError`,
    instead of a convolution error deep inside the model.
    """
    array, rate = read_audio(source)
    return check_duration(resample(array, rate, sampling_rate), audio_name(source), min_samples, sampling_rate)


def check_duration(array: np.ndarray, name: str, min_samples: int, sampling_rate: int) -> np.ndarray:
    """``array`` if it has ``min_samples``; else an :class:`AudioDecodeError` naming ``name`` and both durations."""
    if len(array) < min_samples:
        have, need = (f"{1000 * samples / sampling_rate:.4g} ms" for samples in (len(array), min_samples))
        raise AudioDecodeError(f"{name}: too short ({have}; the model needs at least {need})")
    return array
