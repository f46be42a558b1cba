"""The cloud's full model: rescore what hubs triaged with the float model, next to the hub's result.

For every stored `triage_results` row the cloud

1. reads the readings the result references (`reading_ids`) from PostgreSQL, the patient's other
   readings from the same hub measured within the triage window and received by the hub before
   it triaged, and the patient's medical records from that hub;
2. rebuilds the hub's inputs exactly as `hub/inference/engine.py` does (the case moment is the
   newest referenced reading; observations `observations.resp_rate`, `.consciousness`,
   `.on_oxygen`, `.spo2_scale` of the records within the window, the latest winning; the age
   `patient.age_years` of the latest record up to that moment) and the feature row from them
   (`wire.triage_features.extract_with_news2`), with the same conversions as the hub's vitals
   gathering: the table, the conversions and the observation rule are `wire/triage_inputs.py`,
   which the hub's engine calls too;
3. compares the rebuilt row's input hash with the hub's: when none of the hub's constructions
   matches, an input the hub had has not reached the cloud (a record, a reading) and the result
   is `not_scorable` / `inputs_missing`, never scored with other inputs;
4. runs the float model of the same version (`model_float.tflite`, the manifest's normalisation
   and band thresholds) once per batch and applies the same safety rule (final band = the higher
   of NEWS2's and the model's);
5. stores a `cloud_predictions` row (migrations 0005, 0007): probability, cloud band, the hub's
   band, `agree`, `input_match`. A result it cannot score is stored as `not_scorable` with the
   reason (its readings or inputs are missing, its model is unknown, it was NEWS2 only, a vital
   is impossible): it never stops the others.

**Late inputs are retried by the scorer itself.** A high result travels at alert priority, ahead
of its readings and records. A `readings_missing` or `inputs_missing` verdict carries `retry_at`:
every run first retries one batch of due verdicts (at once on the next run, then after 15 s,
45 s, ... doubling, `RETRY_ATTEMPTS` tries at most, then the verdict stays). Runs are woken by
stored batches, so nothing loops hot. `score_pending(retry_missing=True)` (`tecsa-cloud models
score --retry-missing`) still forgets every such verdict, and `unknown_model`, at once.

Scoring is idempotent (rows are found by `NOT EXISTS` and inserted `ON CONFLICT DO NOTHING`)
and batched (`BATCH_SIZE` results per transaction, one model invocation per version per batch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud.db.connection import require_idle, translated
from cloud.errors import CloudError
from cloud.models.litert import LiteRTRunner, ModelRunError
from wire.news2 import InvalidVital, Vitals
from wire.triage_features import (
    FEATURE_NAMES,
    Normalisation,
    TimedVitals,
    band_of_probability,
    extract_with_news2,
    higher_band,
    input_hash,
    normalise,
)
from wire.triage_inputs import chart_value, observations

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime
    from uuid import UUID

    import psycopg

    from wire.items import RiskBand
    from wire.news2 import News2

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
"""Where each model version's directory (manifest.json, model_float.tflite) lives."""
FLOAT_FILE = "model_float.tflite"
MANIFEST_FILE = "manifest.json"
BATCH_SIZE = 500
"""Triage results scored per transaction."""
NEWS2_ONLY = "news2-only"
"""The hub's model_version when no model ran (hub.inference.triage.NEWS2_ONLY)."""
TRIAGE_WINDOW = timedelta(minutes=60)
"""The hubs' triage window (`[triage] window`, hub.inference.engine.EngineConfig.window)."""
RECORDS_PER_PATIENT = 500
"""A patient's records read per case at most, newest first (the hub's `_RECORDS_PER_PATIENT`)."""
WINDOW_READINGS_CAP = 20_000
"""A patient's readings read per batch at most (the hub's `_MAX_ROWS`)."""
RETRYABLE = ("readings_missing", "inputs_missing")
"""The `not_scorable` reasons the scorer retries by itself: inputs that may still arrive."""
RETRY_BASE = timedelta(seconds=15)
RETRY_ATTEMPTS = 12
"""Tries at most (waits 0, 15 s, 45 s, ... about 8.5 h in all); then the verdict stays."""


