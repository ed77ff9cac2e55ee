"""The acceptance check: replay opens exactly the labelled anomalies, nothing more, nothing less.

Runs the real feeds and detectors (``waybill_watch.replay``) over a small simulated capture
with every anomaly type injected, and compares (type, subject) of every ``open`` with the
labels; each label's reasons must appear in its episode.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.simulate.model import GROUP_TYPES, WAYBILL_TYPES

from .helpers import APP_KEY, MERCHANT_SECRET, Run, options, simulate

replay = pytest.importorskip("waybill_watch.replay")
feeds = pytest.importorskip("waybill_watch.feeds")


def run_replay(
    run: Run, detection: DetectionSettings
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], set[str]]]:
    from waybill_watch.settings import Settings

    settings = Settings(kdniao_app_key=APP_KEY, merchant_secret=MERCHANT_SECRET)
    engine = replay.Replay(detection, feeds.build_feeds(settings), verify_signatures=True)
    events = engine.run(run.lines)
    assert not engine.stats.malformed, engine.stats.malformed
    opened: dict[tuple[str, str], int] = defaultdict(int)
    reasons: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in events:
        key = (event.type, event.subject)
        reasons[key].update(event.reasons)
        opened[key] += event.status == "open"
    return opened, reasons


def check(run: Run, detection: DetectionSettings | None = None) -> None:
    opened, reasons = run_replay(run, detection or DetectionSettings())
    wanted = {(str(lb["type"]), str(lb["subject"])): lb for lb in run.labels}
    missing = sorted(set(wanted) - {k for k, n in opened.items() if n})
    unexpected = sorted(k for k, n in opened.items() if n and k not in wanted)
    assert not missing, f"labelled but not opened: {missing[:10]}"
    assert not unexpected, f"opened but not labelled: {unexpected[:10]}"
    assert all(n == 1 for k, n in opened.items() if k[0] != "bulk_signing"), "episode reopened"
    for key, label in wanted.items():
        assert set(label["reasons"]) <= reasons[key], (key, label["reasons"], reasons[key])


def test_replay_finds_exactly_the_labelled_anomalies(small_run: Run) -> None:
    check(small_run)


def test_replay_matches_labels_on_a_busier_run() -> None:
    """More anomalies, two of each group (two silences: the busiest two couriers)."""
    counts = dict.fromkeys(WAYBILL_TYPES, 10) | dict.fromkeys(GROUP_TYPES, 2)
    check(simulate(options(waybills=1200, seed=11, counts=counts, share_101=0.3)))


def test_the_silence_guard_keeps_a_busy_feed_talking() -> None:
    """With a low ``min_updates`` quiet spells of normal traffic would count as silences; the
    guard's duplicate pushes prevent that, and only the injected silence opens."""
    detection = DetectionSettings(feed_silence_min_updates=12)
    counts = {"feed_silence": 1}
    run = simulate(options(waybills=300, seed=1, couriers=("SF", "ZTO"), counts=counts), detection)
    assert run.generator.stats.kinds.get("filler", 0) > 0
    check(run, detection)
