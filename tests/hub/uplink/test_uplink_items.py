"""The uplink carries medical records and triage results next to readings, alerts first."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from uplink_testkit import T0, Running, TestCloud, eventually, fill, uplink_config

from hub.buffer import Priority
from hub.records.merge import check
from hub.uplink import UplinkService
from hub.uplink.batcher import BatchLimits, CloseReason, close_items
from hub.uplink.sealing import body_json, seal_readings
from wire.canonical import content_hash
from wire.envelope import DEFAULT_LIMITS, open_sealed
from wire.ids import uuid7
from wire.items import Body, MedicalRecord, RiskBand, TriageResult
from wire.samples import sample_reading

if TYPE_CHECKING:
    from hub.buffer import Buffer

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def make_record(revision: int = 1, payload: dict | None = None, rid: UUID | None = None):
    payload = payload or {"weeks": 31}
    checked = check(
        {
            "id": str(rid or uuid4()),
            "revision": revision,
            "updated_at": "2026-11-28T09:30:00Z",
            "patient_id": "pat-42",
            "agent_id": "agent-17",
            "type": "antenatal_visit",
            "payload": payload,
            "content_hash": content_hash(payload),
        }
    )
    assert isinstance(checked, MedicalRecord)
    return checked


def make_triage(band: RiskBand, *, at: datetime = NOW) -> TriageResult:
    return TriageResult(
        id=uuid4(),
        patient_id="pat-42",
        reading_ids=(uuid4(),),
        computed_at=at,
        band=band,
        score=8.0 if band is RiskBand.HIGH else 0.0,
        news2_score=8 if band is RiskBand.HIGH else 0,
        news2_subscores={"resp_rate": 3},
        complete=False,
        model_version="news2-1",
        input_hash="sha256:" + "1" * 64,
    )


def test_serialized_body_with_items_matches_wire_body() -> None:
    rng = random.Random(3)
    readings = [sample_reading(rng, T0, device=i, patient=i) for i in range(3)]
    records = [make_record(), make_record(2)]
    triage = [make_triage(RiskBand.HIGH), make_triage(RiskBand.LOW)]
    expected = Body(
        readings=tuple(readings), medical_records=tuple(records), triage_results=tuple(triage)
    ).model_dump_json()
    assert (
        body_json(
            [r.model_dump_json() for r in readings],
            [r.model_dump_json() for r in records],
            [t.model_dump_json() for t in triage],
        )
        == expected
    )
    assert body_json([], [records[0].model_dump_json()]) == (
        Body(medical_records=(records[0],)).model_dump_json()
    )


def test_sealed_items_open_with_their_counts() -> None:
    hub, ingest = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    records, triage = [make_record()], [make_triage(RiskBand.HIGH)]
    sealed = seal_readings(
        (),
        records_json=[r.model_dump_json() for r in records],
        triage_json=[t.model_dump_json() for t in triage],
        hub_id="hub-1",
        batch_id=uuid7(NOW, bytes(10)),
        seq=0,
        now=NOW,
        priority=0,
        hub_key=hub,
        cloud_key=ingest.public_key(),
        limits=DEFAULT_LIMITS,
    )
    opened = open_sealed(sealed, hub_key=hub.public_key(), cloud_keys=ingest)
    assert opened.body.medical_records == tuple(records)
    assert opened.body.triage_results == tuple(triage)
    counts = opened.header.counts
    assert (counts.readings, counts.medical_records, counts.triage_results) == (0, 1, 1)
    assert opened.header.priority.value == "alert"


@dataclass(frozen=True)
class _Item:
    priority: int
    json: str
    key: str


def test_close_items_takes_one_priority_and_never_two_versions_of_a_record() -> None:
    items = [
        _Item(0, "a" * 10, "x"),
        _Item(0, "b" * 10, "x"),  # same record id and revision: left for a later batch
        _Item(0, "c" * 10, "y"),
        _Item(1, "d" * 10, "z"),
    ]
    sizes = [len(i.json) for i in items]
    batch = close_items(items, sizes, BatchLimits(), 0.0, key=lambda i: i.key)
    assert batch is not None
    assert [i.json[0] for i in batch.items] == ["a", "c"]
    assert (batch.priority, batch.reason, batch.nbytes) == (0, CloseReason.PRIORITY, 21)

    pair = [items[2], items[0]]
    by_bytes = close_items(pair, [10, 10], BatchLimits(max_bytes=15), 0.0, key=lambda i: i.key)
    assert by_bytes is not None
    assert len(by_bytes.items) == 1
    assert by_bytes.reason is CloseReason.BYTES
    by_count = close_items(items, sizes, BatchLimits(max_items=1), 0.0, key=lambda i: i.key)
    assert by_count is not None
    assert (len(by_count.items), by_count.reason) == (1, CloseReason.COUNT)
    assert close_items([], [], BatchLimits(), 0.0, key=lambda i: i) is None


@pytest.mark.integration
async def test_records_and_triage_arrive_once_and_high_triage_jumps_the_backlog(
    mosquitto, buffer: Buffer, keys, hub_id
) -> None:
    readings = await fill(buffer, 5000)
    first = make_record(1, rid=uuid4())
    await buffer.sync_records([first], NOW)
    rival = make_record(1, {"weeks": 35}, rid=first.id)  # a conflict: both versions are kept
    await buffer.sync_records([rival, make_record(2)], NOW)
    low = make_triage(RiskBand.LOW)
    high = make_triage(RiskBand.HIGH, at=NOW + timedelta(seconds=1))
    await buffer.add_triage([low, high])

    service = UplinkService(uplink_config(hub_id, mosquitto.port, window=1), buffer, keys.uplink())
    with TestCloud(mosquitto.port, hub_id, keys) as cloud:
        async with Running(service):
            await eventually(lambda: buffer.uplink_status().unsent == 0, what="all delivered")

    assert not cloud.errors
    assert not cloud.conflicts
    header, body = cloud.bodies[0]  # the first batch sent: the high band, at alert priority
    assert body.triage_results == (high,)
    assert header.priority.value == "alert"
    assert cloud.readings == readings
    records = [r for _h, b in cloud.bodies for r in b.medical_records]
    triage = [t for _h, b in cloud.bodies for t in b.triage_results]
    assert sorted(t.id for t in triage) == sorted([low.id, high.id])  # each exactly once
    assert len(records) == 3
    assert {r.content_hash for r in records if r.id == first.id} == {
        first.content_hash,
        rival.content_hash,
    }
    assert all("conflict" in r.flags for r in records if r.id == first.id)
    # The two versions of the conflict never share a batch (the body would refuse them).
    for _h, b in cloud.bodies:
        assert len({(r.id, r.revision) for r in b.medical_records}) == len(b.medical_records)
    stats = buffer.stats()
    assert (stats.records.unsent, stats.triage.unsent, stats.unsent) == (0, 0, 0)
    assert buffer.unsent_bytes == 0


@pytest.mark.integration
async def test_routine_records_wait_behind_alert_readings(
    mosquitto, buffer: Buffer, keys, hub_id
) -> None:
    alerts = await fill(buffer, 30, seed=4, priority=Priority.ALERT)
    record = make_record()
    await buffer.sync_records([record], NOW)

    service = UplinkService(uplink_config(hub_id, mosquitto.port, window=1), buffer, keys.uplink())
    with TestCloud(mosquitto.port, hub_id, keys) as cloud:
        async with Running(service):
            await eventually(lambda: buffer.uplink_status().unsent == 0, what="all delivered")

    kinds = [
        ("record" if body.medical_records else "reading", header.priority.value)
        for header, body in cloud.bodies
    ]
    assert kinds[0] == ("reading", "alert")
    assert kinds[-1] == ("record", "routine")
    assert kinds.count(("record", "routine")) == 1
    assert cloud.readings == alerts
