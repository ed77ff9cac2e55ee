"""``make run`` starts clean: its own topic prefix per run, earlier demo topics deleted on the
local broker only, an empty worker data dir (a resumed stream clock would make the new run's
simulated traffic look days late)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from waybill_watch import demo


async def topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def create(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def test_each_demo_run_starts_clean(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WAYBILL_WATCH_TOPIC_PREFIX", raising=False)
    (tmp_path / ".run" / "worker" / "old-tables").mkdir(parents=True)
    tag = uuid.uuid4().hex[:8]
    earlier, unrelated = f"demo.{tag}.tracking.raw", f"t{tag}.tracking.raw"
    await create(kafka_bootstrap, earlier, unrelated)

    foreign = await demo._fresh_start(kafka_bootstrap, own_broker=False)
    assert earlier in await topics(kafka_bootstrap)  # never delete on a cluster it does not own

    prefix = await demo._fresh_start(kafka_bootstrap, own_broker=True)
    assert prefix.startswith("demo.") and prefix.endswith(".") and not earlier.startswith(prefix)
    assert foreign.startswith("demo.")
    assert not (tmp_path / ".run" / "worker").exists()
    for _ in range(40):
        left = await topics(kafka_bootstrap)
        if earlier not in left:
            break
        await asyncio.sleep(0.25)
    assert earlier not in left and unrelated in left

    monkeypatch.setenv("WAYBILL_WATCH_TOPIC_PREFIX", "mine.")
    assert await demo._fresh_start(kafka_bootstrap, own_broker=True) == "mine."
