"""The broker's jars: resolved once with Maven, cached outside git, published atomically.

Layout: ``<cache_root>/kafka-<version>/libs/*.jar`` plus ``libs/.complete.json``. Maven
writes into a temporary sibling directory; the marker is written last and the directory
is renamed into place, so an interrupted fetch never leaves a ``libs`` that looks usable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

from waybill_watch.devbroker import KAFKA_VERSION, LOG4J_VERSION, BrokerError
from waybill_watch.devbroker.tools import find_mvn, tail

MARKER = ".complete.json"
MAVEN_TIMEOUT_S = 15 * 60
_STALE_TMP_S = 3600


def cache_root() -> Path:
    """``$WAYBILL_WATCH_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/waybill-watch``."""
    explicit = os.environ.get("WAYBILL_WATCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "waybill-watch"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of one Kafka version live (complete or not)."""
    return cache_root() / f"kafka-{version}" / "libs"


def _expected_marker(jars: list[str], version: str) -> dict[str, object]:
    return {"kafka_version": version, "log4j_version": LOG4J_VERSION, "jars": sorted(jars)}


def is_complete(libs: Path, version: str = KAFKA_VERSION) -> bool:
    """True when ``libs`` holds a finished fetch for ``version``: the marker written after
    Maven succeeded matches the versions, and every jar it lists is still there."""
    try:
        marker = json.loads((libs / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    jars = marker.get("jars")
    if not isinstance(jars, list) or not jars or not all(isinstance(j, str) for j in jars):
        return False
    if marker != _expected_marker(jars, version):
        return False
    return all((libs / jar).is_file() for jar in jars)


def classpath(libs: Path) -> str:
    """A ``java -cp`` value; the JVM expands the ``*`` itself."""
    return str(libs / "*")


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """The jar directory for ``version``, fetching it with Maven only if not complete."""
    libs = libs_dir(version)
    if is_complete(libs, version):
        return libs
    mvn = find_mvn()
    libs.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(libs.parent)
    work = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=libs.parent))
    try:
        staged = work / "libs"
        _run_maven(mvn, work, staged, version)
        jars = sorted(p.name for p in staged.glob("*.jar"))
        if not jars:
            raise BrokerError(f"Maven succeeded but left no jars in {staged}")
        marker = json.dumps(_expected_marker(jars, version), indent=1)
        (staged / MARKER).write_text(marker + "\n", encoding="utf-8")
        _publish(staged, libs, version)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return libs


def _run_maven(mvn: str, work: Path, out: Path, version: str) -> None:
    """Resolve the runtime classpath of the pom into ``out``; raise with Maven's output tail."""
    pom = work / "pom.xml"
    pom.write_bytes(resources.files("waybill_watch.devbroker").joinpath("pom.xml").read_bytes())
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        f"-Dkafka.version={version}",
        f"-Dlog4j.version={LOG4J_VERSION}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out}",
    ]
    try:
        done = subprocess.run(
            cmd,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Maven did not finish within {MAVEN_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise BrokerError(f"could not run {mvn}: {exc}") from exc
    if done.returncode != 0:
        output = tail((done.stdout or "") + (done.stderr or ""), 40)
        raise BrokerError(
            f"Maven failed (exit {done.returncode}) fetching Kafka {version} jars; "
            f"command: {' '.join(cmd)}\n{output}"
        )


def _publish(staged: Path, libs: Path, version: str) -> None:
    """Rename the finished directory into place; a concurrent fetch that won is fine."""
    if libs.exists() and not is_complete(libs, version):
        shutil.rmtree(libs)  # left by an older, incompatible or damaged fetch
    try:
        staged.rename(libs)
    except OSError:
        if not is_complete(libs, version):
            raise


def _remove_stale_tmp(parent: Path) -> None:
    """Drop temp dirs of fetches that were interrupted long ago (not ones running now)."""
    cutoff = time.time() - _STALE_TMP_S
    for tmp in parent.glob("libs.tmp-*"):
        try:
            if tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue
