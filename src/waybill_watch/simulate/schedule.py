"""When Kdniao pushes a waybill: after each scan, with the whole trace so far.

A push follows its scan by a few minutes; a scan followed by another before the push goes
out is folded into the next snapshot. Some snapshots are pushed twice (``duplicate``) and some
arrive after the next newer one (``late``), as real retries do. None of that adds a scan, so
none of it may change what the detectors decide.
"""

from __future__ import annotations

import random
from bisect import bisect_right

from waybill_watch.simulate.model import HOUR, MINUTE, PushSpec, ScanSpec

PUSH_DELAY = (2 * MINUTE, 25 * MINUTE)


def snapshot_size(scans: list[ScanSpec], at: int) -> int:
    """How many scans a snapshot taken at ``at`` contains."""
    return bisect_right([s.at for s in scans], at)


def plan_pushes(
    rng: random.Random,
    scans: list[ScanSpec],
    *,
    duplicate_rate: float,
    late_rate: float,
    first_delay: tuple[int, int] | None = None,
) -> list[PushSpec]:
    """Pushes of cumulative snapshots for ``scans`` (sorted by time)."""
    pushes: list[PushSpec] = []
    for k, scan in enumerate(scans, start=1):
        low, high = first_delay if k == 1 and first_delay else PUSH_DELAY
        due = scan.at + rng.randint(low, high)
        if k < len(scans) and due >= scans[k].at:
            continue  # the next scan happens first: one push carries both
        pushes.append(PushSpec(due, k))
        if rng.random() < duplicate_rate:
            pushes.append(PushSpec(due + rng.randint(MINUTE, 40 * MINUTE), k, kind="duplicate"))
    pushes.sort(key=lambda p: p.at)
    out: list[PushSpec] = []
    for i, push in enumerate(pushes):
        following = pushes[i + 1] if i + 1 < len(pushes) else None
        if (
            i > 0  # never the first push: no_first_scan counts from the first scan received
            and push.kind == "push"
            and following is not None
            and following.count > push.count
            and following.at - push.at < 6 * HOUR
            and rng.random() < late_rate
        ):
            out.append(
                PushSpec(following.at + rng.randint(1000, 10 * MINUTE), push.count, kind="late")
            )
        else:
            out.append(push)
    out.sort(key=lambda p: p.at)
    return out
