"""``waybill-watch demo`` (``make run``): everything on one machine, stopped by Ctrl-C.

Starts the local Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set, or a broker already
answers on 127.0.0.1:9092), starts ``waybill-watch worker`` as a child process with the
``stream`` clock and topics of this run's own (``demo.<run>.``), produces simulated traffic
with labelled anomalies to ``tracking.raw`` (``--simulate N`` waybills, simulated time), then
sends a built-in sample of Kdniao pushes over HTTP (stamped now) and prints every anomaly the
worker emits as it arrives, with a count per type when it stops.

It also runs the case service (``waybill-watch cases``) on PostgreSQL: the one named by
``WAYBILL_WATCH_DATABASE_URL``, else a local server it starts from the installed binaries
(data in ``.run/postgres``), in a database it empties at each start (``waybill_watch_demo``).
It prints the case board's URL with a demo sign-in and a demo API token.

On SIGINT/SIGTERM it stops what it started: the case service, the worker, the database, then
the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka.admin import AIOKafkaAdminClient

from waybill_watch.devbroker import BrokerError, LocalBroker, wait_until_ready_async
from waybill_watch.kafka_client import KafkaConnection, kafka_connection, start_client
from waybill_watch.samples import demo_waybills, kdniao_form
from waybill_watch.settings import Settings, settings_problem
from waybill_watch.timefmt import local_now

RUN_DIR = Path(".run")
#: The demo's bearer tokens (one operator token per run), for the case API and the queries.
TOKENS_FILE = RUN_DIR / "api-tokens.json"
LOCAL_BOOTSTRAP = "127.0.0.1:9092"
#: The demo's topics live apart from anything else on the broker (override with the variable).
DEMO_PREFIX = "demo."


def say(text: str) -> None:
    """Demo narration on stdout, flushed (it is often piped through make)."""
    print(text, flush=True)


def run_demo(duration: float | None = None, simulate: int = 0) -> int:
    """Run the demo until a signal (or ``duration`` seconds); returns the exit code.

    Settings are checked first, before any broker is started: an invalid one is one line on
    stderr (never its value, which may be a secret) and exit code 2."""
    try:
        Settings()
    except (ValueError, OSError) as exc:
        print(
            f"waybill-watch demo: {settings_problem(exc)}; fix the environment or config file",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_demo(duration, simulate))
    except BrokerError as exc:
        print(f"waybill-watch demo: {exc}", file=sys.stderr)
        return 2


async def _demo(duration: float | None, simulate: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    broker: LocalBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    services: list[subprocess.Popen[bytes]] = []
    database: Any = None
    try:
        bootstrap, broker = await _broker()
        # Local means not given by the user: the broker it started, or one on 127.0.0.1:9092.
        local = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        prefix = await _fresh_start(bootstrap, own_broker=local)
        settings = Settings(KAFKA_BOOTSTRAP_SERVERS=bootstrap, topic_prefix=prefix)
        kafka = kafka_connection(settings)  # TLS/SASL settings of an existing cluster
        token = _demo_token()
        worker = _start_worker(bootstrap, prefix)
        base = f"http://127.0.0.1:{settings.web_port}"
        if not await _wait_ready(base, worker, stop):
            return 0 if stop.is_set() else 1
        database, services = await _start_cases(bootstrap, prefix, token)
        consumer = await _anomaly_consumer(kafka, settings.topic("anomalies"))
        counts: Counter[str] = Counter()
        try:
            if simulate > 0:
                await _simulate(bootstrap, settings.topic_prefix, simulate)
            run = await _send_sample(base)
            say("query a waybill (any worker answers; the token is the demo's operator token):")
            say(f"  curl -s -H 'Authorization: Bearer {token}' {base}/api/waybills/ZT{run}0001")
            say(
                f"  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json'"
                f' -d \'{{"waybills": ["ZT{run}0001", "YT{run}0002"]}}\''
                f" {base}/api/waybills/query"
            )
            say("waiting for anomalies (Ctrl-C to stop) ...")
            deadline = None if duration is None else time.monotonic() + duration
            await _print_anomalies(consumer, stop, deadline, worker, counts)
        finally:
            await consumer.stop()
            if counts:
                say(
                    "anomaly events seen: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                )
        return 0
    finally:
        for child, name in zip(services, ("the case service", "the notifier"), strict=False):
            _stop_child(child, name)
        _stop_worker(worker)
        if database is not None:
            say("stopping the local PostgreSQL ...")
            await asyncio.to_thread(database.stop)
        if broker is not None:
            say("stopping the local Kafka broker ...")
            await asyncio.to_thread(broker.stop)
        say("demo stopped.")


async def _fresh_start(bootstrap: str, *, own_broker: bool) -> str:
    """The topic prefix of this run, with nothing left over from an earlier one.

    The stream clock never goes back: a worker that resumed an earlier run's tables would judge
    this run's simulated traffic, which starts in the past, against that run's later clock and
    report thousands of stale deadlines. So every run gets its own prefix
    (``demo.<yymmddHHMMSS>.``) and an empty worker data dir; on the local broker the topics of
    earlier demo runs are deleted. An explicit ``WAYBILL_WATCH_TOPIC_PREFIX`` is used as given.
    """
    shutil.rmtree(RUN_DIR / "worker", ignore_errors=True)
    configured = os.environ.get("WAYBILL_WATCH_TOPIC_PREFIX")
    if configured is not None:
        return configured
    prefix = f"{DEMO_PREFIX}{local_now('Asia/Shanghai').strftime('%y%m%d%H%M%S')}."
    if own_broker:
        stale = await _delete_topics(bootstrap, DEMO_PREFIX, keep=prefix)
        if stale:
            say(f"deleted {stale} topics of earlier demo runs")
    return prefix


async def _delete_topics(bootstrap: str, prefix: str, *, keep: str) -> int:
    """Delete the topics named ``prefix…`` (except ``keep…``) on the local broker (PLAINTEXT);
    how many went."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [
            t for t in await admin.list_topics() if t.startswith(prefix) and not t.startswith(keep)
        ]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


