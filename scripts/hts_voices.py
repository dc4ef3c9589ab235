#!/usr/bin/env python
"""The Nitech HTS voices of CMU ARCTIC speakers, converted for Debian's festival 2.5.

Nitech's HTS voices of six CMU ARCTIC speakers (awb, bdl, clb, jmk, rms, slt; free for any use:
``COPYING`` in each voice) were made for festival 1.96, whose HTS engine read a dozen model files
(decision trees, pdfs, windows). festival 2.5 links hts_engine 1.x, which reads one ``.htsvoice``
file. This script fetches the voices' files from the GitHub repository and commit named in
``scripts/pretraining_data/natural_voices.json`` ("hts_voices"), or reads a local copy of that
folder, writes each voice's pdfs, trees and windows into one ``.htsvoice``, points the voice's
Scheme at it (a marked change) and checks the file's SHA-256 against the table there::

    python scripts/hts_voices.py --out ~/hts-voices                       # fetched from GitHub
    python scripts/hts_voices.py --out ~/hts-voices --source DIR          # DIR: a copy of hts_tmp/lib/voices/us
    export ASR_HELPERS_HTS_VOICES=~/hts-voices                            # where asr_helpers.synth finds them

Each voice becomes ``OUT/nitech_us_<speaker>_arctic_hts/`` (``festvox/``, ``hts/``, the licences),
which festival loads with ``(voice-location NAME DIR "")``. The voices are not in this repository:
make them once per machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "scripts" / "pretraining_data" / "natural_voices.json"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
SCHEME_PARTS = (
    "clunits", "dur", "duration", "durdata", "f0model", "hts", "intonation", "lexicon", "other", "phoneset",
    "phrasing", "tagger", "tokenizer",
)
HTS_FILES = (
    "duration.pdf", "p_mcep.pdf", "lf0.pdf", "mcep_dyn.win", "mcep_acc.win", "lf0_dyn.win", "lf0_acc.win",
    "trees-dur.inf", "trees-mcep.inf", "trees-lf0.inf", "feat.list", "COPYING",
)
CMU_LICENCE = "COPYING"  # CMU ARCTIC's terms, beside hts/COPYING (HTS's); the repository's awb voice lacks it
# festival 1.96's engine options, from the first window file to the last option, in the voice's Scheme
OLD_OPTIONS = re.compile(r'^[ \t]*\(list "-dm1".*?^[^\n]*"-l"[^\n]*\n', re.MULTILINE | re.DOTALL)


def voice_files(voice: str) -> list[str]:
    """The files of ``voice`` that the conversion reads, relative to its folder."""
    prefix = voice.removesuffix("_hts")
    return [*(f"festvox/{prefix}_{part}.scm" for part in SCHEME_PARTS), *(f"hts/{name}" for name in HTS_FILES)]


def fetch(table: dict, voice: str, folder: Path) -> None:
    """Download ``voice``'s files from the repository and commit of ``table`` into ``folder``."""
    for name in [*voice_files(voice), CMU_LICENCE]:
        url = RAW_URL.format(repo=table["repo"], commit=table["commit"], path=f"{table['path']}/{voice}/{name}")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                (folder / name).write_bytes(response.read())
        except urllib.error.HTTPError as error:
            if name != CMU_LICENCE or error.code != 404:
                raise
        except urllib.error.URLError as error:
            raise SystemExit(
                f"cannot fetch {url} ({error.reason}): pass --source DIR, a copy of {table['path']} at commit {table['commit']}"
                f" of github.com/{table['repo']}"
            ) from error


