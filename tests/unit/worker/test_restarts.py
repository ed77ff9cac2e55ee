"""The worker replaces its stream engine in-process after a Kafka error a fresh consumer and
producer do not meet again (seen in the fault harness after broker restarts), and exits on
anything else, beyond its budget, or when stopped meanwhile."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from confluent_kafka import KafkaError, KafkaException
from quixstreams.exceptions.assignment import PartitionAssignmentError
from quixstreams.kafka.exceptions import KafkaProducerDeliveryError

from waybill_watch.worker.restarts import Budget, restart_reason, run_replacing


def kafka(code: int, fatal: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, "from the broker", fatal=fatal))


def assignment_error(cause: BaseException) -> PartitionAssignmentError:
    try:
        raise PartitionAssignmentError("Error during partition assignment") from cause
    except PartitionAssignmentError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (kafka(KafkaError.UNKNOWN_MEMBER_ID), "UNKNOWN_MEMBER_ID"),
        (kafka(KafkaError.INVALID_TXN_STATE, fatal=True), "INVALID_TXN_STATE"),
        (KafkaProducerDeliveryError(KafkaError(KafkaError._MSG_TIMED_OUT)), "_MSG_TIMED_OUT"),
        (assignment_error(kafka(KafkaError._DESTROY_BROKER)), "_DESTROY_BROKER"),
        # not replaced: another process has our transactional id; not Kafka's; a disk
        (kafka(KafkaError._FENCED, fatal=True), None),
        (kafka(KafkaError.PRODUCER_FENCED), None),
        (assignment_error(OSError(30, "Read-only file system")), None),
        (ValueError("a bug"), None),
        (KafkaException("no KafkaError inside"), None),
    ],
)
def test_which_errors_replace_the_engine(exc: BaseException, reason: str | None) -> None:
    assert restart_reason(exc) == reason


def test_the_budget_allows_limit_replacements_per_window() -> None:
    now = [0.0]
    budget = Budget(limit=2, window=10.0, clock=lambda: now[0])
    assert budget.take()
    now[0] = 5.0
    assert budget.take()
    assert not budget.take()
    now[0] = 9.9
    assert not budget.take()
    now[0] = 10.0  # the first one left the window, the second has not
    assert budget.take()
    assert not budget.take()


class Engine:
    """``run()`` raises the queued errors one per run, then returns (a clean stop)."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.runs = 0
        self.rebuilds = 0
        self.reasons: list[str] = []

    def run(self) -> None:
        self.runs += 1
        if self.errors:
            raise self.errors.pop(0)

    def rebuild(self) -> None:
        self.rebuilds += 1


def test_a_replaceable_error_rebuilds_and_runs_again_until_a_clean_stop() -> None:
    engine = Engine(kafka(KafkaError.UNKNOWN_MEMBER_ID), kafka(KafkaError.INVALID_TXN_STATE))
    run_replacing(engine.run, engine.rebuild, engine.reasons.append, pause=0)
    assert (engine.runs, engine.rebuilds) == (3, 2)
    assert engine.reasons == ["UNKNOWN_MEMBER_ID", "INVALID_TXN_STATE"]


def test_other_errors_propagate_without_a_rebuild() -> None:
    engine = Engine(kafka(KafkaError._FENCED, fatal=True))
    with pytest.raises(KafkaException):
        run_replacing(engine.run, engine.rebuild, engine.reasons.append, pause=0)
    assert (engine.runs, engine.rebuilds, engine.reasons) == (1, 0, [])


def test_beyond_the_budget_the_error_propagates() -> None:
    engine = Engine(*(kafka(KafkaError.UNKNOWN_MEMBER_ID) for _ in range(4)))
    with pytest.raises(KafkaException):
        run_replacing(engine.run, engine.rebuild, engine.reasons.append, Budget(limit=2), pause=0)
    assert (engine.runs, engine.rebuilds) == (3, 2)


def test_a_sigterm_while_replacing_stops_instead_of_being_lost() -> None:
    engine = Engine(kafka(KafkaError.UNKNOWN_MEMBER_ID))
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        run_replacing(engine.run, engine.rebuild, engine.reasons.append, pause=2.0)
    finally:
        timer.cancel()
    assert (engine.runs, engine.rebuilds) == (1, 0)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is given back
