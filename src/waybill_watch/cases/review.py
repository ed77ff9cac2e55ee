"""The lane review: which couriers, lanes, sites and anomaly types produce the cases.

``review_of`` is the reference computation over case documents (the in-memory store uses it);
the PostgreSQL store computes the same rows in SQL, and a test holds the two equal.
Shares are of all cases opened in the period (the service sees no shipped-parcel counts,
so a rate per shipped parcel is the dashboard's job, not this one's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from waybill_watch.cases.model import Case
from waybill_watch.cases.store import Review, ReviewRow

DIMENSIONS = ("courier", "lane", "site", "type")
UNKNOWN = "(unknown)"


def lane_of(origin: str | None, destination: str | None) -> str:
    """``origin → destination``, unknown ends named as such."""
    return f"{origin or UNKNOWN} → {destination or UNKNOWN}"


def keys_of(case: Case) -> dict[str, str]:
    """The case's group in each dimension."""
    return {
        "courier": case.courier or UNKNOWN,
        "lane": lane_of(case.origin_city, case.destination_city),
        "site": case.site or UNKNOWN,
        "type": case.type,
    }


def step_counts(case: Case) -> tuple[int, int]:
    """(steps finished by a person, of those on time)."""
    finished = [s for s in case.steps if s.state in ("done", "skipped")]
    return len(finished), sum(1 for s in finished if s.on_time)


def review_of(cases: Iterable[Case], since: datetime, until: datetime) -> Review:
    """Group ``cases`` (already filtered to the period) by each dimension."""
    cases = list(cases)
    total = len(cases)
    groups: dict[tuple[str, str], list[Case]] = defaultdict(list)
    for case in cases:
        for dimension, key in keys_of(case).items():
            groups[dimension, key].append(case)
    rows = []
    for (dimension, key), members in groups.items():
        closed = [c for c in members if c.status == "closed" and c.closed_at is not None]
        hours = [(c.closed_at - c.opened_at).total_seconds() / 3600 for c in closed if c.closed_at]
        finished = on_time = 0
        for case in members:
            f, o = step_counts(case)
            finished, on_time = finished + f, on_time + o
        rows.append(
            ReviewRow(
                dimension=dimension,
                key=key,
                cases=len(members),
                open=len(members) - len(closed),
                closed=len(closed),
                share=len(members) / total if total else 0.0,
                mean_hours_to_close=sum(hours) / len(hours) if hours else None,
                steps_finished=finished,
                steps_on_time=on_time,
            )
        )
    rows.sort(key=lambda r: (DIMENSIONS.index(r.dimension), -r.cases, r.key))
    return Review(since=since, until=until, total=total, rows=rows)
