"""Publish signed commands to hubs' `down/cmd` topics with QoS 1 (aiomqtt, like the ingestor)."""

from __future__ import annotations

import ssl
import uuid
from typing import TYPE_CHECKING

import aiomqtt
import structlog

from cloud.commands.errors import BrokerUnavailable
from cloud.ingest.service import Broker

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cloud.config import MqttSettings

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_S = 10.0


async def publish_commands(
    mqtt: MqttSettings,
    messages: Sequence[tuple[str, bytes]],
    *,
    timeout_s: float = PUBLISH_TIMEOUT_S,
) -> None:
    """Publish each (topic, signed command) with QoS 1; returns once the broker acked them all.

    Raises `BrokerUnavailable` if the broker cannot be reached or stops answering.
    """
    broker = Broker.from_url(
        mqtt.broker_url,
        username=mqtt.username,
        password=None if mqtt.password is None else mqtt.password.get_secret_value(),
    )
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=f"tecsa-cloud-cmd-{uuid.uuid4().hex[:12]}",
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=True,
        timeout=timeout_s,
        tls_context=ssl.create_default_context() if broker.tls else None,
    )
    where = f"{broker.host}:{broker.port}"
    try:
        async with client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1, timeout=timeout_s)
    except (aiomqtt.MqttError, OSError) as exc:
        raise BrokerUnavailable(f"broker {where}: {exc}") from exc
    log.info("commands_published", broker=where, commands=len(messages))
