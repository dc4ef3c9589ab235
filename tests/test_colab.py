"""Colab's install, checked from here: Colab itself cannot be reached, its published package list can.

Google publishes what Colab's runtimes hold (``googlecolab/backend-info``); ``tests/data`` has the
GPU runtime's list of 2026-08-19 (Python 3.13.15, Ubuntu 22.04, torch 2.11.0+cu128, transformers
5.15.0, pandas 2.2.3, ...), and beside it what those packages declare they need
(:data:`COLAB_REQUIRES`: the ``Requires-Dist`` lines of each one's wheel on PyPI, at Colab's
version; its header says how it was made and which packages it lacks). The network tests resolve,
with pip and the package index:

- **the set-up cell's install on top of that list** (:func:`test_colab_install_changes_only_what_the_course_needs`):
  ``scripts/colab_setup.py``'s own pip arguments and constraints, for CPython 3.13 on manylinux
  x86_64 and wheels only, with Colab's packages *installed* (with their requirements), so pip's
  only-if-needed strategy keeps each one that meets the course's bounds, as it would in Colab. It
  fails if any of Colab's packages outside :data:`NEEDED_UPGRADES` would change (naming the
  protected ones that must never change), and if afterwards any package, Colab's or new, has a
  declared requirement unmet that was met before (gradio's ``huggingface-hub<2.0``, say).
- **the default install on CPython 3.11, 3.12 and 3.13** (:func:`test_default_install_is_wheels_only`):
  the package with nothing installed, wheels only, on manylinux x86_64 (and, marked slow,
  manylinux aarch64, macOS arm64 and Windows).

How "installed" is made: pip's resolver counts as installed every ``*.dist-info`` folder on its
own ``sys.path``. Each test builds a folder of such metadata (name, version, ``Requires-Dist``)
and runs pip with it on ``PYTHONPATH`` and ``python -S`` (so this virtual environment's own
packages are not seen). Passing Colab's versions as ``--constraint`` instead would forbid the
upgrades the course needs, and comparing a plain resolution with the list would show every package
with a newer release as a change: neither is what pip does in Colab.

How "Python 3.13" is made while these tests run on another Python: ``--python-version`` and
``--platform`` choose the wheels, but pip still evaluates environment markers (``; python_version <
"3.13"``) and a downloaded package's ``Requires-Python`` for the interpreter that runs it. A small
runner (:data:`RUNNER`) sets both to the target's values before pip starts. pip is Colab's own
version (24.1.2, from the list), run from its wheel.

What this cannot see: Colab's runtime as it is today (the list is a snapshot: Colab changes it
every few weeks, and both files are replaced then, the second with ``python tests/test_colab.py
--write-requires-dist``); what the packages that are not on PyPI declare (the header lists them,
taken as declaring nothing), and what the CUDA 12.8 builds of PyTorch declare about CUDA packages;
which extras were asked for when Colab installed its packages (only those that another package asks
for count, as in pip); the install itself (downloads, wheels that fail to unpack).

The index is PyPI (``PIP_INDEX_URL`` picks a mirror); the machine's pip configuration files are
not read, so the result does not depend on local wheel folders or caps. Without the index, the
tests are skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
COLAB_FREEZE = DATA / "colab-pip-freeze-gpu-2026-08-19.txt"
COLAB_OS_INFO = DATA / "colab-os-info-gpu-2026-08-19.txt"
COLAB_REQUIRES = DATA / "colab-requires-dist-gpu-2026-08-19.txt"
"""What each of Colab's packages declares it needs: ``name==version`` as in :data:`COLAB_FREEZE`, then
its ``Requires-Dist`` lines, indented (written by :func:`write_colab_requires`)."""
COLAB_GLIBC = (2, 35)
"""Ubuntu 22.04's glibc: the newest manylinux wheels Colab can install."""
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")

PROTECTED = ("pandas", "numpy", "pyarrow", "pillow", "ipykernel", "ipython", "tornado", "requests", "torch")
"""Colab's own tools are built and tested against these; a process that imported them keeps the
old ones until a restart. The course must never move them."""
NEEDED_UPGRADES = {
    "transformers": "the course needs >= 5.23 (TrainingArguments' train_sampling_strategy, activation_checkpointing)",
    "tokenizers": "transformers >= 5.23 needs tokenizers 0.23",
    "huggingface-hub": "transformers 5.24 needs huggingface-hub >= 1.31 (and 5.25 needs 2.x, which Colab's gradio forbids)",
}
"""The upgrades of Colab's packages that the course needs, and why. Anything else is a failure."""

RUNNER = '''\
"""pip, resolving for another interpreter: its environment markers and Requires-Python checks
see TARGET (a JSON object of marker values) instead of the Python that runs this file."""
import json, os, runpy, sys

target = json.loads(os.environ["TARGET_PYTHON"])
from pip._vendor.packaging import markers

environment = markers.default_environment()
environment.update(target)
markers.default_environment = lambda: dict(environment)

from pip._internal.resolution.resolvelib.candidates import RequiresPythonCandidate

check_python = RequiresPythonCandidate.__init__
version = tuple(int(part) for part in target["python_full_version"].split("."))
RequiresPythonCandidate.__init__ = lambda self, version_info: check_python(self, version_info or version)
sys.argv[0] = "pip"
runpy.run_module("pip", run_name="__main__", alter_sys=True)
'''


