"""Install the course in Colab beside Colab's own packages: only what Colab lacks or has too old,
and never a version that one of Colab's packages declares it cannot work with.

Every notebook's set-up cell clones the repository, loads this file with ``runpy.run_path`` and
calls :func:`main` in the notebook's own process (it must see what that process has imported).
It runs one pip command, :func:`pip_install_args`: the course package from the clone, whose
``pyproject.toml`` gives lower bounds only. pip's default upgrade strategy
(``only-if-needed``) then keeps every installed package that meets them and upgrades only those
that do not, so Colab's pandas, numpy, PyTorch and Jupyter stay as Google built and tested them.
The lock (``requirements.txt``) is for local installs, CI and nbval, never for Colab: used as
constraints there it would replace dozens of Colab's packages.

pip checks the declared requirements (``Requires-Dist``) of every package in the course's own
dependency tree, whichever version it picks, but it never looks at the packages outside that
tree: Colab's gradio 6.24 and diffusers 0.39 declare ``huggingface-hub<2.0``, and an
unconstrained install moves huggingface-hub to 2.x for the newest transformers. So the command
also gets a constraints file (:func:`colab_constraints`): the version ranges that Colab's
installed packages outside the course's tree declare, read from their metadata in this process.
pip then picks versions inside them (for that case transformers 5.24 with huggingface-hub 1.33)
or, when none exist, stops, and the set-up says in one line what conflicts and what to do.

``tests/test_colab.py`` resolves this same command against Colab's published package list and
those packages' published metadata, for Python 3.13 and wheels only, and fails if it would
change a package that the course does not need changed or leave a declared requirement unmet.

What the learner sees: one line that names every preinstalled package the install upgraded and
the requirement that made it (:func:`summary`). Nothing is restarted behind their back: a
package that this process had already imported keeps its old code in memory, so when an upgrade
touched one, the set-up stops with one line that asks for Runtime > Restart session and a second
run of the cell (which then finds everything installed and goes on). Failures are one line too
(:class:`SetupError`), with what failed and what to do, instead of a wall of traceback.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import json
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

COURSE_DIR = Path(__file__).resolve().parent.parent
"""The clone this file lies in: the set-up cell clones into ``/content/course``."""


class SetupError(Exception):
    """A set-up failure told in one line: IPython shows ``_render_traceback_``'s lines instead of
    a traceback, and the cell still fails, so "Run all" stops there."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class Change:
    """One distribution that the install added (``old`` is None) or moved from ``old`` to ``new``."""

    name: str
    old: str | None
    new: str
    reason: str = ""

    @property
    def upgraded(self) -> bool:
        """True for a package that was installed before: one of Colab's own."""
        return self.old is not None


@dataclass(frozen=True)
class Installed:
    """One installed distribution: its name as it spells it, its version, its ``Requires-Dist`` lines."""

    name: str
    version: str
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Constraint:
    """The range that installed packages outside the course's tree declare for one installed package."""

    name: str
    specifier: SpecifierSet
    sources: tuple[str, ...]
    """Who declares what: ``"gradio 6.24.0 needs huggingface-hub<2.0,>=1.16.0"``."""

    def line(self) -> str:
        """The constraints-file line, with its sources as a comment."""
        return f"{self.name}{self.specifier}  # {', '.join(self.sources)}"


def constraints_file_text(constraints: Iterable[Constraint]) -> str:
    """What :func:`main` writes to the file it passes to ``--constraint``."""
    return "".join(f"{constraint.line()}\n" for constraint in constraints)


def pip_install_args(course_dir: str | Path, report: str | Path, constraints: str | Path | None = None) -> list[str]:
    """The arguments after ``python -m pip`` that install the course into Colab.

    - the course from its clone, so pip reads the lower bounds in its ``pyproject.toml``: no lock,
      nothing pinned;
    - ``--upgrade-strategy only-if-needed`` (pip's default, written out because it is the point):
      an installed package that meets the bounds is kept;
    - ``--constraint``: the ranges of :func:`colab_constraints`, when given;
    - ``--only-binary=:all:``: wheels only, as ``tests/test_colab.py`` resolves it, so nothing is
      compiled in Colab (the course itself is still built from its directory);
    - ``--report``: what pip installed, read back by :func:`changes`.
    """
    return ["install", "--upgrade-strategy", "only-if-needed", "--only-binary=:all:", "--progress-bar", "off",
            *(["--constraint", str(constraints)] if constraints else []), "--report", str(report), str(course_dir)]


# --- what is installed, and what it declares ----------------------------------------------------


def installed_distributions() -> dict[str, Installed]:
    """Every distribution this process can import, by canonical name (the first on ``sys.path``
    wins, as for imports), with its ``Requires-Dist`` lines."""
    importlib.invalidate_caches()
    found: dict[str, Installed] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) not in found:
            found[canonicalize_name(name)] = Installed(name, dist.version, tuple(dist.requires or ()))
    return found


