"""scripts/hts_voices.py: festival 1.96's HTS model files rewritten as one .htsvoice, on a tiny made-up voice."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import hts_voices

VOICE = "nitech_us_tst_arctic_hts"
N_STATES, VECTOR = 5, 6  # VECTOR: static, delta and delta-delta of a 2-coefficient mel-cepstrum
OLD_SCHEME = """(set! nitech_us_tst_arctic_hts::hts_engine_params
      (list
       (list "-dm1" (path-append hts_data_dir "mcep_dyn.win"))
       (list "-mf" (path-append hts_data_dir "lf0.pdf"))
       '("-a"   0.420000)
       '("-l"   0.000000)
       ))
"""


def old_voice(folder: Path) -> dict[str, np.ndarray]:
    """festival 1.96's files of a voice with 2 duration pdfs, 1-2 mel-cepstrum pdfs and 1 lf0 pdf per state."""
    rng = np.random.default_rng(0)
    hts = folder / "hts"
    hts.mkdir(parents=True)
    numbers = {
        "duration": rng.random((2, 2, N_STATES), dtype=np.float32),
        "mcep": rng.random((7, 2, VECTOR), dtype=np.float32),
        "lf0": rng.random((N_STATES, 3, 4), dtype=np.float32),
    }
    (hts / "duration.pdf").write_bytes(struct.pack("<2i", N_STATES, 2) + numbers["duration"].tobytes())
    mcep_counts = [1, 2, 2, 1, 1]
    (hts / "p_mcep.pdf").write_bytes(struct.pack(f"<{1 + N_STATES}i", VECTOR, *mcep_counts) + numbers["mcep"].tobytes())
    (hts / "lf0.pdf").write_bytes(struct.pack(f"<{1 + N_STATES}i", 3, *[1] * N_STATES) + numbers["lf0"].tobytes())
    for stream in ("mcep", "lf0"):
        (hts / f"{stream}_dyn.win").write_bytes(struct.pack("<3f", -0.5, 0, 0.5))
        (hts / f"{stream}_acc.win").write_bytes(struct.pack("<3f", 1, -2, 1))
    for name in ("trees-dur.inf", "trees-mcep.inf", "trees-lf0.inf", "feat.list"):
        (hts / name).write_text(f"{name}\n")
    (hts / "COPYING").write_text("HTS licence\n")
    (folder / "COPYING").write_text("CMU ARCTIC licence\n")
    (folder / "festvox").mkdir()
    for part in hts_voices.SCHEME_PARTS:
        text = OLD_SCHEME if part == "hts" else f";; {part}\n"
        (folder / "festvox" / f"nitech_us_tst_arctic_{part}.scm").write_text(text)
    return numbers


def sections(path: Path) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """An .htsvoice's header fields and each section's byte ranges out of [DATA]."""
    raw = path.read_bytes()
    header, data = raw.split(b"[DATA]\n", 1)
    fields = dict(line.split(":", 1) for line in header.decode().splitlines() if ":" in line)
    positions = header.decode().split("[POSITION]\n")[1].split()
    ranges = {}
    for line in positions:
        name, spans = line.split(":", 1)
        ranges[name] = [data[int(a): int(b) + 1] for a, b in (span.split("-") for span in spans.split(","))]
    return fields, ranges


def test_the_models_are_rearranged_not_changed(tmp_path: Path) -> None:
    numbers = old_voice(tmp_path / "src")
    path = hts_voices.convert(tmp_path / "src", tmp_path / "out", VOICE)
    fields, ranges = sections(path)
    assert fields["NUM_STATES"] == str(N_STATES) and fields["VECTOR_LENGTH[MCP]"] == str(VECTOR // 3)
    assert ranges["DURATION_PDF"] == [struct.pack("<i", 2) + numbers["duration"].tobytes()]
    assert ranges["STREAM_PDF[MCP]"] == [struct.pack(f"<{N_STATES}i", 1, 2, 2, 1, 1) + numbers["mcep"].tobytes()]
    lf0 = np.frombuffer(ranges["STREAM_PDF[LF0]"][0][4 * N_STATES:], "<f4").reshape(N_STATES, 7)
    lf0_old = numbers["lf0"]
    assert np.array_equal(lf0, np.concatenate([lf0_old[:, :, 0], lf0_old[:, :, 1], lf0_old[:, :1, 2]], axis=1))
    assert ranges["STREAM_WIN[MCP]"] == [b"1 1.0\n", b"3 -0.5 0 0.5\n", b"3 1 -2 1\n"]
    assert ranges["DURATION_TREE"] == [b"trees-dur.inf\n"] and ranges["STREAM_TREE[LF0]"] == [b"trees-lf0.inf\n"]
    assert sorted(p.name for p in (tmp_path / "out" / VOICE).rglob("*") if p.is_file()) == sorted(
        ["COPYING", "COPYING", "feat.list", f"{VOICE}.htsvoice", *(f"nitech_us_tst_arctic_{part}.scm" for part in hts_voices.SCHEME_PARTS)]
    )


def test_the_scheme_points_at_the_htsvoice_and_says_it_was_changed(tmp_path: Path) -> None:
    old_voice(tmp_path / "src")
    hts_voices.convert(tmp_path / "src", tmp_path / "out", VOICE)
    scheme = (tmp_path / "out" / VOICE / "festvox" / "nitech_us_tst_arctic_hts.scm").read_text()
    assert ";; modified:" in scheme and f'"{VOICE}.htsvoice"' in scheme
    assert "-dm1" not in scheme and '"-l"' not in scheme and scheme.endswith("       ))\n")
    with pytest.raises(ValueError, match="no festival 1.96 engine options"):
        hts_voices.new_scheme(";; nothing\n", VOICE)