@dataclass(frozen=True)
class Target:
    """A Python and platform to resolve for: pip's ``--python-version``/``--platform`` and the markers."""

    python: str
    system: str  # sys.platform
    machine: str  # platform.machine()

    @property
    def platforms(self) -> list[str]:
        """Every wheel platform tag the target installs (pip expands macOS tags itself, not manylinux ones)."""
        if self.system == "linux":
            newest = COLAB_GLIBC[1]
            return ([f"manylinux_2_{minor}_{self.machine}" for minor in range(newest, 16, -1)]
                    + [f"manylinux2014_{self.machine}"])
        return {"darwin": ["macosx_14_0_arm64"], "win32": ["win_amd64"]}[self.system]

    @property
    def markers(self) -> dict[str, str]:
        """PEP 508 marker values of such an interpreter (patch release .0 unless it is Colab's)."""
        full = COLAB_PYTHON if self.python == COLAB_PYTHON.rpartition(".")[0] else f"{self.python}.0"
        system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[self.system]
        return {"python_version": self.python, "python_full_version": full, "implementation_version": full,
                "implementation_name": "cpython", "platform_python_implementation": "CPython",
                "sys_platform": self.system, "platform_system": system, "platform_machine": self.machine,
                "os_name": "nt" if self.system == "win32" else "posix"}

    def __str__(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.platforms[0]}"


def colab_packages(path: Path = COLAB_FREEZE) -> dict[str, str]:
    """Colab's ``pip freeze``: canonical name -> version. ``name @ URL`` lines take the version in
    the file name of the URL (``0`` when it has none: a git checkout)."""
    packages = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
        else:
            name, url = (part.strip() for part in line.split(" @ ", 1))
            found = re.search(r"/[^/]+?-(\d[\w.+]*?)(?:-|\.tar\.gz|\.zip)", url)
            version = found.group(1) if found else "0"
        packages[canonicalize_name(name)] = version.strip()
    return packages


COLAB_PYTHON = re.search(r"^Python (\d+\.\d+\.\d+)$", COLAB_OS_INFO.read_text(), re.MULTILINE).group(1)
COLAB = Target(COLAB_PYTHON.rpartition(".")[0], "linux", "x86_64")


def colab_setup():
    """``scripts/colab_setup.py`` loaded as the set-up cell loads it (a file, not an installed module)."""
    import runpy

    return SimpleNamespace(**runpy.run_path(str(ROOT / "scripts" / "colab_setup.py")))


def colab_requires(path: Path = COLAB_REQUIRES) -> dict[str, tuple[str, list[str]]]:
    """:data:`COLAB_REQUIRES`: canonical name -> (version, ``Requires-Dist`` lines)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            entries[name][1].append(line.strip())
        else:
            spelled, version = line.split("==", 1)
            name = canonicalize_name(spelled)
            entries[name] = (version, [])
    return entries


def colab_requires_missing(path: Path = COLAB_REQUIRES) -> dict[str, str]:
    """The packages that :data:`COLAB_REQUIRES`'s header names as having no data, and why."""
    return {canonicalize_name(found.group(1)): found.group(2)
            for found in re.finditer(r"^#   - (\S+): (.+)$", path.read_text(), re.MULTILINE)}


def colab_installed() -> dict:
    """Colab's packages as the set-up sees them in Colab (``colab_setup.Installed`` by canonical
    name): versions from the list, requirements from :data:`COLAB_REQUIRES`."""
    setup, requires = colab_setup(), colab_requires()
    return {name: setup.Installed(name, version, tuple(requires.get(name, (version, []))[1]))
            for name, version in colab_packages().items()}


def unmet_requirements(installed: Mapping, environment: Mapping[str, str]) -> set[tuple[str, str, str]]:
    """(package and version, requirement, what is installed of it) for each applicable declared
    requirement of ``installed`` that is not met: the package is missing or outside the range."""
    setup = colab_setup()
    unmet = set()
    for source, requirement in setup.declared_requirements(installed, environment):
        dist, have = installed[source], installed.get(canonicalize_name(requirement.name))
        if have is None or not setup._holds(requirement, have.version):
            unmet.add((f"{dist.name} {dist.version}", str(requirement), have.version if have else "missing"))
    return unmet


