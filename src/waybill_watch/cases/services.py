"""The case service layer: one use case per method, each one unit of work.

The Kafka consumer, the timer loop, the REST API and the web pages all call these; none of
them touches a case another way. Merchant scope is enforced here, so a merchant-scoped token
or account cannot read or change another merchant's case whichever adapter it comes through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from waybill_watch.cases import core
from waybill_watch.cases.metrics import CaseMetrics
from waybill_watch.cases.model import SYSTEM, Case, CaseEvent, CasePage
from waybill_watch.cases.playbooks import Playbooks
from waybill_watch.cases.store import CaseQuery, CaseStore, Review
from waybill_watch.models.anomaly import AnomalyEvent


class CaseNotFound(core.CaseError):
    """No such case, or one the caller's merchant scope does not cover (404 either way, so
    a scoped caller cannot probe for other merchants' case ids)."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: a named person or token, and the merchant it is limited to."""

    name: str
    merchant: str | None = None


def _visible(case: Case | None, actor: Actor | None) -> bool:
    return case is not None and (actor is None or actor.merchant in (None, case.merchant))


class CaseService:
    """Use cases over a ``CaseStore`` with the playbooks and a clock."""

    def __init__(
        self,
        store: CaseStore,
        playbooks: Playbooks,
        clock: Callable[[], datetime],
        metrics: CaseMetrics | None = None,
    ) -> None:
        self.store = store
        self.playbooks = playbooks
        self.clock = clock
        self.metrics = metrics

    def _committed(self, changes: Sequence[core.Decision]) -> None:
        """Metrics of what a unit of work committed (only after the commit)."""
        if self.metrics is None:
            return
        for decision in changes:
            case = decision.case
            for event in decision.events:
                if event.event == "closed" and case.closed_at is not None:
                    who = "system" if case.closed_by == SYSTEM else "person"
                    self.metrics.time_to_close.labels(case.type, who).observe(
                        (case.closed_at - case.opened_at).total_seconds()
                    )

    async def apply_anomalies(self, events: Sequence[AnomalyEvent]) -> list[CaseEvent]:
        """Apply a batch in order, in one transaction; returns the case events emitted."""
        changes: list[core.Decision] = []
        now = self.clock()
        async with self.store.unit_of_work() as unit:
            for event in events:
                case_id = core.case_id_for(core.case_key(event))
                case = await unit.get(case_id)
                decision = core.apply_anomaly(case, event, self.playbooks, now)
                if decision is None:
                    continue
                await unit.save(decision.case, decision.events)
                changes.append(decision)
        self._committed(changes)
        if self.metrics is not None:
            self.metrics.anomalies.labels("applied").inc(len(changes))
            self.metrics.anomalies.labels("unchanged").inc(len(events) - len(changes))
        return [e for d in changes for e in d.events]

    async def fire_due(self, limit: int = 500) -> list[CaseEvent]:
        """Reminders and overdue marks due now (each fires once: the flag commits with it)."""
        changes: list[core.Decision] = []
        now = self.clock()
        async with self.store.unit_of_work() as unit:
            for case in await unit.due(now, limit):
                decision = core.fire_timers(case, now)
                if decision is None:
                    continue
                await unit.save(decision.case, decision.events)
                changes.append(decision)
        self._committed(changes)
        return [e for d in changes for e in d.events]

    async def get(self, case_id: str, actor: Actor | None = None) -> Case:
        """A case the actor may see."""
        case = await self.store.find(case_id)
        if not _visible(case, actor):
            raise CaseNotFound(f"no case {case_id}")
        assert case is not None
        return case

    async def list(self, query: CaseQuery) -> CasePage:
        """A page of the queue."""
        return await self.store.list_cases(query, self.clock())

    async def review(self, since: datetime, until: datetime, actor: Actor | None) -> Review:
        """The review of cases opened in ``[since, until)``."""
        return await self.store.review(since, until, actor.merchant if actor else None)

    async def complete_step(
        self, case_id: str, step: str, state: str, outcome: str, note: str, actor: Actor
    ) -> Case:
        """A person marks a step done or skipped."""
        return await self._change(
            case_id,
            actor,
            lambda case, now: core.complete_step(
                case, step, state, outcome, note, actor.name, self.playbooks, now
            ),
        )

    async def close(self, case_id: str, outcome: str, note: str, actor: Actor) -> Case:
        """A person closes the case with an outcome."""
        return await self._change(
            case_id,
            actor,
            lambda case, now: core.close_case(case, outcome, note, actor.name, self.playbooks, now),
        )

    async def add_note(self, case_id: str, text: str, actor: Actor) -> Case:
        """A person adds a note."""
        return await self._change(
            case_id, actor, lambda case, now: core.add_note(case, text, actor.name, now)
        )

    async def _change(
        self,
        case_id: str,
        actor: Actor,
        change: Callable[[Case, datetime], core.Decision],
    ) -> Case:
        now = self.clock()
        async with self.store.unit_of_work() as unit:
            case = await unit.get(case_id)
            if not _visible(case, actor):
                raise CaseNotFound(f"no case {case_id}")
            assert case is not None
            decision = change(case, now)
            await unit.save(decision.case, decision.events)
        self._committed([decision])
        return decision.case