def htsvoice(hts: Path) -> bytes:
    """One hts_engine 1.x ``.htsvoice`` from festival 1.96's HTS files in ``hts``.

    The models are the same numbers rearranged: the old duration pdf leads with the state count,
    the new one does not; the mel-cepstrum pdf loses its leading vector size; each lf0 pdf's
    streams (mean, variance, voiced weight, unvoiced weight) become the means, then the
    variances, then the static stream's voiced weight (its multi-space distribution weight).
    """
    def ints(data: bytes, n: int, offset: int = 0) -> list[int]:
        return list(struct.unpack_from(f"<{n}i", data, offset))

    data = (hts / "duration.pdf").read_bytes()
    n_states, n_duration = ints(data, 2)
    assert len(data) == 8 + n_duration * 2 * n_states * 4, "duration.pdf: unexpected size"
    duration_pdf = struct.pack("<i", n_duration) + data[8:]
    data = (hts / "p_mcep.pdf").read_bytes()
    vector, per_state = ints(data, 1)[0], ints(data, n_states, 4)
    assert len(data) == 4 + 4 * n_states + sum(per_state) * 2 * vector * 4, "p_mcep.pdf: unexpected size"
    mcep_pdf = struct.pack(f"<{n_states}i", *per_state) + data[4 + 4 * n_states:]
    data = (hts / "lf0.pdf").read_bytes()
    streams, per_state_lf0 = ints(data, 1)[0], ints(data, n_states, 4)
    lf0 = np.frombuffer(data, "<f4", offset=4 + 4 * n_states).reshape(sum(per_state_lf0), streams, 4)
    lf0 = np.concatenate([lf0[:, :, 0], lf0[:, :, 1], lf0[:, :1, 2]], axis=1).astype("<f4")
    lf0_pdf = struct.pack(f"<{n_states}i", *per_state_lf0) + lf0.tobytes()

    def window(name: str) -> bytes:
        return ("3 " + " ".join(f"{x:g}" for x in struct.unpack("<3f", (hts / name).read_bytes())) + "\n").encode()

    static = b"1 1.0\n"
    parts = [
        ("DURATION_PDF", [duration_pdf]), ("DURATION_TREE", [(hts / "trees-dur.inf").read_bytes()]),
        ("STREAM_WIN[MCP]", [static, window("mcep_dyn.win"), window("mcep_acc.win")]),
        ("STREAM_WIN[LF0]", [static, window("lf0_dyn.win"), window("lf0_acc.win")]),
        ("STREAM_PDF[MCP]", [mcep_pdf]), ("STREAM_PDF[LF0]", [lf0_pdf]),
        ("STREAM_TREE[MCP]", [(hts / "trees-mcep.inf").read_bytes()]),
        ("STREAM_TREE[LF0]", [(hts / "trees-lf0.inf").read_bytes()]),
    ]
    positions, body = [], b""
    for name, chunks in parts:
        ranges = []
        for chunk in chunks:
            ranges.append(f"{len(body)}-{len(body) + len(chunk) - 1}")
            body += chunk
        positions.append(f"{name}:{','.join(ranges)}")
    header = f"""[GLOBAL]
HTS_VOICE_VERSION:1.0
SAMPLING_FREQUENCY:16000
FRAME_PERIOD:80
NUM_STATES:{n_states}
NUM_STREAMS:2
STREAM_TYPE:MCP,LF0
FULLCONTEXT_FORMAT:HTS_TTS_ENG
FULLCONTEXT_VERSION:1.0
GV_OFF_CONTEXT:"*-pau+*"
COMMENT:
[STREAM]
VECTOR_LENGTH[MCP]:{vector // 3}
VECTOR_LENGTH[LF0]:1
IS_MSD[MCP]:0
IS_MSD[LF0]:1
NUM_WINDOWS[MCP]:3
NUM_WINDOWS[LF0]:3
USE_GV[MCP]:0
USE_GV[LF0]:0
OPTION[MCP]:ALPHA=0.42
OPTION[LF0]:
[POSITION]
""" + "\n".join(positions) + "\n[DATA]\n"
    return header.encode() + body


def new_scheme(scheme: str, voice: str) -> str:
    """The voice's Scheme with festival 1.96's engine options replaced by the ``.htsvoice`` (marked, as COPYING asks)."""
    options = (
        f";; modified: the model files are one {voice}.htsvoice for hts_engine 1.x (festival 2.5)\n"
        f'       (list "-m" (path-append hts_data_dir "{voice}.htsvoice"))\n'
        "       '(\"-g\" 0.0)\n       '(\"-b\" 0.0)\n       '(\"-u\" 0.5)\n"
    )
    new, count = OLD_OPTIONS.subn(lambda _: options, scheme)
    if count == 0:
        raise ValueError(f"{voice}: no festival 1.96 engine options found in its Scheme")
    return new


def convert(source: Path, out: Path, voice: str) -> Path:
    """Write ``voice`` from its files under ``source`` into ``out/voice`` and return its ``.htsvoice``."""
    target = out / voice
    (target / "festvox").mkdir(parents=True, exist_ok=True)
    (target / "hts").mkdir(exist_ok=True)
    for name in (CMU_LICENCE, "hts/COPYING", "hts/feat.list"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    prefix = voice.removesuffix("_hts")
    for part in SCHEME_PARTS:
        scheme = (source / "festvox" / f"{prefix}_{part}.scm").read_text(encoding="latin-1")
        if part == "hts":
            scheme = new_scheme(scheme, voice)
        (target / "festvox" / f"{prefix}_{part}.scm").write_text(scheme, encoding="latin-1")
    path = target / "hts" / f"{voice}.htsvoice"
    path.write_bytes(htsvoice(source / "hts"))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the voices into (then ASR_HELPERS_HTS_VOICES=it)")
    parser.add_argument("--source", type=Path, help="a local copy of the repository's voice folder (default: fetch from GitHub)")
    args = parser.parse_args()
    table = json.loads(TABLE.read_text())["hts_voices"]
    for voice, expected in table["sha256"].items():
        with tempfile.TemporaryDirectory() as tmp:
            source = args.source / voice if args.source else Path(tmp)
            if not args.source:
                fetch(table, voice, source)
            path = convert(source, args.out, voice)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise SystemExit(f"{path}: SHA-256 {digest}, expected {expected} (natural_voices.json): not the voice measured")
        print(f"{voice}: {path} ({path.stat().st_size / 1e6:.1f} MB), SHA-256 checked")


if __name__ == "__main__":
    main()
