"""``waybill-watch notify``'s start-up: one line on stderr and exit 2 for what the operator
must fix; ``check`` validates a rules file without a database or a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from waybill_watch.cli import main

from .helpers import write_rules


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WAYBILL_WATCH_"):
            monkeypatch.delenv(name)


def test_check_prints_where_rules_send(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "check", "--demo"]) == 0
    out = capsys.readouterr().out
    assert "console: log (no limit, 8 tries)" in out
    assert "everything: every event -> console (zh)" in out


def test_no_rules_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "waybill-watch notify: no rules file; set WAYBILL_WATCH_NOTIFY_RULES or give --rules "
        "FILE (or --demo: a log channel)"
    ]


def test_invalid_rules_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_rules(tmp_path, '[channels.x]\ntype = "pager"\n[[rules]]\nchannels = ["x"]\n')
    monkeypatch.setenv("WAYBILL_WATCH_NOTIFY_RULES", str(path))
    assert main(["notify"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"waybill-watch notify: {path}: channels.x: ")
    assert line.endswith("; fix the rules file")


def test_no_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "--demo"]) == 2
    assert "no notification database configured" in capsys.readouterr().err
