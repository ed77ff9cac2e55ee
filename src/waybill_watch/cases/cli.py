"""``waybill-watch cases [serve | migrate | add-user NAME | add-token]``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from waybill_watch.settings import Settings

DB_REMEDY = "set WAYBILL_WATCH_DATABASE_URL (make run / make db-up start a local PostgreSQL)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``cases`` sub-command's arguments."""
    parser.add_argument(
        "action",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "add-user", "add-token"],
        help="serve (default): consume anomalies and serve the API and pages; migrate: apply "
        "schema migrations and exit; add-user NAME: create or reset a sign-in account; "
        "add-token: create a bearer token, print it once, store its digest",
    )
    parser.add_argument("name", nargs="?", help="account name (add-user)")
    parser.add_argument("--role", choices=["viewer", "operator", "admin"], default="operator")
    parser.add_argument("--merchant", help="limit the account or token to one merchant")
    parser.add_argument(
        "--password-file",
        type=Path,
        help="read the password from this file (add-user; default: ask, or stdin if piped)",
    )
    parser.add_argument(
        "--tokens-file",
        type=Path,
        help="tokens file to add to (add-token; default: WAYBILL_WATCH_API_TOKENS_FILE)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch one action; 2 with one line on stderr when it cannot start."""
    from waybill_watch.cli import _cannot_start

    command = f"cases {args.action}" if args.action != "serve" else "cases"
    if args.action == "add-token":
        return _add_token(args, settings, command)
    url = settings.database_url.get_secret_value() if settings.database_url else None
    if not url:
        return _cannot_start(command, "no case database configured", DB_REMEDY)
    try:
        if args.action == "migrate":
            return asyncio.run(_migrate(url))
        if args.action == "add-user":
            return _add_user(args, url, command)
        return asyncio.run(_serve(settings, url, command))
    except KeyboardInterrupt:
        return 130


async def _migrate(url: str) -> int:
    from waybill_watch.cases.migrate import migrate

    applied = await migrate(url)
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


def _read_password(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().strip()


def _add_user(args: argparse.Namespace, url: str, command: str) -> int:
    from waybill_watch.cases.pg import PostgresCaseStore
    from waybill_watch.cases.store import Account
    from waybill_watch.cases.web.auth import hash_password
    from waybill_watch.cli import _cannot_start

    if not args.name:
        return _cannot_start(command, "no account name given", "waybill-watch cases add-user NAME")
    try:
        password = _read_password(args.password_file)
    except (OSError, ValueError) as exc:
        return _cannot_start(command, f"no password ({exc})", "give --password-file or type it")
    if len(password) < 8:
        return _cannot_start(
            command, "the password is shorter than 8 characters", "choose a longer one"
        )

    async def put() -> None:
        from waybill_watch.cases.migrate import migrate

        await migrate(url)
        store = PostgresCaseStore(url, max_size=1)
        await store.open()
        try:
            await store.put_account(
                Account(args.name, hash_password(password), args.role, args.merchant)
            )
        finally:
            await store.close()

    asyncio.run(put())
    scope = f" for merchant {args.merchant}" if args.merchant else ""
    print(f"account {args.name} ({args.role}{scope}) saved")
    return 0


def _add_token(args: argparse.Namespace, settings: Settings, command: str) -> int:
    from waybill_watch.cli import _cannot_start
    from waybill_watch.tokens import TokenFileError, add_token

    path = args.tokens_file or settings.api_tokens_file
    if path is None:
        return _cannot_start(
            command, "no tokens file", "give --tokens-file or set WAYBILL_WATCH_API_TOKENS_FILE"
        )
    try:
        token = add_token(path, args.role, args.merchant)
    except (OSError, TokenFileError) as exc:
        return _cannot_start(command, f"cannot update {path} ({exc})", "fix or move the file")
    print(token)
    print(f"(shown once; its SHA-256 is stored in {path})", file=sys.stderr)
    return 0


async def _serve(settings: Settings, url: str, command: str) -> int:
    from waybill_watch.cases.app import CaseServiceProcess
    from waybill_watch.cases.migrate import migrate
    from waybill_watch.cases.pg import PostgresCaseStore
    from waybill_watch.cases.playbooks import PlaybookError, load_playbooks
    from waybill_watch.cli import _cannot_start, kafka_start_failure
    from waybill_watch.tokens import TokenFileError

    try:
        playbooks = load_playbooks(settings.cases_playbooks)
    except PlaybookError as exc:
        return _cannot_start(command, str(exc), "fix the playbook file")
    try:
        await asyncio.wait_for(migrate(url), 60)
    except Exception as exc:
        return _cannot_start(
            command, f"cannot reach or migrate the case database ({exc})", DB_REMEDY
        )
    store = PostgresCaseStore(url)
    await store.open()
    try:
        try:
            process = CaseServiceProcess(settings, store, playbooks)
        except TokenFileError as exc:
            return _cannot_start(command, str(exc), "fix WAYBILL_WATCH_API_TOKENS_FILE")
        try:
            await process.run()
        except OSError as exc:
            return _cannot_start(
                command,
                f"cannot listen on {settings.web_bind}:{settings.cases_port} ({exc})",
                "set WAYBILL_WATCH_CASES_PORT or free the port",
            )
        except Exception as exc:
            failed = kafka_start_failure(command, settings, exc)
            if failed is None:
                raise
            return failed
    finally:
        await store.close()
    logging.getLogger(__name__).info("case service stopped")
    return 0
