"""The hub's triage loop: new readings of bound patients in, stored triage results out.

Every `interval_s` (or at once after `wake()`), the engine takes the next batch of readings
that carry a patient (bound by an encounter) and that no triage result covers yet, in buffer
order. It groups them by patient, gathers each patient's vitals within the window (BLE readings
through `hub.inference.vitals`, plus the observations the agent wrote in the patient's medical
records), scores the whole batch with one `hub.inference.triage.triage` call on the model in use
at that moment (read once per batch: a swap never interrupts a batch) and stores the results with
`Buffer.add_triage` (a high band goes out at alert priority).

**The cursor is derived, not stored.** A reading is triaged when a stored result lists it
(`triage_readings`). Result ids are deterministic (UUIDv5 of the patient, the sorted ids of the
new readings the result covers and the model version) and `add_triage` is idempotent and atomic,
so a crash at any point either stored a batch's results or nothing: after a restart the engine
finds exactly the readings no result covers, never skipping one, never storing one twice. In
memory it only remembers the reading sequence up to which it looked (readings are numbered in
commit order), to keep each pass cheap.

**Each pass costs what is new, not the window.** Readings are immutable once stored, so what
the engine takes from one (its id, time and own vitals in chart units) is parsed once and kept
in memory, by reading id (a sequence number may be reused after pruning), while it is in its
patient's window (`_CACHED_ROWS` at most). A later pass reads only the patient's readings
stored since (`_Window.top`); it lists the whole window again when the window reaches further
back, a new reading is not found that way, or nothing is kept. A case reads, per vital, only the
readings at its first and last moment in the window (`_Index`): what NEWS2 and the features use.
`tests/hub/inference/test_engine_golden.py` pins the results byte for byte, with and without
the kept windows.

**Cadence** (`rescore_s`, 300 s by default; docs/triage.md, docs/decisions.md). A continuous
oximeter sends a reading every few seconds; scoring each one again costs more than storing it
and tells nobody anything new. A patient's new readings are scored on the next pass when any of
them scores 3 in a parameter or gives a parameter more points than the patient's last result did
(a vital appearing counts), when a record of the patient with observations or the age arrived,
when the last result was high (continuous monitoring), when the model in use changed, and always
for the patient's first readings since the engine started. Otherwise they are held, in memory,
and scored together at most `rescore_s` after the first of them was held. So a worsening NEWS2
is never late; an improvement, and the model's view of a trend, may wait. Held readings are not
covered by a result, so after a restart the engine finds them again and scores them at once.

**Agents' records are triaged when they arrive** (`_record_cases`): each pass looks at the
records received since the last (buffer v9 indexes `received_at`). A patient whose readings are
still being triaged waits; otherwise a record gets a case at its `updated_at` (or the patient's
newest reading, if later) unless a result computed after it arrived is at that moment or later
(`_covered`). Its result id adds the record's id and revision, so a restart, which looks at the
records of the last `lookback` again, scores nothing twice.

**Observations read from records** (`MedicalRecord.payload`, any record type of the patient;
the latest within the window wins, each key on its own):

- `observations.resp_rate`: breaths per minute (number);
- `observations.consciousness`: ACVPU letter, one of A C V P U;
- `observations.on_oxygen`: true when on supplemental oxygen (boolean);
- `observations.spo2_scale`: 1, or 2 when prescribed (number);
- `patient.age_years`: the age in years (number; the latest record up to the moment triaged,
  window or not).

A value of the wrong type is ignored (logged `triage_bad_observation`), never guessed. Errors in
one patient's data (an impossible value NEWS2 refuses) never stop the others: that patient's
readings are logged (`triage_case_failed`), counted and left untriaged until a restart retries
them. If the model fails, the batch is scored by NEWS2 alone (`triage_model_failed`). Every high
result is logged as `triage_high`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from hub.buffer.schema import open_reader
from hub.buffer.values import to_db_time
from hub.inference.triage import NEWS2_ONLY, Case, triage
from hub.inference.vitals import reading_vitals
from wire.items import MedicalRecord, Reading, RiskBand, TriageResult
from wire.news2 import RED_SCORE, InvalidVital, Vitals, subscore
from wire.triage_features import TimedVitals, latest_vitals
from wire.triage_inputs import observations

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from hub.buffer import Buffer
    from hub.inference.runtime import TriageModel

log = structlog.get_logger(__name__)

TRIAGE_NAMESPACE = uuid.UUID("5b0f4f3e-2a57-4c1e-9d43-7a2f5e0c9b61")
"""UUIDv5 namespace of triage result ids (fixed forever: ids must stay reproducible)."""

MAX_NEW_PER_CASE = 56
"""New readings one result covers at most (`TriageResult.reading_ids` holds 64, the vitals'
own readings take the rest)."""

_MAX_ROWS = 20_000
"""A patient's readings read for one pass at most (the oldest are taken first)."""
_RECORDS_PER_PATIENT = 500
_INLINE_CASES = 4
"""A pass with at most this many new readings, due patients and new records runs on the event
loop: handing it to a worker thread and back costs more (~0.15 ms) than it does."""
_RECORDS_OVERLAP = timedelta(minutes=5)
"""How far below the last `received_at` seen each look at new records starts again."""
_COVERING_RESULTS = 20
"""A patient's latest results looked at for one that already took an agent's record in."""
_CACHED_ROWS = 30_000
"""Parsed readings kept between passes at most (~700 B each: ~21 MB, against the hub's 120 MB
RSS budget); past it the cache starts over. 20 patients with an oximeter every 5 s fit."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the engine runs (from `[triage]` in the hub config)."""

    window: timedelta = timedelta(minutes=60)
    """Vitals measured this long before the newest reading count (NEWS2 takes the latest)."""
    interval_s: float = 2.0
    batch_size: int = 500
    """Readings taken per pass; one `triage()` call scores them all."""
    lookback: timedelta = timedelta(days=7)
    """Readings received longer ago than this are never triaged (older than any useful alert)."""
    rescore_s: float = 300.0
    """A patient whose new readings change nothing NEWS2 sees is rescored at most this often
    (see "Cadence" above); 0 scores every new reading at once."""