async def _broker() -> tuple[str, LocalBroker | None]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        say(f"using Kafka at {configured} (KAFKA_BOOTSTRAP_SERVERS)")
        return configured, None
    with contextlib.suppress(BrokerError):
        await wait_until_ready_async(LOCAL_BOOTSTRAP, 2.0)
        say(f"using the Kafka broker already running at {LOCAL_BOOTSTRAP}")
        return LOCAL_BOOTSTRAP, None
    say("starting a local Kafka broker (first run downloads its jars with Maven) ...")
    broker = LocalBroker(port=9092, data_dir=RUN_DIR / "broker")
    bootstrap = await asyncio.to_thread(broker.start)
    say(f"Kafka is up at {bootstrap} (log: {broker.log_path})")
    return bootstrap, broker


def _start_worker(bootstrap: str, prefix: str) -> subprocess.Popen[bytes]:
    RUN_DIR.mkdir(exist_ok=True)
    log_path = RUN_DIR / "worker.log"
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_KDNIAO_APP_KEY": env.get("WAYBILL_WATCH_KDNIAO_APP_KEY")
            or _demo_app_key(),
            "WAYBILL_WATCH_ALLOW_UNSIGNED": "true",
            "WAYBILL_WATCH_TICK_INTERVAL_SECONDS": "2",
            "WAYBILL_WATCH_CLOCK": env.get("WAYBILL_WATCH_CLOCK", "stream"),
            "WAYBILL_WATCH_DATA_DIR": str(RUN_DIR / "worker"),
            "WAYBILL_WATCH_API_TOKENS_FILE": str(TOKENS_FILE),
        }
    )
    say("!! DEMO MODE: WAYBILL_WATCH_ALLOW_UNSIGNED=true — feeds without a secret accept")
    say("!! unsigned callbacks. Never run a production worker like this.")
    say(f"starting the worker (log: {log_path}) ...")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "waybill_watch", "worker"], env=env, stdout=log, stderr=log
        )


def _demo_app_key() -> str:
    key = os.environ.setdefault("WAYBILL_WATCH_KDNIAO_APP_KEY", "demo-" + secrets.token_hex(8))
    return key


async def _wait_ready(
    base: str, worker: subprocess.Popen[bytes], stop: asyncio.Event, timeout: float = 180
) -> bool:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline and not stop.is_set():
            if worker.poll() is not None:
                say(f"the worker exited with code {worker.returncode}; see {RUN_DIR}/worker.log")
                return False
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(f"{base}/readyz", timeout=aiohttp.ClientTimeout(2)) as r:
                    if r.status == 200:
                        say(f"worker ready at {base}")
                        say(f"Prometheus metrics: {base}/metrics (docs/operations.md)")
                        return True
            await asyncio.sleep(0.5)
    if not stop.is_set():
        say(f"the worker did not become ready in {timeout:.0f} s; see {RUN_DIR}/worker.log")
    return False


async def _anomaly_consumer(kafka: KafkaConnection, topic: str):  # type: ignore[no-untyped-def]
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    await start_client(consumer, kafka)
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # aiokafka has no event for "partitions assigned"
    tps = sorted(consumer.assignment())
    await consumer.seek_to_end(*tps)
    for tp in tps:  # pin the positions now: only this run's anomalies are shown
        await consumer.position(tp)
    return consumer


async def _simulate(bootstrap: str, prefix: str, waybills: int) -> None:
    labels = RUN_DIR / "demo-labels.jsonl"
    say(f"producing {waybills} simulated waybills (simulated time, labels in {labels}) ...")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "waybill_watch",
        "simulate",
        "--waybills",
        str(waybills),
        "--seed",
        str(int(time.time())),
        "--kafka",
        bootstrap,
        "--topic-prefix",
        prefix,
        "--labels",
        str(labels),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        say(f"simulate failed: {stderr.decode(errors='replace')[-500:]}")
        return
    summary = orjson.loads(stderr)
    injected = ", ".join(f"{k} {v}" for k, v in summary["anomalies"].items() if v)
    say(f"simulated {summary['stats']['envelopes']} envelopes; injected: {injected}")


