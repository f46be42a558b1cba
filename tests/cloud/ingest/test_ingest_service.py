"""The ingestor end to end: a test hub on the test's own Mosquitto, PostgreSQL, moto S3."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from ingest_support import (
    BatchMaker,
    TestHub,
    count,
    expected_rows,
    hub_key,
    metric,
    readings_as_rows,
    register,
    running_ingestor,
    s3_keys,
    unique_hub,
)

from cloud.db import DatabaseUnavailable, connect, revoke_hub
from cloud.storage.keys import raw_key
from wire.acks import AckStatus


async def test_batches_are_stored_archived_and_acked_once(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    batches = [maker.make(n) for n in (1, 20, 50)]
    async with (
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket),
        TestHub(mosquitto.url, maker.hub_id) as hub,
    ):
        for b in batches:
            await hub.publish(b.data)
        acks = [await hub.wait_ack(b.batch_id) for b in batches]
        assert [a.status for a in acks] == [AckStatus.STORED] * 3
        assert [(a.counts.inserted, a.counts.duplicate) for a in acks] == [(1, 0), (20, 0), (50, 0)]
        assert [a.seq for a in acks] == [b.seq for b in batches]

        assert readings_as_rows(db) == expected_rows(batches)
        assert s3_keys(s3_endpoint, s3_bucket, "raw/") == sorted(
            raw_key(maker.hub_id, b.batch_id) for b in batches
        )
        assert raw_key(maker.hub_id, batches[0].batch_id).startswith(
            f"raw/{maker.hub_id}/2026/03/14/"
        )

        # The same bytes again (a hub that missed the ack): duplicate, nothing doubled.
        await hub.publish(batches[1].data)
        again = await hub.wait_ack(batches[1].batch_id, count=2)
        assert again.status is AckStatus.DUPLICATE
        assert (again.counts.inserted, again.counts.duplicate) == (0, 20)
        assert count(db, "SELECT count(*) FROM readings") == 71
        assert count(db, "SELECT count(*) FROM batches WHERE status = 'stored'") == 3
        assert hub.bad_acks == 0


def _tampered(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01  # a bit in the ciphertext
    return bytes(flipped)


BAD = ["tampered", "forged", "truncated", "oversized", "unknown_hub", "revoked", "wrong_topic"]


@pytest.mark.parametrize("case", BAD)
async def test_a_bad_batch_is_quarantined_rejected_and_the_next_one_stored(
    case, mosquitto, db, s3_endpoint, s3_bucket, maker
):
    good_before = maker.make(5)
    bad = maker.make(8)
    publish_as = maker.hub_id
    data = bad.data
    if case == "tampered":
        data = _tampered(bad.data)
    elif case == "forged":  # sealed by another hub's key, under this hub's id
        data = BatchMaker(maker.hub_id, hub_key(2), seed=99).make(8).data
    elif case == "truncated":
        data = bad.data[:-100]
    elif case == "oversized":
        data = bad.data + b"\0" * (8 * 1024 * 1024)
    elif case == "unknown_hub":
        publish_as = unique_hub("nobody")
        data = BatchMaker(publish_as, hub_key(3)).make(3).data
    elif case == "wrong_topic":  # a registered hub publishing another hub's header
        publish_as = unique_hub("other")
        register(db, publish_as, hub_key(4))

    async with (
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket) as ingestor,
        TestHub(mosquitto.url, maker.hub_id) as hub,
        TestHub(mosquitto.url, publish_as) as sender,
    ):
        await hub.publish(good_before.data)
        assert (await hub.wait_ack(good_before.batch_id)).status is AckStatus.STORED
        if case == "revoked":
            with connect(db) as conn:
                revoke_hub(conn, maker.hub_id, reason="stolen")

        await sender.publish(data)
        await sender.wait_for(lambda acks: any(a.status is AckStatus.REJECTED for a in acks))
        assert metric(ingestor, "tecsa_ingest_batches_total", outcome="rejected") == 1
        rejected = [a for a in sender.acks if a.status is AckStatus.REJECTED]
        assert len(rejected) == 1, sender.acks
        assert rejected[0].reason
        assert rejected[0].hub_id == publish_as

        quarantined = _quarantine(db)
        assert len(quarantined) == 1
        hub_id, reason, s3_key, size = quarantined[0]
        assert hub_id == publish_as
        assert reason == rejected[0].reason
        assert size == len(data)
        assert s3_keys(s3_endpoint, s3_bucket, "quarantine/") == [s3_key]
        # The forged, tampered or untrusted batch id never reaches `batches`.
        assert count(db, "SELECT count(*) FROM batches") == 1

        if case == "revoked":
            return
        after = maker.make(7)
        await hub.publish(after.data)
        assert (await hub.wait_ack(after.batch_id)).status is AckStatus.STORED
        # Nothing else was affected: the bad batch's readings are nowhere, the good ones all here.
        assert readings_as_rows(db) == expected_rows([good_before, after])
        # And the real batch, if its bytes were only damaged on the way, still goes through.
        if case in {"tampered", "truncated"}:
            await hub.publish(bad.data)
            assert (await hub.wait_ack(bad.batch_id, count=2)).status is AckStatus.STORED


async def test_an_authentic_batch_that_cannot_be_opened_is_rejected_for_good(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    # Signed by the hub, but sealed to an ingest key this cloud does not hold.
    other_cloud = X25519PrivateKey.from_private_bytes(bytes(32 * [9])).public_key()
    bad = BatchMaker(maker.hub_id, maker.key, seed=3, cloud_key=other_cloud).make(4)
    async with (
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket) as ingestor,
        TestHub(mosquitto.url, maker.hub_id) as hub,
    ):
        await hub.publish(bad.data)
        first = await hub.wait_ack(bad.batch_id)
        assert first.status is AckStatus.REJECTED
        assert "ingest key" in first.reason
        await hub.publish(bad.data)  # resent: answered from the recorded decision
        second = await hub.wait_ack(bad.batch_id, count=2)
        assert (second.status, second.reason) == (AckStatus.REJECTED, first.reason)
        assert count(db, "SELECT count(*) FROM batches WHERE status = 'rejected'") == 1
        assert count(db, "SELECT count(*) FROM quarantine") == 1
        assert metric(ingestor, "tecsa_ingest_batches_total", outcome="rejected") == 2
        assert count(db, "SELECT count(*) FROM readings") == 0


async def test_two_ingestors_on_one_shared_subscription_split_the_load(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    batches = [maker.make(10) for _ in range(24)]
    async with (
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket, share_group="ingest") as one,
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket, share_group="ingest") as two,
        TestHub(mosquitto.url, maker.hub_id) as hub,
    ):
        for b in batches:
            await hub.publish(b.data)
        for b in batches:
            assert (await hub.wait_ack(b.batch_id)).status is AckStatus.STORED
        # Republish half of them: whoever gets them answers duplicate.
        for b in batches[::2]:
            await hub.publish(b.data)
        for b in batches[::2]:
            assert (await hub.wait_ack(b.batch_id, count=2)).status is AckStatus.DUPLICATE
        name = "tecsa_ingest_batches_total"
        stored = [metric(i, name, outcome="stored") for i in (one, two)]
        assert min(stored) > 0, stored
        assert sum(stored) == 24
        assert count(db, "SELECT count(*) FROM readings") == 240
        assert count(db, "SELECT count(DISTINCT id) FROM readings") == 240
        assert readings_as_rows(db) == expected_rows(batches)


class _GatedPorts:
    """Real ports whose `store` waits for the test: a batch held in hand on purpose."""

    def __init__(self, inner):
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def store(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(10)
        return self.inner.store(*args, **kwargs)


async def test_stopping_finishes_the_batch_in_hand_and_takes_no_more(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    first, second = maker.make(30), maker.make(10)
    async with TestHub(mosquitto.url, maker.hub_id) as hub:
        async with running_ingestor(
            mosquitto.url, db, s3_endpoint, s3_bucket, wrap=_GatedPorts
        ) as ingestor:
            gate = ingestor.ports
            await hub.publish(first.data)
            assert await asyncio.to_thread(gate.entered.wait, 10)
            ingestor.stop_event.set()  # SIGTERM while the first batch is being stored
            await hub.publish(second.data)
            gate.release.set()
            ack = await hub.wait_ack(first.batch_id)
        assert ack.status is AckStatus.STORED
        assert not ingestor.subscribed.is_set()
        assert hub.acks_for(second.batch_id) == []
        assert readings_as_rows(db) == expected_rows([first])


class _OverlapPorts:
    """Real ports; the first `store` waits for the test, and every archived batch is noted."""

    def __init__(self, inner):
        self.inner = inner
        self.storing = threading.Event()
        self.release = threading.Event()
        self.archived: list = []
        self.archived_changed = threading.Condition()
        self.fail_store: dict = {}
        self._first = True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def archive(self, hub_id, batch_id, data):
        key = self.inner.archive(hub_id, batch_id, data)
        with self.archived_changed:
            self.archived.append(batch_id)
            self.archived_changed.notify_all()
        return key

    def wait_archived(self, batch_id) -> bool:
        with self.archived_changed:
            return self.archived_changed.wait_for(lambda: batch_id in self.archived, 10)

    def store(self, header, *args, **kwargs):
        if self._first:
            self._first = False
            self.storing.set()
            assert self.release.wait(10)
        if header.batch_id in self.fail_store:
            raise self.fail_store[header.batch_id]
        return self.inner.store(header, *args, **kwargs)


async def test_the_next_batch_is_archived_while_one_is_stored_and_acks_keep_their_order(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    first, second, third = maker.make(20), maker.make(10), maker.make(5)
    async with (
        TestHub(mosquitto.url, maker.hub_id) as hub,
        running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket, wrap=_OverlapPorts) as ing,
    ):
        gate = ing.ports
        await hub.publish(first.data)
        assert await asyncio.to_thread(gate.storing.wait, 10)
        await hub.publish(second.data)
        await hub.publish(third.data)
        # Opened and archived while the first one is still in its transaction...
        assert await asyncio.to_thread(gate.wait_archived, second.batch_id)
        assert await asyncio.to_thread(gate.wait_archived, third.batch_id)
        await asyncio.sleep(0.2)
        # ... but nothing is acked before its own commit.
        assert hub.acks == []
        assert count(db, "SELECT count(*) FROM readings") == 0
        gate.release.set()
        await hub.wait_ack(third.batch_id)
        assert [a.batch_id for a in hub.acks] == [b.batch_id for b in (first, second, third)]
        assert {a.status for a in hub.acks} == {AckStatus.STORED}
        assert [a.payload_sha256 for a in hub.acks] == [
            hashlib.sha256(b.data).hexdigest() for b in (first, second, third)
        ]
    assert readings_as_rows(db) == expected_rows([first, second, third])


async def test_stopping_finishes_the_batches_in_hand_and_acks_only_what_committed(
    mosquitto, db, s3_endpoint, s3_bucket, maker
):
    first, second, third = maker.make(20), maker.make(10), maker.make(5)
    async with TestHub(mosquitto.url, maker.hub_id) as hub:
        async with running_ingestor(
            mosquitto.url, db, s3_endpoint, s3_bucket, wrap=_OverlapPorts
        ) as ingestor:
            gate = ingestor.ports
            gate.fail_store[second.batch_id] = DatabaseUnavailable("down for the test")
            await hub.publish(first.data)
            assert await asyncio.to_thread(gate.storing.wait, 10)
            await hub.publish(second.data)
            assert await asyncio.to_thread(gate.wait_archived, second.batch_id)
            ingestor.stop_event.set()  # SIGTERM: one batch in its transaction, one prepared
            await hub.publish(third.data)
            gate.release.set()
            await hub.wait_ack(first.batch_id)
        await asyncio.sleep(0.3)
        assert [(a.batch_id, a.status) for a in hub.acks] == [(first.batch_id, AckStatus.STORED)]
        assert not ingestor.subscribed.is_set()
        assert third.batch_id not in gate.archived  # not taken after the stop
    assert readings_as_rows(db) == expected_rows([first])


def _quarantine(db):
    with connect(db) as conn:
        return conn.execute(
            "SELECT hub_id, reason, s3_key, size FROM quarantine ORDER BY id"
        ).fetchall()