@dataclass(slots=True)
class EngineStats:
    """Counters since the engine started (logged, and for tests and `status`)."""

    batches: int = 0
    readings: int = 0
    results: int = 0
    stored: int = 0
    high: int = 0
    failed_cases: int = 0
    model_failures: int = 0
    bad_observations: int = 0
    held: int = 0
    """New readings held back by the cadence (each is scored later, once)."""
    by_band: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Pending:
    seq: int
    id: uuid.UUID
    key: str
    """The reading id as stored."""
    patient_id: str
    earliest: datetime
    """The earlier of its received and measured times."""


@dataclass(frozen=True, slots=True)
class _Row:
    """What triage takes from one stored reading, parsed once."""

    seq: int
    received: str
    """`received_at` as stored (fixed-width text: text order is time order)."""
    key: str
    """The reading id as stored (cheaper to hash than a UUID)."""
    id: uuid.UUID
    when: datetime
    """Its measured time, or its received time when it has none."""
    timed: TimedVitals | None
    """Its own vitals at `when` (SpO2 scale 1), None when it carries none NEWS2 uses."""
    names: tuple[str, ...]
    """The vitals it has a value of, among those `gather` takes from readings."""


_VITALS = ("spo2", "systolic", "pulse", "temperature")
"""The vitals `gather` takes from readings (`_Row.names`)."""


class _Index:
    """A window's rows by vital, in measuring-time order: a case reads what it needs, not all.

    NEWS2 takes the latest value of each vital and the features add the first one (the trend is
    latest minus earliest), so a case needs, per vital, only the readings at its earliest and at
    its latest moment in the case's window: `_case` passes those (every reading at such a moment,
    so `extract`'s own ordering of ties decides, as over the whole window). The result is the
    same as over every reading of the window, byte for byte (`test_engine_golden.py`), at the
    cost of two binary searches per vital instead of a pass over the window.
    """

    __slots__ = ("_rows", "_whens")

    def __init__(self, rows: Sequence[_Row] = ()) -> None:
        self._whens: dict[str, list[datetime]] = {name: [] for name in _VITALS}
        self._rows: dict[str, list[_Row]] = {name: [] for name in _VITALS}
        by_when = sorted(rows, key=_at)  # stable: equal moments keep their listing order
        for row in by_when:
            for name in row.names:
                self._whens[name].append(row.when)
                self._rows[name].append(row)

    def add(self, row: _Row) -> None:
        for name in row.names:
            whens = self._whens[name]
            at = bisect.bisect_right(whens, row.when)
            whens.insert(at, row.when)
            self._rows[name].insert(at, row)

    def remove(self, row: _Row) -> None:
        for name in row.names:
            whens, rows = self._whens[name], self._rows[name]
            at = bisect.bisect_left(whens, row.when)
            while rows[at] is not row:  # among the rows of that moment
                at += 1
            del whens[at]
            del rows[at]

    def ends(self, start: datetime, at: datetime) -> tuple[list[_Row], set[uuid.UUID]]:
        """The rows at each vital's first and last moment in (start, at], and those `gather` uses.

        `gather` uses, per vital, the first row in listing order (received time, then sequence
        number) of the latest moment: the same choice `_used` made over the whole window.
        """
        ends: dict[int, _Row] = {}
        used: set[uuid.UUID] = set()
        for name in _VITALS:
            whens, rows = self._whens[name], self._rows[name]
            lo = bisect.bisect_right(whens, start)
            hi = bisect.bisect_right(whens, at)
            if lo >= hi:
                continue
            first_end = bisect.bisect_right(whens, whens[lo], lo, hi)
            last_start = bisect.bisect_left(whens, whens[hi - 1], lo, hi)
            for row in rows[lo:first_end] + rows[last_start:hi]:
                ends[id(row)] = row
            used.add(min(rows[last_start:hi], key=_order).id)
        return list(ends.values()), used


@dataclass(frozen=True, slots=True)
class _Window:
    """A patient's readings received after `since`, as the last pass listed them."""

    since: str
    top: int
    """Every reading of the patient up to this sequence number received after `since` is in
    `rows` (readings are numbered in commit order and never change patient)."""
    rows: list[_Row]
    """In `readings_for_patient` order: received time, then sequence number."""
    complete: bool
    """False when the listing stopped at `_MAX_ROWS`."""
    index: _Index
    """`rows` by vital and measuring time."""
    by_key: dict[str, _Row]
    """`rows` by reading id."""


@dataclass(frozen=True, slots=True)
class _Planned:
    case: Case
    new_ids: tuple[uuid.UUID, ...]
    at: datetime
    spo2_scale: int
    on_oxygen: bool | None
    trigger: str = ""
    """For a case an agent's record caused: `record:<id>:<revision>` (part of the result id)."""


@dataclass(frozen=True, slots=True)
class _NewRecords:
    """A patient's records received since the engine last looked."""

    updated: datetime
    """The latest `updated_at` among them (the agent's clock)."""
    received: str
    """The latest `received_at` among them (as stored)."""
    key: str
    """`<id>:<revision>` of the one updated last."""


@dataclass(frozen=True, slots=True)
class _Last:
    """A patient's newest stored result: what the cadence compares new readings with."""

    band: RiskBand
    subscores: dict[str, int]
    spo2_scale: int
    on_oxygen: bool | None
    at: datetime
    model_version: str


@dataclass(slots=True)
class _Pass:
    """One pass's work, applied to the engine's memory only once its results are stored."""

    pending: list[_Pending]
    examined: int
    results: list[TriageResult] = field(default_factory=list)
    scored: dict[str, _Last] = field(default_factory=dict)
    held: list[_Pending] = field(default_factory=list)
    """New readings the cadence holds back."""
    released: set[str] = field(default_factory=set)
    """Patients whose held readings this pass scored (or gave up on, logged)."""
    records_after: str | None = None
    """The `received_at` up to which records were looked at (None: none yet)."""
    records_looked: dict[str, str] | None = None
    """Record versions looked at within the overlap, with their `received_at`."""
    records_waiting: dict[str, _NewRecords] | None = None
    """Patients' new records left for a later pass (None: unchanged)."""


