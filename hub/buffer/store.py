"""The hub buffer: durable, idempotent storage of readings until the cloud acknowledges them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast
from uuid import UUID, uuid4

import structlog

from hub.buffer import commands as command_rows
from hub.buffer import phones as phone_rows
from hub.buffer import plans as plan_rows
from hub.buffer import queries, record_reads
from hub.buffer.capacity import hours_left
from hub.buffer.errors import (
    BatchConflict,
    BatchNotSealed,
    BufferClosed,
    EncounterAlreadyEnded,
    EncounterOverlap,
    HubBufferError,
    InvalidEncounter,
    NotYourEncounter,
    UnknownDevice,
    UnknownEncounter,
    translate,
)
from hub.buffer.schema import open_reader, open_writer
from hub.buffer.values import (
    MAX_DEDUPE_KEY,
    AckOutcome,
    AckResult,
    BondState,
    Device,
    Encounter,
    InsertResult,
    ItemKind,
    NewReading,
    OutboxBatch,
    OutboxState,
    PatientMatch,
    PendingReading,
    Priority,
    Stats,
    SyncResult,
    UnsentItem,
    UnsentRow,
    UplinkState,
    UplinkStatus,
    to_db_time,
)
from hub.buffer.writer import CallOp, InsertOp, Row, Writer
from hub.records.merge import Outcome, StoredVersion, decide
from wire.items import MedicalRecord, Reading, RiskBand, TriageResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from datetime import datetime
    from types import TracebackType
    from typing import Concatenate

    from hub.buffer.config import BufferConfig
    from wire.commands import Command
    from wire.plans import Plan

log = structlog.get_logger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

PRUNE_CHUNK = 5000
"""Rows deleted per writer transaction while pruning, so inserts are never held up for long."""
PRUNE_BATCHES = 10
"""Delivered batches (and their rows) deleted per pruning transaction."""


class _Unset:
    """Marks a keyword argument the caller did not pass (None is a meaningful value)."""


UNSET: Any = _Unset()


class Buffer:
    """SQLite-backed store of readings, devices and encounters, with one group-committing writer.

    Build it with `Buffer.open(config)` and `close()` it (or use it as a context manager).
    Writes are `async` methods (`await buffer.insert(...)`) or, from threads, the same methods on
    `buffer.sync`. A write returns only after its transaction committed. Reads are plain methods
    on per-thread read-only connections; wrap long ones in `asyncio.to_thread` from a loop.
    """

    def __init__(self, config: BufferConfig, writer: Writer) -> None:
        self._config = config
        self._writer = writer
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self.sync = SyncWrites(self)
        """The write methods, blocking, for code that runs outside an event loop."""

    @classmethod
    def open(cls, config: BufferConfig) -> Buffer:
        """Open (creating and migrating if needed) the buffer file and start its writer thread."""
        conn = open_writer(config)
        try:
            with conn:  # a transaction: record the cap read-only tools report
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (queries.META_MAX_UNSENT_BYTES, str(config.max_unsent_bytes)),
                )
            backlog = queries.unsent_bytes(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, f"opening {config.path}") from exc
        log.info("buffer_opened", path=str(config.path), unsent_bytes=backlog)
        return cls(config, Writer(conn, config, backlog))

    # --- readings -----------------------------------------------------------------------------

    async def insert(
        self, reading: Reading, *, dedupe_key: str, priority: int = Priority.ROUTINE
    ) -> InsertResult:
        """Store one reading durably; `duplicate` if its dedupe key or id is stored already.

        Raises `BufferFull` when the unsent backlog reached the cap (nothing stored).
        """
        row = _row(reading, dedupe_key, priority)
        # The hot path: built inline, one future and one queue put per reading.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InsertResult] = loop.create_future()
        all_alert = row[7] == Priority.ALERT
        op = InsertOp(future, loop, rows=[row], single=True, all_alert=all_alert, nbytes=row[8])
        self._writer.submit(op)
        return await future

    async def insert_many(self, items: Iterable[NewReading]) -> list[InsertResult]:
        """Store several readings; one result per item, in order.

        Each run of up to `max_batch` readings is one write: stored as a whole or refused as a
        whole with `BufferFull`. If a later run is refused, earlier ones stay stored; retrying
        the call is safe, they come back `duplicate`.
        """
        loop = asyncio.get_running_loop()
        futures = [self._insert_op(rows, loop).future for rows in self._chunks(items)]
        outcomes = await asyncio.gather(
            *(f for f in futures if isinstance(f, asyncio.Future)), return_exceptions=True
        )
        results: list[InsertResult] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            results += outcome
        return results

    async def assign_batch(self, batch_id: UUID, reading_ids: Iterable[UUID]) -> int:
        """Put unsent readings not yet in a batch into `batch_id`; returns how many it took."""
        return await self._call_async(_assign_batch(batch_id, reading_ids))

    async def mark_delivered(self, batch_id: UUID, *, at: datetime) -> int:
        """Record the cloud's ack of `batch_id`; returns the number of readings marked delivered."""
        return await self._call_async(_mark_delivered(batch_id, at))

    async def release_batch(self, batch_id: UUID) -> int:
        """Return the undelivered readings of an abandoned batch to the unsent queue."""
        return await self._call_async(_release_batch(batch_id))

    async def prune(self, *, now: datetime) -> int:
        """Delete delivered readings older than the retention period; never unsent ones."""
        cutoff = to_db_time(now - self._config.retention)
        total = 0
        while True:
            rows, batches = await self._call_async(_prune_chunk(cutoff))
            total += rows
            if not rows and not batches:
                break
        while await self._call_async(_prune_outbox_chunk(cutoff)):
            pass
        return total

    def unsent_page(
        self, *, after: tuple[int, int] | None = None, limit: int = 500
    ) -> list[PendingReading]:
        """Up to `limit` readings to send next (not delivered, not in a batch), alerts first.

        Pass the (priority, seq) of the last row you got as `after` to get the next page.
        """
        return self._read("listing unsent readings", queries.unsent_page, after=after, limit=limit)

    def unsent_rows(
        self, *, after: tuple[int, int] | None = None, limit: int = 500
    ) -> list[UnsentRow]:
        """`unsent_page` without parsing ids: (seq, priority, json, nbytes), for the uplink."""
        return self._read("listing unsent readings", queries.unsent_rows, after=after, limit=limit)

    def iter_unsent(self, *, page_size: int = 500) -> Iterator[PendingReading]:
        """Stream the readings to send, alerts first; memory stays at one page whatever the backlog.

        Each page is its own short read, so the writer and checkpoints are never held up.
        """
        after: tuple[int, int] | None = None
        while page := self.unsent_page(after=after, limit=page_size):
            yield from page
            after = (page[-1].priority, page[-1].seq)

    def batch_rows(self, batch_id: UUID) -> list[PendingReading]:
        """The readings of a batch still waiting for the cloud's ack (to resend after a restart)."""
        return self._read("reading a batch", queries.batch_rows, batch_id)

    # --- the uplink's outbox -------------------------------------------------------------------

    async def record_batch(
        self,
        *,
        batch_id: UUID,
        priority: int,
        created_at: datetime,
        readings: Sequence[PendingReading | UnsentRow],
        seal: Callable[[int], bytes],
        items: Sequence[UnsentItem] = (),
    ) -> OutboxBatch:
        """Seal, record and assign a batch in ONE transaction: after a crash, all of it or nothing.

        `seal(seq)` runs on the writer thread inside the transaction with the batch's new
        sequence number (never reused) and returns the sealed bytes to record. `items` are the
        records and triage results the batch carries next to its readings. Raises
        `BatchConflict` if a reading or item is delivered or in another batch, `BatchNotSealed`
        if `seal` raised; nothing is recorded then.
        """
        return await self._call_async(
            _record_batch(batch_id, priority, created_at, readings, seal, items=items)
        )

    def unsent_items(self, *, limit: int = 500) -> list[UnsentItem]:
        """Up to `limit` records and triage results in no batch, alerts first (for the uplink)."""
        return self._read("listing unsent records and triage", queries.unsent_items, limit=limit)

    async def mark_sent(self, batch_id: UUID, *, at: datetime) -> None:
        """Count one more publication of an in-flight batch and remember when it was."""
        await self._call_async(_mark_sent(batch_id, at))

    async def ack_batch(
        self,
        batch_id: UUID,
        *,
        seq: int,
        status: str,
        reason: str | None,
        at: datetime,
    ) -> AckResult:
        """Record the cloud's verified ack of a batch; returns what it changed.

        `stored`/`duplicate` deliver its readings, `rejected` stops it for good (rows kept);
        repeated, unknown or mismatched acks change nothing.
        """
        if status not in {"stored", "duplicate", "rejected"}:
            raise ValueError(f"unknown ack status {status!r}")
        return await self._call_async(_ack_batch(batch_id, seq, status, reason, at))

    async def record_uplink_state(self, state: UplinkState) -> None:
        """Persist the uplink's breaker state and last error for `tecsa-hub uplink status`."""
        await self._call_async(_record_uplink_state(state))

    def in_flight_batches(self, *, after_seq: int = -1, limit: int = 16) -> list[OutboxBatch]:
        """Up to `limit` batches still waiting for an ack, oldest first, after `after_seq`."""
        return self._read(
            "listing batches in flight", queries.outbox_in_flight, after_seq=after_seq, limit=limit
        )

    def outbox_batch(self, batch_id: UUID) -> OutboxBatch | None:
        """The outbox record of `batch_id`, if any."""
        return self._read("reading a batch", queries.outbox_batch, batch_id)

    def uplink_status(self) -> UplinkStatus:
        """Backlog, outbox counts, last ack and the uplink's recorded state (scans an index)."""
        return self._read("reading the uplink status", queries.uplink_status)

    # --- medical records ------------------------------------------------------------------------

    async def sync_records(
        self, records: Sequence[MedicalRecord], received_at: datetime
    ) -> list[SyncResult]:
        """Decide and store records from a phone in one transaction: durable when this returns.

        One result per record, in order; see `hub.records.merge` for the rules. A conflict keeps
        both versions, flags them, and returns the stored one.
        """
        return await self._call_async(_sync_records(list(records), received_at))

    def record_versions(self, record_id: UUID) -> list[MedicalRecord]:
        """Every stored version of a record, newest revision first (conflicts included)."""
        rows = self._read("reading a record", queries.record_versions, str(record_id))
        return [MedicalRecord.model_validate_json(row) for row in rows]

    def latest_record(self, record_id: UUID) -> list[MedicalRecord]:
        """The versions of the record's highest revision: one, or several kept as a conflict.

        Empty when the record is unknown. The versions are as the phone sent them (the
        `conflict` flag is added only on the way to the cloud).
        """
        rows = self._read("reading a record", queries.latest_record, str(record_id))
        return [MedicalRecord.model_validate_json(row) for row in rows]

    # --- triage results -----------------------------------------------------------------------

    async def add_triage(self, results: Sequence[TriageResult]) -> int:
        """Store triage results durably (idempotent by id); returns how many were new.

        A high-band result is queued at alert priority, so the uplink sends it before routine
        data. Triage results are never refused at capacity (they are small and a lost high band
        is a safety issue); they count in the unsent backlog like everything else.
        """
        rows = [_triage_row(result) for result in results]
        if not rows:
            return 0
        return await self._call_async(_add_triage(rows))

    def triage_for_readings(self, reading_ids: Iterable[UUID]) -> dict[UUID, list[TriageResult]]:
        """The triage results that scored each reading (newest first); unscored ids are absent."""
        ids = [str(r) for r in reading_ids]
        if not ids:
            return {}
        rows = self._read("reading triage results", queries.triage_for_readings, ids)
        out: dict[UUID, list[TriageResult]] = {}
        for rid, body in rows:
            out.setdefault(UUID(rid), []).append(TriageResult.model_validate_json(body))
        return out

    def recent_triage(
        self,
        *,
        limit: int = 50,
        min_band: RiskBand | None = None,
        patient_id: str | None = None,
    ) -> list[TriageResult]:
        """The newest triage results first, at or above `min_band`, of one patient if given."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        rows = self._read(
            "listing triage results",
            queries.recent_triage,
            limit=limit,
            min_band=RiskBand(min_band).value if min_band is not None else None,
            patient_id=patient_id,
        )
        return [TriageResult.model_validate_json(row) for row in rows]

    def readings_for_patient(
        self, patient_id: str, *, since: datetime | None, limit: int
    ) -> list[Reading]:
        """The patient's readings received after `since` (all if None), oldest first.

        `since` compares with the hub's `received_at` (always set; a device clock may be wrong).
        Page by passing the last reading's `received_at` as the next `since`.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        rows = self._read(
            "listing a patient's readings",
            queries.readings_for_patient,
            patient_id,
            since=since,
            limit=limit,
        )
        return [Reading.model_validate_json(row) for row in rows]

    # --- devices and encounters ---------------------------------------------------------------

    async def device_seen(
        self, address: str, *, profile: str, at: datetime, name: str | None = None
    ) -> Device:
        """Register a device (first sighting) or refresh its profile, name and last-seen time."""
        return await self._call_async(_device_seen(address, profile, name, at))

    async def update_device(
        self,
        address: str,
        *,
        bond_state: BondState = UNSET,
        last_racp_seq: int | None = UNSET,
        clock_offset_s: float | None = UNSET,
        battery_pct: int | None = UNSET,
    ) -> Device:
        """Change only the given fields of a registered device; raises `UnknownDevice` otherwise."""
        given: dict[str, object] = {
            "bond_state": bond_state,
            "last_racp_seq": last_racp_seq,
            "clock_offset_s": clock_offset_s,
            "battery_pct": battery_pct,
        }
        changes = {k: v for k, v in given.items() if v is not UNSET}
        if "bond_state" in changes:
            changes["bond_state"] = BondState(bond_state).value
        return await self._call_async(_update_device(address, changes))

    async def start_encounter(
        self,
        device_address: str,
        patient_id: str,
        *,
        started_at: datetime,
        ended_at: datetime | None = None,
        encounter_id: UUID | None = None,
        opened_by: str | None = None,
    ) -> Encounter:
        """Bind a device to a patient from `started_at` (until `ended_at`, or open-ended).

        Raises `EncounterOverlap` if the device is bound to anyone during that window.
        `opened_by` is the agent who binds it (only they, or a supervisor, may end it).
        """
        enc = Encounter(
            id=encounter_id or uuid4(),
            device_address=device_address,
            patient_id=patient_id,
            started_at=started_at,
            ended_at=ended_at,
            opened_by=opened_by,
        )
        return await self._call_async(_start_encounter(enc))

    async def end_encounter(
        self, encounter_id: UUID, *, ended_at: datetime, by: str | None = None
    ) -> Encounter:
        """Close an open encounter at `ended_at`.

        With `by` (an agent id), raises `NotYourEncounter` when another agent opened it;
        None (a supervisor, the hub) may end any.
        """
        return await self._call_async(_end_encounter(encounter_id, ended_at, by))

    def patient_for(self, device_address: str, at: datetime) -> PatientMatch | None:
        """The (patient_id, encounter_id) whose encounter covers `at` on this device, or None."""
        return self._read("resolving a patient", queries.patient_for, device_address, at)

    def encounter(self, encounter_id: UUID) -> Encounter | None:
        """The encounter with this id, if any."""
        return self._read("reading an encounter", queries.encounter, encounter_id)

    def device(self, address: str) -> Device | None:
        """The device registered under `address`, if any."""
        return self._read("reading a device", queries.device, address)

    def devices(self) -> list[Device]:
        """Every registered device, most recently seen first."""
        return self._read("listing devices", queries.devices)

    # --- capacity -----------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Counts, unsent backlog, oldest unsent reading, size on disk and whether at capacity."""
        return self._read("reading stats", queries.stats, self._config.path)

    @property
    def unsent_bytes(self) -> int:
        """JSON bytes of readings the cloud has not acknowledged (as of the last commit)."""
        return self._writer.unsent_bytes

    @property
    def at_capacity(self) -> bool:
        """True while new non-alert readings are refused with `BufferFull`."""
        return self._writer.unsent_bytes >= self._config.max_unsent_bytes

    def capacity_hours_left(self, *, readings_per_hour: float | None = None) -> float | None:
        """Hours until the cap is reached if nothing is delivered; None when nothing arrives.

        By default from the bytes stored over the last hour; pass `readings_per_hour` to plan
        for a given load instead (sized with the recent mean reading, or 1 KiB before any).
        """
        bytes_per_hour, per_reading = self._writer.rate()
        if readings_per_hour is not None:
            bytes_per_hour = readings_per_hour * (per_reading or 1024.0)
        free = self._config.max_unsent_bytes - self._writer.unsent_bytes
        return hours_left(free, bytes_per_hour)

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Commit every write queued so far, checkpoint the WAL and stop; later writes fail."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        log.info("buffer_closed", path=str(self._config.path))

    async def aclose(self) -> None:
        """`close()` without blocking the event loop while the queue drains."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- private ------------------------------------------------------------------------------

    def _chunks(self, items: Iterable[NewReading]) -> list[list[Row]]:
        rows = [_row(i.reading, i.dedupe_key, i.priority) for i in items]
        step = self._config.max_batch
        return [rows[i : i + step] for i in range(0, len(rows), step)]

    def _insert_op(self, rows: list[Row], loop: asyncio.AbstractEventLoop | None) -> InsertOp:
        future: asyncio.Future[Any] | concurrent.futures.Future[Any] = (
            loop.create_future() if loop is not None else concurrent.futures.Future()
        )
        op = InsertOp(
            future=future,
            loop=loop,
            rows=rows,
            single=False,
            all_alert=all(r[7] == Priority.ALERT for r in rows),
            nbytes=sum(r[8] for r in rows),
        )
        self._writer.submit(op)
        return op

    @staticmethod
    async def _await(op: CallOp) -> object:
        assert isinstance(op.future, asyncio.Future)  # noqa: S101 - built with the running loop
        return await op.future

    async def _call_async(self, fn: Callable[[sqlite3.Connection], tuple[T, int]]) -> T:
        loop = asyncio.get_running_loop()
        op = CallOp(future=loop.create_future(), loop=loop, fn=fn)
        self._writer.submit(op)
        return cast("T", await self._await(op))

    def _call_sync(self, fn: Callable[[sqlite3.Connection], tuple[T, int]]) -> T:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._writer.submit(CallOp(future=future, loop=None, fn=fn))
        return cast("T", future.result())

    def _insert_sync(self, items: Iterable[NewReading]) -> list[InsertResult]:
        futures = [self._insert_op(rows, None).future for rows in self._chunks(items)]
        results: list[InsertResult] = []
        errors: list[BaseException] = []
        for future in futures:
            assert isinstance(future, concurrent.futures.Future)  # noqa: S101 - built above
            try:
                results += future.result()
            except HubBufferError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return results

    def _read(
        self,
        doing: str,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        try:
            return fn(self._reader(), *args, **kwargs)
        except sqlite3.Error as exc:
            raise translate(exc, doing) from exc

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise BufferClosed("the hub buffer is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_reader(self._config.path, self._config.busy_timeout.total_seconds())
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    # --- plans and phones seen (the phones' API; hub/buffer/plans.py, hub/buffer/phones.py) ---

    async def replace_plans(self, plans: Sequence[Plan], *, version: int, source: str) -> None:
        """Replace every cached plan with this snapshot in one transaction (source cloud/import)."""
        await self._call_async(plan_rows.replace_plans(plans, version=version, source=source))

    def plans(self) -> list[Plan]:
        """The cached plans, in the snapshot's order."""
        return self._read("reading plans", plan_rows.plans)

    def plans_version(self) -> int | None:
        """The version of the cached snapshot; None before any was stored."""
        info = self._read("reading plans", plan_rows.plans_info)
        return None if info is None else info.version

    async def phone_seen(
        self, name: str, *, agent: str | None, app: str | None, at: datetime, present: bool = True
    ) -> phone_rows.Phone:
        """Record a phone zeroconf saw (or, with `present=False`, that it withdrew)."""
        return await self._call_async(
            phone_rows.phone_seen(name, agent=agent, app=app, at=at, present=present)
        )

    def phones(self) -> list[phone_rows.Phone]:
        """Every phone seen, most recently seen first."""
        return self._read("listing phones", phone_rows.phones)

    async def phones_absent(self) -> int:
        """Mark every phone as gone (at daemon start, before discovery looks again)."""
        return await self._call_async(phone_rows.all_absent())

    def record_versions_flagged(self, record_id: UUID) -> list[tuple[MedicalRecord, bool]]:
        """(version, conflict flag) of every stored version of a record, latest first."""
        return self._read("reading a record", record_reads.flagged_versions, str(record_id))

    # --- signed commands from the cloud (hub/buffer/commands.py, hub/commands) ----------------

    async def apply_revocations(
        self, command: Command, *, received_at: datetime
    ) -> command_rows.CommandOutcome:
        """Replace the revocation list with a verified `revocations` command, in one transaction.

        DUPLICATE if its id was judged before, STALE if its version is not newer: nothing changes.
        """
        return await self._call_async(command_rows.apply_revocations(command, received_at))

    async def record_command(
        self,
        command: Command,
        *,
        outcome: command_rows.CommandOutcome,
        reason: str | None = None,
        received_at: datetime,
    ) -> command_rows.CommandOutcome:
        """Record a verified command's outcome (APPLIED brings its version into force)."""
        return await self._call_async(
            command_rows.record_command(command, outcome, reason, received_at)
        )

    async def prune_commands(self, *, now: datetime) -> int:
        """Forget commands (and revoked tokens) past their expiry; returns commands forgotten."""
        return await self._call_async(command_rows.prune_commands(now))

    def judge_command(self, command: Command) -> command_rows.CommandOutcome | None:
        """DUPLICATE (id judged before), STALE (version not newer) or None (new, to apply)."""
        return self._read("reading commands", command_rows.judge, command)

    def revoked_token_ids(self, *, now: datetime) -> frozenset[str]:
        """Ids of revoked tokens not expired at `now`: the API refuses them."""
        return self._read("reading revoked tokens", command_rows.revoked_token_ids, now=now)

    def command_status(self) -> command_rows.CommandStatus:
        """Snapshot versions in force and counts of commands by outcome."""
        return self._read("reading commands", command_rows.command_status)


class SyncWrites:
    """The buffer's write methods for threads: each blocks until its transaction committed."""

    def __init__(self, buffer: Buffer) -> None:
        self._buffer = buffer

    def insert(
        self, reading: Reading, *, dedupe_key: str, priority: int = Priority.ROUTINE
    ) -> InsertResult:
        """Blocking `Buffer.insert`."""
        item = NewReading(reading, dedupe_key, priority)
        return self._buffer._insert_sync([item])[0]  # noqa: SLF001

    def insert_many(self, items: Iterable[NewReading]) -> list[InsertResult]:
        """Blocking `Buffer.insert_many`."""
        return self._buffer._insert_sync(items)  # noqa: SLF001

    def mark_delivered(self, batch_id: UUID, *, at: datetime) -> int:
        """Blocking `Buffer.mark_delivered`."""
        return self._buffer._call_sync(_mark_delivered(batch_id, at))  # noqa: SLF001

    def assign_batch(self, batch_id: UUID, reading_ids: Iterable[UUID]) -> int:
        """Blocking `Buffer.assign_batch`."""
        return self._buffer._call_sync(_assign_batch(batch_id, reading_ids))  # noqa: SLF001

    def add_triage(self, results: Sequence[TriageResult]) -> int:
        """Blocking `Buffer.add_triage` (for an inference thread)."""
        rows = [_triage_row(result) for result in results]
        if not rows:
            return 0
        return self._buffer._call_sync(_add_triage(rows))  # noqa: SLF001

    def device_seen(
        self, address: str, *, profile: str, at: datetime, name: str | None = None
    ) -> Device:
        """Blocking `Buffer.device_seen`."""
        return self._buffer._call_sync(_device_seen(address, profile, name, at))  # noqa: SLF001