def write_installed(folder: Path, packages: Mapping[str, str], requires: Mapping[str, Iterable[str]] = {}) -> Path:
    """A folder of ``.dist-info`` metadata that makes pip see ``packages`` as installed, each
    declaring its ``requires`` lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in packages.items():
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        lines = "".join(f"Requires-Dist: {line}\n" for line in requires.get(name, ()))
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{lines}\n")
    return folder


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment for pip, without the machine's pip settings (wheel folders, caps,
    extra indexes) except its certificate and timeout: the index alone decides."""
    keep = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT"}
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "PYTHON")) or key in keep}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def unpack_colab_pip(folder: Path, index: str) -> Path:
    """Colab's pip (its version from the list), unpacked from its wheel into ``folder``, with :data:`RUNNER`."""
    version = colab_packages()["pip"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--index-url", index, "--dest", str(folder), f"pip=={version}"],
                   check=True, env=clean_environment(), capture_output=True, timeout=300)
    wheel, = folder.glob("pip-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder / "pip-code", [name for name in archive.namelist() if name.startswith("pip/")])
    (folder / "runner.py").write_text(RUNNER)
    return folder


def run_pip(pip_dir: Path, target: Target, args: list[str], index: str, installed: Path | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
    """``pip <args>`` with wheels only for ``target``, from the index alone, ``installed`` counting as installed."""
    command = [sys.executable, "-S", str(pip_dir / "runner.py"), *args,
               "--only-binary=:all:", "--python-version", target.python,
               *(option for platform in target.platforms for option in ("--platform", platform)),
               "--index-url", index]
    path = [str(pip_dir / "pip-code"), *([str(installed)] if installed else [])]
    env = clean_environment(PYTHONPATH=os.pathsep.join(path), TARGET_PYTHON=json.dumps(target.markers))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=pip_dir)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index() -> str:
    """The package index, or a skip that says why these tests cannot run."""
    try:
        with urllib.request.urlopen(f"{INDEX}/pip/", timeout=15) as response:
            response.read(1)
    except OSError as error:
        pytest.skip(f"the package index {INDEX} cannot be reached ({error}): "
                    "the Colab and wheels-only checks resolve installs against it")
    return INDEX


@pytest.fixture(scope="module")
def pip_dir(index, tmp_path_factory) -> Path:
    """Colab's pip, unpacked from its wheel: the pip the set-up runs."""
    return unpack_colab_pip(tmp_path_factory.mktemp("colab-pip"), index)


def resolve(pip_dir: Path, installed: Path, target: Target, args: list[str], index: str) -> None:
    """``pip <args> --dry-run`` for ``target`` with wheels only, ``installed`` counting as installed."""
    result = run_pip(pip_dir, target, [*args, "--dry-run", "--quiet"], index, installed)
    assert result.returncode == 0, f"pip cannot install it on {target}, wheels only:\n{result.stdout}{result.stderr}"


# --- offline: the lists and the set-up's own logic -----------------------------------------------


def test_colab_list_is_the_published_one():
    """The copy names its source, and holds what the issue measured: the protected packages at
    Colab's versions, transformers too old for the course, no evaluate or jiwer."""
    assert "googlecolab/backend-info" in COLAB_FREEZE.read_text().splitlines()[0]
    assert COLAB_PYTHON == "3.13.15" and "Ubuntu 22.04" in COLAB_OS_INFO.read_text()
    colab = colab_packages()
    assert {name: colab[name] for name in PROTECTED} == {
        "pandas": "2.2.3", "numpy": "2.1.3", "pyarrow": "18.1.0", "pillow": "11.3.0", "ipykernel": "6.17.1",
        "ipython": "7.34.0", "tornado": "6.5.7", "requests": "2.32.4", "torch": "2.11.0+cu128"}
    assert colab["transformers"] == "5.15.0" and "evaluate" not in colab and "jiwer" not in colab


def test_colab_requirements_cover_the_list_at_its_versions():
    """Every package of the list has its Requires-Dist lines at the list's version, or is named in
    the header with the reason it has none; the lines parse and apply on Colab's Python."""
    header = [line for line in COLAB_REQUIRES.read_text().splitlines() if line.startswith("#")]
    assert COLAB_FREEZE.name in header[0] and "--write-requires-dist" in "\n".join(header)
    requires, missing, colab = colab_requires(), colab_requires_missing(), colab_packages()
    assert not set(requires) & set(missing)
    assert set(requires) | set(missing) == set(colab)
    assert {name: version for name, (version, _) in requires.items()} == {name: colab[name] for name in requires}
    assert len(missing) <= 40 and "google-colab" in missing
    setup = colab_setup()
    installed = colab_installed()
    extras = setup.requested_extras(installed, environment=COLAB.markers)
    for name, (_, lines) in requires.items():
        assert len(setup.applicable(lines, extras.get(name, ()), COLAB.markers)) == len(lines), name
    # what the issue found: gradio and diffusers stay on huggingface-hub 1.x
    assert "huggingface-hub<2.0,>=1.16.0" in requires["gradio"][1]
    assert any(line.startswith("huggingface-hub") and "<2" in line for line in requires["diffusers"][1])


def test_colab_constraints_keep_colabs_other_packages_in_their_ranges():
    """From Colab's own metadata: gradio's and diffusers' huggingface-hub < 2 is a constraint;
    transformers 5.15's own bounds are not (the course's tree, which pip checks itself, and which
    the course must be able to upgrade); every constraint holds for Colab's versions."""
    setup = colab_setup()
    installed = colab_installed()
    roots = setup.course_requirements(ROOT)[1]
    tree = setup.course_tree(roots, installed, COLAB.markers)
    assert {"transformers", "huggingface-hub", "tokenizers", "torch", "numpy", "datasets"} <= tree
    assert not {"gradio", "diffusers", "gradio-client"} & tree
    constraints = {canonicalize_name(c.name): c for c in setup.course_constraints(ROOT, installed, COLAB.markers)}
    hub = constraints["huggingface-hub"]
    assert {source.split(" needs ")[0] for source in hub.sources} >= {"gradio 6.24.0", "diffusers 0.39.0", "gradio-client 2.6.0"}
    assert "1.27.0" in hub.specifier and "2.4.0" not in hub.specifier
    assert not [s for c in constraints.values() for s in c.sources if s.startswith(("transformers ", "torch "))]
    colab = colab_packages()
    assert all(c.specifier.contains(Version(colab[name]), prereleases=True) for name, c in constraints.items())
    text = setup.constraints_file_text(constraints.values())
    assert "huggingface-hub" in text and all("[" not in line.split("#")[0] for line in text.splitlines())


def test_constraints_evaluate_markers_extras_and_what_is_installed():
    """Hand-made: which declared requirements become constraints, and which do not."""
    setup = colab_setup()
    I = setup.Installed  # noqa: E741
    installed = {name: dist for dist in [
        I("course-dep", "1.0", ("hub[xet]>=1", "tok<0.23")),  # the course's tree: pip checks these
        I("hub", "1.27.0", ("hf-xet>=1; extra == 'xet'",)),
        I("hf-xet", "1.6.0"), I("tok", "0.22.2"),
        I("gradio", "6.24.0", ("hub<2.0,>=1.16", "numpy<3; python_version >= '3.10'", "win-only<3; sys_platform == 'win32'",
                               "mcp<2; extra == 'mcp'", "absent>=1", "old<1", "client[fast]==2.6.0", "anyver",
                               "urlpkg @ https://example.invalid/urlpkg-1.0-py3-none-any.whl", "not a requirement !")),
        I("diffusers", "0.39.0", ("hub<2",)),
        I("client", "2.6.0", ("orjson>=3; extra == 'fast'", "ujson<10; extra == 'slow'")),
        I("numpy", "2.1.3"), I("win-only", "2.0"), I("mcp", "1.5"), I("old", "2.0"), I("anyver", "1.0"),
        I("urlpkg", "1.0"), I("orjson", "3.10.0"), I("ujson", "9.5"),
        I("my-course", "0.0.9", ("anyver>=1", "hub<1.28")),  # the course itself, replaced by the install
    ] for name in [dist.name]}
    roots = [setup.Requirement("course-dep>=1"), setup.Requirement("pywin>=1; sys_platform == 'win32'")]
    assert setup.course_tree(roots, installed, COLAB.markers) == {"course-dep", "hub", "hf-xet", "tok"}
    assert setup.requested_extras(installed, roots, COLAB.markers) == {"hub": {"xet"}, "client": {"fast"}}
    constraints = {c.name: c for c in setup.colab_constraints(installed, roots, COLAB.markers, replaced=["My_Course"])}
    assert set(constraints) == {"hub", "numpy", "client", "orjson"}
    assert constraints["hub"].specifier == setup.SpecifierSet("<2,<2.0,>=1.16")
    assert constraints["hub"].sources == ("diffusers 0.39.0 needs hub<2", "gradio 6.24.0 needs hub<2.0,>=1.16")
    assert constraints["client"].line() == "client==2.6.0  # gradio 6.24.0 needs client==2.6.0"
    assert str(constraints["orjson"].specifier) == ">=3"  # client[fast], asked for by gradio
    # on Windows the win32-only line applies
    windows = Target("3.13", "win32", "AMD64").markers
    assert "win-only" in {c.name for c in setup.colab_constraints(installed, roots, windows)}
    # an installed course that is not replaced would be one more package outside the tree
    assert "anyver" in {c.name for c in setup.colab_constraints(installed, roots, COLAB.markers)}


def test_changes_name_each_upgrade_and_its_reason():
    setup = colab_setup()
    before = {"transformers": "5.15.0", "huggingface-hub": "1.27.0", "numpy": "2.1.3", "asr-helpers": "0.1.0"}
    report = {"install": [
        {"metadata": {"name": "asr_helpers", "version": "0.1.0", "requires_dist": ["transformers>=5.23", "numpy>=1.26"]}},
        {"metadata": {"name": "transformers", "version": "5.23.0", "requires_dist": ["huggingface-hub<3,>=2.4",
                                                                                       "pytest; extra == 'testing'"]}},
        {"metadata": {"name": "huggingface_hub", "version": "2.4.0"}},
        {"metadata": {"name": "jiwer", "version": "4.0.0"}},
    ]}
    found = setup.changes(before, report)
    assert [(c.name, c.old, c.new) for c in found] == [
        ("huggingface_hub", "1.27.0", "2.4.0"), ("transformers", "5.15.0", "5.23.0"), ("jiwer", None, "4.0.0")]
    assert found[0].reason == "transformers needs <3,>=2.4" and found[1].reason == "asr_helpers needs >=5.23"
    line = setup.summary(found)
    assert "\n" not in line
    assert line.startswith("Upgraded huggingface_hub 1.27.0 -> 2.4.0 (transformers needs <3,>=2.4), "
                           "transformers 5.15.0 -> 5.23.0 (asr_helpers needs >=5.23); added jiwer 4.0.0")
    assert setup.summary([]).startswith("Upgraded none of Colab's packages; added nothing")


def test_broken_requirements_name_colabs_packages_that_an_upgrade_leaves_outside_their_bounds():
    """The safety net after the install (and what ``keep_colab=False`` reports): a bound that
    another installed package declares, held before and broken now."""
    setup = colab_setup()
    I = setup.Installed  # noqa: E741
    found = [setup.Change("huggingface_hub", "1.27.0", "2.4.0"), setup.Change("jiwer", None, "4.0.0")]
    installed = {canonicalize_name(d.name): d for d in [
        I("gradio", "6.24.0", ("huggingface-hub<2.0,>=1.16.0", "numpy")),
        I("datasets", "4.0.0", ("huggingface-hub>=0.24.0",)),
        I("old-tool", "1.0", ("huggingface-hub<1.0",)),  # broken before: not the course's doing
        I("extra-only", "1.0", ("huggingface-hub<2; extra == 'hub'",)),
        I("huggingface_hub", "2.4.0"), I("jiwer", "4.0.0")]}
    broken = setup.broken_requirements(found, installed)
    assert broken == ["gradio 6.24.0 (huggingface-hub<2.0,>=1.16.0)"]
    assert setup.summary(found, broken).endswith(
        "; added jiwer 4.0.0; Colab's gradio 6.24.0 (huggingface-hub<2.0,>=1.16.0) now get versions outside what they declare.")
    assert setup.summary(found, []).endswith("; Colab's other packages keep versions they declare.")


def _fake_pip(monkeypatch, setup: SimpleNamespace, tmp_path: Path, returncode: int, report: dict,
              output: str = "") -> list[list[str]]:
    """Replace the pip subprocess of ``setup.main`` (it writes ``report`` where ``--report`` says,
    and exits with ``returncode``) and its temporary folder (``tmp_path``); return its calls."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        Path(command[command.index("--report") + 1]).write_text(json.dumps(report))
        return subprocess.CompletedProcess(command, returncode, stdout=output)

    monkeypatch.setitem(setup.main.__globals__, "subprocess", SimpleNamespace(run=run, PIPE=-1, STDOUT=-2))
    monkeypatch.setitem(setup.main.__globals__, "tempfile", SimpleNamespace(gettempdir=lambda: str(tmp_path)))
    return calls


def _installed(setup: SimpleNamespace, *dists) -> dict:
    return {canonicalize_name(dist.name): dist for dist in (setup.Installed(*d) for d in dists)}


def test_setup_runs_one_pip_command_and_asks_for_a_restart_only_when_needed(monkeypatch, tmp_path, capsys):
    setup = colab_setup()
    globals_ = setup.main.__globals__
    installed = _installed(setup, ("transformers", "5.15.0"), ("numpy", "2.1.3"), ("peft", "0.20.0", ("transformers>=4.0",)))
    monkeypatch.setitem(globals_, "installed_distributions", lambda: installed)
    report = {"install": [{"metadata": {"name": "asr_helpers", "version": "0.1.0", "requires_dist": ["transformers>=5.23"]}},
                          {"metadata": {"name": "transformers", "version": "5.23.0"}}]}
    calls = _fake_pip(monkeypatch, setup, tmp_path, 0, report)

    monkeypatch.setitem(globals_, "imported_distributions", lambda: {"numpy"})
    found = setup.main(ROOT)
    constraints = tmp_path / "course-install-constraints.txt"
    assert calls == [[sys.executable, "-m", "pip",
                      *setup.pip_install_args(ROOT, tmp_path / "course-install-report.json", constraints)]]
    assert constraints.read_text() == "transformers>=4.0  # peft 0.20.0 needs transformers>=4.0\n"
    assert [c.name for c in found] == ["transformers", "asr_helpers"]
    assert "Upgraded transformers 5.15.0 -> 5.23.0 (asr_helpers needs >=5.23)" in capsys.readouterr().out

    monkeypatch.setitem(globals_, "imported_distributions", lambda: {"numpy", "transformers"})
    with pytest.raises(setup.SetupError) as stopped:
        setup.main(ROOT)
    assert stopped.value._render_traceback_() == [
        "SetupError: transformers had been imported before the upgrade, and this session still runs the old version: "
        "restart it (Runtime > Restart session), then run this cell again."]

    calls.clear()
    monkeypatch.setitem(globals_, "imported_distributions", lambda: {"numpy"})
    setup.main(ROOT, keep_colab=False)
    assert "--constraint" not in calls[0]


def test_setup_stops_with_pips_error_in_one_line(monkeypatch, tmp_path):
    setup = colab_setup()
    monkeypatch.setitem(setup.main.__globals__, "installed_distributions", lambda: {})
    monkeypatch.setitem(setup.main.__globals__, "imported_distributions", lambda: set())
    output = "Collecting transformers>=5.23\nERROR: Could not find a version that satisfies the requirement x\nERROR: No matching distribution found for x\n"
    calls = _fake_pip(monkeypatch, setup, tmp_path, 1, {}, output)
    with pytest.raises(setup.SetupError) as stopped:
        setup.main(ROOT)
    assert "--constraint" not in calls[0]  # nothing installed declares anything
    (line,) = stopped.value._render_traceback_()
    assert "pip could not install the course: ERROR: No matching distribution found for x" in line
    assert str(tmp_path / "course-install.log") in line and (tmp_path / "course-install.log").read_text() == output


PIP_CONFLICT = """\
Collecting transformers>=5.23 (from asr_helpers==0.1.0)
INFO: pip is looking at multiple versions of transformers to determine which version is compatible with other requirements. This could take a while.
ERROR: Cannot install asr_helpers and asr_helpers==0.1.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    asr-helpers 0.1.0 depends on transformers>=5.23
    transformers 5.25.0 depends on huggingface-hub<3.0 and >=2.4.0
    The user requested (constraint) huggingface-hub<2.0,>=1.16.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
"""


def test_setup_stops_in_one_line_when_colabs_packages_leave_no_solution(monkeypatch, tmp_path):
    """pip's conflict, with its "(constraint)" told as what Colab's packages declare, and what to do."""
    setup = colab_setup()
    installed = _installed(setup, ("transformers", "5.15.0", ("huggingface-hub>=1.0",)), ("huggingface_hub", "1.27.0"),
                           ("gradio", "6.24.0", ("huggingface-hub<2.0,>=1.16.0",)), ("diffusers", "0.39.0", ("huggingface-hub<2",)))
    monkeypatch.setitem(setup.main.__globals__, "installed_distributions", lambda: installed)
    monkeypatch.setitem(setup.main.__globals__, "imported_distributions", lambda: set())
    _fake_pip(monkeypatch, setup, tmp_path, 1, {}, PIP_CONFLICT)
    with pytest.raises(setup.SetupError) as stopped:
        setup.main(ROOT)
    (line,) = stopped.value._render_traceback_()
    assert "\n" not in line
    assert line.startswith(
        "SetupError: pip finds no versions for the course that Colab's installed packages accept: "
        "asr-helpers 0.1.0 depends on transformers>=5.23; transformers 5.25.0 depends on huggingface-hub<3.0 and >=2.4.0; "
        "Colab's diffusers 0.39.0 needs huggingface-hub<2 and gradio 6.24.0 needs huggingface-hub<2.0,>=1.16.0 "
        f"(whole output in {tmp_path / 'course-install.log'}). Open an issue with that file; to install anyway")
    assert line.endswith("['main'](keep_colab=False) in a new cell.")
    assert (tmp_path / "course-install-constraints.txt").read_text() == (
        "huggingface-hub<2,>=1.16.0  # diffusers 0.39.0 needs huggingface-hub<2, gradio 6.24.0 needs huggingface-hub<2.0,>=1.16.0\n")


def test_setup_skips_pip_when_the_course_is_installed_and_satisfied(monkeypatch, capsys):
    setup = colab_setup()
    version, requirements = setup.course_requirements(ROOT)
    versions = {canonicalize_name(r.name): "99.0" for r in requirements} | {"asr-helpers": version}
    assert setup.already_installed(ROOT, versions)
    assert not setup.already_installed(ROOT, versions | {"transformers": "5.15.0"})
    assert not setup.already_installed(ROOT, {k: v for k, v in versions.items() if k != "asr-helpers"})
    monkeypatch.setitem(setup.main.__globals__, "installed_distributions",
                        lambda: {name: setup.Installed(name, v) for name, v in versions.items()})
    assert setup.main(ROOT) == [] and "nothing to install" in capsys.readouterr().out


SHOW_IN_IPYTHON = """\
import sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")  # the cell's test for Colab
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for cell in sys.argv[1:]:
    print("--- cell", flush=True)
    shell.run_cell(cell)
"""


def test_setup_cell_stops_in_one_line_when_the_clone_fails(tmp_path):
    """The cell as IPython runs it in Colab, with a ``git`` that fails as a wrong address does:
    one line (no SystemExit banner, no "To exit" warning), and so for the set-up's own errors."""
    script = SimpleNamespace(**__import__("runpy").run_path(str(ROOT / "scripts" / "execute_notebooks.py")))
    url = script.repository_url()
    cell = script.SETUP_CELL.format(url=url)
    assert not os.path.isdir("/content/course")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f"#!/bin/sh\necho 'remote: Repository not found.' >&2\n"
                                 f"echo \"fatal: repository '{url}/' not found\" >&2\nexit 128\n")
    (bin_dir / "git").chmod(0o755)
    setup_error = (f"import runpy; raise runpy.run_path({str(ROOT / 'scripts' / 'colab_setup.py')!r})"
                   "['SetupError']('pip could not install the course')")
    result = subprocess.run([sys.executable, "-c", SHOW_IN_IPYTHON, cell, setup_error], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                                 "IPYTHONDIR": str(tmp_path / "ipython")}, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    clone_shown, setup_shown = [part.strip() for part in result.stdout.split("--- cell")[1:]]
    assert "\n" not in clone_shown and clone_shown.startswith(
        f"SetupError: git clone {url} failed (remote: Repository not found. fatal: repository '{url}/' not found)")
    assert "pyproject.toml [project.urls] Repository" in clone_shown and "scripts/execute_notebooks.py" in clone_shown
    assert setup_shown == "SetupError: pip could not install the course"


# --- network: resolutions against the index ---------------------------------------------------


def resolve_colab_install(pip_dir: Path, folder: Path, index: str, keep_colab: bool = True) -> tuple[list, dict, list]:
    """The set-up's pip command (and, with ``keep_colab``, its constraints) on Colab's packages:
    what it changes (``colab_setup.Change``), the packages after it, and the declared requirements
    that it leaves unmet and that were met before."""
    setup = colab_setup()
    colab, installed = colab_packages(), colab_installed()
    site = write_installed(folder / "colab-site-packages", colab, {name: d.requires for name, d in installed.items()})
    constraints_file = None
    if keep_colab:
        constraints = setup.course_constraints(ROOT, installed, COLAB.markers)
        constraints_file = folder / "constraints.txt"
        constraints_file.write_text(setup.constraints_file_text(constraints))
    report_file = folder / "report.json"
    resolve(pip_dir, site, COLAB, setup.pip_install_args(ROOT, report_file, constraints_file), index)
    report = json.loads(report_file.read_text())
    after = dict(installed)
    for item in report["install"]:
        meta = item["metadata"]
        after[canonicalize_name(meta["name"])] = setup.Installed(meta["name"], meta["version"], tuple(meta.get("requires_dist") or ()))
    before_unmet = unmet_requirements(installed, COLAB.markers)
    print(f"unmet in Colab already: {sorted(before_unmet)}")
    return setup.changes(colab, report), after, sorted(unmet_requirements(after, COLAB.markers) - before_unmet)


