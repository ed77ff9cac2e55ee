"""Same seed and options → the same bytes; another seed → another run."""

from __future__ import annotations

from .helpers import Run, options, simulate


def test_same_seed_gives_identical_capture_and_labels(small_run: Run) -> None:
    again = simulate(options())
    assert again.lines == small_run.lines
    assert again.label_lines == small_run.label_lines


def test_another_seed_gives_other_traffic(small_run: Run) -> None:
    other = simulate(options(seed=4))
    assert other.lines != small_run.lines
    assert {lb["subject"] for lb in other.labels} != {lb["subject"] for lb in small_run.labels}


def test_start_moves_the_whole_run() -> None:
    later = simulate(options(waybills=200, counts={}, start_ms=options().start_ms + 86_400_000))
    first = simulate(options(waybills=200, counts={}))
    assert first.generator.stats.first_at is not None
    assert later.generator.stats.first_at == first.generator.stats.first_at + 86_400_000
