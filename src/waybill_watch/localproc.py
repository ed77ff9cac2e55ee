"""Helpers shared by the local servers the project starts itself (``devbroker`` for Kafka,
``devdb`` for PostgreSQL): loopback ports and the tail of a log for error messages."""

from __future__ import annotations

import socket
from pathlib import Path

HOST = "127.0.0.1"


def free_port(exclude: frozenset[int] = frozenset()) -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``127.0.0.1:port`` now (with SO_REUSEADDR, as Kafka and
    PostgreSQL do, so TIME_WAIT leftovers of a previous run do not count as busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``: enough to see an error, short enough to read."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def tail_file(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that it is missing."""
    try:
        return tail(path.read_text(encoding="utf-8", errors="replace"), lines)
    except OSError:
        return f"(no log at {path})"
