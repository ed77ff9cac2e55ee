"""requirements/*.lock against pyproject.toml, offline: pyproject and the locks move together.

`make venv` installs requirements/dev.lock with --require-hashes and then the project with
--no-deps, so a dependency added to pyproject.toml but not locked would simply be missing (and
one whose range excludes the locked version would be silently ignored). These tests fail until
`make lock` has been run after such an edit.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = ROOT / "requirements" / "dev.lock"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
BUILD_IN = ROOT / "requirements" / "build.in"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# The environment the locks are resolved for (`make lock`: --universal --python-version 3.11):
# markers of pyproject's requirements are evaluated for CPython 3.11 on Linux.
LOCK_ENV = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}


@dataclass
class Pin:
    req: Requirement
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    @property
    def version(self) -> Version:
        (spec,) = self.req.specifier
        return Version(spec.version)


def parse_lock(path: Path) -> dict[NormalizedName, list[Pin]]:
    """name -> pins (a universal lock may pin a name more than once, under disjoint markers)."""
    pins: dict[NormalizedName, list[Pin]] = {}
    current: Pin | None = None
    in_via = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw[0].isspace() and not line.startswith("#"):
            assert not line.startswith("-"), f"{path.name}: unexpected option line {line!r}"
            current = Pin(Requirement(line.removesuffix("\\").strip()))
            pins.setdefault(canonicalize_name(current.req.name), []).append(current)
            in_via = False
            continue
        assert current is not None or line.startswith("#"), f"{path.name}: stray line {raw!r}"
        if line.startswith("--hash="):
            assert current is not None
            current.hashes.append(line.removeprefix("--hash=").removesuffix("\\").strip())
        elif line.startswith("# via"):
            assert current is not None
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif line.startswith("#") and in_via and current is not None:
            current.via.append(line.removeprefix("#").strip())
    return pins


DEV = parse_lock(DEV_LOCK)
RUNTIME = parse_lock(RUNTIME_LOCK)


def pyproject_requirements(group: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    if group == "runtime":
        return [Requirement(r) for r in project["dependencies"]]
    if group == "dev":
        return [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    if group == "build":
        return [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    raise AssertionError(group)


def build_in_requirements() -> list[Requirement]:
    lines = BUILD_IN.read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in map(str.strip, lines) if line and line[0] != "#"]


def applies(req: Requirement, extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**LOCK_ENV, "extra": extra})


def unsatisfied(reqs: list[Requirement], lock: dict[NormalizedName, list[Pin]]) -> list[str]:
    """Every requirement that applies to the lock environment is pinned within its specifier;
    for a requirement with extras, so is every dependency those extras add (read from the
    installed distribution's metadata when it is the locked version: no network)."""
    problems = []
    for req in reqs:
        if not applies(req):
            continue
        name = canonicalize_name(req.name)
        pins = [p for p in lock.get(name, []) if applies(p.req)]
        if not pins:
            problems.append(f"{req}: not in the lock")
            continue
        for pin in pins:
            if not req.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{req}: lock pins {pin.req.name}=={pin.version}")
        if req.extras:
            problems += unsatisfied(extra_requirements(name, req.extras, pins[0].version), lock)
    return problems


def extra_requirements(name: str, extras: set[str], version: Version) -> list[Requirement]:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return []
    if Version(dist.version) != version:
        return []
    found = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and any(applies(req, extra) for extra in extras):
            # keep only the environment part of the marker: the extra has been chosen
            found.append(Requirement(f"{req.name}{req.specifier}"))
    return found


@pytest.mark.parametrize("group", ["runtime", "dev", "build"])
def test_dev_lock_satisfies_pyproject(group: str) -> None:
    assert unsatisfied(pyproject_requirements(group), DEV) == [], "run `make lock`"


def test_dev_lock_satisfies_build_in() -> None:
    assert unsatisfied(build_in_requirements(), DEV) == [], "run `make lock`"


def test_runtime_lock_satisfies_runtime_dependencies() -> None:
    assert unsatisfied(pyproject_requirements("runtime"), RUNTIME) == [], "run `make lock`"


def test_runtime_lock_is_a_subset_of_dev_lock_with_the_same_pins() -> None:
    # (markers may differ: runtime.lock needs a package for fewer reasons than dev.lock)
    problems = []
    for name, pins in RUNTIME.items():
        dev = {p.version for p in DEV.get(name, [])}
        problems += [f"{name}=={p.version}" for p in pins if p.version not in dev]
    assert problems == [], "runtime.lock pins differ from dev.lock: run `make lock`"


def test_runtime_lock_has_no_dev_only_packages() -> None:
    # (some dev requirements, jsonschema for one, are also runtime dependencies of quixstreams)
    tools = {"pip", "setuptools", "wheel", "pytest", "mypy", "ruff", "hypothesis", "pip-audit"}
    assert sorted(tools & RUNTIME.keys()) == []


def test_every_pin_is_exact_and_hashed() -> None:
    for lock, pins in (("dev.lock", DEV), ("runtime.lock", RUNTIME)):
        for name, entries in pins.items():
            for pin in entries:
                (spec,) = pin.req.specifier
                assert spec.operator == "==", f"{lock}: {pin.req}"
                assert pin.req.url is None, f"{lock}: {pin.req}"
                assert pin.hashes, f"{lock}: {name} has no --hash"
                assert all(h.startswith("sha256:") for h in pin.hashes), f"{lock}: {name}"


def test_no_stale_direct_pins() -> None:
    """A pin the lock says comes from pyproject.toml (or build.in) is still asked for there."""
    direct = {
        canonicalize_name(r.name)
        for group in ("runtime", "dev", "build")
        for r in pyproject_requirements(group)
    } | {canonicalize_name(r.name) for r in build_in_requirements()}
    stale = sorted(
        name
        for name, pins in DEV.items()
        for pin in pins
        if any(
            v.startswith(("waybill-watch (pyproject.toml)", "-r requirements/build.in"))
            for v in pin.via
        )
        and name not in direct
    )
    assert stale == [], "pinned for pyproject.toml but no longer required there: run `make lock`"


def test_parser_reads_markers_extras_and_epochs() -> None:
    sdk = DEV[canonicalize_name("grafana-foundation-sdk")]
    assert [p.version for p in sdk] == [Version("1769699379!11.6.0")]
    assert Version("1769699379!11.6.0").epoch == 1769699379
    # psycopg[binary]: the extra's package is locked too (for CPython, by marker)
    assert canonicalize_name("psycopg-binary") in DEV
    assert any(p.req.marker is not None for pins in DEV.values() for p in pins)
    assert Marker("sys_platform == 'win32'").evaluate(LOCK_ENV) is False


def test_checker_catches_drift() -> None:
    """The checks above are not vacuous: a range the lock misses, and a missing package."""
    assert unsatisfied([Requirement("aiohttp>=99")], DEV) == [
        "aiohttp>=99: lock pins aiohttp==" + str(DEV["aiohttp"][0].version)
    ]
    assert unsatisfied([Requirement("no-such-package-xyz")], DEV) == [
        "no-such-package-xyz: not in the lock"
    ]
    assert unsatisfied([Requirement("pywin32; sys_platform == 'win32'")], {}) == []
