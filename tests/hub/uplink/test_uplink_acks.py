"""Forged, misdirected and garbage acks change nothing; the service keeps running."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from uplink_testkit import Running, TestCloud, always, eventually, fill, uplink_config

from hub.uplink import UplinkService
from wire.acks import AckStatus
from wire.envelope import peek_header
from wire.ids import uuid7

pytestmark = pytest.mark.integration


async def test_bad_acks_are_counted_and_ignored(mosquitto, buffer, keys, hub_id) -> None:
    await fill(buffer, 50)  # one batch
    registry = CollectorRegistry()
    config = uplink_config(hub_id, mosquitto.port, ack_timeout_s=30.0)
    service = UplinkService(config, buffer, keys.uplink(), registry=registry)

    def bad(reason: str) -> float:
        return registry.get_sample_value("tecsa_uplink_bad_acks_total", {"reason": reason}) or 0

    with TestCloud(mosquitto.port, hub_id, keys, policy=always(None)) as cloud:
        async with Running(service):
            await cloud.until(lambda c: len(c.batches) == 1)
            header = peek_header(next(iter(cloud.batches.values())))
            other = Ed25519PrivateKey.generate()
            cloud.publish_ack(cloud.sign(header, AckStatus.STORED, key=other))  # forged
            cloud.publish_ack(cloud.sign(header, AckStatus.STORED, hub_id="someone-else"))
            cloud.publish_ack(b"\x00garbage" * 3)
            cloud.publish_ack(b"")
            cloud.publish_ack(cloud.sign(header, AckStatus.STORED, seq=header.seq + 7))
            stranger = header.model_copy(update={"batch_id": uuid7(header.created_at, b"x" * 10)})
            cloud.publish_ack(cloud.sign(stranger, AckStatus.STORED))
            # The cloud's genuine "rejected" for a damaged copy of our batch: not about our bytes.
            cloud.publish_ack(cloud.sign(header, AckStatus.REJECTED, payload=b"a damaged copy"))
            await eventually(
                lambda: (
                    bad("IntegrityError") == 2
                    and bad("DecodeError") == 2
                    and bad("seq_mismatch") == 1
                    and bad("unknown_batch") == 1
                    and bad("payload_mismatch") == 1
                ),
                what="seven bad acks counted",
            )
            assert buffer.uplink_status().unsent == 50
            assert buffer.stats().delivered == 0
            assert service.connected

            cloud.publish_ack(cloud.sign(header, AckStatus.STORED))  # the real one
            await eventually(lambda: buffer.uplink_status().unsent == 0)
            cloud.publish_ack(cloud.sign(header, AckStatus.STORED))  # repeated: harmless
            await eventually(
                lambda: registry.get_sample_value("tecsa_uplink_batches_acked_total") == 1
            )

    assert buffer.stats().delivered == 50
