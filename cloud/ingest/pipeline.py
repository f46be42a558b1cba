"""What the ingestor does with one MQTT message: the decision and its steps, behind ports.

`process_message` takes the topic, the payload and the receive time, and performs DESIGN.md's
"Delivery guarantee" in this order, each step only after the previous one succeeded:

1. size cap (`Limits.max_sealed`), before any work on the bytes;
2. the topic names the hub (`wire.topics.parse_topic`);
3. `peek_header`: the header's `hub_id` must be the topic's;
4. the hub registry: an unknown or revoked hub is quarantined;
5. the batch id decided before → ack "duplicate" (or the earlier "rejected") without opening;
6. the signature, then `open_sealed` (decrypt, decompress, validate);
7. archive the sealed bytes (`raw/...`, write-once, idempotent);
8. `store_batch`: one transaction, committed when it returns;
9. only then the reply: "stored" (or "duplicate") with counts.

A batch that fails 1-6 (or that PostgreSQL refuses) is quarantined, in S3 and in a table, and
answered "rejected" with the reason when its header names a batch; a hub can do nothing better
than keep its rows for review. Transient failures (`RetryableCloudError`: S3 or PostgreSQL
unavailable, a serialization conflict) and any other `CloudError` propagate: nothing is
answered, nothing quarantined, and the hub's republication of the same bytes finds every step
idempotent. Nothing here touches the network, the clock or the environment itself: the ports
do, and the caller publishes the reply.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature
from pydantic import ValidationError

from cloud.db.errors import DataRefused, UnknownHub
from cloud.storage.errors import ArchiveConflict
from wire.acks import Ack, AckCounts, AckStatus
from wire.envelope import (
    DEFAULT_LIMITS,
    MAGIC,
    SIGNATURE_LEN,
    VERSION,
    Header,
    Limits,
    open_sealed,
    peek_header,
)
from wire.errors import WireError
from wire.topics import Channel, parse_topic

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime
    from uuid import UUID

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from cloud.db.hubs import Hub
    from cloud.db.loader import DecidedBatch, StoreResult
    from wire.items import Body

MAX_REASON = 500  # an ack's `reason` is at most 500 characters (docs/wire.md section 4.1)
QUARANTINE_SAMPLE = 64 * 1024
"""Bytes kept of a payload over `max_sealed`: enough to see what it was, not a way to fill S3."""
_PREFIX = struct.Struct(">3sBH")  # magic, version, header length (docs/wire.md section 3)


class Verdict(StrEnum):
    """What became of a message."""

    STORED = "stored"
    """Committed now; reply "stored"."""
    DUPLICATE = "duplicate"
    """Committed before (a republished batch); reply "duplicate"."""
    REJECTED = "rejected"
    """Quarantined; reply "rejected" with the reason."""
    QUARANTINED = "quarantined"
    """Quarantined, but no batch to name in a reply (no readable header, or no hub topic)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The ack to publish to `hub_id`'s `down/ack` topic, once signed."""

    hub_id: str
    batch_id: UUID
    seq: int
    status: AckStatus
    reason: str | None = None
    counts: AckCounts | None = None

    def ack(self, *, now: datetime, key: str, payload: bytes) -> Ack:
        """The ack body for the exact `payload` judged, acked at `now`, by signing key `key`."""
        return Ack(
            hub_id=self.hub_id,
            batch_id=self.batch_id,
            seq=self.seq,
            status=self.status,
            reason=self.reason,
            counts=self.counts,
            acked_at=now,
            key=key,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision on one message; `reply` is None when there is nobody or nothing to answer."""

    verdict: Verdict
    reply: Reply | None
    hub_id: str | None
    batch_id: UUID | None
    size: int
    reason: str | None = None
    stored: StoreResult | None = None
    """What loading did, for STORED and DUPLICATE found by `store_batch`."""


class IngestPorts(Protocol):
    """The side effects the pipeline needs; `cloud.ingest.ports` implements them for real."""

    def hub(self, hub_id: str) -> Hub | None:
        """The registered hub, revoked or not; None when unknown."""

    def decided(self, batch_id: UUID) -> DecidedBatch | None:
        """The earlier decision on this batch id, or None."""

    def archive(self, hub_id: str, batch_id: UUID, data: bytes) -> str:
        """Write the sealed bytes once under their raw key (idempotent); the key."""

    def quarantine_object(self, hub_id: str | None, data: bytes, received_at: datetime) -> str:
        """Keep refused bytes in the archive's quarantine; the key."""

    def store(
        self, header: Header, body: Body, *, s3_key: str, received_at: datetime, size: int
    ) -> StoreResult:
        """Store the opened batch in one committed transaction (`cloud.db.store_batch`)."""

    def reject(
        self, header: Header, *, reason: str, s3_key: str, size: int, received_at: datetime
    ) -> bool:
        """Record an authentic but invalid batch as rejected and quarantined."""

    def quarantine(
        self,
        *,
        hub_id: str | None,
        batch_id: UUID | None,
        reason: str,
        s3_key: str,
        size: int,
        received_at: datetime,
    ) -> int:
        """Record refused bytes whose header is not trusted; the quarantine id."""


def no_failpoint(name: str) -> None:
    """The failpoint hook of production: does nothing."""
    del name


def process_message(
    topic: str,
    payload: bytes,
    received_at: datetime,
    *,
    ports: IngestPorts,
    cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey],
    limits: Limits = DEFAULT_LIMITS,
    failpoint: Callable[[str], None] = no_failpoint,
) -> Outcome:
    """Decide on one message and perform the decision; see the module docstring.

    Raises a `CloudError` (retryable or not) when the batch could not be decided: nothing was
    acked or quarantined then, and the same bytes may simply be processed again later.
    `failpoint` is called with "after_archive" and "after_store" (tests crash the process there).
    The same as `prepare_message` followed by `Prepared.commit`.
    """
    prepared = prepare_message(
        topic,
        payload,
        received_at,
        ports=ports,
        cloud_keys=cloud_keys,
        limits=limits,
        failpoint=failpoint,
    )
    return prepared if isinstance(prepared, Outcome) else prepared.commit()


