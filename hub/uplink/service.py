"""The uplink: unsent buffer rows -> sealed batches -> MQTT QoS 1 -> the cloud's signed ack.

Delivery (DESIGN.md, "Delivery guarantee"): a batch is sealed, recorded in the outbox and its
rows assigned in one SQLite transaction before it is published; only a verified ack on
`down/ack` marks its rows delivered (never the broker's PUBACK). Batches without an ack are
republished, byte for byte, after `ack_timeout_s`, after a reconnect and after a restart; the
cloud deduplicates by batch id. A `rejected` ack stops a batch for good and keeps its rows.

One asyncio task per connection sends, one receives acks. Memory is bounded by one page of
rows, one open batch and `window` sealed batches, whatever the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
import structlog
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.buffer.errors import BufferClosed, HubBufferError
from hub.buffer.values import AckOutcome, ItemKind, UnsentItem, UnsentRow, UplinkState
from hub.uplink.batcher import Batch, Batcher, close_items, close_run
from hub.uplink.breaker import BREAKER_GAUGE, Breaker, BreakerState
from hub.uplink.errors import (
    UplinkConfigError,
    UplinkError,
    UplinkRefused,
    UplinkTimeout,
    UplinkUnavailable,
)
from hub.uplink.metrics import UplinkMetrics
from hub.uplink.sealing import seal_readings
from wire.acks import verify_ack
from wire.errors import WireError
from wire.ids import uuid7
from wire.topics import ack_topic, batch_topic, cmd_topic, status_topic

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from uuid import UUID

    from prometheus_client import CollectorRegistry

    from hub.buffer import Buffer
    from hub.uplink.config import UplinkConfig, UplinkKeys

log = structlog.get_logger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
"""MQTT v5 only: how long the broker keeps our session (and queued acks) while we are away."""
_REFUSED_CODES = {
    4,
    5,
}  # CONNACK 3.1.1: bad user name or password, not authorised (section 3.2.2.3)


@dataclass(slots=True, eq=False)
class _Flight:
    """A batch published on this connection and waiting for its ack."""

    batch_id: UUID
    seq: int
    sealed: bytes
    readings: int
    sent_at: float = 0.0
    expired: bool = False


class UplinkService:
    """Forwards the buffer's unsent readings to the cloud until `request_stop()`.

    Build it in the composition root with the buffer, the config and the keys; `await run()`
    in a task; call `wake()` after storing new readings (optional: it also polls);
    `request_stop()` and await the task to stop (it publishes `offline` and disconnects).
    """

    def __init__(
        self,
        config: UplinkConfig,
        buffer: Buffer,
        keys: UplinkKeys,
        *,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
        on_command: Callable[[bytes], Awaitable[None]] | None = None,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._config = config
        self._buffer = buffer
        self._keys = keys
        self.metrics = UplinkMetrics(registry)
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not secrets
        self._clock = clock if clock is not None else _utc_now
        self._tls = _tls_context(config)
        self._batch_topic = batch_topic(config.hub_id)
        self._ack_topic = ack_topic(config.hub_id)
        self._status_topic = status_topic(config.hub_id)
        self._cmd_topic = cmd_topic(config.hub_id)
        self._on_command = on_command
        """Called with the bytes of each message on down/cmd (hub.commands; it never raises)."""
        self._status_extra = status_extra
        """Merged into the retained up/status (command versions in force, and so on)."""
        self._breaker = Breaker(threshold=config.breaker_threshold, probe=config.probe)
        self._batcher: Batcher[UnsentRow] = Batcher(config.batch)
        self._rows: list[UnsentRow] = []
        self._cursor: tuple[int, int] | None = None
        self._flights: dict[UUID, _Flight] = {}
        self._outbox_after: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._broken: UplinkError | None = None
        self._kick = asyncio.Event()
        self._stop = asyncio.Event()
        self._connected = False
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._status_due = 0.0
        self._bad_ack_seen: set[str] = set()

    # --- public -------------------------------------------------------------------------------

    @property
    def breaker_state(self) -> BreakerState:
        """The circuit breaker's state."""
        return self._breaker.state

    @property
    def connected(self) -> bool:
        """True while connected to the broker."""
        return self._connected

    @property
    def in_flight(self) -> int:
        """Batches published on this connection and still waiting for an ack."""
        return len(self._flights)

    def wake(self) -> None:
        """New readings were stored: look for them now instead of at the next poll."""
        self._kick.set()

    def refresh_status(self) -> None:
        """Publish the retained status now (something `status_extra` reports changed)."""
        self._status_due = 0.0
        self._kick.set()

    def request_stop(self) -> None:
        """Ask `run()` to publish `offline`, disconnect and return."""
        self._stop.set()
        self._kick.set()

    async def run(self) -> None:
        """Connect, forward and reconnect with backoff until `request_stop()` (or cancellation)."""
        attempt = 0
        sessions = 0
        loop = asyncio.get_running_loop()
        await self._persist_state()
        while not self._stop.is_set():
            try:
                client = self._client()
                try:
                    await client.__aenter__()
                except aiomqtt.MqttError as exc:
                    raise _translate(exc, self._config.broker_url) from exc
                try:
                    sessions += 1
                    if sessions > 1:
                        self.metrics.reconnects.inc()
                    attempt = 0
                    await self._session(client)
                finally:
                    await _disconnect(client)
                    self._set_connected(value=False)
            except BufferClosed:
                log.info("uplink_buffer_closed")
                return
            except (UplinkError, HubBufferError) as exc:
                await self._failed(exc, loop.time())
            if self._stop.is_set():
                break
            delay = self._config.reconnect.delay(attempt, self._rng)
            attempt += 1
            log.info("uplink_reconnect_wait", seconds=round(delay, 2), attempt=attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        await self._persist_state()
        log.info("uplink_stopped")

    # --- one connection -----------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        config = self._config
        offline = json.dumps({"status": "offline", "hub_id": config.hub_id}).encode()
        will = aiomqtt.Will(self._status_topic, offline, qos=1, retain=True)
        v5 = config.protocol == "5"
        properties = None
        if v5 and not config.clean_session:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        return aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password,
            identifier=config.mqtt_client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=None if v5 else config.clean_session,
            clean_start=(config.clean_session if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY),
            properties=properties,
            timeout=config.timeout_s,
            keepalive=config.keepalive_s,
            tls_context=self._tls,
            max_inflight_messages=max(20, config.window * 2),
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        """Subscribe to acks, announce, republish what is in flight, then send and receive."""
        loop = asyncio.get_running_loop()
        try:
            topics = [(self._ack_topic, 1)]
            if self._on_command is not None:
                topics.append((self._cmd_topic, 1))
            await client.subscribe(topics, timeout=self._config.timeout_s)
        except aiomqtt.MqttError as exc:
            raise _translate(exc, self._config.broker_url) from exc
        self._set_connected(value=True)
        log.info("uplink_connected", broker=self._config.broker_url, hub_id=self._config.hub_id)
        await self._persist_state()
        await self._publish_status(client)
        self._status_due = loop.time() + self._config.status_interval_s
        # Everything in flight is republished on a new connection, oldest first (same bytes).
        self._flights.clear()
        self._broken = None
        # No new batch is recorded until this scan ends, so it cannot meet one of this session.
        self._outbox_after = -1
        receiver = asyncio.create_task(self._receive(client), name="uplink-receive")
        sender = asyncio.create_task(self._send(client), name="uplink-send")
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, sender, *self._tasks):
                task.cancel()
            await asyncio.gather(receiver, sender, *self._tasks, return_exceptions=True)
            self._tasks.clear()
        for task in done:
            task.result()  # raises the error that ended the session, if any
        if self._stop.is_set():
            await self._publish_status(client, online=False)

    async def _receive(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                payload = message.payload
                if (
                    self._on_command is not None
                    and message.topic.matches(self._cmd_topic)
                    and isinstance(payload, bytes | bytearray)
                ):
                    await self._on_command(bytes(payload))  # logs and counts; never raises
                    continue
                if not message.topic.matches(self._ack_topic) or not isinstance(
                    payload, bytes | bytearray
                ):
                    self._bad_ack("not_an_ack", str(message.topic))
                    continue
                await self._on_ack(bytes(payload))
        except aiomqtt.MqttError as exc:
            raise _translate(exc, self._config.broker_url) from exc
        raise UplinkUnavailable("the broker closed the connection", broker=self._config.broker_url)

    def _sealed_bytes(self, batch_id: UUID) -> bytes | None:
        """The bytes we sent for `batch_id` (None if unknown here or already acked)."""
        flight = self._flights.get(batch_id)
        if flight is not None:
            return flight.sealed
        recorded = self._buffer.outbox_batch(batch_id)
        return recorded.sealed if recorded is not None else None

    async def _on_ack(self, payload: bytes) -> None:
        try:
            ack = verify_ack(
                payload, cloud_key=self._keys.cloud_signing, hub_id=self._config.hub_id
            )
        except WireError as exc:
            self._bad_ack(type(exc).__name__, str(exc))
            return
        sealed = self._sealed_bytes(ack.batch_id)
        if sealed is not None and not ack.answers(sealed):
            # The cloud judged other bytes under our batch id (a damaged or tampered copy):
            # that answer is not about what we sent, so we keep sending ours.
            self._bad_ack("payload_mismatch", f"batch {ack.batch_id}: ack answers other bytes")
            return
        result = await self._buffer.ack_batch(
            ack.batch_id,
            seq=ack.seq,
            status=ack.status.value,
            reason=ack.reason,
            at=self._clock(),
        )
        if result.outcome in {AckOutcome.UNKNOWN_BATCH, AckOutcome.SEQ_MISMATCH}:
            self._bad_ack(result.outcome.value, f"batch {ack.batch_id} seq {ack.seq}")
            return
        self._flights.pop(ack.batch_id, None)
        self.metrics.in_flight.set(len(self._flights))
        if self._breaker.success():
            log.info("uplink_breaker_closed")
            await self._breaker_changed()
        if result.outcome is AckOutcome.DELIVERED:
            self.metrics.acked.inc()
            self.metrics.delivered.inc(result.delivered)
            log.debug("batch_acked", batch_id=str(ack.batch_id), readings=result.delivered)
        elif result.outcome is AckOutcome.REJECTED:
            self.metrics.rejected.inc()
            log.error(
                "batch_rejected",
                batch_id=str(ack.batch_id),
                seq=ack.seq,
                reason=ack.reason,
                hint="the cloud quarantined it; its readings stay in the buffer for review",
            )
        self._kick.set()

    def _bad_ack(self, reason: str, detail: str) -> None:
        self.metrics.bad_acks.labels(reason=reason).inc()
        event = "uplink_ack_ignored"
        if reason in self._bad_ack_seen:
            log.debug(event, reason=reason, detail=detail)
        else:
            self._bad_ack_seen.add(reason)
            log.warning(event, reason=reason, detail=detail, note="repeats are logged at debug")

    # --- sending ------------------------------------------------------------------------------

    async def _send(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            self._kick.clear()
            if self._broken is not None:
                raise self._broken
            now = loop.time()
            await self._expire(now)
            for flight in sorted(self._flights.values(), key=lambda f: f.seq):
                if flight.expired and self._may_resend(now):
                    self._publish(client, flight, republish=True, now=now)
            await self._send_outbox(client, now)
            if self._outbox_after is None:
                await self._send_new(client, now)
            if now >= self._status_due:
                self._status_due = now + self._config.status_interval_s
                self._spawn(self._publish_status(client))
            timeout = self._next_wakeup(loop.time())
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout)

    async def _send_outbox(self, client: aiomqtt.Client, now: float) -> None:
        """Republish batches recorded before this connection, oldest first, a window at a time."""
        while self._outbox_after is not None and self._may_send_new(now):
            page = await asyncio.to_thread(
                self._buffer.in_flight_batches,
                after_seq=self._outbox_after,
                limit=self._config.window,
            )
            if not page:
                self._outbox_after = None
                return
            for batch in page:
                if not self._may_send_new(now):
                    return
                self._outbox_after = batch.seq
                if batch.sealed is None or batch.batch_id in self._flights:
                    continue
                flight = _Flight(batch.batch_id, batch.seq, batch.sealed, batch.readings)
                self._flights[batch.batch_id] = flight
                self._publish(client, flight, republish=True, now=now)

    async def _send_new(self, client: aiomqtt.Client, now: float) -> None:
        """Seal, record and publish new batches while the window and the breaker allow."""
        while self._may_send_new(now) and not self._stop.is_set():
            if await self._send_items(client, now):
                continue
            batch = self._next_batch(now)
            if batch is None:
                return
            created = self._clock()
            batch_id = uuid7(created, os.urandom(10))
            record = await self._buffer.record_batch(
                batch_id=batch_id,
                priority=batch.priority,
                created_at=created,
                readings=batch.items,
                seal=self._sealer(
                    batch_id, created, batch.priority, readings=[r.json for r in batch.items]
                ),
            )
            if self._batcher.empty:
                # Re-read from the start after a batch: an alert stored meanwhile goes next.
                self._rows.clear()
                self._cursor = None
            assert record.sealed is not None  # noqa: S101 - a new record holds its bytes
            flight = _Flight(batch_id, record.seq, record.sealed, record.readings)
            self._flights[batch_id] = flight
            self._publish(client, flight, republish=False, now=now)

    async def _send_items(self, client: aiomqtt.Client, now: float) -> bool:
        """Seal, record and publish one batch of records and triage results if one is due.

        Due when some wait and none of the readings waiting is more urgent: a high-band triage
        result (alert) goes before any routine reading backlog; routine records and triage go
        before routine readings. Returns False when nothing was sent.
        """
        limits = self._batcher.limits
        items = self._buffer.unsent_items(limit=limits.max_items)
        if not items:
            return False
        if items[0].priority > 0 and self._reading_priority() < items[0].priority:
            return False
        batch = close_items(items, [i.nbytes for i in items], limits, now, key=_item_key)
        if batch is None or not batch.items:
            return False
        created = self._clock()
        batch_id = uuid7(created, os.urandom(10))
        record = await self._buffer.record_batch(
            batch_id=batch_id,
            priority=batch.priority,
            created_at=created,
            readings=(),
            items=batch.items,
            seal=self._sealer(
                batch_id,
                created,
                batch.priority,
                records=[i.json for i in batch.items if i.kind is ItemKind.MEDICAL_RECORD],
                triage=[i.json for i in batch.items if i.kind is ItemKind.TRIAGE_RESULT],
            ),
        )
        assert record.sealed is not None  # noqa: S101 - a new record holds its bytes
        flight = _Flight(batch_id, record.seq, record.sealed, record.readings)
        self._flights[batch_id] = flight
        self._publish(client, flight, republish=False, now=now)
        return True

    def _reading_priority(self) -> int:
        """The priority of the most urgent reading waiting (open batch included); 99 if none."""
        best = 99
        if len(self._batcher):
            best = self._current_priority()
        head = self._buffer.unsent_rows(after=None, limit=1)
        return min(best, head[0].priority) if head else best

    def _sealer(
        self,
        batch_id: UUID,
        created: datetime,
        priority: int,
        *,
        readings: Sequence[str] = (),
        records: Sequence[str] = (),
        triage: Sequence[str] = (),
    ) -> Callable[[int], bytes]:
        """The sealing function `record_batch` calls, inside its transaction, with the seq."""
        config, keys = self._config, self._keys

        def seal(seq: int) -> bytes:
            return seal_readings(
                readings,
                records_json=records,
                triage_json=triage,
                hub_id=config.hub_id,
                batch_id=batch_id,
                seq=seq,
                now=created,
                priority=priority,
                hub_key=keys.hub_identity,
                cloud_key=keys.cloud_ingest,
                limits=config.limits,
            )

        return seal

    def _next_batch(self, now: float) -> Batch[UnsentRow] | None:
        """The next closed batch from the unsent rows, or None when it must wait."""
        limits = self._batcher.limits
        while True:
            ready = self._batcher.poll(now)
            if ready is not None:
                return ready
            if not self._rows:
                rows = self._buffer.unsent_rows(
                    after=self._cursor, limit=max(self._config.page_size, limits.max_items + 1)
                )
                if not rows:
                    return self._catch_up(now)
                if self._batcher.empty:
                    # A backlog: the page closes a whole batch; no row goes through the batcher.
                    batch = close_run(rows, [r.nbytes for r in rows], limits, now)
                    if batch is not None:
                        last = batch.items[-1]
                        self._cursor = (last.priority, last.seq)
                        self._rows = rows[len(batch.items) :][::-1]
                        return batch
                rows.reverse()  # popped from the end, in send order
                self._rows = rows
            row = self._rows.pop()
            self._cursor = (row.priority, row.seq)
            batch = self._batcher.add(row, now)
            if batch is not None:
                return batch

    def _catch_up(self, now: float) -> Batch[UnsentRow] | None:
        """The backlog is read: close the open batch early if a more urgent row now waits."""
        if len(self._batcher) == 0:
            self._cursor = None
            return None
        head = self._buffer.unsent_rows(after=None, limit=1)
        deadline = self._batcher.deadline
        if head and head[0].priority < self._current_priority():
            return self._batcher.flush(now)
        if deadline is not None and now >= deadline:
            return self._batcher.poll(now)
        return None

    def _current_priority(self) -> int:
        return self._cursor[0] if self._cursor is not None else 0

    def _publish(
        self, client: aiomqtt.Client, flight: _Flight, *, republish: bool, now: float
    ) -> None:
        flight.sent_at = now
        flight.expired = False
        if self._breaker.state is BreakerState.OPEN:
            self._breaker.probing()
            log.info("uplink_probe", batch_id=str(flight.batch_id))
            self._spawn(self._breaker_changed())
        self.metrics.in_flight.set(len(self._flights))
        (self.metrics.republished if republish else self.metrics.sent).inc()
        self._spawn(self._publish_one(client, flight))

    async def _publish_one(self, client: aiomqtt.Client, flight: _Flight) -> None:
        try:
            await client.publish(
                self._batch_topic, flight.sealed, qos=1, timeout=self._config.timeout_s
            )
        except aiomqtt.MqttError as exc:
            error = _translate(exc, self._config.broker_url)
            if isinstance(error, UplinkTimeout):
                # No PUBACK in time: the ack timeout republishes it; count toward the breaker.
                log.warning("batch_puback_timeout", batch_id=str(flight.batch_id))
                await self._failed(error, asyncio.get_running_loop().time())
            else:
                self._broken = error
                self._kick.set()
            return
        try:
            await self._buffer.mark_sent(flight.batch_id, at=self._clock())
        except BufferClosed:
            return

    async def _expire(self, now: float) -> None:
        """Flights without an ack after `ack_timeout_s` are due again, each one a failure."""
        for flight in list(self._flights.values()):
            if not flight.expired and now - flight.sent_at >= self._config.ack_timeout_s:
                flight.expired = True
                log.warning("batch_ack_timeout", batch_id=str(flight.batch_id), seq=flight.seq)
                await self._failed(
                    UplinkTimeout("no ack in time", broker=self._config.broker_url), now
                )

    def _may_resend(self, now: float) -> bool:
        if self._breaker.state is BreakerState.CLOSED:
            return True
        return self._breaker.probe_due(now)

    def _may_send_new(self, now: float) -> bool:
        state = self._breaker.state
        if state is BreakerState.CLOSED:
            return len(self._flights) < self._config.window
        if state is BreakerState.OPEN:
            return not self._flights and self._breaker.probe_due(now)
        return False

    def _next_wakeup(self, now: float) -> float:
        """Seconds until something is due: an ack deadline, the open batch, a probe, a poll."""
        times = [self._status_due, now + self._config.idle_poll_s]
        times += [
            f.sent_at + self._config.ack_timeout_s for f in self._flights.values() if not f.expired
        ]
        if self._breaker.state is BreakerState.OPEN:
            times.append(self._breaker.next_probe_at)
        deadline = self._batcher.deadline
        if deadline is not None and self._may_send_new(now):
            times.append(deadline)
        return max(0.0, min(times) - now)

    # --- state, status and errors -------------------------------------------------------------

    async def _failed(self, error: UplinkError | HubBufferError, now: float) -> None:
        self._last_error = str(error)
        self._last_error_at = self._clock()
        if isinstance(error, HubBufferError):
            log.error("uplink_buffer_error", error=str(error))
        else:
            log.warning("uplink_error", error=str(error), kind=type(error).__name__)
        if isinstance(error, UplinkError) and self._breaker.failure(now, self._rng):
            log.warning(
                "uplink_breaker_open",
                failures=self._breaker.failures,
                next_probe_in_s=round(self._breaker.next_probe_at - now, 2),
            )
        await self._breaker_changed()

    async def _breaker_changed(self) -> None:
        self.metrics.breaker.set(BREAKER_GAUGE[self._breaker.state])
        await self._persist_state()

    def _set_connected(self, *, value: bool) -> None:
        self._connected = value
        self.metrics.connected.set(1 if value else 0)

    async def _persist_state(self) -> None:
        state = UplinkState(
            breaker=self._breaker.state.value,
            connected=self._connected,
            updated_at=self._clock(),
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )
        with contextlib.suppress(BufferClosed):
            await self._buffer.record_uplink_state(state)

    async def _publish_status(self, client: aiomqtt.Client, *, online: bool = True) -> None:
        """Refresh the backlog gauges and publish the retained status."""
        status = await asyncio.to_thread(self._buffer.uplink_status)
        now = self._clock()
        oldest = status.oldest_unsent_received_at
        self.metrics.backlog.set(status.unsent)
        self.metrics.oldest_unsent_age.set(
            max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        )
        body: dict[str, Any] = {
            "status": "online" if online else "offline",
            "hub_id": self._config.hub_id,
            "version": self._config.version,
            "backlog": status.unsent,
            "at": now.isoformat(),
        }
        if self._status_extra is not None:
            try:
                extra = await asyncio.to_thread(self._status_extra)
            except Exception as exc:  # a broken hook must not stop the status  # noqa: BLE001
                log.warning("uplink_status_extra_failed", error=repr(exc))
            else:
                body = extra | body
        try:
            await client.publish(
                self._status_topic,
                json.dumps(body).encode(),
                qos=1,
                retain=True,
                timeout=self._config.timeout_s,
            )
        except aiomqtt.MqttError as exc:
            raise _translate(exc, self._config.broker_url) from exc

    def _spawn(self, coro: Any) -> None:  # noqa: ANN401 - any coroutine returning None
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, UplinkError):
            self._broken = exc
        elif exc is not None:
            self._broken = UplinkUnavailable(
                f"uplink task failed: {exc!r}", broker=self._config.broker_url
            )
            log.error("uplink_task_failed", error=repr(exc))
        if exc is not None:
            self._kick.set()


