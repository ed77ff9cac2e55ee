"""Finding ``java`` and ``mvn`` and checking them, with messages that say what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from waybill_watch.devbroker import KAFKA_VERSION, MIN_JAVA, BrokerError
from waybill_watch.localproc import tail as tail
from waybill_watch.localproc import tail_file as tail_file

_JAVA_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


def find_java() -> str:
    """Path of the ``java`` to run: ``$JAVA_HOME/bin/java`` if present, else from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            f"java not found (JAVA_HOME unset or invalid, and no java on PATH): the local "
            f"Kafka {KAFKA_VERSION} broker needs Java {MIN_JAVA}+, e.g. "
            f"`apt-get install openjdk-{MIN_JAVA}-jre-headless`"
        )
    return found


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output (``1.8.0_x`` → 8, ``17.0.15`` → 17)."""
    match = _JAVA_VERSION_RE.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def check_java(java: str) -> int:
    """Fail clearly when ``java`` is older than Kafka needs; return its major version."""
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"could not run `{java} -version`: {exc}") from exc
    output = done.stderr + done.stdout
    major = parse_java_major(output)
    if done.returncode != 0 or major is None:
        raise BrokerError(f"`{java} -version` failed or was not understood:\n{tail(output)}")
    if major < MIN_JAVA:
        raise BrokerError(
            f"{java} is Java {major}, but Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+ "
            f"(set JAVA_HOME to a newer JDK/JRE)"
        )
    return major


def find_mvn() -> str:
    """Path of ``mvn``; only needed while the broker jars are not cached yet."""
    found = shutil.which("mvn")
    if found is None:
        raise BrokerError(
            f"mvn not found on PATH: Maven 3.8+ is needed once to fetch the Kafka "
            f"{KAFKA_VERSION} jars from Maven Central, e.g. `apt-get install maven`"
        )
    return found