def applicable(lines: Iterable[str], extras: Iterable[str] = (),
               environment: Mapping[str, str] | None = None) -> list[Requirement]:
    """The ``Requires-Dist`` lines that apply: each marker evaluated for ``environment`` (PEP 508
    marker values; None: this interpreter), with ``extra`` set to "" and to each of ``extras``.

    A line for an extra (``; extra == "mcp"``) applies only when that extra was asked for: the
    installed metadata does not say, so the extras are those that some package asks for
    (:func:`requested_extras`), as pip's resolver and ``pip check`` (which asks for none) do.
    Lines that are not valid requirements are skipped, as pip skips them.
    """
    found = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or any(marker.evaluate({**(environment or {}), "extra": extra}) for extra in ("", *extras)):
            found.append(requirement)
    return found


def requested_extras(installed: Mapping[str, Installed], roots: Iterable[Requirement] = (),
                     environment: Mapping[str, str] | None = None) -> dict[str, set[str]]:
    """The extras of each installed package that ``roots`` or an installed package ask for
    (``huggingface-hub[hf_xet]``), followed through the lines that those extras bring in."""
    extras: dict[str, set[str]] = {}
    asks = [requirement for requirement in applicable([str(r) for r in roots], (), environment) if requirement.extras]
    asks += [requirement for dist in installed.values()
             for requirement in applicable(dist.requires, (), environment) if requirement.extras]
    while asks:
        requirement = asks.pop()
        name = canonicalize_name(requirement.name)
        new = set(requirement.extras) - extras.get(name, set())
        if not new:
            continue
        extras.setdefault(name, set()).update(new)
        if name in installed:
            asks += [r for r in applicable(installed[name].requires, new, environment) if r.extras]
    return extras


def course_tree(roots: Iterable[Requirement], installed: Mapping[str, Installed],
                environment: Mapping[str, str] | None = None) -> set[str]:
    """The installed packages that ``roots`` (the course's requirements) reach through installed
    packages' requirements (with the extras asked for along the way): the tree pip resolves, and
    whose requirements it checks itself."""
    reached: dict[str, set[str]] = {}
    todo = [requirement for requirement in roots
            if requirement.marker is None or requirement.marker.evaluate({**(environment or {}), "extra": ""})]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name not in installed:
            continue
        seen = reached.get(name)
        extras = set(requirement.extras)
        if seen is not None and extras <= seen:
            continue
        reached[name] = (seen or set()) | extras
        todo += applicable(installed[name].requires, reached[name], environment)
    return set(reached)


def _holds(requirement: Requirement, version: str) -> bool:
    """Whether ``version`` is in ``requirement``'s range (prereleases count as versions)."""
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # a version packaging cannot read (a git checkout's "0+unknown"): nothing to check


def _rejects(requirement: Requirement, version: str) -> bool:
    """Whether ``requirement``'s version range excludes ``version``."""
    return not _holds(requirement, version)


def declared_requirements(installed: Mapping[str, Installed], environment: Mapping[str, str] | None = None,
                          extras: Mapping[str, set[str]] | None = None) -> list[tuple[str, Requirement]]:
    """(canonical name of the declaring package, requirement) for every applicable requirement
    of every installed package, extras as :func:`requested_extras` finds them."""
    if extras is None:
        extras = requested_extras(installed, environment=environment)
    return [(name, requirement) for name, dist in installed.items()
            for requirement in applicable(dist.requires, extras.get(name, ()), environment)]


