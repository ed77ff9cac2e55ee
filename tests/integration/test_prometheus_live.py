"""A real Prometheus (Debian's ``prometheus`` binary) on the shipped files — scrape.yml with
only its targets replaced, rules.yml and alerts.yml — scraping a real worker every second.

A burst of bad input (callbacks with a wrong signature, unreadable records on tracking.raw)
must turn WaybillWatchCallbacksRejected and WaybillWatchDeadLetters pending (their ``for:`` is
minutes, their expressions are true within seconds) and nothing else; every rule evaluates
without error on real data; ``up{job="waybill-watch"}`` is 1; and every query of the Grafana
dashboard parses and returns at least one series from the worker.

Without the binary the test fails under CI (``CI=true``: .ci/run installs it) and is skipped,
saying why, elsewhere."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from waybill_watch.samples import kdniao_form

from .conftest import RunningWorker, free_tcp_port

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
SCRAPE = PROM / "scrape.yml"
RULES = PROM / "rules.yml"
ALERTS = PROM / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "waybill-watch.json"

CST = timezone(timedelta(hours=8))
APP_KEY = "it-prometheus-app-key"
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
BAD_CALLBACKS = 30  # WaybillWatchCallbacksRejected: > 20 in 5 minutes
BAD_RECORDS = 25  # WaybillWatchDeadLetters: > 10 in 5 minutes
#: Grafana's variables, as the dashboard's default ("All" instances) would expand them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
READY_S = 60.0
WAIT_S = 90.0


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        message = (
            "prometheus not found: install Debian's `prometheus` package "
            "(apt-get install --no-install-recommends prometheus; .ci/run does it as root)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def scrape_configs_for(worker_target: str) -> list[dict[str, Any]]:
    """The shipped scrape jobs with only the targets replaced: the worker in the
    ``role: worker`` group of ``waybill-watch``, no targets anywhere else."""
    jobs: list[dict[str, Any]] = load_yaml(SCRAPE)["scrape_configs"]
    for job in jobs:
        for group in job["static_configs"]:
            is_worker = job["job_name"] == "waybill-watch" and group["labels"]["role"] == "worker"
            group["targets"] = [worker_target] if is_worker else []
    return jobs


def without_targets(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stripped = copy.deepcopy(jobs)
    for job in stripped:
        for group in job["static_configs"]:
            group.pop("targets")
    return stripped


@dataclass
class RunningPrometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def api(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/{path}", params=params) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def until(self, what: str, probe: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        """Call the coroutine function ``probe`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = await probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: {what} after {timeout} s\n{self.log_tail()}")
            await asyncio.sleep(0.5)


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], RunningPrometheus]]:
    binary = prometheus_binary()
    started: list[RunningPrometheus] = []

    def start(worker_target: str) -> RunningPrometheus:
        jobs = scrape_configs_for(worker_target)
        assert without_targets(jobs) == without_targets(load_yaml(SCRAPE)["scrape_configs"])
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(RULES), str(ALERTS)],
            "scrape_configs": jobs,
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
        port = free_tcp_port()
        log_path = tmp_path / "prometheus.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        running = RunningPrometheus(f"http://127.0.0.1:{port}", proc, log_path)
        started.append(running)
        return running

    yield start
    for running in started:
        running.proc.terminate()
        try:
            running.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()


async def wait_ready(prometheus: RunningPrometheus) -> None:
    deadline = time.monotonic() + READY_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if prometheus.proc.poll() is not None:
                pytest.fail(
                    f"prometheus exited {prometheus.proc.returncode}:\n{prometheus.log_tail()}"
                )
            try:
                async with http.get(prometheus.url + "/-/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    pytest.fail(f"prometheus not ready after {READY_S} s:\n{prometheus.log_tail()}")


def kdniao_push(waybill: str, now: datetime) -> bytes:
    """A signed Kdniao push whose last scan is a failed delivery: opens delivery_exception."""
    fmt = "%Y-%m-%d %H:%M:%S"
    traces = [
        (now - timedelta(hours=20), "【上海青浦】快件已揽收", "1"),
        (now - timedelta(hours=2), "【杭州西湖】快件正在派送中", "202"),
        (now - timedelta(hours=1), "【杭州西湖】派件异常，收件人不在", "405"),
    ]
    item = {
        "LogisticCode": waybill,
        "ShipperCode": "ZTO",
        "State": "4",
        "StateEx": "405",
        "Traces": [
            {"AcceptTime": at.strftime(fmt), "AcceptStation": text, "Action": action}
            for at, text, action in traces
        ],
    }
    return kdniao_form([item], now, APP_KEY)


async def post_bad_signatures(worker: RunningWorker, count: int) -> None:
    body = kdniao_push("ZT9100000000000", datetime.now(CST)).replace(b"DataSign=", b"DataSign=x")
    for _ in range(count):
        status, _ = await worker.post("kdniao", body, FORM)
        assert status in (401, 403), status


async def produce_unreadable(worker: RunningWorker, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=worker.bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(count):
            await producer.send(worker.topic("tracking.raw"), f"{{not json {n}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def alert_key(alert: dict[str, Any]) -> tuple[str, ...]:
    labels = alert["labels"]
    return (labels["alertname"], *(labels.get(k, "") for k in ("feed", "reason", "source")))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables expanded) for every query of every panel."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unexpanded variable in {panel['title']!r}: {expr}"
            queries.append((panel["title"], expr))
    return queries


async def test_shipped_rules_alert_on_bad_input_and_every_dashboard_query_has_data(
    start_prometheus: Callable[[str], RunningPrometheus],  # first: skips before the broker starts
    worker_factory: Callable[..., RunningWorker],
) -> None:
    worker = worker_factory(WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY)
    await worker.wait_ready()
    target = f"127.0.0.1:{worker.port}"
    prometheus = start_prometheus(target)
    await wait_ready(prometheus)

    # The worker is scraped under the shipped job and labels.
    async def up() -> list[dict[str, Any]]:
        return await prometheus.query('up{job="waybill-watch"}')

    [series] = await prometheus.until("no up{job=waybill-watch}", up)
    assert series["metric"] == {
        "__name__": "up",
        "job": "waybill-watch",
        "instance": target,
        "role": "worker",
    }
    assert series["value"][1] == "1"

    # Traffic for the dashboard: a signed push that opens a delivery_exception.
    status, _ = await worker.post("kdniao", kdniao_push("ZT9100000000001", datetime.now(CST)), FORM)
    assert status == 200

    # One bad record of each kind first, so that the burst below is an increase of series
    # Prometheus already has (increase() does not count a series' first sample).
    await post_bad_signatures(worker, 1)
    await produce_unreadable(worker, 1)
    source = worker.topic("tracking.raw")
    rejected = 'waybill_watch_callbacks_rejected_total{feed="kdniao", reason="bad_signature"}'
    dead = f'waybill_watch_dlq_records_total{{source="{source}", reason="bad_envelope"}}'

    async def primed() -> bool:
        return bool(await prometheus.query(rejected)) and bool(await prometheus.query(dead))

    await prometheus.until("no rejected or dead-letter series", primed)
    await asyncio.sleep(2)  # a second sample of each at 1 s scrapes

    await post_bad_signatures(worker, BAD_CALLBACKS)
    await produce_unreadable(worker, BAD_RECORDS)

    expected = {
        ("WaybillWatchCallbacksRejected", "kdniao", "bad_signature", ""),
        ("WaybillWatchDeadLetters", "", "bad_envelope", source),
    }

    async def alerts_active() -> dict[tuple[str, ...], dict[str, Any]] | None:
        active = {alert_key(a): a for a in (await prometheus.api("alerts"))["alerts"]}
        return active if expected <= set(active) else None

    active = await prometheus.until(f"alerts {sorted(expected)} not active", alerts_active)
    for key in expected:
        alert = active[key]
        assert alert["state"] in ("pending", "firing"), alert
        assert alert["labels"]["severity"] == "warning"
        assert alert["annotations"]["runbook_url"] == f"docs/operations.md#{key[0].lower()}"
        assert alert["labels"]["job"] == "waybill-watch"
    # A healthy worker fed bad input: nothing else is pending or firing.
    assert set(active) == expected, sorted(active)

    # Every shipped rule is loaded and evaluates without error on the worker's real series.
    groups = (await prometheus.api("rules"))["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    shipped = {
        rule.get("alert") or rule["record"]
        for path in (RULES, ALERTS)
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    }
    assert set(loaded) == shipped
    unhealthy = {
        name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"
    }
    assert unhealthy == {}

    # Every dashboard query parses and returns at least one series from the worker.
    queries = dashboard_queries()
    assert len(queries) >= 14

    async def all_have_series() -> bool:
        empty.clear()
        for title, expr in queries:
            if not await prometheus.query(expr):
                empty.append(f"{title}: {expr}")
        return not empty

    empty: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while True:
        if await all_have_series() or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert empty == [], "dashboard queries without a series:\n" + "\n".join(empty)

    [up_now] = await prometheus.query('up{job="waybill-watch"} == 1')
    assert up_now["metric"]["instance"] == target