def prepare_message(
    topic: str,
    payload: bytes,
    received_at: datetime,
    *,
    ports: IngestPorts,
    cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey],
    limits: Limits = DEFAULT_LIMITS,
    failpoint: Callable[[str], None] = no_failpoint,
) -> Outcome | Prepared:
    """Steps 1-7: the outcome when decided without storing, else the archived, opened batch.

    A `Prepared` batch is authentic, valid and archived; `Prepared.commit` performs steps 8-9.
    The ingestor overlaps the two halves of consecutive batches (opening and archiving batch n+1
    while batch n is being stored); each batch's own steps still run in order. Raises as
    `process_message` does.
    """
    return _Run(ports, cloud_keys, limits, failpoint, payload, received_at).prepare(topic)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An authentic, valid batch whose sealed bytes are archived: what is left is storing it."""

    header: Header
    body: Body
    s3_key: str
    _run: _Run

    @property
    def size(self) -> int:
        """The sealed payload's length in bytes."""
        return len(self._run.data)

    def commit(self) -> Outcome:
        """Store the batch (one committed transaction) and tell what to answer.

        Raises a `CloudError` when it could not be decided (nothing acked); may be called again
        then: every step is idempotent.
        """
        return self._run.commit(self.header, self.body, self.s3_key)