def colab_constraints(installed: Mapping[str, Installed], roots: Iterable[Requirement],
                      environment: Mapping[str, str] | None = None, replaced: Iterable[str] = ()) -> list[Constraint]:
    """The version ranges that installed packages outside the course's tree declare, as constraints.

    Which declarations count, and why this is cheap enough to run in every set-up:

    - only those of packages outside :func:`course_tree` (in Colab: gradio, diffusers, ...). pip
      checks the tree's own requirements for whichever version it picks; taking the installed
      versions' requirements as constraints would forbid the very upgrades the course needs
      (transformers 5.15 declares the tokenizers that transformers 5.24 replaces). Nor those of
      the ``replaced`` packages: an installed older course, which this install replaces;
    - only on an installed package: a requirement on a package that is not installed is unmet
      already and constrains nothing; a URL requirement or one with no range neither;
    - only those that hold now: one that Colab's own versions already break is not the course's
      to repair (pip would move a package it need not touch, or find no solution);
    - markers evaluated for this interpreter (``environment`` in the tests), extra lines only for
      the extras asked for (:func:`applicable`), extras dropped from the constraint (pip accepts
      none there; the extra's own lines are the asked-for package's requirements).

    Each package's ranges are intersected into one :class:`Constraint`. They come from every
    installed package outside the tree, not only from those whose requirements an install would
    break: finding those would take a first resolution (a second pip run, tens of seconds), and a
    range on a package that pip leaves alone changes nothing. The cost is reading every installed
    distribution's metadata once (about 700 files in Colab, well under a second). The tree is the
    installed versions' tree: should a new version stop needing a package, pip no longer checks what
    that package declares, and it is no constraint either; :func:`broken_requirements` names it
    afterwards, and ``tests/test_colab.py`` checks every requirement after its resolution.
    """
    roots = list(roots)
    tree = course_tree(roots, installed, environment) | {canonicalize_name(name) for name in replaced}
    extras = requested_extras(installed, roots, environment)
    ranges: dict[str, tuple[SpecifierSet, list[str]]] = {}
    for source, requirement in declared_requirements(installed, environment, extras):
        name = canonicalize_name(requirement.name)
        if source in tree or name not in installed or requirement.url or not requirement.specifier:
            continue
        if _rejects(requirement, installed[name].version):
            continue
        specifier, sources = ranges.get(name, (SpecifierSet(), []))
        dist = installed[source]
        ranges[name] = (specifier & requirement.specifier,
                        [*sources, f"{dist.name} {dist.version} needs {requirement.name}{requirement.specifier}"])
    return [Constraint(name, specifier, tuple(sorted(sources)))
            for name, (specifier, sources) in sorted(ranges.items())]


def imported_distributions(modules: list[str] | None = None) -> set[str]:
    """The canonical names of the distributions whose top-level modules this process has imported.

    An upgrade of one of them does not reach the running notebook (Python keeps the loaded modules),
    so the set-up asks for a restart when it upgraded one.
    """
    tops = {name.partition(".")[0] for name in (sys.modules if modules is None else modules)}
    owners = metadata.packages_distributions()
    return {canonicalize_name(dist) for top in tops for dist in owners.get(top, [])}


