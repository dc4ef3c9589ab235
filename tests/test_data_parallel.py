"""Data-parallel training on CPU: ``torchrun --nproc_per_node 2 -m asr_helpers train`` (gloo).

The two processes must split the data (disjoint samples at every step), save once, print the
result once, and end near a one-process run with the same effective batch: the same recipe,
computed by two processes. A small wrapper records, in each process, the labels of every training step,
so the test sees which samples each rank trained on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asr_helpers.__main__ import main
from asr_helpers.cache import prepared_course_data
from asr_helpers.training import COMPLETE
from conftest import finish_logged, start_logged

pytestmark = pytest.mark.slow
STEPS = 16
RECORDING_WRAPPER = '''
import json, os, sys
import transformers
from asr_helpers.__main__ import main

seen, step = [], transformers.Trainer.training_step

def recording_step(self, model, inputs, *args, **kwargs):
    labels = inputs["labels"]
    seen.append([[int(t) for t in row if t >= 0] for row in labels.tolist()])
    return step(self, model, inputs, *args, **kwargs)

transformers.Trainer.training_step = recording_step
code = main(sys.argv[1:])
with open(os.path.join(os.environ["RECORD_TO"], f"rank-{os.environ.get('RANK', '0')}.json"), "w") as handle:
    json.dump(seen, handle)
sys.exit(code)
'''


def start(tmp_path: Path, name: str, processes: int) -> tuple[subprocess.Popen, Path]:
    """``train`` in ``processes`` processes, started in the background, recording each rank's batches."""
    out = tmp_path / name
    out.mkdir()
    wrapper = tmp_path / "record_batches.py"
    wrapper.write_text(RECORDING_WRAPPER)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", str(29500 + processes)]
    command = [*(launcher if processes > 1 else [sys.executable]), str(wrapper), "train", "--max-steps", str(STEPS), "--output-dir", str(out / "model")]
    environment = {**os.environ, "RECORD_TO": str(out), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return start_logged(command, environment, out), out


def finish(started: tuple[subprocess.Popen, Path]) -> tuple[subprocess.CompletedProcess, Path]:
    process, out = started
    return finish_logged(process, out, timeout=900), out


def final_wer(result: subprocess.CompletedProcess) -> float:
    lines = [line for line in result.stdout.splitlines() if line.startswith("wer=")]
    assert len(lines) == 1, f"one process prints the result, got {lines}"
    return float(re.match(r"wer=([\d.]+) ", lines[0]).group(1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-process and the two-process run, side by side (three single-threaded processes): the
    data is prepared here first, so that neither writes the cache while the other reads it."""
    prepared_course_data("offline")
    tmp = tmp_path_factory.mktemp("ddp")
    started = start(tmp, "one", 1), start(tmp, "two", 2)
    return tuple(finish(run) for run in started)


def test_train_prints_the_wer_of_the_model_it_saved(runs, capsys):
    """One process's ``train``: the printed ``wer=... cer=...`` is the final evaluation recorded beside
    the model, and within 0.005 of ``evaluate --batch-size 1`` (each test file transcribed alone)."""
    (one, one_out), _ = runs
    printed = re.search(r"^wer=([\d.]+) cer=([\d.]+)$", one.stdout, re.MULTILINE)
    final = json.loads((one_out / "model" / COMPLETE).read_text())
    assert printed.groups() == (f"{final['eval_wer']:.4f}", f"{final['eval_cer']:.4f}")
    assert main(["evaluate", "--model", str(one_out / "model"), "--batch-size", "1"]) == 0
    alone = re.fullmatch(r"wer=([\d.]+) cer=([\d.]+)\n", capsys.readouterr().out)
    assert alone and all(abs(float(a) - float(b)) <= 0.005 for a, b in zip(printed.groups(), alone.groups())), (printed, alone)


def test_two_processes_split_every_batch(runs):
    _, (_, out) = runs
    ranks = [json.loads((out / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    training_batches = ranks
    assert len(training_batches[0]) == len(training_batches[1]) == STEPS
    assert all(len(batch) == 4 for rank in ranks for batch in rank), "each rank trains on half the recipe's batch of 8"
    for step, (a, b) in enumerate(zip(*training_batches)):
        assert not {tuple(x) for x in a} & {tuple(x) for x in b}, f"step {step}: both ranks trained on the same sample"


def test_effective_batch_and_learning_rate_are_stated(runs):
    _, (two, _) = runs
    assert "data parallel: 2 processes x 4 examples = effective batch 8 (the recipe's 8); learning rate and schedule unchanged" in two.stdout
    assert two.stdout.count("recipe: course") == 1, "only the main process prints"


def test_one_model_saved_and_wer_near_one_process(runs):
    (one, one_out), (two, two_out) = runs
    assert (two_out / "model" / "model.safetensors").is_file() and (two_out / "model" / "vocab.json").is_file()
    # The same recipe on the same data, batched differently (the length-grouped order is drawn
    # for batches of 4 per rank instead of 8): after 16 steps the WERs agree within 0.1.
    assert abs(final_wer(two) - final_wer(one)) < 0.1, (final_wer(one), final_wer(two))
