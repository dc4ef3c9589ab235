import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset

import asr_helpers.data as data
from asr_helpers.audio import read_audio
from asr_helpers.data import INTENTS, MINDS14_COLUMNS, load_minds14, load_offline_corpus, load_timit, resolve_mode
from conftest import tone


def test_resolve_mode_argument_env_and_detection(monkeypatch, capsys):
    monkeypatch.delenv("ASR_HELPERS_MODE", raising=False)
    assert resolve_mode("hub") == "hub"
    monkeypatch.setenv("ASR_HELPERS_MODE", "offline")
    assert resolve_mode() == "offline"
    assert capsys.readouterr().out.splitlines() == ["mode: hub (asked for)", "mode: offline (ASR_HELPERS_MODE=offline)"]
    monkeypatch.delenv("ASR_HELPERS_MODE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_mode(verbose=False) == "offline"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(data, "_hub_reachable", lambda: False)
    assert resolve_mode() == "offline"
    assert "the hub is unreachable" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown mode 'cloud'"):
        resolve_mode("cloud")


def test_a_corpus_folder_means_offline_and_refuses_hub(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("ASR_HELPERS_MODE", raising=False)
    monkeypatch.setattr(data, "_hub_reachable", lambda: True)  # online, yet a corpus folder is offline data
    assert resolve_mode(corpus_dir=tmp_path) == "offline"
    assert capsys.readouterr().out == "mode: offline (a corpus folder is offline data)\n"
    with pytest.raises(ValueError, match=f"^{tmp_path}: a corpus folder is offline data; it cannot be combined with mode 'hub'$"):
        resolve_mode("hub", corpus_dir=tmp_path)
    monkeypatch.setenv("ASR_HELPERS_MODE", "hub")
    with pytest.raises(ValueError, match="cannot be combined with mode 'hub'"):
        resolve_mode(corpus_dir=tmp_path)


def test_train_with_a_corpus_and_hub_mode_is_one_error_line(small_corpus, capsys):
    from asr_helpers.__main__ import main

    assert main(["train", "--corpus", str(small_corpus), "--mode", "hub"]) == 2
    assert capsys.readouterr().err == f"error: {small_corpus}: a corpus folder is offline data; it cannot be combined with mode 'hub'\n"


def test_offline_corpus_has_minds14_columns():
    corpus = load_offline_corpus()
    assert set(corpus) == {"train", "test"}
    for split in corpus.values():
        assert tuple(split.column_names) == MINDS14_COLUMNS
        assert split.features["audio"] == Audio(sampling_rate=8000, decode=False)
        assert split.features["intent_class"].names == list(INTENTS)
        assert set(split["lang_id"]) == {4}
    example = corpus["train"][0]
    array, rate = read_audio(example["audio"])
    assert rate == 8000 and array.dtype == np.float32 and len(array) > 4000
    assert example["audio"]["path"] == example["path"]


def _fake_minds14(tmp_path, rows: int = 10) -> Dataset:
    """A parquet-backed dataset with MInDS-14's schema, audio stored as bytes like the hub's conversion."""
    records = []
    for i in range(rows):
        path = tmp_path / f"{i}.wav"
        sf.write(path, tone(300 + i, 0.3, 8000), 8000)
        records.append({"path": str(path), "audio": {"bytes": path.read_bytes(), "path": path.name},
                        "transcription": f"hello {i}", "english_transcription": f"hello {i}",
                        "intent_class": i % 14, "lang_id": 4})
    Dataset.from_list(records).to_parquet(tmp_path / "minds.parquet")
    return Dataset.from_parquet(str(tmp_path / "minds.parquet"))


def test_hub_loader_falls_back_to_parquet_conversion(monkeypatch, tmp_path, capsys):
    local = _fake_minds14(tmp_path)
    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        if "revision" not in kwargs:
            raise RuntimeError("Dataset scripts are no longer supported, but found minds14.py")
        return local

    monkeypatch.setattr(data, "load_dataset", fake_load_dataset)
    minds = load_minds14("hub", split="train[:10]")
    assert calls[1] == ("PolyAI/minds14", {"revision": "refs/convert/parquet", "data_dir": "en-US", "split": "train[:10]"})
    assert "Parquet conversion" in capsys.readouterr().out
    assert (minds["train"].num_rows, minds["test"].num_rows) == (8, 2)
    assert minds["train"].features["audio"] == Audio(decode=False)
    array, rate = read_audio(minds["test"][0]["audio"])
    assert rate == 8000 and len(array) == 2400


def test_hub_loader_does_not_hide_other_errors(monkeypatch):
    def offline(path, **kwargs):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(data, "load_dataset", offline)
    with pytest.raises(ConnectionError):
        load_minds14("hub")


def _timit_tree(root):
    for split, speaker in (("TRAIN", "DR1/FCJF0"), ("TEST", "DR2/MABC0")):
        folder = root / split / speaker
        folder.mkdir(parents=True)
        sf.write(folder / "SA1.WAV", tone(220, 0.5, 16000), 16000, format="NIST", subtype="PCM_16")
        (folder / "SA1.TXT").write_text("0 8000 She had your dark suit in greasy wash water all year.\n")
    return root


def test_timit_reads_sphere_and_transcripts(tmp_path):
    timit = load_timit(_timit_tree(tmp_path / "timit"))
    assert timit["train"][0]["transcription"] == "She had your dark suit in greasy wash water all year."
    assert (timit["train"][0]["speaker_id"], timit["test"][0]["dialect_region"]) == ("FCJF0", "DR2")
    assert open(timit["train"][0]["path"], "rb").read(7) == b"NIST_1A"
    array, rate = read_audio(timit["test"][0]["audio"])
    assert rate == 16000 and len(array) == 8000


def test_timit_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TRAIN/ folder"):
        load_timit(tmp_path)
    root = _timit_tree(tmp_path / "timit")
    (root / "TEST" / "DR2" / "MABC0" / "SA1.TXT").unlink()
    with pytest.raises(FileNotFoundError, match=r"SA1\.WAV: transcript SA1\.TXT missing"):
        load_timit(root)