@pytest.mark.network
def test_colab_install_changes_only_what_the_course_needs(index, pip_dir, tmp_path):
    """The set-up cell's pip command and constraints on Colab's packages: only :data:`NEEDED_UPGRADES`
    move, upwards, and no declared requirement that held before fails after."""
    found, after, new_unmet = resolve_colab_install(pip_dir, tmp_path, index)
    print(colab_setup().summary(found))
    upgraded = {canonicalize_name(c.name): c for c in found if c.upgraded}
    assert not set(upgraded) & set(PROTECTED), f"the install would change Colab's {sorted(set(upgraded) & set(PROTECTED))}"
    unexpected = {name: f"{c.old} -> {c.new} ({c.reason})" for name, c in upgraded.items() if name not in NEEDED_UPGRADES}
    assert not unexpected, f"the install would change Colab's packages beyond what the course needs: {unexpected}"
    assert all(Version(c.new) > Version(c.old) for c in upgraded.values()), "the install would downgrade a Colab package"
    assert Version(after["transformers"].version) >= Version("5.23") and {"asr-helpers", "evaluate", "jiwer"} <= set(after)
    assert not new_unmet, f"after the install these declared requirements fail: {new_unmet}"


@pytest.mark.network
def test_without_the_constraints_colabs_gradio_loses_its_huggingface_hub(index, pip_dir, tmp_path):
    """What the constraints prevent, and proof that the check above sees it: the plain install
    (``keep_colab=False``) takes the newest transformers and huggingface-hub 2, outside what Colab's
    gradio, gradio_client and diffusers declare."""
    found, after, new_unmet = resolve_colab_install(pip_dir, tmp_path, index, keep_colab=False)
    assert Version(after["huggingface-hub"].version) >= Version("2")
    assert {package.split()[0] for package, requirement, _ in new_unmet if requirement.startswith("huggingface-hub")} >= {
        "gradio", "gradio-client", "diffusers"}
    assert colab_setup().broken_requirements(found, after, COLAB.markers)


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def newest_torch(pip_dir: Path, target: Target, index: str) -> str:
    """The newest torch release with a wheel for ``target``: pip's finder, through ``pip index``
    (PyTorch publishes wheels only, so every version it lists has one)."""
    env = clean_environment(PYTHONPATH=str(pip_dir / "pip-code"), TARGET_PYTHON=json.dumps(target.markers))
    result = subprocess.run([sys.executable, "-S", str(pip_dir / "runner.py"), "index", "versions", "torch",
                             "--python-version", target.python, *(o for p in target.platforms for o in ("--platform", p)),
                             "--index-url", index], env=env, capture_output=True, text=True, timeout=300, cwd=pip_dir)
    assert result.returncode == 0, f"no torch wheel for {target}:\n{result.stdout}{result.stderr}"
    return re.search(r"^torch \(([^)]+)\)", result.stdout, re.MULTILINE).group(1)