# --- rows and write operations (run on the writer thread, inside its transaction) ---------------


def _row(reading: Reading, dedupe_key: str, priority: int) -> Row:
    """The `readings` row of a reading, serialised in the caller's thread to spare the writer."""
    if not 0 < len(dedupe_key) <= MAX_DEDUPE_KEY:
        raise ValueError(f"dedupe_key must be 1 to {MAX_DEDUPE_KEY} characters")
    if not Priority.ALERT <= priority <= 9:  # noqa: PLR2004 - the schema's CHECK bound
        raise ValueError(f"priority must be between 0 (alert) and 9, got {priority}")
    body = reading.model_dump_json()
    measured = reading.measured_at
    return (  # in the order of writer.ROW_COLUMNS
        str(reading.id),
        dedupe_key,
        reading.device_id,
        reading.kind,
        reading.patient_id,
        to_db_time(reading.received_at),
        None if measured is None else to_db_time(measured),
        int(priority),
        len(body.encode()),
        body,
    )


def _assign_batch(
    batch_id: UUID, reading_ids: Iterable[UUID]
) -> Callable[[sqlite3.Connection], tuple[int, int]]:
    bid = str(batch_id)
    ids = json.dumps([str(r) for r in reading_ids])

    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        known = conn.execute(
            "SELECT delivered_at IS NOT NULL FROM batches WHERE batch_id = ?", (bid,)
        ).fetchone()
        if known is not None and known[0]:
            return 0, 0  # the cloud acknowledged this batch already: nothing may join it
        taken = conn.execute(
            "UPDATE reading_rows SET batch_id = ?"
            " WHERE id IN (SELECT value FROM json_each(?))"
            " AND batch_id IS NULL AND delivered_at IS NULL RETURNING seq, nbytes",
            (bid, ids),
        ).fetchall()
        _add_to_batch(conn, bid, taken)
        return len(taken), 0

    return run


def _add_to_batch(conn: sqlite3.Connection, bid: str, rows: list[tuple[int, int]]) -> None:
    """Record that (seq, nbytes) `rows` joined the waiting batch `bid` (hand-made batches)."""
    if not rows:
        return
    seqs = [seq for seq, _ in rows]
    conn.execute(
        "INSERT INTO batches (batch_id, lo, hi, readings, nbytes) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (batch_id) DO UPDATE SET lo = min(lo, excluded.lo),"
        " hi = max(hi, excluded.hi), readings = readings + excluded.readings,"
        " nbytes = nbytes + excluded.nbytes",
        (bid, min(seqs), max(seqs), len(rows), sum(n for _, n in rows)),
    )


def _deliver(conn: sqlite3.Connection, bid: str, stamp: str) -> tuple[int, int]:
    """Mark the waiting batch `bid` delivered: (readings delivered, their bytes); (0, 0) if none."""
    row = conn.execute(
        "UPDATE batches SET delivered_at = ? WHERE batch_id = ? AND delivered_at IS NULL"
        " RETURNING lo, hi, readings, nbytes",
        (stamp, bid),
    ).fetchone()
    if row is None:
        return 0, 0
    lo, hi, n, nbytes = row
    (extras,) = conn.execute(
        "SELECT (SELECT count(*) FROM records INDEXED BY records_batch WHERE batch_id = ?)"
        " + (SELECT count(*) FROM triage INDEXED BY triage_batch WHERE batch_id = ?)",
        (bid, bid),
    ).fetchone()
    n += extras
    conn.execute(
        "INSERT INTO delivered_kinds (kind, n)"
        " SELECT kind, count(*) FROM reading_rows"
        " WHERE seq BETWEEN ? AND ? AND batch_id = ? AND delivered_at IS NULL GROUP BY kind"
        " ON CONFLICT (kind) DO UPDATE SET n = n + excluded.n",
        (lo, hi, bid),
    )
    return int(n), int(nbytes)


