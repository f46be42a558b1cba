"""The ingestor creates the coming months' partitions by itself, at start and periodically."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cloud.config import DatabaseSettings
from cloud.db import connect, list_partitions, open_pool
from cloud.db.partitions import add_months
from cloud.ingest.main import partitions_ahead
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.service import Broker, Ingestor


def test_partitions_for_this_month_and_the_next_three_exist_after_the_chore(db):
    pool = open_pool(DatabaseSettings(url=SecretStr(db), pool_max=2))
    try:
        partitions_ahead(pool)()
    finally:
        pool.close()
    now = datetime.now(UTC)
    with connect(db) as conn:
        names = list_partitions(conn)
    for n in range(4):
        month = add_months(now, n)
        assert any(f"{month:%Y}" in name and f"{month:%m}" in name for name in names), (
            month,
            names,
        )


async def test_chores_run_at_start_even_while_the_broker_is_unreachable():
    calls = asyncio.Event()
    loop = asyncio.get_running_loop()
    ingestor = Ingestor(
        broker=Broker.from_url("mqtt://127.0.0.1:1"),
        ports=None,  # never reached: no message arrives
        cloud_keys=X25519PrivateKey.generate(),
        signing_key=Ed25519PrivateKey.generate(),
        metrics=IngestMetrics(CollectorRegistry()),
        housekeeping=lambda: loop.call_soon_threadsafe(calls.set),
        housekeeping_every_s=3600,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    await asyncio.wait_for(calls.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
