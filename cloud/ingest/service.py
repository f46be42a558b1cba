"""The ingestor's I/O shell: MQTT in (aiomqtt), the pipeline in worker threads, signed acks out.

Two stages, each in a worker thread (the database and S3 calls block), joined by a small
bounded queue: the first takes a message and prepares it (`pipeline.prepare_message`: verify,
open, archive to S3), the second stores it (`Prepared.commit`, one committed transaction) and
then publishes the signed ack, QoS 1. So batch n+1 is opened and archived while batch n is in
PostgreSQL, yet every batch's own steps run in order (archived, then committed, then acked)
and acks go out in the order the messages were taken. At most `depth` prepared batches wait
between the stages. Run N ingestors on one shared subscription to go further. A transient
failure is retried for a while, then left to the hub, which sends the same bytes again until
it gets an ack.

Shutdown (the `stop` event, set on SIGTERM/SIGINT by the composition root): no new message is
taken; the ones in hand (at most `depth` + 2) are finished, each acked only if it was
committed; then the subscription is dropped so that the share group routes to the other
ingestors. A lost broker connection abandons the ones in hand unacked (the hubs resend them).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import aiomqtt
import structlog

from cloud.db.errors import (
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    SchemaError,
)
from cloud.errors import CloudError, ConfigError, RetryableCloudError
from cloud.ingest.pipeline import (
    Outcome,
    Prepared,
    Reply,
    Verdict,
    no_failpoint,
    prepare_message,
)
from cloud.storage.errors import StorageError, StorageUnavailable
from wire.acks import sign_ack
from wire.envelope import DEFAULT_LIMITS, Limits
from wire.keys import key_id
from wire.topics import Channel, ack_topic, subscription

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from cloud.ingest.metrics import IngestMetrics
    from cloud.ingest.pipeline import IngestPorts

HOUSEKEEPING_EVERY_S = 6 * 3600
"""How often the ingestor makes sure the coming months' partitions exist."""

