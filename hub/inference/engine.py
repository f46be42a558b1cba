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
import contextlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from hub.buffer.schema import open_reader
from hub.buffer.values import to_db_time
from hub.inference.triage import NEWS2_ONLY, Case, triage
from hub.inference.vitals import gather
from wire.items import MedicalRecord, Reading, RiskBand, TriageResult
from wire.news2 import Consciousness, InvalidVital, Vitals
from wire.triage_features import TimedVitals

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

_PAGE = 2000
_MAX_PAGES = 10
_RECORDS_PER_PATIENT = 500
_TINY = timedelta(microseconds=1)


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
    by_band: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Pending:
    seq: int
    id: uuid.UUID
    patient_id: str
    earliest: datetime
    """The earlier of its received and measured times."""


@dataclass(frozen=True, slots=True)
class _Planned:
    case: Case
    new_ids: tuple[uuid.UUID, ...]
    at: datetime


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
    ) -> None:
        """`model` returns the model for the next batch (e.g. `ModelHolder.triage_model`)."""
        self._buffer = buffer
        self._path = db_path
        self._model = model
        self.config = config or EngineConfig()
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._after_seq = 0
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
                    while await self.run_once() and not stop.is_set():
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
        """One pass: triage the next batch of new readings; returns how many were taken."""
        pending, examined = await asyncio.to_thread(self._pending)
        if not pending:
            self._after_seq = examined
            return 0
        model = self._model()  # once per batch: a swap takes effect on the next batch
        results = await asyncio.to_thread(self._compute, pending, model)
        stored = await self._buffer.add_triage(results)
        self._after_seq = examined  # only once stored: a failed pass is redone
        self._count(pending, results, stored)
        return len(pending)

    async def drain(self) -> int:
        """Pass after pass until no new reading is left; returns how many were taken."""
        total = 0
        while taken := await self.run_once():
            total += taken
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
                str(pid),
                min(datetime.fromisoformat(t) for t in (received, measured) if t is not None),
            )
            for seq, rid, pid, received, measured in rows
        ]
        full = len(pending) == self.config.batch_size
        return pending, pending[-1].seq if full else int(top)

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

    def _readings(self, patient_id: str, since: datetime) -> list[Reading]:
        out: list[Reading] = []
        for _ in range(_MAX_PAGES):
            page = self._buffer.readings_for_patient(patient_id, since=since, limit=_PAGE)
            out += page
            if len(page) < _PAGE:
                break
            since = page[-1].received_at
        return out

    # --- building and scoring cases (worker thread) -----------------------------------------

    def _compute(
        self, pending: Sequence[_Pending], model: TriageModel | None
    ) -> list[TriageResult]:
        by_patient: dict[str, list[_Pending]] = {}
        for p in pending:
            by_patient.setdefault(p.patient_id, []).append(p)
        planned: list[_Planned] = []
        for patient_id, items in by_patient.items():
            new_ids = [p.id for p in items]
            try:
                planned += self._plan(patient_id, set(new_ids), [p.earliest for p in items])
            except Exception as exc:  # noqa: BLE001 - one patient's data never stops the others
                self._case_failed(patient_id, new_ids, exc)
        return self._score(planned, model)

    def _plan(
        self, patient_id: str, new_ids: set[uuid.UUID], earliest: Sequence[datetime]
    ) -> list[_Planned]:
        """One case per run of new readings within a window of each other (newest first)."""
        window = self.config.window
        records = self._records(patient_id)
        # The new readings and every reading measured within a window of one of them: a reading
        # is received after it is measured, so received after the earliest moment minus a window.
        since = min(earliest) - window
        candidates = self._readings(patient_id, since)
        new = sorted((r for r in candidates if r.id in new_ids), key=_when, reverse=True)
        if len(new) < len(new_ids):  # beyond the pages read: left for a restart, said out loud
            missing = new_ids - {r.id for r in new}
            log.warning("triage_readings_not_found", patient_id=patient_id, count=len(missing))
        planned: list[_Planned] = []
        while new:
            at = _when(new[0])
            chunk = [r for r in new if _when(r) > at - window][:MAX_NEW_PER_CASE]
            taken = {r.id for r in chunk}
            new = [r for r in new if r.id not in taken]
            planned.append(self._case(patient_id, chunk, candidates, records, at))
        return planned

    def _case(
        self,
        patient_id: str,
        new: list[Reading],
        readings: list[Reading],
        records: list[MedicalRecord],
        at: datetime,
    ) -> _Planned:
        window = self.config.window
        in_window = [r for r in readings if at - window < _when(r) <= at]
        observed, scale, age = self._observations(records, at)
        series: list[TimedVitals] = list(observed)
        for reading in in_window:
            vitals = gather([reading], at=_when(reading), window=_TINY).vitals
            if any(v is not None for v in (vitals.spo2, vitals.systolic, vitals.pulse)) or (
                vitals.temperature is not None
            ):
                series.append(TimedVitals(_when(reading), vitals))
        series = [TimedVitals(e.at, replace(e.vitals, spo2_scale=scale)) for e in series]
        used = gather(in_window, at=at, window=window).reading_ids
        new_ids = tuple(sorted({r.id for r in new}, key=str))
        reading_ids = tuple(sorted(set(new_ids) | set(used), key=str))
        case = Case(tuple(series), age, patient_id, reading_ids)
        return _Planned(case, new_ids, at)

    def _observations(
        self, records: list[MedicalRecord], at: datetime
    ) -> tuple[list[TimedVitals], int, float | None]:
        """The agent's observations within the window, the SpO2 scale and the age at `at`."""
        series: list[TimedVitals] = []
        scale = 1
        scale_at: datetime | None = None
        age: float | None = None
        age_at: datetime | None = None
        for record in records:
            when = record.updated_at
            if when > at:
                continue
            payload = record.payload
            patient = payload.get("patient")
            if isinstance(patient, dict) and "age_years" in patient:
                value = _number(patient["age_years"])
                if value is None or value < 0:
                    self._bad(record, "patient.age_years")
                elif age_at is None or when > age_at:
                    age, age_at = value, when
            obs = payload.get("observations")
            if not isinstance(obs, dict) or not at - self.config.window < when:
                continue
            vitals, record_scale = self._parse_observations(record, obs)
            if record_scale is not None and (scale_at is None or when > scale_at):
                scale, scale_at = record_scale, when
            if vitals != Vitals():
                series.append(TimedVitals(when, vitals))
        return series, scale, age

    def _parse_observations(
        self, record: MedicalRecord, obs: dict[str, Any]
    ) -> tuple[Vitals, int | None]:
        rr = consciousness = on_oxygen = scale = None
        if "resp_rate" in obs:
            rr = _number(obs["resp_rate"])
            if rr is None:
                self._bad(record, "observations.resp_rate")
        if "consciousness" in obs:
            try:
                consciousness = Consciousness(str(obs["consciousness"]).upper())
            except ValueError:
                self._bad(record, "observations.consciousness")
        if "on_oxygen" in obs:
            if isinstance(obs["on_oxygen"], bool):
                on_oxygen = obs["on_oxygen"]
            else:
                self._bad(record, "observations.on_oxygen")
        if "spo2_scale" in obs:
            if obs["spo2_scale"] in (1, 2) and not isinstance(obs["spo2_scale"], bool):
                scale = int(obs["spo2_scale"])
            else:
                self._bad(record, "observations.spo2_scale")
        vitals = Vitals(respiration_rate=rr, consciousness=consciousness, on_oxygen=on_oxygen)
        return vitals, scale

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

    @staticmethod
    def _triage(
        planned: list[_Planned], model: TriageModel | None, now: datetime
    ) -> list[TriageResult]:
        version = model.version if model is not None else NEWS2_ONLY
        ids = [result_id(p.case.patient_id or "", p.new_ids, version) for p in planned]
        return triage([p.case for p in planned], model, now=now, ids=ids)

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
    patient_id: str, new_reading_ids: Sequence[uuid.UUID], model_version: str
) -> uuid.UUID:
    """The deterministic id of a result: UUIDv5 of the patient, new readings and model version."""
    readings = ",".join(sorted(str(r) for r in new_reading_ids))
    return uuid.uuid5(TRIAGE_NAMESPACE, f"{patient_id}\n{readings}\n{model_version}")


def _when(reading: Reading) -> datetime:
    return reading.measured_at or reading.received_at


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _counts(stats: EngineStats) -> dict[str, object]:
    return {
        "batches": stats.batches,
        "readings": stats.readings,
        "results": stats.results,
        "high": stats.high,
        "failed_cases": stats.failed_cases,
        "model_failures": stats.model_failures,
    }