DEFAULT_TARGETS = [
    Target("3.11", "linux", "x86_64"),
    Target("3.12", "linux", "x86_64"),
    Target("3.13", "linux", "x86_64"),
    pytest.param(Target("3.13", "linux", "aarch64"), marks=pytest.mark.slow),
    pytest.param(Target("3.13", "darwin", "arm64"), marks=pytest.mark.slow),
    pytest.param(Target("3.13", "win32", "AMD64"), marks=pytest.mark.slow),
]


def default_install(target: Target, pip_dir: Path, index: str, folder: Path) -> dict[str, dict]:
    """pip's report of ``pip install`` of the package (its directory, so Requires-Python counts)
    into an empty environment of ``target``, wheels only, by name.

    torch is the one exception to "resolve it all": its Linux wheels pull several GB of CUDA
    wheels, which pip would download just to read their metadata (the index serves no separate
    metadata files). So the newest torch with a wheel for the target counts as installed; torch's
    own dependencies are PyTorch's, wheels on every platform it supports.
    """
    torch = newest_torch(pip_dir, target, index)
    assert Version(torch) >= Version("2.4")
    installed = write_installed(folder / "site-packages", {"torch": torch})
    report = folder / "report.json"
    resolve(pip_dir, installed, target, ["install", "--report", str(report), str(ROOT)], index)
    return {canonicalize_name(item["metadata"]["name"]): item for item in json.loads(report.read_text())["install"]}


