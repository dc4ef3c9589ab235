"""The stand-in hub cache: the real transformers/datasets hub code, run offline against it, sees
wav2vec2-base's processor and shape and MInDS-14 en-US's rows.

The checks run in a subprocess because ``HF_HOME`` and ``HF_HUB_OFFLINE`` are read when the
libraries are imported, and this session has imported them already (offline, with its own cache).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from asr_helpers.data import CORPUS_DIR, INTENTS, MINDS14_COLUMNS, MINDS14_LANGS
from conftest import finish_logged, start_logged
from standin_hub import make_standin_hub

ROWS = 100
EXPECTED_VOCAB = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"])}

# Run under HF_HOME=<stand-in>: the guide's calls, then one JSON line of what they returned.
CHECK = r'''
import json, sys, tempfile
import torch
from huggingface_hub import hf_hub_download
from safetensors.torch import load_file
from transformers import AutoModelForCTC, AutoProcessor, pipeline
from asr_helpers.audio import read_audio, resample
from asr_helpers.data import load_minds14


def attributes(obj, *names):
    return {name: getattr(obj, name) for name in names}


processor = AutoProcessor.from_pretrained("facebook/wav2vec2-base")
tokenizer, extractor = processor.tokenizer, processor.feature_extractor
model, loading = AutoModelForCTC.from_pretrained(
    "facebook/wav2vec2-base", ctc_loss_reduction="mean", pad_token_id=tokenizer.pad_token_id, output_loading_info=True
)
config = attributes(  # now: save_pretrained below writes its own class into architectures
    model.config, "architectures", "feat_extract_norm", "do_stable_layer_norm", "conv_stride", "conv_kernel",
    "vocab_size", "ctc_loss_reduction", "pad_token_id",
)
saved = load_file(hf_hub_download("facebook/wav2vec2-base", "model.safetensors"))
state = model.state_dict()
base_keys = [key for key in saved if key.startswith("wav2vec2.")]

minds = load_minds14("hub")
rows = []
for split, dataset in minds.items():
    for row in dataset:
        audio, rate = read_audio(row["audio"])
        rows.append({
            "split": split, "path": row["path"], "audio_path": row["audio"]["path"], "rate": rate,
            "seconds": round(len(audio) / rate, 3), "transcription": row["transcription"],
            "english_transcription": row["english_transcription"],
            "intent": dataset.features["intent_class"].int2str(row["intent_class"]), "lang_id": row["lang_id"],
        })

speech = resample(*read_audio(minds["test"][0]["audio"]))
model.train()
inputs = processor(speech, sampling_rate=16000, return_tensors="pt")
loss = model(**inputs, labels=tokenizer(minds["test"][0]["transcription"].upper(), return_tensors="pt").input_ids).loss
loss.backward()
with tempfile.TemporaryDirectory() as fine_tuned:
    model.save_pretrained(fine_tuned)
    processor.save_pretrained(fine_tuned)
    asr = pipeline("automatic-speech-recognition", model=fine_tuned)
    transcript = asr({"raw": speech, "sampling_rate": 16000})["text"]
model.eval()
with torch.no_grad():
    manual = processor.batch_decode(model(**inputs).logits.argmax(-1))[0]

print(json.dumps({
    "processor": type(processor).__name__,
    "extractor": attributes(
        extractor, "return_attention_mask", "do_normalize", "feature_size", "sampling_rate", "padding_value"
    ),
    "vocab": tokenizer.get_vocab(),
    "tokens": attributes(
        tokenizer, "pad_token", "unk_token", "bos_token", "eos_token", "word_delimiter_token", "do_lower_case"
    ),
    "config": config,
    "frames_per_second": int(model._get_feat_extract_output_lengths(torch.tensor(16000))),
    "parameters": sum(p.numel() for p in model.parameters()),
    "missing_keys": sorted(loading["missing_keys"]),
    "lm_head_out": model.lm_head.out_features,
    "base_keys": len(base_keys),
    "base_keys_loaded": sum(torch.equal(state[key], saved[key]) for key in base_keys if key in state),
    "features": {name: minds["train"].features[name].names for name in ("intent_class", "lang_id")},
    "columns": {split: dataset.column_names for split, dataset in minds.items()},
    "rows": rows,
    "loss": loss.item(),
    "grad": all(p.grad is not None and bool(p.grad.isfinite().all()) for p in model.lm_head.parameters()),
    "pipeline_model": type(asr.model).__name__,
    "transcript": transcript,
    "manual": manual,
    "torchcodec_imported": "torchcodec" in sys.modules,
}))
'''


# The same for the "special-tokens" variant: what its rows and its model's greedy paths look like.
VARIANT_CHECK = r'''
import itertools, json
import torch
from datasets import Audio, load_dataset
from transformers import AutoModelForCTC, AutoProcessor
from asr_helpers.audio import load_audio, read_audio
from asr_helpers.data import load_minds14

processor = AutoProcessor.from_pretrained("facebook/wav2vec2-base")
model, loading = AutoModelForCTC.from_pretrained(
    "facebook/wav2vec2-base", ctc_loss_reduction="mean", pad_token_id=processor.tokenizer.pad_token_id, output_loading_info=True
)
model.eval()
rows = load_dataset("PolyAI/minds14", name="en-US", split="train[:100]").cast_column("audio", Audio(decode=False))
seconds = [len(audio) / rate for audio, rate in (read_audio(row["audio"]) for row in rows)]
minds = load_minds14("hub")
paths = []
for row in minds["test"]:
    inputs = processor(audio=load_audio(row["audio"]), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        paths.append(processor.tokenizer.convert_ids_to_tokens(model(**inputs).logits[0].argmax(-1).tolist()))
print(json.dumps({
    "architectures": model.config.architectures, "layers": model.config.num_hidden_layers,
    "missing_keys": sorted(loading["missing_keys"]),
    "seconds": seconds, "transcriptions": list(rows["transcription"]),
    "first_train_seconds": [len(load_audio(row["audio"])) / 16000 for row in minds["train"].select(range(4))],
    "paths": paths,
}))
'''


def start_against(home: Path, script: str, cache: Path) -> subprocess.Popen:
    """Start ``script`` offline against the stand-in ``home`` in a fresh interpreter, its output in ``cache`` (:func:`result`)."""
    overrides = ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "TRANSFORMERS_CACHE")  # would send a library past HF_HOME
    env = {key: value for key, value in os.environ.items() if key not in overrides}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", ASR_HELPERS_MODE="hub", ASR_HELPERS_CACHE=str(cache),
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return start_logged([sys.executable, "-c", script], env, cache)


def result(run: subprocess.Popen, cache: Path) -> dict:
    """The started script's last line, JSON."""
    return json.loads(finish_logged(run, cache, timeout=300).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def standin_hub(tmp_path_factory) -> Path:
    """A stand-in ``HF_HOME``, built once."""
    return make_standin_hub(tmp_path_factory.mktemp("hf_home"), rows=ROWS)


@pytest.fixture(scope="module")
def both_seen(standin_hub, tmp_path_factory) -> tuple[dict, dict]:
    """What the real library calls return, run offline against each variant of the stand-in in a
    fresh interpreter, the two side by side: the second variant built with another seed."""
    variant = make_standin_hub(tmp_path_factory.mktemp("hf_home_special"), rows=ROWS, seed=1, variant="special-tokens")
    caches = tmp_path_factory.mktemp("asr_cache"), tmp_path_factory.mktemp("asr_cache_special")
    runs = start_against(standin_hub, CHECK, caches[0]), start_against(variant, VARIANT_CHECK, caches[1])
    return result(runs[0], caches[0]), result(runs[1], caches[1])


@pytest.fixture(scope="module")
def seen(both_seen) -> dict:
    return both_seen[0]


@pytest.fixture(scope="module")
def variant_seen(both_seen) -> dict:
    return both_seen[1]


def test_processor_is_wav2vec2_bases(seen):
    assert seen["processor"] == "Wav2Vec2Processor"
    assert seen["extractor"] == {
        "return_attention_mask": False, "do_normalize": True, "feature_size": 1, "sampling_rate": 16000, "padding_value": 0.0,
    }
    assert seen["vocab"] == EXPECTED_VOCAB
    assert seen["tokens"] == {
        "pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "word_delimiter_token": "|", "do_lower_case": False,
    }


def test_ctc_model_has_bases_shape_and_a_new_head(seen):
    assert seen["config"] == {
        "architectures": ["Wav2Vec2ForPreTraining"], "feat_extract_norm": "group", "do_stable_layer_norm": False,
        "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "vocab_size": 32,
        "ctc_loss_reduction": "mean", "pad_token_id": 0,
    }
    assert seen["frames_per_second"] == 49  # 320-sample hop, 400-sample receptive field, as the base
    assert seen["parameters"] < 300_000
    # the checkpoint has no CTC head: only it is initialised afresh, every encoder weight is loaded
    assert seen["missing_keys"] == ["lm_head.bias", "lm_head.weight"]
    assert seen["lm_head_out"] == 32
    assert seen["base_keys"] > 0 and seen["base_keys_loaded"] == seen["base_keys"]


def test_model_trains_and_a_saved_copy_serves_the_pipeline(seen):
    assert seen["loss"] > 0 and seen["loss"] < float("inf")
    assert seen["grad"]
    assert seen["pipeline_model"] == "Wav2Vec2ForCTC"
    assert seen["transcript"] == seen["manual"], "the pipeline of the saved copy is the manual path of the model"
    assert not seen["torchcodec_imported"]


def test_minds14_splits_columns_and_labels(seen):
    assert Counter(row["split"] for row in seen["rows"]) == {"train": 80, "test": 20}
    assert seen["columns"] == {"train": list(MINDS14_COLUMNS), "test": list(MINDS14_COLUMNS)}
    assert seen["features"] == {"intent_class": list(INTENTS), "lang_id": list(MINDS14_LANGS)}
    assert {row["lang_id"] for row in seen["rows"]} == {MINDS14_LANGS.index("en-US")} == {4}


def test_minds14_paths_are_the_original_machines(seen):
    """Paths name files on the machine that ran MInDS-14's script: only the bytes can be read."""
    pattern = re.compile(r"/root/\.cache/huggingface/datasets/downloads/extracted/[0-9a-f]{64}/en-US~([A-Z_]+)/([0-9a-f]{24}\.wav)")
    for row in seen["rows"]:
        match = pattern.fullmatch(row["path"])
        assert match, row["path"]
        assert match[1] == row["intent"].upper()
        assert row["audio_path"] == match[2]
        assert not Path(row["path"]).exists() and not Path(row["audio_path"]).exists()
    assert len({row["path"] for row in seen["rows"]}) == ROWS


def test_minds14_audio_is_the_corpus_at_8khz(seen):
    """Every row is one of the corpus's first recordings: its transcripts, intent and full length."""
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        corpus = list(csv.DictReader(handle))[:ROWS]
    expected = Counter(
        (r["transcription"], r["english_transcription"], INTENTS[int(r["intent_class"])], float(r["duration_s"])) for r in corpus
    )
    got = Counter((r["transcription"], r["english_transcription"], r["intent"], r["seconds"]) for r in seen["rows"])
    assert got == expected
    assert {row["rate"] for row in seen["rows"]} == {8000}


def test_build_is_seeded_and_rebuilds_in_place(tmp_path):
    def files(home: Path) -> dict[str, bytes]:
        return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}

    first = make_standin_hub(tmp_path / "first", rows=ROWS)
    again = make_standin_hub(tmp_path / "again", rows=ROWS)
    for stale in (next(again.rglob("minds14-train.arrow")).with_name("cache-0123.arrow"), next(again.rglob("refs")) / "pr"):
        stale.write_bytes(b"left by an earlier run")
    make_standin_hub(again, rows=ROWS)
    assert files(again) == files(first)

    other = make_standin_hub(tmp_path / "other", rows=ROWS, seed=1)
    weights = {home: next(home.rglob("model.safetensors")).read_bytes() for home in (first, other)}
    assert weights[first] != weights[other]