def _same_version(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


# --- what pip did -------------------------------------------------------------------------------


def changes(before: dict[str, str], report: dict) -> list[Change]:
    """What pip's ``--report`` says it installed, against the versions installed ``before``.

    A reinstall at the same version (pip always rebuilds a local directory, the course) is no
    change. Each upgrade gets the first requirement, among what pip installed, that the old
    version failed: that is why pip had to move it.
    """
    items = report.get("install", [])
    requirers = [(item["metadata"]["name"], requirement) for item in items
                 for requirement in applicable(item["metadata"].get("requires_dist") or [])]
    found = []
    for item in items:
        name, new = item["metadata"]["name"], item["metadata"]["version"]
        old = before.get(canonicalize_name(name))
        if _same_version(old, new):
            continue
        reason = ""
        if old is not None:
            for requirer, requirement in requirers:
                if canonicalize_name(requirement.name) == canonicalize_name(name) and _rejects(requirement, old):
                    reason = f"{requirer} needs {requirement.specifier}"
                    break
        found.append(Change(name, old, new, reason))
    return sorted(found, key=lambda change: (not change.upgraded, canonicalize_name(change.name)))


def broken_requirements(found: list[Change], installed: Mapping[str, Installed],
                        environment: Mapping[str, str] | None = None) -> list[str]:
    """What the packages that the install left alone declare about an upgraded one, that held
    before and fails now: none when the constraints were passed (a safety net, and the list of
    what ``keep_colab=False`` broke). ``installed`` is the state after the install."""
    moved = {canonicalize_name(c.name): c for c in found if c.upgraded}
    broken = []
    for source, requirement in declared_requirements(installed, environment):
        change = moved.get(canonicalize_name(requirement.name))
        if change is None or source in moved:
            continue
        if _holds(requirement, change.old) and _rejects(requirement, change.new):
            dist = installed[source]
            broken.append(f"{dist.name} {dist.version} ({requirement.name}{requirement.specifier})")
    return sorted(set(broken))


def summary(found: list[Change], broken: list[str] = ()) -> str:
    """One line: Colab's packages that were upgraded and why, what was added, and which of Colab's
    other packages no longer get the versions they declare (:func:`broken_requirements`)."""
    upgraded = [f"{c.name} {c.old} -> {c.new}" + (f" ({c.reason})" if c.reason else "") for c in found if c.upgraded]
    added = [f"{c.name} {c.new}" for c in found if not c.upgraded]
    first = ("Upgraded " + ", ".join(upgraded)) if upgraded else "Upgraded none of Colab's packages"
    rest = (f"Colab's {', '.join(broken)} now get versions outside what they declare" if broken
            else "Colab's other packages keep versions they declare")
    return f"{first}; added {', '.join(added) if added else 'nothing'}; {rest}."


def course_requirements(course_dir: Path) -> tuple[str, list[Requirement]]:
    """The course's version and dependencies, from the clone's ``pyproject.toml``."""
    project = tomllib.loads((Path(course_dir) / "pyproject.toml").read_text())["project"]
    return project["version"], [Requirement(line) for line in project["dependencies"]]


def course_constraints(course_dir: Path, installed: Mapping[str, Installed],
                       environment: Mapping[str, str] | None = None) -> list[Constraint]:
    """:func:`colab_constraints` for the course in ``course_dir``: its dependencies are the roots,
    and an installed course of another version declares nothing (this install replaces it)."""
    name = tomllib.loads((Path(course_dir) / "pyproject.toml").read_text())["project"]["name"]
    return colab_constraints(installed, course_requirements(course_dir)[1], environment, replaced=[name])


def already_installed(course_dir: Path, versions: dict[str, str]) -> bool:
    """Whether the course is installed at the clone's version and every dependency meets its bound:
    then pip would only rebuild the course, and a second run of the cell (after a restart) skips it."""
    version, requirements = course_requirements(course_dir)
    if not _same_version(versions.get("asr-helpers"), version):
        return False
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        have = versions.get(canonicalize_name(requirement.name))
        if have is None or _rejects(requirement, have):
            return False
    return True


def _pip_error(log: str) -> str:
    """The line of pip's output that says what went wrong: its last ``ERROR:`` line, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["(no output)"])[-1]


def conflict(log: str, constraints: list[Constraint]) -> tuple[str, list[Constraint]] | None:
    """pip's "The conflict is caused by:" lines in one sentence, with each of ``constraints`` among
    them told as what Colab's packages declare, and those constraints; None when pip's output has
    no such block (then it failed for another reason)."""
    lines = [line.strip() for line in log.splitlines()]
    if "The conflict is caused by:" not in lines:
        return None
    block = lines[lines.index("The conflict is caused by:") + 1:]
    block = block[:block.index("")] if "" in block else block
    by_name = {canonicalize_name(c.name): c for c in constraints}
    told, involved = [], []
    prefix = "The user requested (constraint) "
    for line in block:
        constraint = None
        if line.startswith(prefix):
            try:
                constraint = by_name.get(canonicalize_name(Requirement(line.removeprefix(prefix)).name))
            except InvalidRequirement:
                pass
        if constraint is None:
            told.append(line)
        elif constraint not in involved:
            involved.append(constraint)
    told += [f"Colab's {' and '.join(c.sources)}" for c in involved]
    return "; ".join(told), involved


def main(course_dir: Path = COURSE_DIR, keep_colab: bool = True) -> list[Change]:
    """Install the course with :func:`pip_install_args` and the constraints of :func:`colab_constraints`
    (none when ``keep_colab`` is False), print :func:`summary`, and stop with a :class:`SetupError`
    when pip fails or when an upgraded package was already imported."""
    course_dir = Path(course_dir)
    installed = installed_distributions()
    before = {name: dist.version for name, dist in installed.items()}
    if already_installed(course_dir, before):
        print("The course is installed and Colab has what it needs: nothing to install.")
        return []
    imported = imported_distributions()
    work = Path(tempfile.gettempdir())
    report, log, constraints_file = (work / "course-install-report.json", work / "course-install.log",
                                     work / "course-install-constraints.txt")
    report.unlink(missing_ok=True)
    constraints = course_constraints(course_dir, installed) if keep_colab else []
    constraints_file.write_text(constraints_file_text(constraints))
    print("Installing the course and only what Colab lacks or has too old for it (a minute or two)...", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip",
                             *pip_install_args(course_dir, report, constraints_file if constraints else None)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(result.stdout)
    if result.returncode != 0:
        clash, involved = conflict(result.stdout, constraints) or (None, [])
        if involved:
            raise SetupError(
                f"pip finds no versions for the course that Colab's installed packages accept: {clash} "
                f"(whole output in {log}). Open an issue with that file; to install anyway, leaving those packages "
                f"outside what they declare, run runpy.run_path({str(Path(__file__))!r})['main'](keep_colab=False) "
                "in a new cell.")
        raise SetupError(f"pip could not install the course: {clash or _pip_error(result.stdout)} "
                         f"(whole output in {log}). "
                         "If the network dropped, run this cell again; otherwise open an issue with that file.")
    found = changes(before, json.loads(report.read_text()))
    print(summary(found, broken_requirements(found, installed_distributions())))
    stale = [c.name for c in found if c.upgraded and canonicalize_name(c.name) in imported]
    if stale:
        raise SetupError(f"{', '.join(stale)} had been imported before the upgrade, and this session still runs the old "
                         "version: restart it (Runtime > Restart session), then run this cell again.")
    importlib.invalidate_caches()  # the new packages are importable from this process without a restart
    return found


if __name__ == "__main__":
    main()
