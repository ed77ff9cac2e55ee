"""Notifications per second per channel type, each beside its bare floor, one run.

The receivers run in a child process (``--serve``): an aiohttp server answering each robot's
success body (``errcode`` 0, ``code`` 0) and the webhook's 200, and an aiosmtpd server with
STARTTLS (a throw-away ``openssl`` certificate) and AUTH. PostgreSQL is
``WAYBILL_WATCH_DATABASE_URL`` or ``devdb.LocalPostgres(durable=True)`` (fsync on, the
production setting). Everything shares the machine's cores with this process.

Per channel type: N events (``--quick``: 200; else 2 000; e-mail a tenth) are routed by
``notify.core.route`` and queued in a fresh database with ``PostgresNotifyStore.enqueue``;
then the channel's ``ChannelSender`` (the loop ``waybill-watch notify`` runs: leased claim,
render, sign, send, delivered mark, one delivery at a time) works the queue until it is
empty. The platforms' rate limits are lifted for the measurement (rate_per_minute 10^7,
burst 1 000): with them, DingTalk and WeCom send 20 a minute by design. The floor, same
receiver, same bodies (rendered once beforehand): a bare aiohttp POST loop, one at a time on
one session; for e-mail a bare smtplib loop (connect, STARTTLS, login, send, one connection
per message like the channel); for the log channel appending the same text to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from waybill_watch.localproc import free_port
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.notify import core
from waybill_watch.notify.channels import build_channel, dingtalk, email, feishu, webhook, wecom
from waybill_watch.notify.metrics import NotifyMetrics
from waybill_watch.notify.migrate import migrate
from waybill_watch.notify.model import DeadLetter
from waybill_watch.notify.pg import PostgresNotifyStore
from waybill_watch.notify.render import plain_text, render_batch
from waybill_watch.notify.rules import Rules
from waybill_watch.notify.runtime import ChannelSender
from waybill_watch.notify.store import delivery_id

USER, PASSWORD = "bench@example.com", "bench-password"
SECRET = "bench-secret"  # noqa: S105 - a local receiver's test key
TYPES = ("webhook", "wecom", "dingtalk", "feishu", "email", "log")
OK_BODIES = {
    "webhook": (b"ok", "text/plain"),
    "wecom": (b'{"errcode":0,"errmsg":"ok"}', "application/json"),
    "dingtalk": (b'{"errcode":0,"errmsg":"ok"}', "application/json"),
    "feishu": (b'{"code":0,"msg":"success","data":{}}', "application/json"),
}


# -- the receivers (child process) ------------------------------------------------------------


def serve(http_port: int, smtp_port: int, cert: Path, key: str) -> None:
    """Run both receivers until killed."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # a deprecation notice per login
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), key)
    smtp = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=smtp_port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=auth,
    )
    smtp.start()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        body, content_type = OK_BODIES[request.match_info["kind"]]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/{kind}", handle)
    web.run_app(app, host="127.0.0.1", port=http_port, access_log=None, print=None)


@contextlib.contextmanager
def receivers(workdir: Path) -> Iterator[tuple[int, int, Path]]:
    """The child process with both receivers: (http port, smtp port, CA file)."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
            "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    http_port, smtp_port = free_port(), free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.notify_bench", "--serve", str(http_port),
         str(smtp_port), str(cert), str(key)],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=1):
                    pass
                import socket

                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield http_port, smtp_port, cert
    finally:
        child.terminate()
        child.wait(10)


# -- the measurements -------------------------------------------------------------------------


def channel_entry(
    kind: str, http_port: int, smtp_port: int, ca: Path, log_file: Path
) -> dict[str, Any]:
    limits = {"rate_per_minute": 1e7, "burst": 1000}
    if kind == "email":
        return {
            "type": "email", "host": "127.0.0.1", "port": smtp_port, "username": USER,
            "password": PASSWORD, "from": USER, "to": ["ops@example.com"], "ca_file": str(ca),
            **limits,
        }  # fmt: skip
    if kind == "log":
        return {"type": "log", "file": str(log_file)}
    entry: dict[str, Any] = {"type": kind, "url": f"http://127.0.0.1:{http_port}/{kind}", **limits}
    if kind in ("webhook", "dingtalk", "feishu"):
        entry["secret"] = SECRET
    return entry


def events(n: int) -> list[AnomalyEvent]:
    now = datetime.now(UTC)
    base = {
        "type": "signed_not_received", "status": "open", "severity": "critical",
        "scope": "waybill", "courier": "JD", "merchant": "shop-3",
        "reasons": ["not_received_reported"], "detected_at": now,
        "evidence": {
            "scans": [{"event_time": now.isoformat(), "status": "delivered", "site": "石家庄",
                       "sign_type": "recipient", "description": "【石家庄】已签收，签收人：本*"}],
            "order_events": [{"type": "not_received_reported", "occurred_at": now.isoformat()}],
        },
        "actions": [{"step": "contact_recipient", "due_at": now.isoformat()}],
    }  # fmt: skip
    return [
        AnomalyEvent.model_validate(
            {
                **base,
                "anomaly_id": uuid.uuid4().hex,
                "subject": f"JD{i:013d}",
                "waybill": f"JD{i:013d}",
            }
        )
        for i in range(n)
    ]


async def run_notify(url: str, rules: Rules, name: str, evs: list[AnomalyEvent]) -> float:
    """Queue every event, then time the channel's sender until the queue is empty."""
    await migrate(url)
    store = PostgresNotifyStore(url, max_size=4)
    await store.open()
    now = datetime.now(UTC)
    try:
        for i in range(0, len(evs), 500):
            queued = [q for e in evs[i : i + 500] for q in core.route(e, rules, now, "http://h")]
            await store.enqueue(queued)

        async def dead(letter: DeadLetter) -> None:
            raise RuntimeError(f"dead letter in a benchmark: {letter.result} {letter.error}")

        async with aiohttp.ClientSession() as http:
            sender = ChannelSender(
                build_channel(name, rules.channels[name], http), store, NotifyMetrics(), dead
            )
            began = time.perf_counter()
            while (await store.depth()).get(name, 0):
                if not await sender.step():
                    await asyncio.sleep(0.01)
            return time.perf_counter() - began
    finally:
        await store.close()


