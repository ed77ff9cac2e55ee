"""The run's report: ``report.json`` (everything) and ``report.md`` (counts per check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    )
    lines = [f"# Fault run {report.get('run', '')} ({report.get('mode', '')})", ""]
    lines += [f"`{report['summary']}`", ""]
    lines += ["| check | ok | counts |", "| --- | --- | --- |"]
    for name, check in report.get("checks", {}).items():
        counts = ", ".join(
            f"{k}={v}" for k, v in check.items() if k != "ok" and not isinstance(v, list)
        )
        lines.append(f"| {name} | {'yes' if check['ok'] else '**NO**'} | {counts} |")
    for title, key in (("Errors", "errors"), ("Notes", "notes")):
        if report.get(key):
            lines += ["", f"## {title}", ""] + [f"- {e}" for e in report[key]]
    lines += ["", "## Timeline", "", "```", *report.get("timeline", []), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