@pytest.fixture(scope="module")
def default_installs(request, index, pip_dir, tmp_path_factory):
    """The resolution of every target the session runs, started together: each waits on the
    index, not on the CPU, so together they take about as long as the slowest one."""
    targets = [item.callspec.params["target"] for item in request.session.items
               if getattr(item, "originalname", "") == "test_default_install_is_wheels_only"]
    pool = ThreadPoolExecutor(max_workers=max(1, len(targets)))
    request.addfinalizer(pool.shutdown)
    return {str(target): pool.submit(default_install, target, pip_dir, index, tmp_path_factory.mktemp("install"))
            for target in targets}


@pytest.mark.network
@pytest.mark.parametrize("target", DEFAULT_TARGETS, ids=str)
def test_default_install_is_wheels_only(target, default_installs):
    """``pip install`` of the package into an empty environment resolves with wheels only:
    nothing to compile on a learner's machine (:func:`default_install`)."""
    requires_python = SpecifierSet(_project()["requires-python"])
    assert target.python + ".0" in requires_python, f"requires-python {requires_python} excludes {target.python}"
    resolved = default_installs[str(target)].result()
    assert {"asr-helpers", "transformers", "datasets", "evaluate", "jiwer"} <= set(resolved)
    assert "flashlight-text" not in resolved
    sources = [name for name, item in resolved.items() if name != "asr-helpers"
               and not item["download_info"]["url"].split("#")[0].endswith(".whl")]
    assert not sources, f"source builds on {target}: {sources}"


def test_flashlight_is_optional_and_the_lock_keeps_it_off_python_313():
    """flashlight-text 0.0.7, its last release, has no wheel for 3.13: an extra, and a lock line for < 3.13."""
    project = _project()
    assert not [d for d in project["dependencies"] if d.startswith("flashlight")]
    assert project["optional-dependencies"]["flashlight"] == ["flashlight-text>=0.0.7"]
    lock = (ROOT / "requirements.txt").read_text().splitlines()
    assert 'flashlight-text==0.0.7; python_version < "3.13"' in lock


# --- the data file of Colab's requirements ------------------------------------------------------


def _no_wheel_reason(name: str, version: str, index: str) -> str:
    """Why pip found no wheel of ``name==version`` for Colab, from the index's page of ``name``."""
    try:
        with urllib.request.urlopen(f"{index}/{name}/", timeout=60) as response:
            page = response.read().decode()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return "not on PyPI"
        raise
    files = set()
    for filename in re.findall(r">([^<>]+\.(?:whl|tar\.gz|zip))</a>", page):
        try:
            files.add(("wheel", parse_wheel_filename(filename)[1]) if filename.endswith(".whl")
                      else ("sdist", parse_sdist_filename(filename)[1]))
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
    kinds = {kind for kind, found in files if found == Version(version)}
    if not kinds:
        return f"{version} is not on PyPI"
    return f"{version} has no wheel on PyPI" if kinds == {"sdist"} else f"{version} has no wheel for CPython 3.13 on manylinux x86_64"