def bodies(
    kind: str, rules: Rules, evs: list[AnomalyEvent]
) -> list[tuple[str, bytes, dict[str, str]]]:
    """What the floor sends: the channel's own bodies, rendered and signed beforehand."""
    out = []
    for e in evs:
        notice = core.notice_for(e, "http://h")
        did = delivery_id(kind, notice.dedupe_key)
        batch = render_batch([notice], "zh", "Asia/Shanghai", did)
        url = str(rules.channels[kind].url.get_secret_value())  # type: ignore[union-attr]
        headers = {"Content-Type": "application/json"}
        if kind == "webhook":
            data = webhook.body(batch, [notice])
            headers = webhook.headers(SECRET, did, data, int(time.time()))
        elif kind == "wecom":
            data = wecom.body(batch)
        elif kind == "dingtalk":
            data = dingtalk.body(batch)
        else:
            data = feishu.body(batch, SECRET, int(time.time()))
        out.append((url, data, headers))
    return out


async def floor_http(items: list[tuple[str, bytes, dict[str, str]]]) -> float:
    async with aiohttp.ClientSession() as http:
        began = time.perf_counter()
        for url, data, headers in items:
            async with http.post(url, data=data, headers=headers) as response:
                await response.read()
                assert response.status == 200
        return time.perf_counter() - began


def floor_email(rules: Rules, evs: list[AnomalyEvent], smtp_port: int, ca: Path) -> float:
    config = rules.channels["email"]
    messages = []
    for e in evs:
        notice = core.notice_for(e, "http://h")
        batch = render_batch([notice], "zh", "Asia/Shanghai", "d")
        messages.append(email.message(config, batch))  # type: ignore[arg-type]
    context = ssl.create_default_context(cafile=str(ca))
    began = time.perf_counter()
    for msg in messages:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.starttls(context=context)
            smtp.login(USER, PASSWORD)
            smtp.send_message(msg)
    return time.perf_counter() - began


def floor_log(evs: list[AnomalyEvent], path: Path) -> float:
    texts = [
        plain_text(render_batch([core.notice_for(e, "http://h")], "zh", "Asia/Shanghai", "d"))
        for e in evs
    ]
    began = time.perf_counter()
    for text in texts:
        with path.open("a", encoding="utf-8") as out:
            out.write(text + "\n\n")
    return time.perf_counter() - began


@contextlib.contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(admin URL to create databases on, description)."""
    configured = os.environ.get("WAYBILL_WATCH_DATABASE_URL")
    if configured:
        yield configured, "WAYBILL_WATCH_DATABASE_URL"
        return
    from waybill_watch.devdb import LocalPostgres

    pg = LocalPostgres(durable=True)
    pg.start()
    try:
        yield pg.admin_url, "local server, durable=True (fsync on)"
    finally:
        pg.stop()


def main(quick: bool = False) -> int:
    n = 200 if quick else 2000
    command = ".venv/bin/python -m benchmarks notify" + (" --quick" if quick else "")
    print(
        f"command: {command}   ({os.cpu_count()} cores shared by this process, the receivers "
        f"and PostgreSQL; load {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    logging.getLogger("waybill_watch.notify.log_channel").setLevel(logging.WARNING)
    from waybill_watch.devdb import create_database

    rows = []
    with tempfile.TemporaryDirectory() as tmp, database() as (admin, where):
        work = Path(tmp)
        print(f"database: {where}", flush=True)
        with receivers(work) as (http_port, smtp_port, ca):
            channels = {
                k: channel_entry(k, http_port, smtp_port, ca, work / "notify.log") for k in TYPES
            }
            for kind in TYPES:
                count = n // 10 if kind == "email" else n
                rules = Rules.model_validate(
                    {"channels": {kind: channels[kind]}, "rules": [{"channels": [kind]}]}
                )
                url = create_database(admin, f"bench_notify_{kind}_{uuid.uuid4().hex[:6]}")
                evs = events(count)
                took = asyncio.run(run_notify(url, rules, kind, evs))
                if kind == "email":
                    bare = floor_email(rules, events(count), smtp_port, ca)
                    floor_name = "bare smtplib loop (STARTTLS + login per message)"
                elif kind == "log":
                    bare = floor_log(events(count), work / "floor.log")
                    floor_name = "bare append of the same text to a file"
                else:
                    bare = asyncio.run(floor_http(bodies(kind, rules, events(count))))
                    floor_name = "bare aiohttp POST loop, same bodies"
                rows.append((kind, count, count / took, count / bare, floor_name))
                print(
                    f"  {kind}: {count / took:,.0f}/s notify, {count / bare:,.0f}/s floor",
                    flush=True,
                )
    print(f"\n`{command}` · {where} · {os.cpu_count()} cores\n")
    print("| channel type | messages | notify msg/s | floor msg/s | ratio | floor |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for kind, count, mine, bare_rate, floor_name in rows:
        print(
            f"| {kind} | {count:,} | {mine:,.0f} | {bare_rate:,.0f} | {mine / bare_rate:.2f} |"
            f" {floor_name} |"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=4, metavar=("HTTP_PORT", "SMTP_PORT", "CERT", "KEY"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), Path(args.serve[2]), args.serve[3])
    else:
        sys.exit(main(quick=args.quick))