async def _send_sample(base: str) -> str:
    now = local_now()
    run = now.strftime("%m%d%H%M%S")
    body = kdniao_form(demo_waybills(now, run), now, os.environ["WAYBILL_WATCH_KDNIAO_APP_KEY"])
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/callbacks/kdniao",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        ) as response,
    ):
        answer = await response.text()
    say(f"sent a Kdniao push with 4 sample waybills (run {run}): HTTP {response.status} {answer}")
    return run


async def _print_anomalies(  # type: ignore[no-untyped-def]
    consumer,
    stop: asyncio.Event,
    deadline: float | None,
    worker: subprocess.Popen[bytes],
    counts: Counter[str],
) -> None:
    while not stop.is_set():
        if deadline is not None and time.monotonic() > deadline:
            return
        if worker.poll() is not None:
            say(f"the worker exited with code {worker.returncode}; see {RUN_DIR}/worker.log")
            return
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                anomaly = orjson.loads(record.value)
                counts[f"{anomaly['type']}/{anomaly['status']}"] += 1
                say(_format(anomaly))


def _format(anomaly: dict[str, object]) -> str:
    reasons = ",".join(str(r) for r in anomaly.get("reasons", []) or [])  # type: ignore[attr-defined]
    return (
        f"ANOMALY {anomaly['type']:<20} {anomaly['status']:<8} {anomaly['severity']:<8} "
        f"{anomaly['subject']}  reasons={reasons}  at={anomaly['detected_at']}"
    )


def _stop_worker(worker: subprocess.Popen[bytes] | None) -> None:
    _stop_child(worker, "the worker")


def _stop_child(child: subprocess.Popen[bytes] | None, name: str) -> None:
    if child is None or child.poll() is not None:
        return
    say(f"stopping {name} ...")
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


DEMO_DATABASE = "waybill_watch_demo"


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "waybill_watch", *args], env=env, stdout=log, stderr=log
        )


def _demo_token() -> str:
    """A fresh operator token for this run (its digest in ``.run/api-tokens.json``), for the
    case service's API and the worker's waybill queries alike."""
    from waybill_watch.tokens import add_token

    RUN_DIR.mkdir(exist_ok=True)
    TOKENS_FILE.unlink(missing_ok=True)
    return add_token(TOKENS_FILE, "operator", None)


async def _start_cases(
    bootstrap: str, prefix: str, token: str
) -> tuple[Any, list[subprocess.Popen[bytes]]]:
    """The case service and the notifier on the configured or a local PostgreSQL; (local
    server, processes).

    A database that cannot be had is said and skipped: the detection demo still runs."""
    from waybill_watch.devdb import DatabaseError, LocalPostgres, drop_database, ensure_database

    configured = os.environ.get("WAYBILL_WATCH_DATABASE_URL")
    server = None
    try:
        if configured:
            url = configured
            say("case service: using WAYBILL_WATCH_DATABASE_URL")
        else:
            say("starting a local PostgreSQL for the case service ...")
            server = LocalPostgres(data_dir=RUN_DIR / "postgres")
            base = await asyncio.to_thread(server.start)
            await asyncio.to_thread(drop_database, base, DEMO_DATABASE)
            url = await asyncio.to_thread(ensure_database, base, DEMO_DATABASE)
    except DatabaseError as exc:
        say(f"no case service: {exc}")
        return server, []
    password = secrets.token_urlsafe(9)
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_DATABASE_URL": url,
            "WAYBILL_WATCH_API_TOKENS_FILE": str(TOKENS_FILE),
        }
    )
    adder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "waybill_watch",
        "cases",
        "add-user",
        "demo",
        "--role",
        "admin",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await adder.communicate((password + "\n").encode())
    if adder.returncode != 0:
        say(f"no case service: adding the demo account failed: {err.decode(errors='replace')}")
        return server, []
    log_path = RUN_DIR / "cases.log"
    process = _spawn(["cases"], env, log_path)
    notify_log = RUN_DIR / "notify.log"
    notifier = _spawn(["notify", "--demo"], env, notify_log)
    say(
        f"notifications: every anomaly and case event, in Chinese, to {notify_log} "
        "(`waybill-watch notify --demo`: a log channel; docs/notify.md for webhooks, WeCom, "
        "DingTalk, Feishu and e-mail)"
    )
    port, notify_port = Settings().cases_port, Settings().notify_port
    say(f"case board: http://127.0.0.1:{port}/  (sign in: demo / {password}; log: {log_path})")
    say(
        f"their metrics: http://127.0.0.1:{port}/metrics (case service), "
        f"http://127.0.0.1:{notify_port}/metrics (notifier)"
    )
    say(f"API token (operator; cases API and waybill queries): {token}")
    return server, [process, notifier]