class TriageEngine:
    """Triage new readings of bound patients in batches; see the module docstring."""

    def __init__(
        self,
        buffer: Buffer,
        db_path: Path,
        model: Callable[[], TriageModel | None],
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        model_loaded: Callable[[], bool] = lambda: True,
    ) -> None:
        """`model` returns the model for the next batch (e.g. `ModelHolder.triage_model`).

        `model_loaded` says whether calling `model` is cheap (`ModelHolder.loaded`): the first
        call may load the runtime (about a second), never on the event loop.
        """
        self._buffer = buffer
        self._path = db_path
        self._model = model
        self._model_loaded = model_loaded
        self.config = config or EngineConfig()
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._after_seq = 0
        self._windows: dict[str, _Window] = {}
        """Per patient, the readings of the last window listed, parsed."""
        self._cached = 0
        self._last: dict[str, _Last] = {}
        self._held: dict[str, dict[uuid.UUID, _Pending]] = {}
        self._held_since: dict[str, datetime] = {}
        """Per patient, when (engine clock) the oldest reading held now was held."""
        self._records_after: str | None = None
        """Records received up to this `received_at` were looked at (None: since `lookback`)."""
        self._records_looked: dict[str, str] = {}
        """`<id>:<revision>:<hash>` of the records looked at within the overlap below it."""
        self._records_waiting: dict[str, _NewRecords] = {}
        """New records of patients whose readings are still being triaged (`_record_cases`)."""
        self._wake = asyncio.Event()
        self.stats = EngineStats()

    def wake(self) -> None:
        """Run the next pass now (e.g. right after readings were stored)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Triage until `stop` is set; a failing pass is logged and retried on the next tick."""
        log.info("triage_started", window_s=self.config.window.total_seconds())
        try:
            while not stop.is_set():
                try:
                    # a pass that took less than a full batch examined every reading stored
                    while await self.run_once() >= self.config.batch_size and not stop.is_set():
                        pass
                except Exception as exc:  # noqa: BLE001 - the loop must outlive any one pass
                    log.error("triage_pass_failed", error=repr(exc))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.interval_s):
                        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
                        try:
                            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for w in waiters:
                                w.cancel()
        finally:
            self.close()
            log.info("triage_stopped", **_counts(self.stats))

    async def run_once(self) -> int:
        """One pass: triage the next batch of new readings; returns how many were taken.

        Held readings whose time has come are scored too (they were counted when taken).
        """
        work, due, records = self._look()  # a few indexed queries: on the loop
        size = len(work.pending) + len(due) + len(records)
        if size > _INLINE_CASES or (size and not self._model_loaded()):
            await asyncio.to_thread(self._take, work, due, records)
        elif size:  # a thread hop costs more than a small pass
            self._take(work, due, records)
        stored = await self._buffer.add_triage(work.results) if work.results else 0
        self._after_seq = work.examined  # only once stored: a failed pass is redone
        self._apply(work)
        if work.pending or work.results:
            self._count(work.pending, work.results, stored)
        return len(work.pending)

    @property
    def holding(self) -> int:
        """New readings held back by the cadence now (scored when due)."""
        return sum(len(held) for held in self._held.values())

    async def drain(self) -> int:
        """Pass after pass until no new reading is left; returns how many were taken.

        A pass that took less than a full batch examined every reading stored before it began.
        """
        total = 0
        while True:
            taken = await self.run_once()
            total += taken
            if taken < self.config.batch_size:
                return total

    def close(self) -> None:
        """Close the engine's read-only connection (reopened if the engine runs again)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- reading the buffer (read-only connection, worker thread) ---------------------------

    def _reader(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_reader(self._path)
        return self._conn

    def _look(self) -> tuple[_Pass, set[str], dict[str, _NewRecords]]:
        """What the next pass has to do: new readings, patients due, agents' new records."""
        pending, examined = self._pending()
        work = _Pass(pending, examined)
        now = self._clock()
        fresh, work.records_after, work.records_looked = self._new_records(now)
        records = dict(self._records_waiting)
        for patient_id, new in fresh.items():
            old = records.get(patient_id)
            records[patient_id] = new if old is None else _merged(old, new)
        rescore = timedelta(seconds=self.config.rescore_s)
        due = {patient for patient, since in self._held_since.items() if now - since >= rescore}
        due |= records.keys() & self._held.keys()  # a record may change what they show
        return work, due, records

    def _take(self, work: _Pass, due: set[str], records: dict[str, _NewRecords]) -> None:
        """Score what `_look` found into `work` (in a worker thread unless it is small)."""
        model = self._model()  # once per batch: a swap takes effect on the next batch
        self._compute(work, due, model, records)

    def _apply(self, work: _Pass) -> None:
        """Remember what a stored pass scored and held back."""
        for patient_id in work.released:
            self._held.pop(patient_id, None)
            self._held_since.pop(patient_id, None)
        self._last.update(work.scored)
        if work.records_after is not None:
            self._records_after = work.records_after
        if work.records_looked is not None:
            self._records_looked = work.records_looked
        if work.records_waiting is not None:
            self._records_waiting = work.records_waiting
        if work.held:
            self.stats.held += len(work.held)
            now = self._clock()
            for p in work.held:
                self._held.setdefault(p.patient_id, {})[p.id] = p
                self._held_since.setdefault(p.patient_id, now)

    def _pending(self) -> tuple[list[_Pending], int]:
        """The next readings with a patient that no stored result covers, in seq order.

        Also the sequence up to which every reading was examined: readings are numbered in
        commit order, so none can appear later below it.
        """
        since = to_db_time(self._clock() - self.config.lookback)
        conn = self._reader()
        (top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM reading_rows").fetchone()
        rows = conn.execute(
            "SELECT r.seq, r.id, r.patient_id, r.received_at, r.measured_at"
            " FROM reading_rows AS r"
            " WHERE r.seq > ? AND r.seq <= ? AND r.patient_id IS NOT NULL AND r.received_at > ?"
            " AND NOT EXISTS (SELECT 1 FROM triage_readings AS x WHERE x.reading_id = r.id)"
            " ORDER BY r.seq LIMIT ?",
            (self._after_seq, top, since, self.config.batch_size),
        ).fetchall()
        pending = [
            _Pending(
                int(seq),
                uuid.UUID(rid),
                str(rid),
                str(pid),
                min(datetime.fromisoformat(t) for t in (received, measured) if t is not None),
            )
            for seq, rid, pid, received, measured in rows
        ]
        full = len(pending) == self.config.batch_size
        return pending, pending[-1].seq if full else int(top)

    def _new_records(
        self, now: datetime
    ) -> tuple[dict[str, _NewRecords], str | None, dict[str, str]]:
        """The new records that carry triage inputs (per patient), the mark and the overlap.

        The mark is the latest `received_at` seen; the overlap, the record versions looked at
        within `_RECORDS_OVERLAP` below it. Triage inputs are `payload.observations` and
        `payload.patient.age_years`: a record without either (a household visit, a note)
        changes no triage and costs nothing here.
        A sync stamps `received_at` before it commits, so a record may appear below the mark
        already seen: each look goes back by the overlap and skips the versions it looked at.
        """
        if self._records_after is None:
            after = to_db_time(now - self.config.lookback)
        else:  # again over the overlap: a record is stamped before its sync commits
            after = to_db_time(datetime.fromisoformat(self._records_after) - _RECORDS_OVERLAP)
        rows = (
            self._reader()
            .execute(
                "SELECT patient_id, id, revision, content_hash, updated_at, received_at,"
                " json_extract(json, '$.payload.observations') IS NOT NULL"
                " OR json_extract(json, '$.payload.patient.age_years') IS NOT NULL"
                " FROM records INDEXED BY records_received WHERE received_at > ?"
                " ORDER BY received_at",
                (after,),
            )
            .fetchall()
        )
        out: dict[str, _NewRecords] = {}
        looked = dict(self._records_looked)
        for patient_id, rid, revision, digest, updated, received, triage_input in rows:
            version = f"{rid}:{revision}:{digest}"
            if version in looked:
                continue
            looked[version] = received
            if not triage_input:  # a record without observations or age changes no triage
                continue
            when = datetime.fromisoformat(updated)
            seen = out.get(patient_id)
            if seen is None or when > seen.updated:
                out[patient_id] = _NewRecords(when, received, f"{rid}:{revision}")
            else:
                out[patient_id] = replace(seen, received=received)
        high = max([self._records_after or "", *(row[5] for row in rows)]) or None
        if high is not None:  # forget what the next look's overlap no longer covers
            keep = to_db_time(datetime.fromisoformat(high) - _RECORDS_OVERLAP)
            looked = {version: at for version, at in looked.items() if at > keep}
        return out, high, looked

    def _record_case(self, patient_id: str, new: _NewRecords) -> _Planned | None:
        """The case an agent's record causes, or None when a result already saw the record.

        Its moment is the record's time, or the patient's newest reading if later (a result
        must never show an older moment than the readings already in). None when the patient's
        latest stored result (computed after the record arrived) is at that moment or later,
        when the record is a window or more older than it, or when there is nothing to score
        (no observation, no reading in the window).
        """
        window = self.config.window
        listed = self._readings(patient_id, new.updated - window, set())
        newest = max((r.when for r in listed.rows), default=new.updated)
        at = max(new.updated, newest)
        if at - window >= new.updated:
            return None
        if self._covered(patient_id, at, new.received):
            return None
        records = self._records(patient_id)
        planned = self._case(patient_id, [], listed.index, records, at, trigger=new.key)
        return planned if planned.case.series else None

    def _covered(self, patient_id: str, at: datetime, received: str) -> bool:
        """Whether a stored result of the patient is at `at` or later and saw the new record.

        One saw it when it was computed after the record was received at `received` (the
        engine's clock is the hub's): among the latest results so computed, one is enough.
        """
        rows = (
            self._reader()
            .execute(
                "SELECT json FROM triage WHERE patient_id = ? AND computed_at >= ?"
                " ORDER BY computed_at DESC LIMIT ?",
                (patient_id, received, _COVERING_RESULTS),
            )
            .fetchall()
        )
        for (text,) in rows:
            moment = TriageResult.model_validate_json(text).at
            if moment is not None and moment >= at:
                return True
        return False

    def _records(self, patient_id: str) -> list[MedicalRecord]:
        rows = (
            self._reader()
            .execute(
                "SELECT json FROM records WHERE patient_id = ? ORDER BY updated_at DESC LIMIT ?",
                (patient_id, _RECORDS_PER_PATIENT),
            )
            .fetchall()
        )
        return [MedicalRecord.model_validate_json(row[0]) for row in rows]

    def _readings(self, patient_id: str, since: datetime, new_keys: set[str]) -> _Window:
        """The patient's readings received after `since`, in `readings_for_patient` order.

        Only readings stored since the last pass are read when the last window covers this one
        (`_Window.top`); otherwise, or if one of `new_keys` is not found that way, the whole
        window is listed again (only readings not parsed yet are read in full).
        """
        after = to_db_time(since)
        cached = self._windows.pop(patient_id, None)
        if cached is not None:
            self._cached -= len(cached.rows)
        window = None
        if cached is not None and cached.complete and cached.since <= after:
            window, fresh = self._extend(patient_id, cached, after)
            unseen = new_keys - fresh
            if len(window.rows) >= _MAX_ROWS or (unseen and not unseen <= window.by_key.keys()):
                window = None
        if window is None:
            window = self._list(patient_id, after, cached)
        if self._cached + len(window.rows) > _CACHED_ROWS:
            self._windows.clear()
            self._cached = 0
        self._windows[patient_id] = window
        self._cached += len(window.rows)
        return window

    def _extend(self, patient_id: str, cached: _Window, after: str) -> tuple[_Window, set[str]]:
        """The cached window, less what is now too old, plus the readings stored since.

        Also the keys of the readings stored since.
        """
        fresh = (
            self._reader()
            .execute(
                "SELECT seq, json FROM reading_rows INDEXED BY readings_patient"
                " WHERE patient_id = ? AND seq > ? AND received_at > ?",
                (patient_id, cached.top, after),
            )
            .fetchall()
        )
        old = cached.rows
        cut = next((i for i, r in enumerate(old) if r.received > after), len(old))
        rows = old[cut:]  # the rows are in received order: the too old ones lead
        added = sorted((_row(int(seq), text) for seq, text in fresh), key=_order)
        if added and rows and _order(added[0]) < _order(rows[-1]):
            rows = sorted(rows + added, key=_order)  # received out of commit order
        else:
            rows += added
        index, by_key = cached.index, cached.by_key
        for row in old[:cut]:
            index.remove(row)
            del by_key[row.key]
        for row in added:
            index.add(row)
            by_key[row.key] = row
        top = max([cached.top, *(r.seq for r in added)])
        window = _Window(after, top, rows, True, index, by_key)  # noqa: FBT003 - complete
        return window, {r.key for r in added}

    def _list(self, patient_id: str, after: str, cached: _Window | None) -> _Window:
        """List the whole window; parse only the readings not parsed yet."""
        conn = self._reader()
        if cached is None:  # nothing parsed yet: one query
            parsed = conn.execute(
                "SELECT seq, json FROM reading_rows INDEXED BY readings_patient"
                " WHERE patient_id = ? AND received_at > ? ORDER BY received_at, seq LIMIT ?",
                (patient_id, after, _MAX_ROWS),
            ).fetchall()
            rows = [_row(int(seq), text) for seq, text in parsed]
            top = max((r.seq for r in rows), default=0)
            return _window(after, top, rows, complete=len(rows) < _MAX_ROWS)
        listing = conn.execute(
            "SELECT seq, id FROM reading_rows INDEXED BY readings_patient"
            " WHERE patient_id = ? AND received_at > ? ORDER BY received_at, seq LIMIT ?",
            (patient_id, after, _MAX_ROWS),
        ).fetchall()
        listed = {str(rid): int(seq) for seq, rid in listing}
        known = {r.key: r for r in cached.rows if listed.get(r.key) == r.seq}
        missing = [rid for rid in listed if rid not in known]
        if missing:
            parsed = conn.execute(
                "SELECT seq, json FROM reading_rows WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(missing),),
            ).fetchall()
            known.update((row.key, row) for row in (_row(int(q), text) for q, text in parsed))
        # A reading pruned in between is left out; a reused sequence number is not mistaken.
        rows = [known[rid] for seq, rid in listing if rid in known and known[rid].seq == seq]
        top = max((int(seq) for seq, _ in listing), default=0)
        return _window(after, top, rows, complete=len(listing) < _MAX_ROWS)

    # --- building and scoring cases (worker thread) -----------------------------------------

    def _compute(
        self,
        work: _Pass,
        due: set[str],
        model: TriageModel | None,
        records: dict[str, _NewRecords],
    ) -> None:
        by_patient: dict[str, list[_Pending]] = {patient_id: [] for patient_id in due}
        for p in work.pending:
            by_patient.setdefault(p.patient_id, []).append(p)
        planned: list[_Planned] = []
        version = model.version if model is not None else NEWS2_ONLY
        for patient_id, fresh in by_patient.items():
            items = [*self._held.get(patient_id, {}).values(), *fresh]
            # a new record of the patient (observations) is as urgent as a worse reading
            may_wait = (
                patient_id not in due
                and patient_id not in records
                and self._may_wait(patient_id, version)
            )
            try:
                plan = self._plan(patient_id, items, {p.key for p in fresh}, may_wait=may_wait)
            except Exception as exc:  # noqa: BLE001 - one patient's data never stops the others
                self._case_failed(patient_id, [p.id for p in items], exc)
                work.released.add(patient_id)  # left for a restart, as any failed case
                continue
            if plan is None:
                work.held += fresh
            else:
                planned += plan
                work.released.add(patient_id)
        planned += self._record_cases(work, planned, records)
        work.results = self._score(planned, model)
        by_id = {result.id: result for result in work.results}
        for item in planned:  # the model's result, or NEWS2's if the model failed
            result = by_id.get(_result_id(item, model)) or by_id.get(_result_id(item, None))
            last = work.scored.get(result.patient_id or "") if result is not None else None
            if result is not None and (last is None or item.at >= last.at):
                work.scored[result.patient_id or ""] = _Last(
                    result.band,
                    result.news2_subscores,
                    item.spo2_scale,
                    item.on_oxygen,
                    item.at,
                    result.model_version,
                )

    def _record_cases(
        self, work: _Pass, planned: Sequence[_Planned], records: dict[str, _NewRecords]
    ) -> list[_Planned]:
        """The cases the agent's new records cause (`_record_case`), after the readings' own.

        A patient with readings no result covers yet (or scored in this very pass) waits: its
        readings go first, and their results may already take the record in.
        """
        out: list[_Planned] = []
        waiting: dict[str, _NewRecords] = {}
        busy = {p.case.patient_id for p in planned}
        for patient_id, new in records.items():
            if patient_id in self._held and patient_id not in work.released:
                continue  # its held readings failed above (logged): left for a restart
            if patient_id in busy or self._untriaged(patient_id):
                waiting[patient_id] = new
                continue
            try:
                case = self._record_case(patient_id, new)
            except Exception as exc:  # noqa: BLE001 - one patient's data never stops the others
                self._case_failed(patient_id, [], exc)
                continue
            if case is not None:
                out.append(case)
        work.records_waiting = waiting
        return out

    def _untriaged(self, patient_id: str) -> bool:
        """Whether the patient has readings (within `lookback`) no stored result covers."""
        since = to_db_time(self._clock() - self.config.lookback)
        row = (
            self._reader()
            .execute(
                "SELECT 1 FROM reading_rows AS r INDEXED BY readings_patient"
                " WHERE r.patient_id = ? AND r.received_at > ? AND NOT EXISTS"
                " (SELECT 1 FROM triage_readings AS x WHERE x.reading_id = r.id) LIMIT 1",
                (patient_id, since),
            )
            .fetchone()
        )
        return row is not None

    def _plan(
        self,
        patient_id: str,
        items: Sequence[_Pending],
        fresh: set[str],
        *,
        may_wait: bool,
    ) -> list[_Planned] | None:
        """One case per run of new readings within a window of each other (newest first).

        None when the cadence holds the fresh readings back (`_can_wait`).
        """
        window = self.config.window
        # The new readings and every reading measured within a window of one of them: a reading
        # is received after it is measured, so received after the earliest moment minus a window.
        since = min(p.earliest for p in items) - window
        new_keys = {p.key for p in items}
        listed = self._readings(patient_id, since, new_keys)
        by_key = listed.by_key
        if may_wait:
            fresh_rows = [by_key[key] for key in fresh if key in by_key]
            if len(fresh_rows) == len(fresh) and self._can_wait(patient_id, fresh_rows):
                return None
        new = sorted((by_key[key] for key in new_keys if key in by_key), key=_at, reverse=True)
        if len(new) < len(items):  # beyond the rows read: left for a restart, said out loud
            log.warning(
                "triage_readings_not_found", patient_id=patient_id, count=len(items) - len(new)
            )
        records = self._records(patient_id)
        planned: list[_Planned] = []
        while new:
            at = new[0].when
            chunk = [r for r in new if r.when > at - window][:MAX_NEW_PER_CASE]
            taken = {r.key for r in chunk}
            new = [r for r in new if r.key not in taken]
            planned.append(self._case(patient_id, chunk, listed.index, records, at))
        return planned

    def _may_wait(self, patient_id: str, version: str) -> bool:
        """Whether the patient's new readings may wait at all (see "Cadence").

        Not when the cadence is off, the patient has no result since the engine started, the
        last one was high (continuous monitoring) or came from another model than the one in use.
        """
        last = self._last.get(patient_id)
        return (
            self.config.rescore_s > 0
            and last is not None
            and last.band is not RiskBand.HIGH
            and last.model_version == version
        )

    def _can_wait(self, patient_id: str, fresh: Sequence[_Row]) -> bool:
        """Whether the fresh readings make nothing NEWS2 sees worse, so they may wait.

        They may not when a fresh reading scores 3 in a parameter, more points than the last
        result in one, or has a vital the last result had not (a new record of the patient
        makes them due in `_compute`). Fewer points may wait: the band shown stays the higher.
        """
        last = self._last[patient_id]
        for row in fresh:
            if row.timed is None:
                continue
            vitals = row.timed.vitals
            for name in row.names:
                value = getattr(vitals, name)
                points = _points(name, value, last.spo2_scale, last.on_oxygen)
                if points is None:  # SpO2 on scale 2, oxygen unknown: NEWS2 leaves it out too
                    continue
                before = last.subscores.get(name)
                if points == RED_SCORE or before is None or points > before:
                    return False
        return True

    def _case(
        self,
        patient_id: str,
        new: list[_Row],
        index: _Index,
        records: list[MedicalRecord],
        at: datetime,
        *,
        trigger: str = "",
    ) -> _Planned:
        ends, used = index.ends(at - self.config.window, at)
        observed, scale, age = self._observations(records, at)
        on_oxygen = latest_vitals(observed).on_oxygen
        series: list[TimedVitals] = list(observed)
        series += [r.timed for r in ends if r.timed is not None]
        if scale != 1:  # every entry was made with scale 1 (the default)
            series = [TimedVitals(e.at, replace(e.vitals, spo2_scale=scale)) for e in series]
        new_ids = tuple(sorted({r.id for r in new}, key=str))
        reading_ids = tuple(sorted(set(new_ids) | set(used), key=str))
        case = Case(tuple(series), age, patient_id, reading_ids, at)
        return _Planned(case, new_ids, at, scale, on_oxygen, trigger)

    def _observations(
        self, records: list[MedicalRecord], at: datetime
    ) -> tuple[tuple[TimedVitals, ...], int, float | None]:
        """The agent's observations within the window, the SpO2 scale and the age at `at`.

        The rule is `wire.triage_inputs.observations`: the cloud rebuilds the same inputs.
        """
        seen = observations(
            ((r.updated_at, r.payload) for r in records), at=at, window=self.config.window
        )
        for index, key in seen.bad:
            self._bad(records[index], key)
        return seen.series, seen.spo2_scale, seen.age_years

    def _score(self, planned: list[_Planned], model: TriageModel | None) -> list[TriageResult]:
        """Score every case in one call; isolate a failing case, fall back to NEWS2 if need be."""
        if not planned:
            return []
        now = self._clock()
        try:
            return self._triage(planned, model, now)
        except InvalidVital:
            pass  # some case holds an impossible value: score them one by one to find it
        except Exception as exc:
            if model is None:
                raise
            self.stats.model_failures += 1
            log.error("triage_model_failed", version=model.version, error=repr(exc))
            return self._score(planned, None)
        results: list[TriageResult] = []
        for item in planned:
            try:
                results += self._triage([item], model, now)
            except InvalidVital as exc:
                assert item.case.patient_id is not None  # noqa: S101 - set by _case
                self._case_failed(item.case.patient_id, list(item.new_ids), exc)
        return results

    def _triage(
        self, planned: list[_Planned], model: TriageModel | None, now: datetime
    ) -> list[TriageResult]:
        ids = [_result_id(p, model) for p in planned]
        window_s = int(self.config.window.total_seconds())
        return triage([p.case for p in planned], model, now=now, ids=ids, window_s=window_s)

    # --- bookkeeping -------------------------------------------------------------------------

    def _case_failed(
        self, patient_id: str, reading_ids: Sequence[uuid.UUID], exc: Exception
    ) -> None:
        self.stats.failed_cases += 1
        log.error(
            "triage_case_failed",
            patient_id=patient_id,
            readings=[str(r) for r in reading_ids],
            error=str(exc),
        )

    def _bad(self, record: MedicalRecord, key: str) -> None:
        self.stats.bad_observations += 1
        log.warning("triage_bad_observation", record_id=str(record.id), key=key)

    def _count(
        self, pending: Sequence[_Pending], results: Sequence[TriageResult], stored: int
    ) -> None:
        stats = self.stats
        stats.batches += 1
        stats.readings += len(pending)
        stats.results += len(results)
        stats.stored += stored
        for result in results:
            stats.by_band[result.band.value] = stats.by_band.get(result.band.value, 0) + 1
            if result.band is RiskBand.HIGH:
                stats.high += 1
                log.warning(
                    "triage_high",
                    patient_id=result.patient_id,
                    triage_id=str(result.id),
                    news2_score=result.news2_score,
                    score=round(result.score, 4),
                    complete=result.complete,
                    model_version=result.model_version,
                )
        log.debug("triage_batch", readings=len(pending), results=len(results), stored=stored)


def result_id(
    patient_id: str, new_reading_ids: Sequence[uuid.UUID], model_version: str, trigger: str = ""
) -> uuid.UUID:
    """The deterministic id of a result: UUIDv5 of the patient, new readings and model version.

    A case an agent's record caused adds `trigger` (`record:<id>:<revision>`) on a line of its
    own; readings' cases keep the id they always had.
    """
    readings = ",".join(sorted(str(r) for r in new_reading_ids))
    name = f"{patient_id}\n{readings}\n{model_version}"
    return uuid.uuid5(TRIAGE_NAMESPACE, f"{name}\nrecord:{trigger}" if trigger else name)


def _merged(old: _NewRecords, new: _NewRecords) -> _NewRecords:
    """Two looks at a patient's new records as one: the later record, the later arrival."""
    latest = new if new.updated >= old.updated else old
    return replace(latest, received=max(old.received, new.received))


def _result_id(planned: _Planned, model: TriageModel | None) -> uuid.UUID:
    version = model.version if model is not None else NEWS2_ONLY
    return result_id(planned.case.patient_id or "", planned.new_ids, version, planned.trigger)


@functools.lru_cache(maxsize=4096)
def _points(name: str, value: float, spo2_scale: int, on_oxygen: bool | None) -> int | None:
    """`wire.news2.subscore`, remembered: an oximeter repeats the same few whole numbers."""
    return subscore(name, value, spo2_scale=spo2_scale, on_oxygen=on_oxygen)


def _when(reading: Reading) -> datetime:
    return reading.measured_at or reading.received_at


def _at(row: _Row) -> datetime:
    return row.when


def _order(row: _Row) -> tuple[str, int]:
    return row.received, row.seq


def _window(since: str, top: int, rows: list[_Row], *, complete: bool) -> _Window:
    return _Window(since, top, rows, complete, _Index(rows), {r.key: r for r in rows})


def _row(seq: int, text: str) -> _Row:
    """The triage view of a stored reading's JSON: the reading and its own vitals."""
    reading = Reading.model_validate_json(text)  # ~4 us: pydantic-core, cheaper than by hand
    # The same instant with `datetime.UTC` as its zone: comparing datetimes of one zone object
    # skips `utcoffset()` calls (pydantic's own zone makes a window filter ~5x slower).
    when = _when(reading).astimezone(UTC)
    values = reading_vitals(reading)  # as `gather` takes them, without its window machinery
    names = tuple(name for name in _VITALS if name in values)
    vitals = Vitals(
        spo2=values.get("spo2"),
        systolic=values.get("systolic"),
        pulse=values.get("pulse"),
        temperature=values.get("temperature"),
    )
    timed = TimedVitals(when, vitals) if names else None
    received = to_db_time(reading.received_at)
    return _Row(seq, received, str(reading.id), reading.id, when, timed, names)


def _counts(stats: EngineStats) -> dict[str, object]:
    return {
        "batches": stats.batches,
        "readings": stats.readings,
        "results": stats.results,
        "high": stats.high,
        "failed_cases": stats.failed_cases,
        "model_failures": stats.model_failures,
    }