def _mark_delivered(
    batch_id: UUID, at: datetime
) -> Callable[[sqlite3.Connection], tuple[int, int]]:
    stamp = to_db_time(at)

    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        n, nbytes = _deliver(conn, str(batch_id), stamp)
        return n, -nbytes

    return run


def _release_batch(batch_id: UUID) -> Callable[[sqlite3.Connection], tuple[int, int]]:
    bid = str(batch_id)

    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        span = conn.execute(
            "DELETE FROM batches WHERE batch_id = ? AND delivered_at IS NULL RETURNING lo, hi",
            (bid,),
        ).fetchone()
        if span is None:
            return 0, 0
        cur = conn.execute(
            "UPDATE reading_rows SET batch_id = NULL"
            " WHERE seq BETWEEN ? AND ? AND batch_id = ? AND delivered_at IS NULL",
            (span[0], span[1], bid),
        )
        released = cur.rowcount
        for table in ("records", "triage"):  # their bytes stay unsent, as the readings' do
            released += conn.execute(
                f"UPDATE {table} SET batch_id = NULL WHERE batch_id = ?",  # noqa: S608 - constant
                (bid,),
            ).rowcount
        return released, 0

    return run


def _prune_chunk(
    cutoff: str,
) -> Callable[[sqlite3.Connection], tuple[tuple[int, int], int]]:
    """Delete a chunk of old delivered rows; returns ((rows deleted, batches deleted), 0)."""

    def run(conn: sqlite3.Connection) -> tuple[tuple[int, int], int]:
        # Rows delivered one by one (schema version 2 and before).
        deleted = conn.execute(
            "DELETE FROM reading_rows WHERE seq IN (SELECT seq FROM reading_rows"
            " INDEXED BY readings_delivered"
            " WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?)",
            (cutoff, PRUNE_CHUNK),
        ).rowcount
        # Batches delivered as a whole, a few at a time (each holds up to a few hundred rows).
        batches = 0
        for bid, lo, hi in conn.execute(
            "SELECT batch_id, lo, hi FROM batches INDEXED BY batches_delivered"
            " WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?",
            (cutoff, PRUNE_BATCHES),
        ).fetchall():
            deleted += conn.execute(
                "DELETE FROM reading_rows WHERE seq BETWEEN ? AND ? AND batch_id = ?",
                (lo, hi, bid),
            ).rowcount
            # The batch's records and triage results go with it (delivered and past retention).
            conn.execute("DELETE FROM records WHERE batch_id = ?", (bid,))
            conn.execute("DELETE FROM triage WHERE batch_id = ?", (bid,))
            conn.execute("DELETE FROM batches WHERE batch_id = ?", (bid,))
            batches += 1
        return (deleted, batches), 0

    return run


