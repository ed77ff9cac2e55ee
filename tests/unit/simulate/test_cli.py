"""``waybill-watch simulate`` end to end: files, summary, secrets from the environment, errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from waybill_watch.simulate import cli
from waybill_watch.simulate.model import GROUP_TYPES, WAYBILL_TYPES

from .helpers import kdniao_push


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_writes_capture_labels_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_KDNIAO_APP_KEY", "cli-key")
    out = tmp_path / "capture.jsonl"
    args = parse("--waybills", "300", "--seed", "9", "--anomaly-rate", "0.02", "--out", str(out))
    assert cli.run(args) == 0
    summary = orjson.loads(capsys.readouterr().err)
    labels = (tmp_path / "capture.labels.jsonl").read_bytes().splitlines()
    assert summary["labels"] == str(tmp_path / "capture.labels.jsonl")
    assert summary["anomalies"] == dict.fromkeys(WAYBILL_TYPES, 6) | dict.fromkeys(GROUP_TYPES, 0)
    assert len(labels) == sum(summary["anomalies"].values())
    lines = out.read_bytes().splitlines()
    assert summary["stats"]["envelopes"] == summary["delivery"]["written"] == len(lines)
    first_push = next(orjson.loads(x) for x in lines if b'"feed":"kdniao"' in x)
    assert "DataSign" in kdniao_push(first_push)[0]
    assert summary["stats"]["scans"] > summary["stats"]["kdniao_pushes"]


def test_explicit_labels_path_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAYBILL_WATCH_KDNIAO_APP_KEY", raising=False)
    out, labels = tmp_path / "c.jsonl", tmp_path / "l.jsonl"
    args = parse(
        "--waybills",
        "120",
        "--anomaly-rate",
        "0",
        "--out",
        str(out),
        "--labels",
        str(labels),
        "--couriers",
        "sf,zto",
    )
    assert cli.run(args) == 0
    assert labels.read_bytes() == b""
    pushes = [orjson.loads(x) for x in out.read_bytes().splitlines() if b'"kdniao"' in x]
    assert all("DataSign" not in kdniao_push(p)[0] for p in pushes)
    couriers = {item["ShipperCode"] for p in pushes for item in kdniao_push(p)[1]["Data"]}
    assert couriers == {"SF", "ZTO"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--out", "a.jsonl", "--http", "http://127.0.0.1:1"],
        [],
        ["--out", "a.jsonl", "--couriers", "SF,NOPE"],
        ["--out", "a.jsonl", "--start", "yesterday"],
        ["--out", "a.jsonl", "--waybills", "50", "--anomaly-rate", "0.5"],
    ],
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(*argv)) == 2
    assert capsys.readouterr().err.startswith("simulate: ")
