"""How the benchmarks here time their configurations, so that the order they run in does not decide the result.

Run one after another in one process, whichever training recipe ran first was 2 to 4 times
slower (issue 17: CUDA context, cuDNN plans, caching allocator), and a shared machine's speed
drifts from minute to minute. So every benchmark runs its configurations in
:func:`interleaved_order`: one untimed warm-up round of every configuration, then ``repeats``
timed rounds of all of them, each round's order rotated by one place (A B C, B C A, C A B), so
that every configuration takes every place in turn and a slow spell falls on all of them. A
result is the median of the timed rounds with their minimum and maximum, never the best one;
the order is written out with the numbers.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers


@dataclass(frozen=True)
class Slot:
    """One run of one configuration: its round (0 is the untimed warm-up) and place in that round."""

    round: int
    position: int
    name: str

    @property
    def warmup(self) -> bool:
        return self.round == 0


def interleaved_order(names: Sequence[str], repeats: int) -> list[Slot]:
    """Round 0 runs every configuration once, untimed; rounds 1 to ``repeats`` each run all of
    them, rotated by one place per round. With ``repeats`` a multiple of ``len(names)`` every
    configuration is timed equally often in every place."""
    if repeats < 1 or not names or len(set(names)) != len(names):
        raise ValueError(f"need distinct configurations and at least one timed round, not {list(names)} x {repeats}")
    order = [Slot(0, place, name) for place, name in enumerate(names)]
    for round_ in range(1, repeats + 1):
        shift = (round_ - 1) % len(names)
        rotated = [*names[shift:], *names[:shift]]
        order += [Slot(round_, place, name) for place, name in enumerate(rotated)]
    return order


def run_interleaved(
    configs: Mapping[str, Callable[[], dict]], repeats: int, on_result: Callable[[list[dict]], None] | None = None
) -> list[dict]:
    """Call every configuration in :func:`interleaved_order`; each call returns its measurements.

    Each result gets its slot (``name``, ``round``, ``position``, ``warmup``). A configuration
    that raises is recorded with its ``error`` and the others go on (a batch that does not fit
    must not cost the numbers of the rest). ``on_result`` sees the list after every run, so a
    run cut short still leaves what it measured.
    """
    results: list[dict] = []
    for slot in interleaved_order(list(configs), repeats):
        label = "warm-up, untimed" if slot.warmup else f"timed round {slot.round} of {repeats}"
        print(f"--- {slot.name} ({label})", flush=True)
        try:
            measured = configs[slot.name]()
        except Exception as error:  # noqa: BLE001 - recorded in the results, see the docstring
            print(f"{slot.name} FAILED: {type(error).__name__}: {error}", flush=True)
            measured = {"error": f"{type(error).__name__}: {error}"}
        results.append({**measured, "name": slot.name, "round": slot.round, "position": slot.position,
                        "warmup": slot.warmup})
        if on_result:
            on_result(results)
    return results


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum of repeated measurements, and how many there were."""
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values)),
            "n": len(values)}


def timed_spreads(results: Sequence[dict], key: str) -> dict[str, dict[str, float]]:
    """The :func:`spread` of ``key`` over each configuration's timed runs (warm-up and failed runs
    left out); configurations without a timed run are absent."""
    values: dict[str, list[float]] = {}
    for result in results:
        if not result["warmup"] and "error" not in result:
            values.setdefault(result["name"], []).append(result[key])
    return {name: spread(found) for name, found in values.items()}


def ratio(faster: Mapping[str, float], slower: Mapping[str, float]) -> dict[str, float]:
    """How many times ``faster`` is ``slower`` (two spreads of a rate): the ratio of the medians,
    and the range from the least favourable pairing (slowest run over fastest) to the most."""
    return {"median": faster["median"] / slower["median"], "min": faster["min"] / slower["max"],
            "max": faster["max"] / slower["min"]}


def run_order(results: Sequence[dict]) -> list[str]:
    """The runs as they happened, warm-up marked: what the JSON and the log say about order."""
    return [f"{r['name']}{' (warm-up)' if r['warmup'] else ''}" for r in results]


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict:
    """What the numbers were measured on: processor, cores, load, GPU and library versions."""
    cuda = device == "cuda"
    return dict(
        cpu=cpu_name(), cores=os.cpu_count(), load_average_at_start=os.getloadavg(),
        gpu=torch.cuda.get_device_name() if cuda else None,
        versions=dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                      numpy=np.__version__, cuda=torch.version.cuda if cuda else None,
                      cudnn=torch.backends.cudnn.version() if cuda else None),
    )


def slug(text: str) -> str:
    """A file-name part from a device name: ``NVIDIA H200`` -> ``nvidia-h200``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path``, folders made: called after every run, so a run cut short keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
