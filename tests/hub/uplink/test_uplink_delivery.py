"""Delivery against a real Mosquitto: only a verified ack marks rows delivered."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from prometheus_client import CollectorRegistry
from uplink_testkit import Running, TestCloud, always, eventually, fill, observe, uplink_config

from hub.buffer import OutboxState, Priority
from hub.uplink import BreakerState, UplinkService
from wire.acks import AckStatus

pytestmark = pytest.mark.integration


async def test_every_reading_arrives_once_and_is_marked_delivered(
    mosquitto, buffer, keys, hub_id
) -> None:
    produced = await fill(buffer, 730)
    registry = CollectorRegistry()
    service = UplinkService(
        uplink_config(hub_id, mosquitto.port), buffer, keys.uplink(), registry=registry
    )
    with TestCloud(mosquitto.port, hub_id, keys) as cloud:
        async with Running(service):
            await eventually(lambda: buffer.uplink_status().unsent == 0, what="all delivered")
            await eventually(  # the metric follows the commit it counts
                lambda: registry.get_sample_value("tecsa_uplink_readings_delivered_total") == 730
            )
        cloud.wait(lambda c: any(json.loads(s)["status"] == "offline" for s in c.statuses))

    assert cloud.readings == produced
    assert cloud.deliveries == len(produced)  # nothing sent twice on a clean run
    assert not cloud.errors
    assert not cloud.conflicts
    assert sorted(cloud.seqs) == list(range(len(cloud.seqs)))  # monotonic, none reused
    online = [json.loads(s) for s in cloud.statuses if json.loads(s)["status"] == "online"]
    assert online[0]["hub_id"] == hub_id
    assert online[0]["backlog"] == len(produced)
    status = buffer.uplink_status()
    assert (status.in_flight_batches, status.rejected_batches) == (0, 0)
    assert status.acked_batches == len(cloud.batches)
    assert status.last_ack_status == "stored"
    assert registry.get_sample_value("tecsa_uplink_readings_delivered_total") == len(produced)
    assert registry.get_sample_value("tecsa_uplink_batches_acked_total") == len(cloud.batches)


async def test_alerts_go_first(mosquitto, buffer, keys, hub_id) -> None:
    routine = await fill(buffer, 200, seed=1)
    alerts = await fill(buffer, 30, seed=2, priority=Priority.ALERT)
    order: list[str] = []

    def record(header):
        order.append(header.priority.value)
        return AckStatus.STORED

    service = UplinkService(uplink_config(hub_id, mosquitto.port, window=1), buffer, keys.uplink())
    with TestCloud(mosquitto.port, hub_id, keys, policy=record) as cloud:
        async with Running(service):
            await eventually(lambda: buffer.uplink_status().unsent == 0)

    assert cloud.readings == routine | alerts
    assert order[0] == "alert"
    assert "alert" not in order[order.index("routine") :]


async def test_no_ack_means_nothing_delivered_and_identical_republishing(
    mosquitto, buffer, keys, hub_id
) -> None:
    await fill(buffer, 60)
    registry = CollectorRegistry()
    config = uplink_config(hub_id, mosquitto.port, ack_timeout_s=0.3, breaker_threshold=1000)
    service = UplinkService(config, buffer, keys.uplink(), registry=registry)
    with TestCloud(mosquitto.port, hub_id, keys, policy=always(None)) as cloud:
        async with Running(service):
            await cloud.until(lambda c: len(c.batches) >= 2 and min(c.publications.values()) >= 3)

    assert not cloud.conflicts  # every republication carried the very same bytes
    assert buffer.uplink_status().unsent == 60
    assert buffer.stats().delivered == 0
    assert registry.get_sample_value("tecsa_uplink_batches_republished_total") >= 2
    assert all(b.state is OutboxState.IN_FLIGHT for b in buffer.in_flight_batches(limit=100))


async def test_rejected_batch_is_not_resent_and_rows_are_kept(
    mosquitto, buffer, keys, hub_id
) -> None:
    produced = await fill(buffer, 100)
    rejected_once: list[str] = []

    def reject_first(header):
        if not rejected_once or rejected_once[0] == str(header.batch_id):
            rejected_once.append(str(header.batch_id))
            return AckStatus.REJECTED
        return AckStatus.STORED

    config = uplink_config(hub_id, mosquitto.port, ack_timeout_s=0.3)
    service = UplinkService(config, buffer, keys.uplink())
    with TestCloud(mosquitto.port, hub_id, keys, policy=reject_first) as cloud:
        async with Running(service):
            await eventually(lambda: buffer.uplink_status().rejected_batches == 1)
            await eventually(lambda: buffer.uplink_status().unsent == 50)
            await observe(1.0)  # over three ack timeouts: the rejected batch is never resent
            seen = cloud.publications[next(iter(cloud.batches))]

    assert seen == 1
    assert len(rejected_once) == 1
    status = buffer.uplink_status()
    assert status.rejected_readings == 50
    assert status.unsent == 50  # kept, flagged by their rejected batch, for review
    assert cloud.readings == produced - _ids_of(buffer, rejected_once[0])
    batch = buffer.outbox_batch(UUID(rejected_once[0]))
    assert batch is not None
    assert batch.state is OutboxState.REJECTED
    assert batch.ack_reason == "test says no"
    assert batch.sealed is not None  # the quarantined bytes stay for review
    assert service.breaker_state is BreakerState.CLOSED


def _ids_of(buffer, batch_id: str) -> set[str]:
    return {str(r.id) for r in buffer.batch_rows(UUID(batch_id))}