def _prune_outbox_chunk(cutoff: str) -> Callable[[sqlite3.Connection], tuple[int, int]]:
    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        cur = conn.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox INDEXED BY outbox_acked"
            " WHERE state = 'acked' AND acked_at < ? LIMIT ?)",
            (cutoff, PRUNE_CHUNK),
        )
        return cur.rowcount, 0

    return run


def _record_batch(
    batch_id: UUID,
    priority: int,
    created_at: datetime,
    readings: Sequence[PendingReading | UnsentRow],
    seal: Callable[[int], bytes],
    *,
    items: Sequence[UnsentItem] = (),
) -> Callable[[sqlite3.Connection], tuple[OutboxBatch, int]]:
    bid = str(batch_id)
    triage_ids = json.dumps([i.key[0] for i in items if i.kind is ItemKind.TRIAGE_RESULT])
    record_keys = [
        (bid, key[0], int(key[1]), key[2])
        for key in (i.key for i in items if i.kind is ItemKind.MEDICAL_RECORD)
    ]
    total_items = len(readings) + len(items)
    created = to_db_time(created_at)
    seq_list = [r.seq for r in readings]
    seqs = json.dumps(seq_list)
    lo, hi = (min(seq_list), max(seq_list)) if seq_list else (0, 0)
    # Rows the uplink read carry their stored size; others are summed from the table.
    sizes = [r.nbytes for r in readings if isinstance(r, UnsentRow)]
    nbytes = sum(sizes) if len(sizes) == len(readings) else None

    def run(conn: sqlite3.Connection) -> tuple[OutboxBatch, int]:
        seq = queries.next_outbox_seq(conn)
        try:
            sealed = seal(seq)
        except Exception as exc:
            raise BatchNotSealed(f"sealing batch {bid} failed: {exc!r}") from exc
        conn.execute(
            "INSERT INTO outbox (seq, batch_id, priority, created_at, sealed, readings)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (seq, bid, priority, created, sealed, total_items),
        )
        extra_bytes = _assign_items(conn, bid, triage_ids, record_keys, len(items))
        # One statement, so the GIL is released once for the whole batch (see writer.py).
        update = (
            "UPDATE reading_rows SET batch_id = ?"
            " WHERE seq IN (SELECT value FROM json_each(?))"
            " AND batch_id IS NULL AND delivered_at IS NULL"
        )
        if nbytes is None:  # rows given without their sizes: read them back
            assigned = conn.execute(update + " RETURNING seq, nbytes", (bid, seqs)).fetchall()
            taken = len(assigned)
        else:
            taken = conn.execute(update, (bid, seqs)).rowcount
        if taken != len(readings):
            raise BatchConflict(
                f"batch {bid}: only {taken} of {len(readings)} readings were still unsent and"
                " unbatched; nothing recorded"
            )
        if nbytes is None:
            _add_to_batch(conn, bid, assigned)
            if extra_bytes:
                conn.execute(
                    "UPDATE batches SET nbytes = nbytes + ? WHERE batch_id = ?", (extra_bytes, bid)
                )
        else:
            # A batch of records and triage only has no reading rows: lo = hi = 0 spans none.
            conn.execute(
                "INSERT INTO batches (batch_id, lo, hi, readings, nbytes) VALUES (?, ?, ?, ?, ?)",
                (bid, lo, hi, taken, nbytes + extra_bytes),
            )
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (queries.META_OUTBOX_NEXT_SEQ, str(seq + 1)),
        )
        batch = OutboxBatch(
            batch_id=batch_id,
            seq=seq,
            priority=priority,
            created_at=created_at,
            sealed=sealed,
            readings=total_items,
            state=OutboxState.IN_FLIGHT,
            attempts=0,
            last_sent_at=None,
            acked_at=None,
            ack_status=None,
            ack_reason=None,
        )
        return batch, 0

    return run