log = structlog.get_logger("cloud.ingest")
_T = TypeVar("_T")

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0
RETRY_FOR_S = 10.0
"""How long a transient failure is retried in-process before the message is left to the hub."""
MAX_QUEUED = 1000
"""Messages held in memory, taken from the broker but not yet processed; beyond, dropped (the
hubs send them again): memory stays bounded whatever the backlog."""
PIPELINE_DEPTH = 2
"""Prepared batches (opened and archived) waiting for the storing stage, at most."""
MQTT_TIMEOUT_S = 10.0
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker is and how to log in."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(
        cls, url: str, *, username: str | None = None, password: str | None = None
    ) -> Broker:
        """`mqtt://host[:port]` or `mqtts://host[:port]` (TLS with the system's CAs)."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"broker URL {url!r}: use mqtt://host:port or mqtts://host:port")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigError(f"broker URL {url!r} has an invalid port") from None
        return cls(parts.hostname, port, username, password, tls=parts.scheme == "mqtts")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    """Consumes sealed batches from the broker and answers each with a signed ack."""

    after_stored: Callable[[Outcome], None] | None = None
    """Called in the event loop after a batch is committed and acked; must return at once (e.g.
    `cloud.models.agreement.CloudScorer.after_stored`). Its errors are logged, never raised."""

    on_status: Callable[[str, bytes], None] | None = None
    """When set, every hub's retained up/status is also subscribed to (not shared: each ingestor
    sees each status) and handed as (topic, payload) to this hook in the event loop; it must
    return at once (`cloud.commands.sync.CommandResync.offer`). Its errors are logged."""

    def __init__(
        self,
        *,
        broker: Broker,
        ports: IngestPorts,
        cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey],
        signing_key: Ed25519PrivateKey,
        metrics: IngestMetrics,
        share_group: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        failpoint: Callable[[str], None] | None = None,
        client_id: str | None = None,
        retry_for: float = RETRY_FOR_S,
        max_queued: int = MAX_QUEUED,
        clock: Callable[[], datetime] = _utcnow,
        depth: int = PIPELINE_DEPTH,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_every_s: float = HOUSEKEEPING_EVERY_S,
    ) -> None:
        self._broker = broker
        self._ports = ports
        self._cloud_keys = cloud_keys
        self._signing_key = signing_key
        self._signing_key_id = key_id(signing_key)
        self.metrics = metrics
        self._share_group = share_group or None
        self.filter = subscription(Channel.BATCH, share_group=self._share_group)
        self.status_filter = subscription(Channel.STATUS)
        self._limits = limits
        self._failpoint = failpoint or no_failpoint
        self._client_id = client_id
        self._retry_for = retry_for
        self._max_queued = max_queued
        self._clock = clock
        self._housekeeping = housekeeping
        self._housekeeping_every_s = housekeeping_every_s
        self._depth = max(1, depth)
        self.subscribed = asyncio.Event()
        """Set while subscribed (tests and the demo wait on it)."""
        self._warned: set[tuple[str, str | None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, reconnecting with backoff whenever the broker goes away.

        Housekeeping (creating next months' partitions) runs at start and then periodically.
        """
        chores = asyncio.create_task(self._chores(stop)) if self._housekeeping else None
        try:
            await self._run(stop)
        finally:
            if chores is not None:
                chores.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chores

    async def _chores(self, stop: asyncio.Event) -> None:
        assert self._housekeeping is not None  # noqa: S101 - run() checks
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._housekeeping)
            except CloudError as exc:  # the database may be down: try again next time
                log.warning("housekeeping_failed", error=str(exc))
            await _wait(stop, self._housekeeping_every_s)

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = RECONNECT_MIN_S
        connections = 0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    connections += 1
                    if connections > 1:
                        self.metrics.reconnects.inc()
                    backoff = RECONNECT_MIN_S
                    await self._consume(client, stop)
            except aiomqtt.MqttError as exc:
                log.warning("broker_unavailable", error=str(exc), retry_in_s=round(backoff, 2))
            finally:
                self.subscribed.clear()
                self.metrics.connected.set(0)
            if stop.is_set():
                break
            delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
            await _wait(stop, delay)
            backoff = min(backoff * 2, RECONNECT_MAX_S)
        log.info("ingest_stopped")

    def _client(self) -> aiomqtt.Client:
        v5 = self._share_group is not None  # shared subscriptions are MQTT v5 (wire.md section 1)
        return aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            username=self._broker.username,
            password=self._broker.password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            timeout=MQTT_TIMEOUT_S,
            max_queued_incoming_messages=self._max_queued,
            tls_context=ssl.create_default_context() if self._broker.tls else None,
        )

    async def _consume(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        await client.subscribe(self.filter, qos=1)
        if self.on_status is not None:
            await client.subscribe(self.status_filter, qos=1)
        self.metrics.connected.set(1)
        self.subscribed.set()
        log.info("ingest_subscribed", filter=self.filter, broker=self._broker.host)
        ready: asyncio.Queue[_Taken | None] = asyncio.Queue(maxsize=self._depth)
        try:
            async with asyncio.TaskGroup() as stages:
                stages.create_task(self._take_and_prepare(client, stop, ready))
                stages.create_task(self._store_and_ack(client, ready))
        except* aiomqtt.MqttError as lost:  # the batches in hand are abandoned unacked
            raise _first(lost) from None
        try:  # let the share group route to the other ingestors at once
            await client.unsubscribe(self.filter, timeout=2)
        except aiomqtt.MqttError:
            log.debug("unsubscribe_failed")

    async def _take_and_prepare(
        self, client: aiomqtt.Client, stop: asyncio.Event, ready: asyncio.Queue[_Taken | None]
    ) -> None:
        """Stage 1: take messages until `stop`, prepare each, queue it for stage 2, in order."""
        messages = client.messages
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                taking = asyncio.ensure_future(anext(messages))
                await asyncio.wait({taking, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not taking.done():
                    taking.cancel()
                    break
                message = taking.result()
                if self.on_status is not None and message.topic.matches(self.status_filter):
                    self._offer_status(self.on_status, message)
                    continue
                await ready.put(await self._prepare(message, stop))
        finally:
            stopping.cancel()
        await ready.put(None)  # stage 2 finishes what is queued, then ends

    @staticmethod
    def _offer_status(hook: Callable[[str, bytes], None], message: aiomqtt.Message) -> None:
        payload = message.payload
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        try:
            hook(message.topic.value, data)
        except Exception:  # a hook's bug never stops the batches
            log.exception("on_status_failed", topic=message.topic.value)

    async def _prepare(self, message: aiomqtt.Message, stop: asyncio.Event) -> _Taken:
        start = time.perf_counter()
        received_at = self._clock()
        payload = message.payload
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        topic = message.topic.value

        def prepare() -> Outcome | Prepared:
            return prepare_message(
                topic,
                data,
                received_at,
                ports=self._ports,
                cloud_keys=self._cloud_keys,
                limits=self._limits,
                failpoint=self._failpoint,
            )

        return _Taken(topic, data, start, await self._attempt(prepare, topic, stop), stop)

    async def _store_and_ack(
        self, client: aiomqtt.Client, ready: asyncio.Queue[_Taken | None]
    ) -> None:
        """Stage 2: store each prepared batch (committed), then publish its ack; in order."""
        while (taken := await ready.get()) is not None:
            outcome = taken.decided
            if isinstance(outcome, Prepared):
                outcome = await self._attempt(outcome.commit, taken.topic, taken.stop)
            if outcome is not None:
                self.metrics.count(outcome)
                self._log(outcome)
                if outcome.reply is not None:
                    await self._publish(client, outcome.reply, taken.data)
                if self.after_stored is not None and outcome.verdict is Verdict.STORED:
                    try:
                        self.after_stored(outcome)
                    except Exception:  # a hook's bug never fails a batch
                        log.exception("after_stored_failed")
            self.metrics.processing_seconds.observe(time.perf_counter() - taken.start)

    async def _attempt(self, step: Callable[[], _T], topic: str, stop: asyncio.Event) -> _T | None:
        """`step()` in a worker thread; None when the message stays undecided (hub resends)."""
        deadline = time.monotonic() + self._retry_for
        delay = 0.1
        while True:
            try:
                return await asyncio.to_thread(step)
            except RetryableCloudError as exc:
                self.metrics.errors.labels(error_kind(exc)).inc()
                if stop.is_set() or time.monotonic() + delay > deadline:
                    log.warning("batch_left_for_retry", topic=topic, error=str(exc))
                    return None
                log.info("batch_retrying", topic=topic, error=str(exc), in_s=delay)
                await _wait(stop, delay)
                delay = min(delay * 2, 2.0)
            except CloudError as exc:  # an operator must act (schema, bucket, permissions)
                self.metrics.errors.labels(error_kind(exc)).inc()
                log.error("batch_undecided", topic=topic, error=str(exc))
                return None
            except Exception:  # a bug on one batch must not stop the others
                self.metrics.errors.labels("internal").inc()
                log.exception("batch_failed", topic=topic)
                return None

    async def _publish(self, client: aiomqtt.Client, reply: Reply, payload: bytes) -> None:
        ack = reply.ack(now=self._clock(), key=self._signing_key_id, payload=payload)
        try:
            await client.publish(ack_topic(reply.hub_id), sign_ack(ack, self._signing_key), qos=1)
        except aiomqtt.MqttError:
            # Decided (and committed, if stored) but unacked: the hub resends, we answer
            # "duplicate". The connection is likely gone; reconnect.
            self.metrics.errors.labels("ack_publish").inc()
            raise
        self.metrics.acks.labels(reply.status.value).inc()

    def _log(self, outcome: Outcome) -> None:
        fields = {
            "hub_id": outcome.hub_id,
            "batch_id": str(outcome.batch_id) if outcome.batch_id else None,
            "size": outcome.size,
        }
        if outcome.verdict in {Verdict.STORED, Verdict.DUPLICATE}:
            inserted = outcome.stored.inserted if outcome.stored else 0
            log.debug("batch_decided", verdict=outcome.verdict.value, inserted=inserted, **fields)
            return
        # A hub sending bad batches sends many: warn once per hub, then at debug.
        key = (outcome.verdict.value, outcome.hub_id)
        level = log.debug if key in self._warned else log.warning
        self._warned.add(key)
        level("batch_refused", verdict=outcome.verdict.value, reason=outcome.reason, **fields)


@dataclass(frozen=True, slots=True)
class _Taken:
    """A message taken from the broker, as it goes from stage 1 to stage 2."""

    topic: str
    data: bytes
    start: float
    decided: Outcome | Prepared | None
    """Decided already (refused, duplicate...), prepared for storing, or left undecided."""
    stop: asyncio.Event


def _first(group: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    """The first broker error of a (possibly nested) exception group."""
    first = group.exceptions[0]
    return first if isinstance(first, aiomqtt.MqttError) else _first(first)


def error_kind(exc: CloudError) -> str:
    """The `kind` label of an undecided message's error."""
    kinds: tuple[tuple[type[CloudError], str], ...] = (
        (DatabaseUnavailable, "database_unavailable"),
        (DatabaseConflict, "database_conflict"),
        (SchemaError, "database_schema"),
        (DatabaseError, "database"),
        (StorageUnavailable, "storage_unavailable"),
        (StorageError, "storage"),
    )
    for cls, kind in kinds:
        if isinstance(exc, cls):
            return kind
    return "cloud"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
