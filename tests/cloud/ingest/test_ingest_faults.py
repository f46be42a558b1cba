"""Faults: each ends with the cloud holding exactly the readings produced, none doubled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import psycopg
import pytest
from ingest_support import (
    TestHub,
    count,
    expected_rows,
    ingestor_process,
    metric,
    readings_as_rows,
    running_ingestor,
    s3_client,
    s3_keys,
    wait_metric,
)
from moto.server import ThreadedMotoServer
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from services import ADMIN_CONNINFO, free_port

from cloud.ingest.failpoints import CRASH_STATUS
from cloud.storage.keys import raw_key
from wire.acks import AckStatus


async def _wait_exit(proc, timeout: float) -> int | None:
    try:
        return await asyncio.to_thread(proc.wait, timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: still running
        return None


@pytest.mark.parametrize(
    ("failpoint", "then"),
    [("after_archive", AckStatus.STORED), ("after_store", AckStatus.DUPLICATE)],
)
async def test_a_crashed_ingestor_loses_and_doubles_nothing(
    failpoint, then, tmp_path, mosquitto, db, s3_endpoint, s3_bucket, maker
):
    batch = maker.make(40)
    config = {
        "broker_url": mosquitto.url,
        "db": db,
        "s3_endpoint": s3_endpoint,
        "bucket": s3_bucket,
    }
    crashing = ingestor_process(tmp_path, failpoint=failpoint, **config)
    try:
        async with TestHub(mosquitto.url, maker.hub_id) as hub:
            # The hub publishes until the ingestor has taken the batch (and crashed on it).
            for _ in range(100):
                await hub.publish(batch.data)
                if await _wait_exit(crashing, 0.3) is not None:
                    break
            assert crashing.returncode == CRASH_STATUS
            assert hub.acks_for(batch.batch_id) == []
            assert s3_keys(s3_endpoint, s3_bucket, "raw/") == [
                raw_key(maker.hub_id, batch.batch_id)
            ]
            committed = 1 if failpoint == "after_store" else 0
            assert count(db, "SELECT count(*) FROM batches") == committed

            restarted = ingestor_process(tmp_path, **config)
            try:
                ack = await hub.deliver(batch, timeout=30)
                assert ack.status is then
                assert readings_as_rows(db) == expected_rows([batch])
                assert count(db, "SELECT count(*) FROM batches") == 1
            finally:
                restarted.send_signal(signal.SIGTERM)
                assert await _wait_exit(restarted, 10) == 0  # a clean stop on SIGTERM
    finally:
        if crashing.poll() is None:
            crashing.kill()
            crashing.wait()


@contextlib.contextmanager
def _admin():
    with psycopg.connect(ADMIN_CONNINFO, autocommit=True) as admin:
        yield admin


def _allow_connections(db: str, *, allow: bool) -> None:
    name = conninfo_to_dict(db)["dbname"]
    with _admin() as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.Literal(allow)
            )
        )
        if not allow:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


async def test_no_ack_while_postgresql_is_unavailable_then_stored_once(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    before, during = maker.make(5), maker.make(25)
    async with (
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket, db_timeout=1.0) as ingestor,
        TestHub(mosquitto.url, maker.hub_id) as hub,
    ):
        assert (await hub.deliver(before)).status is AckStatus.STORED
        _allow_connections(db, allow=False)
        try:
            await hub.publish(during.data)
            await wait_metric(ingestor, "tecsa_ingest_errors_total", 1, kind="database_unavailable")
            await hub.publish(during.data)
            await wait_metric(ingestor, "tecsa_ingest_errors_total", 2, kind="database_unavailable")
            assert hub.acks_for(during.batch_id) == []
        finally:
            _allow_connections(db, allow=True)
        assert (await hub.deliver(during, timeout=30)).status is AckStatus.STORED
        assert readings_as_rows(db) == expected_rows([before, during])
        assert count(db, "SELECT count(*) FROM batches") == 2


async def test_no_ack_while_s3_is_unavailable_then_stored_once(mosquitto, db, maker):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    bucket = f"faults-{maker.hub_id}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    before, during = maker.make(5), maker.make(25)
    try:
        async with (
            running_ingestor(mosquitto.url, db, endpoint, bucket) as ingestor,
            TestHub(mosquitto.url, maker.hub_id) as hub,
        ):
            assert (await hub.deliver(before)).status is AckStatus.STORED
            server.stop()
            await hub.publish(during.data)
            await wait_metric(ingestor, "tecsa_ingest_errors_total", 1, kind="storage_unavailable")
            assert hub.acks_for(during.batch_id) == []
            assert count(db, "SELECT count(*) FROM batches") == 1  # nothing committed without S3

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()  # the same in-process state: the bucket and `before` are still there
            assert (await hub.deliver(during, timeout=30)).status is AckStatus.STORED
            assert readings_as_rows(db) == expected_rows([before, during])
            assert s3_keys(endpoint, bucket, "raw/") == sorted(
                raw_key(maker.hub_id, b.batch_id) for b in (before, during)
            )
    finally:
        server.stop()


async def test_the_ingestor_reconnects_after_a_broker_restart(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    before, after = maker.make(5), maker.make(15)
    async with running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket) as ingestor:
        async with TestHub(mosquitto.url, maker.hub_id) as hub:
            assert (await hub.deliver(before)).status is AckStatus.STORED
        await asyncio.to_thread(mosquitto.restart)
        await wait_metric(ingestor, "tecsa_ingest_reconnects_total", 1, timeout=20)
        async with TestHub(mosquitto.url, maker.hub_id) as hub:
            assert (await hub.deliver(after, timeout=30)).status is AckStatus.STORED
            assert (await hub.deliver(before)).status is AckStatus.DUPLICATE
        assert metric(ingestor, "tecsa_ingest_connected") == 1
        assert readings_as_rows(db) == expected_rows([before, after])