def _item_key(item: UnsentItem) -> tuple[str, ...]:
    """Items of one batch must differ by this: a record's id and revision, a triage id."""
    return (item.kind.value, *item.key[:2])


def _translate(exc: aiomqtt.MqttError, broker: str) -> UplinkError:
    """The uplink error for an aiomqtt/paho failure (the only place that looks at them)."""
    rc = getattr(exc, "rc", None)
    code = getattr(rc, "value", rc)
    if isinstance(exc, MqttConnectError) and (
        code in _REFUSED_CODES or (isinstance(code, int) and code >= 0x80)  # noqa: PLR2004 - v5 reason codes
    ):
        return UplinkRefused(
            f"the broker {broker} refused this hub: {exc}", broker=broker, code=code
        )
    message = str(exc)
    if "timed out" in message:
        hint = (
            " (over TLS a broker that rejects the client certificate looks like this: check"
            " uplink.tls_ca, tls_cert and tls_key against the broker's CA)"
            if broker.startswith("mqtts://")
            else ""
        )
        return UplinkTimeout(f"the broker {broker} did not answer in time{hint}", broker=broker)
    return UplinkUnavailable(f"broker {broker}: {message}", broker=broker)


async def _disconnect(client: aiomqtt.Client) -> None:
    """Leave the connection; a failure to say goodbye cleanly changes nothing."""
    with contextlib.suppress(aiomqtt.MqttError, OSError):
        await client.__aexit__(None, None, None)


def _tls_context(config: UplinkConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(config.tls_ca) if config.tls_ca is not None else None
        )
        if config.tls_cert is not None and config.tls_key is not None:
            context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise UplinkConfigError(f"uplink TLS files cannot be used: {exc}") from exc
    return context


def _utc_now() -> datetime:
    return datetime.now(UTC)
