"""``waybill-watch notify [serve | check | migrate] [--rules FILE | --demo]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from waybill_watch.notify.rules import Rules
    from waybill_watch.settings import Settings

DB_REMEDY = "set WAYBILL_WATCH_DATABASE_URL (make run / make db-up start a local PostgreSQL)"
RULES_REMEDY = "set WAYBILL_WATCH_NOTIFY_RULES or give --rules FILE (or --demo: a log channel)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``notify`` sub-command's arguments."""
    parser.add_argument(
        "action",
        nargs="?",
        default="serve",
        choices=["serve", "check", "migrate"],
        help="serve (default): consume anomalies and case events and deliver notifications; "
        "check: validate the rules file and print its channels and rules; migrate: apply "
        "schema migrations and exit",
    )
    rules = parser.add_mutually_exclusive_group()
    rules.add_argument(
        "--rules", type=Path, help="rules file (TOML; default: WAYBILL_WATCH_NOTIFY_RULES)"
    )
    rules.add_argument(
        "--demo",
        action="store_true",
        help="the packaged demo rules: every event to a log channel (no network, no secrets)",
    )


def rules_path(args: argparse.Namespace, settings: Settings) -> Path | None:
    """The rules file in effect: ``--demo``, ``--rules``, else the setting."""
    from waybill_watch.notify import demo_rules_path

    if args.demo:
        return demo_rules_path()
    path: Path | None = args.rules or settings.notify_rules
    return path


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch one action; 2 with one line on stderr when it cannot start."""
    from waybill_watch.cli import _cannot_start
    from waybill_watch.notify.rules import RulesError, load_rules

    command = f"notify {args.action}" if args.action != "serve" else "notify"
    url = settings.database_url.get_secret_value() if settings.database_url else None
    if args.action == "migrate":
        if not url:
            return _cannot_start(command, "no notification database configured", DB_REMEDY)
        return asyncio.run(_migrate(url))
    path = rules_path(args, settings)
    if path is None:
        return _cannot_start(command, "no rules file", RULES_REMEDY)
    try:
        rules = load_rules(path)
    except RulesError as exc:
        return _cannot_start(command, str(exc), "fix the rules file")
    if args.action == "check":
        print(describe(rules))
        return 0
    if not url:
        return _cannot_start(command, "no notification database configured", DB_REMEDY)
    try:
        return asyncio.run(_serve(settings, rules, url, command))
    except KeyboardInterrupt:
        return 130


def describe(rules: Rules) -> str:
    """Where each rule sends what (``notify check``); secrets are never printed."""
    lines = ["channels:"]
    for name, channel in rules.channels.items():
        rate = channel.rate()
        limit = f"{rate[0]:g}/min, burst {rate[1]}" if rate else "no limit"
        lines.append(f"  {name}: {channel.type} ({limit}, {channel.max_attempts} tries)")
    lines.append("rules:")
    for rule in rules.rules:
        given = rule.match.model_dump(exclude_none=True)
        match = ", ".join(f"{k}={'|'.join(v)}" for k, v in given.items()) or "every event"
        extra = []
        if rule.quiet_hours:
            q = rule.quiet_hours
            extra.append(f"quiet {q.start:%H:%M}-{q.end:%H:%M} {q.zone}")
        if rule.digest:
            extra.append(f"digest {rule.digest.total_seconds():g}s of {rule.digest_severities}")
        more = f" [{'; '.join(extra)}]" if extra else ""
        lines.append(
            f"  {rule.name}: {match} -> {', '.join(rule.channels)} ({rule.language}){more}"
        )
    return "\n".join(lines)


async def _migrate(url: str) -> int:
    from waybill_watch.notify.migrate import migrate

    applied = await migrate(url)
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


async def _serve(settings: Settings, rules: Rules, url: str, command: str) -> int:
    from waybill_watch.cli import _cannot_start, kafka_start_failure
    from waybill_watch.notify.app import NotifyProcess
    from waybill_watch.notify.migrate import migrate
    from waybill_watch.notify.pg import PostgresNotifyStore

    try:
        await asyncio.wait_for(migrate(url), 60)
    except Exception as exc:
        return _cannot_start(
            command, f"cannot reach or migrate the notification database ({exc})", DB_REMEDY
        )
    store = PostgresNotifyStore(url)
    await store.open()
    try:
        try:
            await NotifyProcess(settings, store, rules).run()
        except OSError as exc:
            return _cannot_start(
                command,
                f"cannot listen on {settings.web_bind}:{settings.notify_port} ({exc})",
                "set WAYBILL_WATCH_NOTIFY_PORT or free the port",
            )
        except Exception as exc:
            failed = kafka_start_failure(command, settings, exc)
            if failed is None:
                raise
            return failed
    finally:
        await store.close()
    logging.getLogger(__name__).info("notifier stopped")
    return 0