@dataclass(slots=True)
class _Run:
    ports: IngestPorts
    cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey]
    limits: Limits
    failpoint: Callable[[str], None]
    data: bytes
    received_at: datetime

    def prepare(self, topic: str) -> Outcome | Prepared:
        routed = self._route(topic)
        if isinstance(routed, Outcome):
            return routed
        hub_id, header = routed
        hub = self._registered(hub_id, header)
        if isinstance(hub, Outcome):
            return hub
        decided = self.ports.decided(header.batch_id)
        if decided is not None:
            return self._decided_before(hub_id, header, decided)
        if not _signature_verifies(self.data, hub):
            reason = "signature does not verify with the hub's registered key"
            return self._refuse(hub_id, header, reason)
        # Authentic from here on: the hub signed these bytes.
        try:
            opened = open_sealed(
                self.data,
                hub_key=hub.identity_public_key(),
                cloud_keys=self.cloud_keys,
                limits=self.limits,
            )
        except WireError as exc:
            return self._reject(header, str(exc))
        return self._archive(opened.header, opened.body)

    def _route(self, topic: str) -> tuple[str, Header] | Outcome:
        """The topic's hub and the (untrusted) header naming it, or the refusal."""
        try:
            parsed = parse_topic(topic)
        except WireError as exc:
            return self._refuse(None, None, f"not a hub batch topic: {exc}")
        if parsed.channel is not Channel.BATCH:
            return self._refuse(None, None, f"not a batch topic: {topic}")
        hub_id = parsed.hub_id
        if len(self.data) > self.limits.max_sealed:
            reason = (
                f"sealed batch is {len(self.data)} bytes, over the limit of "
                f"{self.limits.max_sealed}"
            )
            return self._refuse(hub_id, _claimed_header(self.data, self.limits), reason)
        try:
            header = peek_header(self.data, limits=self.limits)
        except WireError as exc:
            return self._refuse(hub_id, _claimed_header(self.data, self.limits), str(exc))
        if header.hub_id != hub_id:
            reason = f"header names hub {header.hub_id} but was published under hub {hub_id}"
            return self._refuse(hub_id, header, reason)
        return hub_id, header

    def _registered(self, hub_id: str, header: Header) -> Hub | Outcome:
        """The active hub of this id, or the refusal."""
        hub = self.ports.hub(hub_id)
        if hub is None:
            return self._refuse(hub_id, header, f"hub {hub_id} is not registered")
        if not hub.active:
            return self._refuse(hub_id, header, f"hub {hub_id} is revoked")
        return hub

    def _archive(self, header: Header, body: Body) -> Outcome | Prepared:
        try:
            s3_key = self.ports.archive(header.hub_id, header.batch_id, self.data)
        except ArchiveConflict as exc:
            # Other bytes were archived under this batch id: the hub re-sealed a batch it had
            # sent (the contract forbids it). Keep the batch id undecided for the operator.
            return self._refuse(header.hub_id, header, str(exc))
        self.failpoint("after_archive")
        return Prepared(header, body, s3_key, self)

    def commit(self, header: Header, body: Body, s3_key: str) -> Outcome:
        try:
            result = self.ports.store(
                header, body, s3_key=s3_key, received_at=self.received_at, size=len(self.data)
            )
        except DataRefused as exc:
            return self._reject(header, str(exc))
        except UnknownHub:  # deleted between the lookup and the store
            return self._refuse(header.hub_id, header, f"hub {header.hub_id} is not registered")
        self.failpoint("after_store")
        inserted = result.inserted + result.record_conflicts
        counts = AckCounts(inserted=inserted, duplicate=body.total() - inserted)
        status = AckStatus.STORED if result.status == "stored" else AckStatus.DUPLICATE
        reply = Reply(header.hub_id, header.batch_id, header.seq, status, counts=counts)
        return Outcome(
            verdict=Verdict(status.value),
            reply=reply,
            hub_id=header.hub_id,
            batch_id=header.batch_id,
            size=len(self.data),
            stored=result,
        )

    def _decided_before(self, hub_id: str, header: Header, decided: DecidedBatch) -> Outcome:
        if decided.hub_id != hub_id:
            reason = f"batch id {header.batch_id} belongs to another hub"
            return self._refuse(hub_id, header, reason)
        # The stored row, not the untrusted header, tells what to answer: it is the truth.
        if decided.status == "stored":
            counts = AckCounts(inserted=0, duplicate=decided.items)
            reply = Reply(hub_id, decided.batch_id, decided.seq, AckStatus.DUPLICATE, None, counts)
            verdict = Verdict.DUPLICATE
        else:
            reason = _clip(decided.reason or "rejected earlier")
            reply = Reply(hub_id, decided.batch_id, decided.seq, AckStatus.REJECTED, reason)
            verdict = Verdict.REJECTED
        return Outcome(
            verdict=verdict,
            reply=reply,
            hub_id=hub_id,
            batch_id=decided.batch_id,
            size=len(self.data),
            reason=reply.reason,
        )

    def _reject(self, header: Header, reason: str) -> Outcome:
        """Quarantine an authentic batch and record its batch id as rejected."""
        reason = _clip(reason)
        size = len(self.data)
        key = self.ports.quarantine_object(header.hub_id, self.data, self.received_at)
        if not self.ports.reject(
            header, reason=reason, s3_key=key, size=size, received_at=self.received_at
        ):
            # Decided meanwhile (another ingestor): answer what was decided.
            decided = self.ports.decided(header.batch_id)
            if decided is not None:
                return self._decided_before(header.hub_id, header, decided)
        reply = Reply(header.hub_id, header.batch_id, header.seq, AckStatus.REJECTED, reason)
        return Outcome(Verdict.REJECTED, reply, header.hub_id, header.batch_id, size, reason)

    def _refuse(self, hub_id: str | None, claimed: Header | None, reason: str) -> Outcome:
        """Quarantine bytes whose header is not trusted; reply to the topic's hub if we can."""
        reason = _clip(reason)
        size = len(self.data)
        sample = self.data[:QUARANTINE_SAMPLE] if size > self.limits.max_sealed else self.data
        key = self.ports.quarantine_object(hub_id, sample, self.received_at)
        batch_id = None if claimed is None else claimed.batch_id
        self.ports.quarantine(
            hub_id=hub_id,
            batch_id=batch_id,
            reason=reason,
            s3_key=key,
            size=size,
            received_at=self.received_at,
        )
        if hub_id is None or claimed is None:
            return Outcome(Verdict.QUARANTINED, None, hub_id, batch_id, size, reason)
        reply = Reply(hub_id, claimed.batch_id, claimed.seq, AckStatus.REJECTED, reason)
        return Outcome(Verdict.REJECTED, reply, hub_id, batch_id, size, reason)


def _signature_verifies(data: bytes, hub: Hub) -> bool:
    """Step 3 of docs/wire.md section 3.3 on its own: tells authentic bytes from the others."""
    try:
        hub.identity_public_key().verify(data[-SIGNATURE_LEN:], data[:-SIGNATURE_LEN])
    except InvalidSignature:
        return False
    return True


def _claimed_header(data: bytes, limits: Limits) -> Header | None:
    """The header of bytes whose framing fails (truncated, oversized), if it can still be read.

    Only to name the batch in a "rejected" reply; trusted for nothing. Reads the prefix and at
    most `max_header` bytes (docs/wire.md section 3), never the rest.
    """
    if len(data) < _PREFIX.size:
        return None
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC or version != VERSION or hlen > limits.max_header:
        return None
    if _PREFIX.size + hlen > len(data):
        return None
    try:
        return Header.model_validate_json(data[_PREFIX.size : _PREFIX.size + hlen])
    except ValidationError:
        return None


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
