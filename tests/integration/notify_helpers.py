"""Helpers of the notifier's integration tests: a ``waybill-watch notify`` process."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .conftest import RunningWorker, free_tcp_port


def toml_value(value: Any) -> str:
    """A TOML literal for the few value types the rules use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_rules(
    tmp: Path, channels: dict[str, dict[str, Any]], rules: list[dict[str, Any]]
) -> Path:
    """A rules file with these channels and rules (checked to parse back the same)."""
    lines = ['[defaults]\nlanguage = "zh"\ntimezone = "Asia/Shanghai"\n']
    for name, entry in channels.items():
        lines.append(f"[channels.{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in entry.items())
        lines.append("")
    for rule in rules:
        lines.append("[[rules]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in rule.items())
        lines.append("")
    text = "\n".join(lines)
    assert tomllib.loads(text)["channels"].keys() == channels.keys()
    path = tmp / "notify-rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def notify_process(
    bootstrap: str,
    prefix: str,
    database_url: str,
    tmp: Path,
    rules: Path,
    name: str = "notify",
    **env: str,
) -> RunningWorker:
    """A ``waybill-watch notify`` process on these topics (not started)."""
    port = free_tcp_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
    full.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_PARTITIONS": "4",
            "WAYBILL_WATCH_DATABASE_URL": database_url,
            "WAYBILL_WATCH_NOTIFY_RULES": str(rules),
            "WAYBILL_WATCH_NOTIFY_PORT": str(port),
            "WAYBILL_WATCH_NOTIFY_POLL_INTERVAL_SECONDS": "0.2",
            "WAYBILL_WATCH_CASES_PUBLIC_URL": "http://cases.test:6067",
            "WAYBILL_WATCH_LOG_LEVEL": "info",
        }
    )
    full.update(env)
    return RunningWorker(bootstrap, prefix, port, full, tmp / f"{name}.log", command="notify")
