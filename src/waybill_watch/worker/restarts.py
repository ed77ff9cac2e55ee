"""Replace the stream engine in the same process after a Kafka error, instead of exiting.

A broker restart or a node outage can end quix-streams' loop with an error a fresh consumer
and producer do not meet again: the group dropped the member while its transaction committed
offsets (``UNKNOWN_MEMBER_ID``), the producer's transaction became unusable
(``INVALID_TXN_STATE``, fatal to that producer), the partition assignment could not read
watermarks, a message timed out while the broker was away. Exiting left recovery to a
supervisor, and to Kubernetes' crash-loop back-off, whose pauses grow with every crash: a
rolling broker upgrade cost minutes of detection. Kafka Streams replaces its stream thread the
same way (``REPLACE_THREAD``). Nothing is lost either way: the new engine resumes from the
committed offsets and the changelogs (under exactly-once the open transaction is aborted).

Not replaced, the worker exits as before: a fenced producer (another live process has this
instance's transactional id; two would fence each other in turn), errors that are not Kafka's
(a bug; a full or read-only data disk, see ``datadir.disk_error``), and more than ``limit``
replacements within ``window`` seconds (then the supervisor decides).
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Replacements allowed within ``WINDOW_S`` before the worker gives up and exits.
LIMIT = 5
WINDOW_S = 600.0
#: Pause before building the replacement (a broker that just died is named in the metadata
#: until the controller fences it).
PAUSE_S = 1.0


def restart_reason(exc: BaseException) -> str | None:
    """The error's name when a new engine may not meet it again, else None (exit)."""
    from confluent_kafka import KafkaError, KafkaException
    from quixstreams.exceptions.assignment import PartitionAssignmentError
    from quixstreams.kafka.exceptions import BaseKafkaException

    error: Any = None
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error = exc.args[0]
    elif isinstance(exc, BaseKafkaException):
        error = exc.error
    elif isinstance(exc, PartitionAssignmentError):
        cause = exc.__cause__
        return restart_reason(cause) if cause is not None else None
    if not isinstance(error, KafkaError):
        return None
    if error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED):
        return None
    return str(error.name())


class Budget:
    """At most ``limit`` replacements in any ``window`` seconds."""

    def __init__(
        self,
        limit: int = LIMIT,
        window: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.times: deque[float] = deque()

    def take(self) -> bool:
        """Use one replacement if the window has one left."""
        now = self.clock()
        while self.times and now - self.times[0] >= self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


def run_replacing(
    run: Callable[[], object],
    rebuild: Callable[[], object],
    on_restart: Callable[[str], None],
    budget: Budget | None = None,
    pause: float = PAUSE_S,
) -> None:
    """``run()`` until it returns (a stop); after a replaceable error ``on_restart(reason)``,
    ``rebuild()`` and run again. Other errors, and those beyond the budget, propagate.

    A SIGTERM or SIGINT between two runs (the engine's own handlers are gone then) stops here
    instead of being lost."""
    budget = budget or Budget()
    while True:
        try:
            run()
            return
        except Exception as exc:
            reason = restart_reason(exc)
            if reason is None:
                raise
            if not budget.take():
                log.error(
                    "the stream engine failed %d times within %.0f s; exiting",
                    budget.limit + 1,
                    budget.window,
                )
                raise
            log.error(
                "the stream engine stopped on a Kafka error (%s: %s); replacing it in this process",
                reason,
                exc,
            )
            on_restart(reason)
        if _rebuild_unless_stopped(rebuild, pause):
            log.info("stopped while replacing the stream engine")
            return


def _rebuild_unless_stopped(rebuild: Callable[[], object], pause: float) -> bool:
    """Pause, then ``rebuild()`` unless a SIGTERM/SIGINT came meanwhile; True if one came."""
    stopped: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopped.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        time.sleep(pause)
        if not stopped:
            rebuild()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(stopped)