def _report_metadata(pip_dir: Path, requests: list[str], index: str, folder: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Requires-Dist of each ``name==version`` in ``requests`` for Colab (pip's report, no
    install, METADATA read with range requests), and the requests pip found no wheel for."""
    wanted, report = folder / "wanted.txt", folder / "report.json"
    missing: dict[str, str] = {}
    while requests:
        wanted.write_text("\n".join(requests) + "\n")
        result = run_pip(pip_dir, COLAB, ["install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
                                          "--use-feature=fast-deps", "--report", str(report), "-r", str(wanted)], index)
        if result.returncode == 0:
            items = json.loads(report.read_text())["install"]
            return {canonicalize_name(i["metadata"]["name"]): i["metadata"].get("requires_dist") or [] for i in items}, missing
        found = re.search(r"No matching distribution found for (\S+)|Package '([^']+)' requires a different Python",
                          result.stdout + result.stderr)
        if not found:
            raise RuntimeError(f"pip failed on {requests}:\n{result.stdout}{result.stderr}")
        lost = canonicalize_name((found.group(1) or found.group(2)).split("==")[0])
        request = next(r for r in requests if canonicalize_name(r.split("==")[0]) == lost)
        requests = [r for r in requests if r != request]
        missing[request] = ""
    return {}, missing


def write_colab_requires(index: str = INDEX, path: Path = COLAB_REQUIRES) -> None:
    """Write :data:`COLAB_REQUIRES` from the index: for each package of :data:`COLAB_FREEZE`, the
    ``Requires-Dist`` lines of the wheel that Colab's pip picks at that exact version for CPython
    3.13.15 on manylinux x86_64, read by pip's report (``--dry-run --no-deps --use-feature=fast-deps``:
    the METADATA comes through HTTP range requests, the wheels are not downloaded). Kept: the lines
    that can apply in Colab (markers for its Python, extras that a package of the list asks for)."""
    setup = colab_setup()
    colab = colab_packages()
    missing: dict[str, str] = {}
    requests: dict[str, str] = {}
    for line in COLAB_FREEZE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if " @ " in line:
            name, url = (part.strip() for part in line.split(" @ ", 1))
            where = urllib.parse.urlparse(url.removeprefix("git+"))
            missing[canonicalize_name(name)] = f"installed from {where.scheme}://{where.netloc or where.path}, not PyPI"
        else:
            name = canonicalize_name(line.split("==")[0])
            requests[name] = f"{name}=={Version(colab[name]).public}"
    with tempfile.TemporaryDirectory() as tmp:
        pip_dir = unpack_colab_pip(Path(tmp), index)
        names = sorted(requests)
        chunks = [names[i:i + 40] for i in range(0, len(names), 40)]

        def one(number_chunk):
            number, chunk = number_chunk
            folder = Path(tmp) / f"chunk-{number}"
            folder.mkdir()
            return _report_metadata(pip_dir, [requests[name] for name in chunk], index, folder)

        requires: dict[str, list[str]] = {}
        with ThreadPoolExecutor(8) as pool:
            for found, lost in pool.map(one, enumerate(chunks)):
                requires |= found
                for request in lost:
                    name, version = request.split("==")
                    missing[name] = _no_wheel_reason(name, version, index)
    local = sorted(name for name in requires if Version(colab[name]).local)
    for name in local:  # PyTorch's CUDA 12.8 builds: PyPI's build of that version names other CUDA packages
        requires[name] = [line for line in requires[name]
                          if not canonicalize_name(setup.Requirement(line).name).startswith(("nvidia-", "cuda-"))]
    installed = {name: setup.Installed(name, colab[name], tuple(lines)) for name, lines in requires.items()}
    extras = setup.requested_extras(installed, environment=COLAB.markers)
    paragraphs = [
        f"What the packages of {COLAB_FREEZE.name} declare they need: 'name==version' as in that list, then "
        "the Requires-Dist lines of its METADATA, indented. Read by tests/test_colab.py.",
        f"Source: PyPI, the wheel that Colab's pip {colab['pip']} picks at that exact version for CPython "
        f"{COLAB_PYTHON} on manylinux_2_35 x86_64 (Colab's runtime). Made by: python tests/test_colab.py "
        "--write-requires-dist (pip install --dry-run --no-deps --ignore-installed --use-feature=fast-deps "
        "--report: the METADATA only, read with HTTP range requests).",
        "Left out: lines whose markers cannot hold on Colab's Python 3.13 on Linux x86_64, and lines for extras "
        "that no package of the list asks for (pip checks neither).",
        f"PyTorch's CUDA 12.8 builds are not on PyPI: {', '.join(f'{name} {colab[name]}' for name in local)}. "
        "Their lines are those of PyPI's build of the same version (a CUDA 13 one) without its nvidia-* and cuda-* lines.",
        "No data here, taken as declaring nothing:",
    ]
    header = [f"# {line}" for paragraph in paragraphs for line in textwrap.wrap(paragraph, 104)]
    header += [f"#   - {name}: {why}" for name, why in sorted(missing.items())]
    body = []
    for name in sorted(requires):
        body.append(f"{name}=={colab[name]}")
        body += [f"    {line}" for line in requires[name]
                 if setup.applicable([line], extras.get(name, ()), COLAB.markers)]
    path.write_text("\n".join(header + body) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Colab's test data.")
    parser.add_argument("--write-requires-dist", action="store_true", help=write_colab_requires.__doc__)
    if parser.parse_args().write_requires_dist:
        write_colab_requires()
        print(f"wrote {COLAB_REQUIRES}")