class FullModelError(CloudError):
    """A model version's float model cannot be found, verified or loaded."""


@dataclass(frozen=True, slots=True)
class StoredReading:
    """What the cloud holds of one reading, as far as triage needs it."""

    id: UUID
    measured_at: datetime
    kind: str
    components: Mapping[str, Any]


class FullModel:
    """The float model of one version with its manifest's normalisation and band thresholds."""

    def __init__(self, manifest: Mapping[str, Any], content: bytes) -> None:
        try:
            features = manifest["features"]
            if tuple(features["names"]) != FEATURE_NAMES:
                raise FullModelError(
                    "the model's feature names are not the ones the cloud computes"
                )
            self.spec = Normalisation(tuple(features["mean"]), tuple(features["std"]))
            self.version = str(manifest["version"])
            self.thresholds: dict[str, float] = {
                str(k): float(v) for k, v in dict(manifest["band_thresholds"]).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise FullModelError(f"the model manifest is incomplete or malformed: {exc}") from exc
        try:
            self._runner = LiteRTRunner(content)
        except ModelRunError as exc:
            raise FullModelError(str(exc)) from exc

    def predict(self, rows: Sequence[Sequence[float]]) -> list[tuple[float, RiskBand]]:
        """(probability, model band) for each raw feature row, in one invocation."""
        if not rows:
            return []
        probabilities = self._runner.predict([normalise(row, self.spec) for row in rows])
        return [(float(p), band_of_probability(float(p), self.thresholds)) for p in probabilities]


def load_full_model(version: str, artifacts: Path = ARTIFACTS_DIR) -> FullModel:
    """The float model of `version` from `artifacts/<version>/`, its SHA-256 and size checked."""
    directory = artifacts / version
    if "/" in version or version.startswith(".") or not (directory / MANIFEST_FILE).is_file():
        raise FullModelError(f"no model artifacts for version {version!r} in {artifacts}")
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        content = (directory / FLOAT_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise FullModelError(f"cannot read the float model of {version}: {exc}") from exc
    expected = manifest.get("files", {}).get(FLOAT_FILE, {})
    if hashlib.sha256(content).hexdigest() != expected.get("sha256") or len(
        content
    ) != expected.get("bytes"):
        raise FullModelError(f"{directory / FLOAT_FILE} does not match its manifest's SHA-256")
    if str(manifest.get("version")) != version:
        raise FullModelError(
            f"{directory} holds version {manifest.get('version')!r}, not {version}"
        )
    return FullModel(manifest, content)


@dataclass
class ModelShelf:
    """Float models by version, loaded once; a version that cannot be loaded is remembered."""

    artifacts: Path = ARTIFACTS_DIR
    _models: dict[str, FullModel | None] = field(default_factory=dict)

    def get(self, version: str) -> FullModel | None:
        """The float model of `version`, or None when there is none (not scorable)."""
        if version not in self._models:
            try:
                self._models[version] = load_full_model(version, self.artifacts)
            except FullModelError:
                self._models[version] = None
        return self._models[version]


def series_of(readings: Iterable[StoredReading]) -> tuple[TimedVitals, ...]:
    """One `TimedVitals` per reading (at its measuring time), with the vitals it carries.

    Observations (respiration rate, consciousness, oxygen, SpO2 scale 2) are not readings: they
    stay unknown (scale 1), exactly as on a hub that triages readings alone.
    """
    series = []
    for r in readings:
        values: dict[str, float] = {}
        for name, component in r.components.items():
            if not isinstance(component, dict):
                continue
            converted = chart_value(r.kind, name, component.get("value"), component.get("unit"))
            if converted is not None:
                values[converted[0]] = converted[1]
        series.append(
            TimedVitals(
                at=r.measured_at,
                vitals=Vitals(
                    respiration_rate=None,
                    spo2=values.get("spo2"),
                    systolic=values.get("systolic"),
                    pulse=values.get("pulse"),
                    temperature=values.get("temperature"),
                    on_oxygen=None,
                    consciousness=None,
                ),
            )
        )
    return tuple(series)


def snapshot_of(series: Sequence[TimedVitals]) -> tuple[TimedVitals, ...]:
    """The latest value of each vital as one entry (what `hub.inference.vitals.gather` returns)."""
    if not series:
        return ()
    latest: dict[str, float] = {}
    for entry in sorted(series, key=lambda e: e.at):
        for name in ("spo2", "systolic", "pulse", "temperature"):
            value = getattr(entry.vitals, name)
            if value is not None:
                latest[name] = value
    at = max(e.at for e in series)
    vitals = Vitals(
        spo2=latest.get("spo2"),
        systolic=latest.get("systolic"),
        pulse=latest.get("pulse"),
        temperature=latest.get("temperature"),
    )
    return (TimedVitals(at=at, vitals=vitals),)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """What the cloud holds of one medical record revision, as far as triage needs it."""

    updated_at: datetime
    payload: Mapping[str, Any]


def observations_of(
    records: Iterable[StoredRecord], at: datetime, window: timedelta = TRIAGE_WINDOW
) -> tuple[list[TimedVitals], int, float | None]:
    """The agent's observations within the window, the SpO2 scale and the age at `at`.

    The hub's own rule, shared through `wire.triage_inputs.observations` (values of the wrong
    type are ignored there, as on the hub).
    """
    seen = observations(((r.updated_at, r.payload) for r in records), at=at, window=window)
    return list(seen.series), seen.spo2_scale, seen.age_years


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """The feature row the cloud rebuilt for one triage result, and whether it is the hub's."""

    row: tuple[float, ...]
    news2: News2
    input_hash: str
    input_match: bool


def hub_series(
    readings: Iterable[StoredReading],
    records: Iterable[StoredRecord],
    at: datetime,
    window: timedelta = TRIAGE_WINDOW,
) -> tuple[tuple[TimedVitals, ...], float | None]:
    """The series and age the hub triaged at `at`: observations + readings within the window.

    As `hub/inference/engine.py` `_case` builds it: the records' observations, then one entry
    per reading measured within `(at - window, at]` that carries a vital NEWS2 uses, all at
    the SpO2 scale of the latest record that sets one.
    """
    observed, scale, age = observations_of(records, at, window)
    in_window = [r for r in readings if at - window < r.measured_at <= at]
    series = observed + [e for e in series_of(in_window) if e.vitals != Vitals()]
    if scale != 1:
        series = [TimedVitals(e.at, replace(e.vitals, spo2_scale=scale)) for e in series]
    return tuple(series), age


def rebuild(
    readings: Sequence[StoredReading],
    edge_hash: str,
    *,
    window_readings: Sequence[StoredReading] = (),
    records: Sequence[StoredRecord] = (),
    window: timedelta = TRIAGE_WINDOW,
    at: datetime | None = None,
) -> Rebuilt:
    """The hub's feature row: its readings, the patient's other readings and records in the window.

    `readings` are the ones the result references (all found), `window_readings` the patient's
    other readings the hub held at the time, `records` the patient's records (any order). The
    case moment is `at` (the result's, body version 2), or else the newest referenced reading.
    The hub's construction is tried first, then those of older hubs (referenced readings alone,
    as a series or as the latest snapshot, no observations); the one whose hash is the hub's
    wins. When none is, the first is returned
    with `input_match` False: the cloud lacks an input the hub had. Raises `InvalidVital`.
    """
    plain = series_of(readings)
    candidates: list[tuple[Sequence[TimedVitals], float | None]] = []
    if window_readings or records:  # else the hub's series is the plain one
        moment = at or max(r.measured_at for r in readings)
        by_id = {r.id: r for r in (*window_readings, *readings)}
        candidates.append(hub_series(by_id.values(), records, moment, window))
    candidates += [(plain, None), (snapshot_of(plain), None)]
    first: Rebuilt | None = None
    for candidate, age_years in candidates:
        row, news2 = extract_with_news2(candidate, age_years=age_years)
        digest = input_hash(row)
        rebuilt = Rebuilt(row, news2, digest, digest == edge_hash)
        if rebuilt.input_match:
            return rebuilt
        first = first or rebuilt
    assert first is not None  # noqa: S101 - the loop ran
    return first


def retry_at(reason: str, attempts: int, now: datetime) -> datetime | None:
    """When a `not_scorable` verdict after `attempts` tries may be retried, or None (never).

    Only missing inputs are retried: at once on the next pass after the first try, then after
    `RETRY_BASE` doubled per further try, until `RETRY_ATTEMPTS`.
    """
    if reason not in RETRYABLE or attempts >= RETRY_ATTEMPTS:
        return None
    return now + RETRY_BASE * ((1 << (attempts - 1)) - 1)


@dataclass
class ScoreReport:
    """What one scoring run did."""

    scored: int = 0
    agreed: int = 0
    not_scorable: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    """Of these, results tried again because their inputs were missing before."""

    @property
    def total(self) -> int:
        """Triage results given a prediction row in this run."""
        return self.scored + sum(self.not_scorable.values())


_PENDING = """
SELECT t.id, t.model_version, t.band, t.input_hash, t.reading_ids, t.computed_at,
       t.patient_id, t.hub_id, 1, t.window_s, t.at
  FROM triage_results t
 WHERE NOT EXISTS (SELECT 1 FROM cloud_predictions p WHERE p.triage_id = t.id)
   AND (%(since)s::timestamptz IS NULL OR t.computed_at >= %(since)s)
 ORDER BY t.computed_at, t.id
 LIMIT %(limit)s
"""
_INPUTS_SEEN = """(SELECT count(*) FROM readings r WHERE r.id = ANY(t.reading_ids))
     + (SELECT count(*) FROM medical_records m
         WHERE m.patient_id = t.patient_id AND m.hub_id = t.hub_id)"""
_DUE = f"""
WITH due AS (
    DELETE FROM cloud_predictions
     WHERE triage_id IN (
        SELECT p.triage_id FROM cloud_predictions p JOIN triage_results t ON t.id = p.triage_id
         WHERE p.retry_at IS NOT NULL
           AND (%(since)s::timestamptz IS NULL OR p.computed_at >= %(since)s)
           AND (p.retry_at <= %(now)s OR p.inputs_seen IS DISTINCT FROM {_INPUTS_SEEN})
         ORDER BY p.retry_at LIMIT %(limit)s
           FOR UPDATE OF p SKIP LOCKED)
    RETURNING triage_id, attempts
)
SELECT t.id, t.model_version, t.band, t.input_hash, t.reading_ids, t.computed_at,
       t.patient_id, t.hub_id, due.attempts + 1, t.window_s, t.at
  FROM due JOIN triage_results t ON t.id = due.triage_id
 ORDER BY t.computed_at, t.id
"""  # noqa: S608 - a constant, no input
_READINGS = """
SELECT id, measured_at, kind, components FROM readings WHERE id = ANY(%(ids)s)
"""
# A verdict's `inputs_seen` (the `_INPUTS_SEEN` count) must not exceed what the scorer saw, or
# an input that arrived while the batch was scored would count as seen and the verdict would
# wait for `retry_at`: the referenced readings are counted from those the scorer read, the
# patient's records before anything else of the batch is read.
_RECORD_COUNTS = """
SELECT patient_id, hub_id, count(*) FROM medical_records
 WHERE patient_id = ANY(%(pids)s) GROUP BY patient_id, hub_id
"""
_WINDOW_READINGS = """
SELECT w.pid, w.hub, r.id, r.measured_at, r.kind, r.components, r.received_at
  FROM unnest(%(pids)s::text[], %(hubs)s::text[], %(lo)s::timestamptz[],
              %(hi)s::timestamptz[], %(rcv)s::timestamptz[]) AS w(pid, hub, lo, hi, rcv)
  JOIN LATERAL (
    SELECT id, measured_at, kind, components, received_at FROM readings
     WHERE patient_id = w.pid AND measured_at > w.lo AND measured_at <= w.hi
       AND hub_id = w.hub AND received_at <= w.rcv
     LIMIT %(cap)s) r ON true
"""
_RECORDS = """
SELECT w.pid, w.hub, m.updated_at, m.payload
  FROM unnest(%(pids)s::text[], %(hubs)s::text[], %(hi)s::timestamptz[]) AS w(pid, hub, hi)
  JOIN LATERAL (
    SELECT updated_at, payload FROM medical_records
     WHERE patient_id = w.pid AND updated_at <= w.hi AND hub_id = w.hub
     ORDER BY updated_at DESC LIMIT %(cap)s) m ON true
"""
_INSERT = """
INSERT INTO cloud_predictions (triage_id, model_version, computed_at, status, reason,
    cloud_probability, cloud_band, edge_band, agree, input_match, cloud_input_hash, scored_at,
    attempts, retry_at, inputs_seen)
SELECT %(triage_id)s, %(version)s, %(computed_at)s, %(status)s, %(reason)s, %(probability)s,
       %(cloud_band)s, %(edge_band)s, %(agree)s, %(input_match)s, %(hash)s, %(now)s,
       %(attempts)s, %(retry_at)s::timestamptz,
       CASE WHEN %(retry_at)s::timestamptz IS NULL THEN NULL ELSE %(inputs_seen)s::bigint END
  FROM triage_results t WHERE t.id = %(triage_id)s
ON CONFLICT (triage_id) DO NOTHING
"""
_FORGET_MISSING = """
DELETE FROM cloud_predictions
 WHERE status = 'not_scorable'
   AND reason IN ('readings_missing', 'inputs_missing', 'unknown_model')
   AND (%(since)s::timestamptz IS NULL OR computed_at >= %(since)s)
"""


def score_pending(
    conn: psycopg.Connection[Any],
    shelf: ModelShelf,
    *,
    now: datetime,
    since: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    retry_missing: bool = False,
    max_batches: int | None = None,
    window: timedelta = TRIAGE_WINDOW,
) -> ScoreReport:
    """Score every stored triage result without a prediction (computed at or after `since`).

    First one batch of the verdicts whose missing inputs are due for a retry (`retry_at` up to
    `now`; bounded work per pass), then the results never scored. One transaction per batch of
    `batch_size`; safe to run concurrently with itself (a result two scorers race on is stored
    once). `retry_missing` first forgets every `readings_missing`, `inputs_missing` and
    `unknown_model` verdict in the window, due or not (the operator's command). `window` is the
    triage window of results that do not say theirs (before `TriageResult.window_s`). Runs on
    an autocommit connection; raises the `cloud.db` errors (`DatabaseUnavailable`, ...).
    """
    require_idle(conn, "score_pending")
    report = ScoreReport()
    if retry_missing:
        with translated():
            conn.execute(_FORGET_MISSING, {"since": since})
    params = {"since": since, "limit": max(1, batch_size), "now": now}
    with translated(), conn.transaction():
        due = conn.execute(_DUE, params).fetchall()
        if due:
            report.retried += len(due)
            rows = _score_batch(conn, shelf, due, now=now, report=report, window=window)
            with conn.cursor() as cur:
                cur.executemany(_INSERT, rows)
    batches = 0
    while max_batches is None or batches < max_batches:
        with translated(), conn.transaction():
            pending = conn.execute(_PENDING, params).fetchall()
            if not pending:
                break
            rows = _score_batch(conn, shelf, pending, now=now, report=report, window=window)
            with conn.cursor() as cur:
                cur.executemany(_INSERT, rows)
        batches += 1
        if len(pending) < batch_size:
            break
    return report


@dataclass(frozen=True, slots=True)
class _Context:
    """What the cloud holds around one patient on one hub for a batch of results."""

    readings: list[tuple[StoredReading, datetime]] = field(default_factory=list)
    """The patient's readings in the batch's windows, with their received time."""
    records: list[StoredRecord] = field(default_factory=list)


def _contexts(
    conn: psycopg.Connection[Any],
    moments: Mapping[tuple[str, str], list[tuple[datetime, datetime, timedelta]]],
) -> dict[tuple[str, str], _Context]:
    """Per (patient, hub): its readings and records around the (case, computed, window) moments."""
    keys = sorted(moments)
    out = {key: _Context() for key in keys}
    if not keys:
        return out
    pids = [k[0] for k in keys]
    hubs = [k[1] for k in keys]
    his = [max(at for at, _, _ in moments[k]) for k in keys]
    los = [min(at - window for at, _, window in moments[k]) for k in keys]
    rcv = [max(c for _, c, _ in moments[k]) for k in keys]
    params = {"pids": pids, "hubs": hubs, "lo": los, "hi": his, "rcv": rcv}
    for pid, hub, *row, received in conn.execute(
        _WINDOW_READINGS, {**params, "cap": WINDOW_READINGS_CAP}
    ).fetchall():
        out[pid, hub].readings.append((StoredReading(*row), received))
    for pid, hub, updated_at, payload in conn.execute(
        _RECORDS, {**params, "cap": RECORDS_PER_PATIENT}
    ).fetchall():
        out[pid, hub].records.append(StoredRecord(updated_at, payload))
    return out


def _score_batch(
    conn: psycopg.Connection[Any],
    shelf: ModelShelf,
    pending: Sequence[tuple[Any, ...]],
    *,
    now: datetime,
    report: ScoreReport,
    window: timedelta,
) -> list[dict[str, object]]:
    pids = sorted({item[6] for item in pending if item[6] is not None})
    record_counts = {
        (pid, hub): int(n)
        for pid, hub, n in conn.execute(_RECORD_COUNTS, {"pids": pids}).fetchall()
    }
    wanted = sorted({rid for item in pending for rid in item[4]}, key=str)
    found = {
        r[0]: StoredReading(r[0], r[1], r[2], r[3])
        for r in conn.execute(_READINGS, {"ids": wanted}).fetchall()
    }
    reasons = {
        item[0]: reason
        for item in pending
        if (reason := _unscorable(item[1], item[4], found, shelf, at=item[10])) is not None
    }
    to_run: dict[str, list[tuple[tuple[Any, ...], Rebuilt]]] = {}
    # The referenced readings alone first (no query more); the patient's window and records
    # only for the results they do not rebuild. A matching hash means the hub's very row.
    _rebuild_all(pending, found, {}, reasons, to_run, window=window, final=False)
    contexts = _contexts(conn, _moments(pending, found, reasons, window))
    _rebuild_all(pending, found, contexts, reasons, to_run, window=window, final=True)
    out: list[dict[str, object]] = []
    for item in pending:
        reason = reasons[item[0]]
        if reason:
            tries = item[8]
            report.not_scorable[reason] = report.not_scorable.get(reason, 0) + 1
            out.append(
                _row(item, now)
                | {
                    "status": "not_scorable",
                    "reason": reason,
                    "retry_at": retry_at(reason, tries, now),
                    "inputs_seen": sum(1 for rid in set(item[4]) if rid in found)
                    + record_counts.get((item[6], item[7]), 0),
                }
            )
    for version, group in to_run.items():
        model = shelf.get(version)
        assert model is not None  # noqa: S101 - checked by _unscorable
        outputs = model.predict([rebuilt.row for _, rebuilt in group])
        for (item, rebuilt), (probability, model_band) in zip(group, outputs, strict=True):
            edge_band = item[2]
            cloud_band = higher_band(rebuilt.news2.band, model_band)
            agree = cloud_band.value == edge_band
            report.scored += 1
            report.agreed += agree
            out.append(
                _row(item, now)
                | {
                    "probability": min(1.0, max(0.0, probability)),
                    "cloud_band": cloud_band.value,
                    "agree": agree,
                    "input_match": rebuilt.input_match,
                    "hash": rebuilt.input_hash,
                }
            )
    return out


def _row(item: Sequence[Any], now: datetime) -> dict[str, object]:
    """The `_INSERT` parameters of a pending result's prediction row, nothing known yet."""
    triage_id, version, edge_band, _, _, computed_at, _, _, tries, _, _ = item
    return {
        "triage_id": triage_id,
        "version": version,
        "computed_at": computed_at,
        "status": "scored",
        "reason": None,
        "probability": None,
        "cloud_band": None,
        "edge_band": edge_band,
        "agree": None,
        "input_match": None,
        "hash": None,
        "now": now,
        "attempts": tries,
        "retry_at": None,
        "inputs_seen": None,
    }


def _rebuild_all(
    pending: Sequence[tuple[Any, ...]],
    found: Mapping[UUID, StoredReading],
    contexts: Mapping[tuple[str, str], _Context],
    reasons: dict[UUID, str],
    to_run: dict[str, list[tuple[tuple[Any, ...], Rebuilt]]],
    *,
    window: timedelta,
    final: bool,
) -> None:
    """Rebuild the results without a verdict yet; `final`: one not rebuilt is inputs_missing.

    `window` for the results that do not say theirs (`window_s`).
    """
    for item in pending:
        triage_id, version, _, edge_hash, ids, computed_at, patient_id, hub_id, _, own, at = item
        if triage_id in reasons:
            continue
        context = contexts.get((patient_id, hub_id), _Context())
        try:
            rebuilt = rebuild(
                [found[rid] for rid in ids],
                edge_hash,
                window_readings=[r for r, rcv in context.readings if rcv <= computed_at],
                records=context.records,
                window=_window(own, window),
                at=at,
            )
        except InvalidVital:
            reasons[triage_id] = "invalid_vitals"
            continue
        if rebuilt.input_match:
            to_run.setdefault(version, []).append((item, rebuilt))
            reasons[triage_id] = ""  # scored below
        elif final:
            reasons[triage_id] = "inputs_missing"  # never scored with other inputs


def _moments(
    pending: Sequence[tuple[Any, ...]],
    found: Mapping[UUID, StoredReading],
    reasons: Mapping[UUID, str],
    window: timedelta,
) -> dict[tuple[str, str], list[tuple[datetime, datetime, timedelta]]]:
    """Per (patient, hub): the (case, computed, window) moments of the results to rebuild."""
    moments: dict[tuple[str, str], list[tuple[datetime, datetime, timedelta]]] = {}
    for triage_id, _, _, _, ids, computed_at, patient_id, hub_id, _, own, said in pending:
        if triage_id not in reasons and patient_id is not None:
            at = said or max(found[rid].measured_at for rid in ids)
            moment = (at, computed_at, _window(own, window))
            moments.setdefault((patient_id, hub_id), []).append(moment)
    return moments


def _window(window_s: int | None, default: timedelta) -> timedelta:
    """A result's own triage window (`TriageResult.window_s`), or `default` when it has none."""
    return default if window_s is None else timedelta(seconds=window_s)


def _unscorable(
    version: str,
    ids: Sequence[UUID],
    found: Mapping[UUID, StoredReading],
    shelf: ModelShelf,
    *,
    at: datetime | None = None,
) -> str | None:
    """Why a triage result cannot be scored, or None.

    A result without readings is scorable when it says its moment (`at`: an agent's record
    caused it; its inputs are the patient's records).
    """
    if version == NEWS2_ONLY:
        return "news2_only"
    if not ids and at is None:
        return "no_readings"
    if any(rid not in found for rid in ids):
        return "readings_missing"
    if shelf.get(version) is None:
        return "unknown_model"
    return None
