"""A stand-in Hugging Face Hub cache, so the guide's real hub-mode code runs with no network.

Tests and CI cannot reach the Hub, yet the hub path (``facebook/wav2vec2-base`` and
``PolyAI/minds14``) should run through the real ``transformers`` and ``datasets`` code, not through
mocks. :func:`make_standin_hub` writes, into a folder used as ``HF_HOME``, what those libraries read
when ``HF_HUB_OFFLINE=1``:

* ``hub/models--facebook--wav2vec2-base/``: the huggingface_hub cache layout (``refs/main`` holds a
  commit, ``snapshots/<commit>/`` the files), which ``hf_hub_download`` resolves offline. The files
  mirror the real checkpoint's: a ``Wav2Vec2ForPreTraining`` with the base's convolutions (same
  320-sample hop and 400-sample receptive field) and vocabulary, but tiny and randomly initialised
  so it trains in seconds on a CPU; the processor files hold the real checkpoint's settings.
* ``datasets/PolyAI___minds14/en-US/0.0.0/<hash>/``: the ``datasets`` Arrow cache. Offline,
  ``datasets.load.dataset_module_factory`` never looks at a hub snapshot of a dataset repo: it calls
  ``_raise_if_offline_mode_is_enabled()`` before ``hf_hub_download`` and, on that error, falls back to
  ``CachedDatasetModuleFactory``, whose ``cache`` builder (``_find_hash_in_cache``) reloads
  ``<HF_DATASETS_CACHE>/<namespace>___<name>/<config id>/<version>/<hash>/`` whose
  ``dataset_info.json`` names the same config. ``load_dataset("PolyAI/minds14", name="en-US")``
  asks for the config id ``en-US``. The rows are MInDS-14's as its Parquet conversion stores them:
  WAV bytes at 8 kHz, and ``path`` strings of the machine that ran the loading script, which do not
  exist here.

Two variants, so that hub-mode cells cannot hold only for one set of rows or weights:

* ``"base"`` (the default): the shipped corpus's first recordings in its order, and the base's
  pre-training checkpoint with no CTC head, as the real one.
* ``"special-tokens"``: the same recordings sorted from the shortest to the longest, which
  changes every batch after ``load_minds14``'s split (the first of the four training rows that
  notebook 03 pads is the longest of them, so it has no padding), and a 2-layer random model
  whose checkpoint already has a CTC head (as a checkpoint fine-tuned elsewhere would have one),
  biased towards ``<s>``, ``</s>`` and ``<unk>``: after the hub-cpu recipe's 100 steps it still
  writes them, in runs, between blanks and ``|``, as an under-trained model does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import shutil
import sys
from pathlib import Path

import soundfile as sf
import torch
from datasets import Audio, ClassLabel, Dataset, DatasetInfo, Features, SplitDict, SplitInfo, Value
from datasets.arrow_writer import ArrowWriter
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

from asr_helpers.data import CORPUS_DIR, INTENTS, MINDS14_COLUMNS, MINDS14_LANGS

MODEL_REPO = "facebook/wav2vec2-base"
DATASET_REPO, DATASET_CONFIG = "PolyAI/minds14", "en-US"
MINDS14_RATE = 8000  # telephone audio
# wav2vec2-base's vocab.json: the special tokens, the word delimiter, then letters by frequency.
VOCAB = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"])}
# The real checkpoint's processor files, as written before transformers 5: they take the same
# loading path as the real ones (no tokenizer_class, no processor_config.json).
PROCESSOR_FILES = {
    "vocab.json": VOCAB,
    "tokenizer_config.json": {
        "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "do_lower_case": False, "return_attention_mask": False, "do_normalize": True,
    },
    "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
    "preprocessor_config.json": {
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000,
    },
}
# Where MInDS-14's loading script extracted the archive on the machine that made the conversion.
EXTRACTED = "/root/.cache/huggingface/datasets/downloads/extracted/" + hashlib.sha256(
    b"https://huggingface.co/datasets/PolyAI/minds14/resolve/main/data/MInDS-14.zip"
).hexdigest()


VARIANTS = ("base", "special-tokens")
# The CTC head of the "special-tokens" variant: small random weights, so that frames differ but
# 100 steps of training cannot outweigh these biases, under which <s>, </s> and <unk> win most
# frames, in runs, and the blank and | the others. (Measured: after the hub-cpu recipe, 10 to 16
# of the 20 test rows still have a special token over two frames or more, with seeds 1 and 2.)
HEAD_WEIGHT_STD = 0.1
HEAD_BIAS = {"<pad>": 2.0, "<s>": 3.0, "</s>": 3.0, "<unk>": 3.0, "|": 1.5}


def make_standin_hub(home: Path, *, rows: int = 100, seed: int = 0, variant: str = "base") -> Path:
    """Write the stand-in ``facebook/wav2vec2-base`` and ``PolyAI/minds14`` (``rows`` rows) under ``home``.

    Use ``home`` as ``HF_HOME`` with ``HF_HUB_OFFLINE=1``, set before the libraries are imported
    (they read both at import). Building again replaces what an earlier build wrote; the same
    ``seed`` and ``variant`` (one of :data:`VARIANTS`, see the module's text) give the same
    files, byte for byte.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: one of {', '.join(VARIANTS)}")
    home = Path(home)
    _write_model(home / "hub", seed, variant)
    _write_minds14(home / "datasets", rows, variant)
    _write_metric_scripts(home / "modules" / "evaluate_modules")
    return home


METRIC_SCRIPT = '''"""{name}: the Hub's evaluate-metric/{name} in short; like it, it calls jiwer."""
import datasets
import evaluate
import jiwer


class {cls}(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="{name} (stand-in)", citation="", inputs_description="predictions and references: lists of strings",
            features=datasets.Features({{"predictions": datasets.Value("string", id="sequence"),
                                         "references": datasets.Value("string", id="sequence")}}),
        )

    def _compute(self, predictions=None, references=None):
        return jiwer.{name}(references, predictions)
'''


def _write_metric_scripts(modules: Path) -> None:
    """``wer`` and ``cer`` where ``evaluate.load`` finds a metric fetched before, as the Hub would
    have left them: ``metrics/evaluate-metric--NAME/<64-hex hash>/NAME.py``, packages all the way."""
    for name in ("wer", "cer"):
        folder = modules / "metrics" / f"evaluate-metric--{name}" / hashlib.sha256(name.encode()).hexdigest()
        folder.mkdir(parents=True, exist_ok=True)
        for package in (modules, modules / "metrics", folder.parent, folder):
            (package / "__init__.py").touch()
        (folder / f"{name}.py").write_text(METRIC_SCRIPT.format(name=name, cls=name.upper()))


def tiny_config(architecture: str = "Wav2Vec2ForPreTraining") -> Wav2Vec2Config:
    """wav2vec2-base's shape where it matters to the course, tiny elsewhere (about 120 k parameters).

    Kept from the base: group-normalised convolutions without bias, post-layer-norm Transformer,
    the 7 convolutions' strides and kernels, the 32-token vocabulary, and the config defaults
    (dropouts, masking), which are the base's. Narrowed: widths, depth and the quantizer.
    """
    return Wav2Vec2Config(
        vocab_size=len(VOCAB),
        conv_dim=(32,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_codevectors_per_group=16,
        codevector_dim=32,
        proj_codevector_dim=32,
        architectures=[architecture],
    )


def _write_model(hub_cache: Path, seed: int, variant: str) -> None:
    """The checkpoint and its processor, in the hub layout: the pre-training model (no CTC head, as
    the real one), or for ``"special-tokens"`` a CTC model whose head favours :data:`HEAD_BIAS`'s tokens."""
    repo = hub_cache / f"models--{MODEL_REPO.replace('/', '--')}"
    shutil.rmtree(repo, ignore_errors=True)
    named = "" if variant == "base" else f" {variant}"  # the base keeps the name (and the files) it always had
    commit = hashlib.sha1(f"{MODEL_REPO} seed {seed}{named}".encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        if variant == "base":
            model = Wav2Vec2ForPreTraining(tiny_config())
        else:
            model = Wav2Vec2ForCTC(tiny_config("Wav2Vec2ForCTC"))
            with torch.no_grad():
                model.lm_head.weight.normal_(0.0, HEAD_WEIGHT_STD)
                model.lm_head.bias.copy_(torch.tensor([HEAD_BIAS.get(token, 0.0) for token in VOCAB]))
        model.save_pretrained(snapshot)
    write_processor(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def write_processor(folder: Path) -> Path:
    """wav2vec2-base's processor files into ``folder``, as its Hub repository holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in PROCESSOR_FILES.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")
    return folder


def _write_minds14(datasets_cache: Path, rows: int, variant: str) -> None:
    """MInDS-14 en-US's ``train`` split as ``load_dataset`` leaves it in its Arrow cache.

    The ``audio`` column is built as a plain ``{bytes, path}`` struct and then cast to ``Audio``
    (MInDS-14's feature): encoding into ``Audio`` directly would import torchcodec.
    """
    root = datasets_cache / DATASET_REPO.replace("/", "___")
    shutil.rmtree(root, ignore_errors=True)  # also drops index files cached from an earlier build
    named = "" if variant == "base" else f" {variant}"
    target = root / DATASET_CONFIG / "0.0.0" / hashlib.sha1(f"{DATASET_REPO} {rows} rows{named}".encode()).hexdigest()
    target.mkdir(parents=True)
    features = Features({
        "path": Value("string"),
        "audio": {"bytes": Value("binary"), "path": Value("string")},
        "transcription": Value("string"),
        "english_transcription": Value("string"),
        "intent_class": ClassLabel(names=list(INTENTS)),
        "lang_id": ClassLabel(names=list(MINDS14_LANGS)),
    })
    dataset = Dataset.from_dict(_minds14_columns(rows, shortest_first=variant == "special-tokens"), features=features)
    dataset = dataset.cast_column("audio", Audio(sampling_rate=MINDS14_RATE)).select_columns(list(MINDS14_COLUMNS))
    name = DATASET_REPO.split("/")[1]
    with ArrowWriter(features=dataset.features, path=str(target / f"{name}-train.arrow")) as writer:
        writer.write_table(dataset.data.table)
        num_examples, num_bytes = writer.finalize()
    split = SplitInfo("train", num_bytes=num_bytes, num_examples=num_examples, dataset_name=name)
    DatasetInfo(
        features=dataset.features, builder_name="parquet", dataset_name=name, config_name=DATASET_CONFIG,
        version="0.0.0", splits=SplitDict({"train": split}, dataset_name=name),
    ).write_to_directory(str(target))


def _minds14_columns(rows: int, *, shortest_first: bool = False) -> dict[str, list]:
    """The first ``rows`` recordings of the shipped corpus, in MInDS-14's columns, in the corpus's
    order or sorted by duration (a stable sort: ties keep the corpus's order).

    FLAC becomes 16-bit PCM WAV bytes, losslessly; each recording gets a MInDS-14-like id, and a
    ``path`` under ``en-US~<INTENT>/`` as the loading script gave it.
    """
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        chosen = list(itertools.islice(csv.DictReader(handle), rows))
    if len(chosen) < rows:
        raise ValueError(f"the shipped corpus has {len(chosen)} recordings, fewer than the {rows} asked for")
    if shortest_first:
        chosen.sort(key=lambda row: sf.info(CORPUS_DIR / row["file"]).frames)
    columns: dict[str, list] = {name: [] for name in MINDS14_COLUMNS}
    for row in chosen:
        samples, rate = sf.read(CORPUS_DIR / row["file"], dtype="int16")
        if rate != MINDS14_RATE:
            raise ValueError(f"{row['file']}: {rate} Hz, MInDS-14 is {MINDS14_RATE} Hz")
        wav = io.BytesIO()
        sf.write(wav, samples, rate, format="WAV", subtype="PCM_16")
        recording = hashlib.sha1(row["file"].encode()).hexdigest()[:24] + ".wav"
        intent = int(row["intent_class"])
        columns["path"].append(f"{EXTRACTED}/{DATASET_CONFIG}~{INTENTS[intent].upper()}/{recording}")
        columns["audio"].append({"bytes": wav.getvalue(), "path": recording})
        columns["transcription"].append(row["transcription"])
        columns["english_transcription"].append(row["english_transcription"])
        columns["intent_class"].append(intent)
        columns["lang_id"].append(int(row["lang_id"]))
    return columns


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in VARIANTS):
        sys.exit(f"usage: python tests/standin_hub.py DIR [{'|'.join(VARIANTS)}]  (then run with HF_HOME=DIR HF_HUB_OFFLINE=1)")
    print(f"HF_HOME={make_standin_hub(Path(sys.argv[1]), variant=(sys.argv[2:] or ['base'])[0])} HF_HUB_OFFLINE=1")