def test_variant_rows_are_the_same_recordings_shortest_first(variant_seen):
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        corpus = list(csv.DictReader(handle))[:ROWS]
    assert Counter(variant_seen["transcriptions"]) == Counter(row["transcription"] for row in corpus)
    assert variant_seen["seconds"] == sorted(variant_seen["seconds"])
    # what notebook 03 pads: the first of its four training rows is the longest, so it has no padding
    first = variant_seen["first_train_seconds"]
    assert first[0] == max(first) > min(first)


def test_variant_model_is_2_layers_with_a_head_that_writes_special_tokens(variant_seen):
    assert variant_seen["architectures"] == ["Wav2Vec2ForCTC"] and variant_seen["layers"] == 2
    assert variant_seen["missing_keys"] == []  # its head is loaded, biases and all
    paths = variant_seen["paths"]
    won = Counter(token for path in paths for token in path)
    assert all(won[token] > 0 for token in ("<pad>", "<s>", "</s>", "<unk>", "|")), won
    assert won["<s>"] + won["</s>"] + won["<unk>"] > won["<pad>"] + won["|"], "mostly special tokens"
    runs = Counter(token for path in paths for token, run in itertools.groupby(path) if len(list(run)) > 1)
    assert all(runs[token] > 0 for token in ("<s>", "</s>", "<unk>")), "each special token over several frames"


def test_variant_build_is_seeded_and_differs_from_the_base(tmp_path):
    def files(home: Path) -> dict[str, bytes]:
        return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}

    first = files(make_standin_hub(tmp_path / "first", rows=10, variant="special-tokens"))
    assert files(make_standin_hub(tmp_path / "again", rows=10, variant="special-tokens")) == first
    base = files(make_standin_hub(tmp_path / "base", rows=10))
    weights = {name: [data for path, data in built.items() if path.endswith("model.safetensors")] for name, built in (("base", base), ("variant", first))}
    assert weights["base"] != weights["variant"]
    with pytest.raises(ValueError, match="variant 'other': one of base, special-tokens"):
        make_standin_hub(tmp_path / "other", variant="other")
