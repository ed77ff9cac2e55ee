"""Helpers of the case service's integration tests: a ``waybill-watch cases`` process."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import aiohttp

from waybill_watch.tokens import token_digest

from .conftest import RunningWorker, free_tcp_port

OPERATOR_TOKEN = "it-operator-token-not-real"

#: ask_courier goes overdue within seconds; call_buyer (done by the test) has time to spare
#: on a loaded machine.
FAST_PLAYBOOK = """
[outcomes]
receipt_confirmed = "Buyer confirmed receipt"
delivered = "Delivered"
resolved_by_data = "Resolved by data"
found_with_guard = "Found with the guard"
other = "Other"

[step_outcomes]
done = "Done"
reached_buyer = "Reached the buyer"

[playbooks.signed_not_received]
title = "Signed, not received"
remind = "1s"
steps = [
  { step = "call_buyer", title = "Call the buyer", due = "1h" },
  { step = "ask_courier", title = "Ask the courier", due = "6s" },
  { step = "escalate_platform", title = "Platform", due = "1h" },
]
"""


def fast_playbook(tmp: Path) -> Path:
    """The playbook above, with a quiet default for every other type."""
    from typing import get_args

    from waybill_watch.models.anomaly import AnomalyType

    text = FAST_PLAYBOOK
    for kind in get_args(AnomalyType):
        if kind != "signed_not_received":
            text += f'\n[playbooks.{kind}]\ntitle = "{kind}"\nsteps = []\n'
    path = tmp / "playbooks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def tokens_file(tmp: Path) -> Path:
    path = tmp / "tokens.json"
    path.write_text(
        json.dumps({token_digest(OPERATOR_TOKEN): {"role": "operator", "merchant": None}})
    )
    return path


def case_process(
    bootstrap: str, prefix: str, database_url: str, tmp: Path, name: str = "cases", **env: str
) -> RunningWorker:
    """A ``waybill-watch cases`` process on the worker's topics (not started)."""
    port = free_tcp_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
    full.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_PARTITIONS": "4",
            "WAYBILL_WATCH_DATABASE_URL": database_url,
            "WAYBILL_WATCH_CASES_PORT": str(port),
            "WAYBILL_WATCH_WEB_PORT": str(port),
            "WAYBILL_WATCH_API_TOKENS_FILE": str(tokens_file(tmp)),
            "WAYBILL_WATCH_CASES_PLAYBOOKS": str(fast_playbook(tmp)),
            "WAYBILL_WATCH_CASES_TIMER_INTERVAL_SECONDS": "0.5",
            "WAYBILL_WATCH_CASES_SESSION_SECRET": uuid.uuid4().hex,
            "WAYBILL_WATCH_LOG_LEVEL": "info",
        }
    )
    full.update(env)
    return RunningWorker(bootstrap, prefix, port, full, tmp / f"{name}.log", command="cases")


async def api(
    process: RunningWorker, method: str, path: str, body: object | None = None
) -> tuple[int, object]:
    """Call the REST API with the operator token."""
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "X-Actor": "it-tester"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, process.base_url + path, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None
