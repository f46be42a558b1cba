"""Faults: each ends with the test cloud holding exactly the readings produced, none missing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from contextlib import closing

import pytest
from uplink_testkit import (
    Running,
    TestCloud,
    eventually,
    fill,
    open_buffer,
    start_hub_process,
    unsent,
    uplink_config,
    wait_until,
)

from hub.uplink import BreakerState, UplinkService
from wire.acks import AckStatus

pytestmark = pytest.mark.integration


def test_kill_9_with_batches_in_flight_loses_nothing(mosquitto, tmp_path, db, keys, hub_id):
    async def prefill() -> set[str]:
        async with open_buffer(db) as buffer:
            return await fill(buffer, 600)

    produced = asyncio.run(prefill())
    key_files = keys.save(tmp_path / "keys")
    holding = True

    def policy(header):  # while holding, every other batch stays unacked: in flight at the kill
        if holding and header.seq % 2 == 0:
            return None
        return AckStatus.STORED

    with TestCloud(mosquitto.port, hub_id, keys, policy=policy) as cloud:
        child = start_hub_process(db, key_files, hub_id, mosquitto.port)
        try:
            cloud.wait(lambda c: len(c.batches) >= 6)  # the window (4) is full of unacked ones
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            child.kill()
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        assert 0 < unsent(db) < 600
        holding = False

        child = start_hub_process(db, key_files, hub_id, mosquitto.port)
        try:
            cloud.wait(lambda c: c.readings == produced, timeout=30)
            wait_until(lambda: unsent(db) == 0, timeout=20)  # the hub records the last acks
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=10)

    assert cloud.readings == produced
    assert not cloud.conflicts  # republished after the restart with identical bytes
    assert not cloud.errors
    assert max(cloud.publications.values()) >= 2
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute(
            "SELECT count(*) FROM readings r LEFT JOIN outbox o ON o.batch_id = r.batch_id"
            " WHERE r.batch_id IS NOT NULL AND o.batch_id IS NULL"
        ).fetchone()[0]
        assert orphans == 0  # every assigned row belongs to a recorded batch
        seqs = [r[0] for r in conn.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == list(range(len(seqs)))  # never reused across the crash


async def test_broker_restart_mid_stream(mosquitto, buffer, keys, hub_id) -> None:
    produced: set[str] = set()
    produced |= await fill(buffer, 300, seed=1)
    service = UplinkService(uplink_config(hub_id, mosquitto.port), buffer, keys.uplink())
    with TestCloud(mosquitto.port, hub_id, keys) as cloud:
        async with Running(service):
            await cloud.until(lambda c: len(c.readings) >= 100)
            producer = asyncio.create_task(_produce(buffer, produced, seeds=range(2, 8)))
            await asyncio.to_thread(mosquitto.restart)
            await producer
            await eventually(lambda: buffer.uplink_status().unsent == 0, timeout=30)
        reconnects = service.metrics.registry.get_sample_value("tecsa_uplink_reconnects_total")

    assert cloud.readings == produced
    assert not cloud.conflicts
    assert reconnects >= 1


async def test_broker_down_opens_the_breaker_and_recovery_closes_it(
    mosquitto, buffer, keys, hub_id
) -> None:
    produced = await fill(buffer, 200, seed=1)
    config = uplink_config(hub_id, mosquitto.port, breaker_threshold=3)
    service = UplinkService(config, buffer, keys.uplink())
    with TestCloud(mosquitto.port, hub_id, keys) as cloud:
        async with Running(service):
            await cloud.until(lambda c: len(c.readings) >= 50)
            await asyncio.to_thread(mosquitto.stop)
            produced |= await fill(buffer, 200, seed=2)  # readings keep coming meanwhile
            await eventually(lambda: service.breaker_state is BreakerState.OPEN)
            state = buffer.uplink_status().state
            assert state is not None
            assert state.breaker == "open"
            assert state.last_error
            assert not state.connected
            await asyncio.to_thread(mosquitto.start)
            await eventually(lambda: buffer.uplink_status().unsent == 0, timeout=30)
            await eventually(lambda: service.breaker_state is BreakerState.CLOSED)
            await eventually(lambda: buffer.uplink_status().state.breaker == "closed")

    assert cloud.readings == produced
    assert not cloud.conflicts


async def _produce(buffer, produced: set[str], *, seeds) -> None:
    for seed in seeds:
        produced |= await fill(buffer, 100, seed=seed)
        await asyncio.sleep(0.05)  # a trickle, not a burst: spreads the writes over the restart