def _assign_items(
    conn: sqlite3.Connection,
    bid: str,
    triage_ids: str,
    record_keys: list[tuple[str, str, int, str]],
    expected: int,
) -> int:
    """Put the batch's records and triage results in `bid`; returns their stored bytes.

    Raises `BatchConflict` (the caller's transaction is undone) if one is gone or batched.
    """
    sizes = [
        n
        for (n,) in conn.execute(
            "UPDATE triage SET batch_id = ? WHERE id IN (SELECT value FROM json_each(?))"
            " AND batch_id IS NULL RETURNING nbytes",
            (bid, triage_ids),
        ).fetchall()
    ]
    for key in record_keys:
        row = conn.execute(
            "UPDATE records SET batch_id = ? WHERE id = ? AND revision = ? AND content_hash = ?"
            " AND batch_id IS NULL RETURNING nbytes",
            key,
        ).fetchone()
        if row is not None:
            sizes.append(row[0])
    if len(sizes) != expected:
        raise BatchConflict(
            f"batch {bid}: only {len(sizes)} of {expected} records and triage results were"
            " still unsent and unbatched; nothing recorded"
        )
    return sum(sizes)


TriageRow = tuple[str, str | None, str, str, str, int, int, str, str]
"""id, patient_id, computed_at, band, model_version, priority, nbytes, json, reading_ids."""


def _triage_row(result: TriageResult) -> TriageRow:
    """The `triage` row of a result, serialised in the caller's thread."""
    body = result.model_dump_json()
    priority = Priority.ALERT if result.band is RiskBand.HIGH else Priority.ROUTINE
    return (
        str(result.id),
        result.patient_id,
        to_db_time(result.computed_at),
        result.band.value,
        result.model_version,
        int(priority),
        len(body.encode()),
        body,
        json.dumps([str(r) for r in result.reading_ids]),
    )


def _add_triage(
    rows: list[TriageRow],
) -> Callable[[sqlite3.Connection], tuple[int, int]]:
    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        new = 0
        added = 0
        for row in rows:
            cur = conn.execute(
                "INSERT INTO triage (id, patient_id, computed_at, band, model_version, priority,"
                " nbytes, json, reading_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                row,
            )
            if cur.rowcount != 1:
                continue
            new += 1
            added += row[6]
            conn.execute(
                "INSERT OR IGNORE INTO triage_readings (reading_id, triage_id)"
                " SELECT value, ? FROM json_each(?)",
                (row[0], row[8]),
            )
        return new, added

    return run


def _mark_sent(batch_id: UUID, at: datetime) -> Callable[[sqlite3.Connection], tuple[None, int]]:
    stamp = to_db_time(at)

    def run(conn: sqlite3.Connection) -> tuple[None, int]:
        conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ?"
            " WHERE batch_id = ? AND state = 'in_flight'",
            (stamp, str(batch_id)),
        )
        return None, 0

    return run


def _ack_batch(
    batch_id: UUID, seq: int, status: str, reason: str | None, at: datetime
) -> Callable[[sqlite3.Connection], tuple[AckResult, int]]:
    bid = str(batch_id)
    stamp = to_db_time(at)

    def run(conn: sqlite3.Connection) -> tuple[AckResult, int]:
        row = conn.execute("SELECT seq, state FROM outbox WHERE batch_id = ?", (bid,)).fetchone()
        if row is None:
            return AckResult(AckOutcome.UNKNOWN_BATCH), 0
        if row[0] != seq:
            return AckResult(AckOutcome.SEQ_MISMATCH), 0
        if row[1] != OutboxState.IN_FLIGHT:
            return AckResult(AckOutcome.ALREADY_FINAL), 0
        last_ack = json.dumps({"at": stamp, "status": status, "batch_id": bid})
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (queries.META_LAST_ACK, last_ack),
        )
        if status == "rejected":
            # The sealed bytes stay for review (the cloud quarantined the same bytes).
            conn.execute(
                "UPDATE outbox SET state = 'rejected', acked_at = ?, ack_status = ?,"
                " ack_reason = ? WHERE batch_id = ?",
                (stamp, status, reason, bid),
            )
            return AckResult(AckOutcome.REJECTED), 0
        n, nbytes = _deliver(conn, bid, stamp)
        conn.execute(
            "UPDATE outbox SET state = 'acked', acked_at = ?, ack_status = ?, ack_reason = ?,"
            " sealed = NULL WHERE batch_id = ?",
            (stamp, status, reason, bid),
        )
        return AckResult(AckOutcome.DELIVERED, n), -nbytes

    return run


def _record_uplink_state(state: UplinkState) -> Callable[[sqlite3.Connection], tuple[None, int]]:
    value = json.dumps(
        {
            "breaker": state.breaker,
            "connected": state.connected,
            "updated_at": to_db_time(state.updated_at),
            "last_error": state.last_error,
            "last_error_at": (
                to_db_time(state.last_error_at) if state.last_error_at is not None else None
            ),
        }
    )

    def run(conn: sqlite3.Connection) -> tuple[None, int]:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (queries.META_UPLINK_STATE, value),
        )
        return None, 0

    return run


def _device_seen(
    address: str, profile: str, name: str | None, at: datetime
) -> Callable[[sqlite3.Connection], tuple[Device, int]]:
    stamp = to_db_time(at)

    def run(conn: sqlite3.Connection) -> tuple[Device, int]:
        conn.execute(
            "INSERT INTO devices (address, profile, name, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET"
            " profile = excluded.profile, name = coalesce(excluded.name, name),"
            " last_seen = max(last_seen, excluded.last_seen)",
            (address, profile, name, stamp, stamp),
        )
        found = queries.device(conn, address)
        assert found is not None  # noqa: S101 - written just above, same transaction
        return found, 0

    return run


def _update_device(
    address: str, changes: dict[str, object]
) -> Callable[[sqlite3.Connection], tuple[Device, int]]:
    # Column names come from the fixed keyword parameters of `Buffer.update_device`, never input.
    assignments = ", ".join(f"{column} = ?" for column in changes)

    def run(conn: sqlite3.Connection) -> tuple[Device, int]:
        if changes:
            conn.execute(
                f"UPDATE devices SET {assignments} WHERE address = ?",  # noqa: S608 - see above
                (*changes.values(), address),
            )
        found = queries.device(conn, address)
        if found is None:
            raise UnknownDevice(f"no device {address!r} is registered")
        return found, 0

    return run


def _start_encounter(enc: Encounter) -> Callable[[sqlite3.Connection], tuple[Encounter, int]]:
    started = to_db_time(enc.started_at)
    ended = None if enc.ended_at is None else to_db_time(enc.ended_at)
    if ended is not None and ended <= started:
        raise InvalidEncounter("an encounter must end after it starts")

    def run(conn: sqlite3.Connection) -> tuple[Encounter, int]:
        clash = queries.overlapping_encounter(conn, enc.device_address, started, ended)
        if clash is not None:
            raise EncounterOverlap(
                f"device {enc.device_address} is already bound during that time by encounter "
                f"{clash.id}; end that encounter first",
                device_address=enc.device_address,
                existing_id=str(clash.id),
            )
        conn.execute(
            "INSERT INTO encounters"
            " (id, device_address, patient_id, started_at, ended_at, opened_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (str(enc.id), enc.device_address, enc.patient_id, started, ended, enc.opened_by),
        )
        return enc, 0

    return run


def _end_encounter(
    encounter_id: UUID, ended_at: datetime, by: str | None = None
) -> Callable[[sqlite3.Connection], tuple[Encounter, int]]:
    ended = to_db_time(ended_at)

    def run(conn: sqlite3.Connection) -> tuple[Encounter, int]:
        enc = queries.encounter(conn, encounter_id)
        if enc is None:
            raise UnknownEncounter(f"no encounter {encounter_id}")
        if by is not None and enc.opened_by not in (None, by):
            raise NotYourEncounter(
                f"encounter {encounter_id} was opened by another agent: only they, or a "
                "supervisor, may end it"
            )
        if enc.ended_at is not None:
            raise EncounterAlreadyEnded(f"encounter {encounter_id} ended already")
        if ended <= to_db_time(enc.started_at):
            raise InvalidEncounter(f"encounter {encounter_id} must end after it starts")
        conn.execute("UPDATE encounters SET ended_at = ? WHERE id = ?", (ended, str(encounter_id)))
        found = queries.encounter(conn, encounter_id)
        assert found is not None  # noqa: S101 - read just above, same transaction
        return found, 0

    return run


def _sync_records(
    records: list[MedicalRecord], received_at: datetime
) -> Callable[[sqlite3.Connection], tuple[list[SyncResult], int]]:
    def run(conn: sqlite3.Connection) -> tuple[list[SyncResult], int]:
        results: list[SyncResult] = []
        added = 0
        for record in records:
            rid = str(record.id)
            versions = conn.execute(
                "SELECT revision, content_hash, json FROM records WHERE id = ?"
                " ORDER BY revision DESC",
                (rid,),
            ).fetchall()
            same = [v for v in versions if v[0] == record.revision]
            same_revision = next(
                (StoredVersion(v[0], v[1]) for v in same if v[1] == record.content_hash),
                StoredVersion(same[0][0], same[0][1]) if same else None,
            )
            latest = StoredVersion(versions[0][0], versions[0][1]) if versions else None
            decision = decide(record, same_revision=same_revision, latest=latest)
            stored: MedicalRecord | None = None
            if decision.outcome is Outcome.ACCEPTED:
                added += _insert_record(conn, record, received_at, conflict=False)
            elif decision.outcome is Outcome.CONFLICT:
                shown = same[0] if same else versions[0]
                stored = MedicalRecord.model_validate_json(shown[2])
                added += _insert_record(conn, record, received_at, conflict=True)
                conn.execute(
                    "UPDATE records SET conflict = 1 WHERE id = ? AND revision = ?",
                    (rid, shown[0]),
                )
            results.append(SyncResult(decision.outcome, record, stored))
        return results, added  # the new versions' bytes join the unsent backlog

    return run


def _insert_record(
    conn: sqlite3.Connection, record: MedicalRecord, received_at: datetime, *, conflict: bool
) -> int:
    """Store one record version; returns its JSON bytes if it was new, else 0."""
    body = record.model_dump_json()
    nbytes = len(body.encode())
    cur = conn.execute(
        "INSERT OR IGNORE INTO records (id, revision, content_hash, patient_id, agent_id, type,"
        " updated_at, received_at, conflict, json, nbytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(record.id),
            record.revision,
            record.content_hash,
            record.patient_id,
            record.agent_id,
            record.type,
            record.updated_at.isoformat(),
            received_at.isoformat(),
            int(conflict),
            body,
            nbytes,
        ),
    )
    return nbytes if cur.rowcount == 1 else 0
