"""The cloud's full model: rescore what hubs triaged with the float model, next to the hub's result.

For every stored `triage_results` row the cloud

1. reads the readings the result references (`reading_ids`) from PostgreSQL;
2. rebuilds the hub's feature row from them (`wire.triage_features.extract_with_news2`), with
   the same conversions as the hub's vitals gathering (`hub/inference/vitals.py`: the same
   (kind, component) sources and chart units; the cloud may not import the hub, so the table is
   repeated here and a test keeps the two equal);
3. compares the rebuilt row's input hash with the hub's (`input_match`): the readings are all
   the cloud holds, so a hub that also used an agent's observations (respiration rate,
   consciousness, oxygen) or the patient's age has inputs the cloud cannot rebuild, and says so;
4. runs the float model of the same version (`model_float.tflite`, the manifest's normalisation
   and band thresholds) once per batch and applies the same safety rule (final band = the higher
   of NEWS2's and the model's);
5. stores a `cloud_predictions` row (migration 0005): probability, cloud band, the hub's band,
   `agree`, `input_match`. A result it cannot score is stored as `not_scorable` with the reason
   (its readings are missing, its model is unknown, it was NEWS2 only, a vital is impossible):
   it never stops the others (`score_pending(retry_missing=True)`, `tecsa-cloud models score
   --retry-missing`, looks again at missing readings and models).

Scoring is idempotent (rows are found by `NOT EXISTS` and inserted `ON CONFLICT DO NOTHING`)
and batched (`BATCH_SIZE` results per transaction, one model invocation per version per batch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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
KPA_TO_MMHG = 7.500_615_75

SOURCES: dict[tuple[str, str], str] = {
    ("blood_pressure", "systolic"): "systolic",
    ("blood_pressure", "pulse"): "pulse",
    ("heart_rate", "heart_rate"): "pulse",
    ("spo2_spot_check", "spo2"): "spo2",
    ("spo2_spot_check", "pulse"): "pulse",
    ("spo2_continuous", "spo2"): "spo2",
    ("spo2_continuous", "pulse"): "pulse",
    ("body_temperature", "temperature"): "temperature",
}
"""(reading kind, component) -> vital: the hub's table (hub/inference/vitals.py `_SOURCES`)."""


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


def chart_value(kind: str, name: str, value: object, unit: object) -> tuple[str, float] | None:
    """(vital, value in the chart's unit) of one reading component, as the hub converts it."""
    vital = SOURCES.get((kind, name))
    if vital is None or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    v = float(value)
    conversions = {
        ("systolic", "mm[Hg]"): v,
        ("systolic", "kPa"): v * KPA_TO_MMHG,
        ("pulse", "/min"): v,
        ("spo2", "%"): v,
        ("temperature", "Cel"): v,
        ("temperature", "[degF]"): (v - 32) * 5 / 9,
    }
    converted = conversions.get((vital, str(unit)))
    return None if converted is None else (vital, converted)


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
class Rebuilt:
    """The feature row the cloud rebuilt for one triage result, and whether it is the hub's."""

    row: tuple[float, ...]
    news2: News2
    input_hash: str
    input_match: bool


def rebuild(readings: Sequence[StoredReading], edge_hash: str) -> Rebuilt:
    """The hub's feature row from its readings: the per-reading series, else the latest snapshot.

    Both constructions a hub may use are tried; the one whose hash is the hub's wins. When none
    is, the per-reading series is scored and `input_match` is False. Raises `InvalidVital`.
    """
    series = series_of(readings)
    first: Rebuilt | None = None
    for candidate in (series, snapshot_of(series)):
        row, news2 = extract_with_news2(candidate, age_years=None)
        digest = input_hash(row)
        rebuilt = Rebuilt(row, news2, digest, digest == edge_hash)
        if rebuilt.input_match:
            return rebuilt
        first = first or rebuilt
    assert first is not None  # noqa: S101 - the loop ran
    return first


@dataclass
class ScoreReport:
    """What one scoring run did."""

    scored: int = 0
    agreed: int = 0
    not_scorable: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Triage results given a prediction row in this run."""
        return self.scored + sum(self.not_scorable.values())


_PENDING = """
SELECT t.id, t.model_version, t.band, t.input_hash, t.reading_ids, t.computed_at
  FROM triage_results t
 WHERE NOT EXISTS (SELECT 1 FROM cloud_predictions p WHERE p.triage_id = t.id)
   AND (%(since)s::timestamptz IS NULL OR t.computed_at >= %(since)s)
 ORDER BY t.computed_at, t.id
 LIMIT %(limit)s
"""
_READINGS = """
SELECT id, measured_at, kind, components FROM readings WHERE id = ANY(%(ids)s)
"""
_INSERT = """
INSERT INTO cloud_predictions (triage_id, model_version, computed_at, status, reason,
    cloud_probability, cloud_band, edge_band, agree, input_match, cloud_input_hash, scored_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (triage_id) DO NOTHING
"""
_FORGET_MISSING = """
DELETE FROM cloud_predictions
 WHERE status = 'not_scorable' AND reason IN ('readings_missing', 'unknown_model')
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
) -> ScoreReport:
    """Score every stored triage result without a prediction (computed at or after `since`).

    One transaction per batch of `batch_size`; safe to run concurrently with itself (a result
    two scorers race on is stored once). `retry_missing` first forgets the `readings_missing` and
    `unknown_model` verdicts in the window, so results whose readings arrived later, or whose
    model's artifacts were installed since, get scored. Runs on an
    autocommit connection; raises the `cloud.db` errors (`DatabaseUnavailable`, ...).
    """
    require_idle(conn, "score_pending")
    report = ScoreReport()
    if retry_missing:
        with translated():
            conn.execute(_FORGET_MISSING, {"since": since})
    batches = 0
    while max_batches is None or batches < max_batches:
        with translated(), conn.transaction():
            pending = conn.execute(
                _PENDING, {"since": since, "limit": max(1, batch_size)}
            ).fetchall()
            if not pending:
                break
            rows = _score_batch(conn, shelf, pending, now=now, report=report)
            with conn.cursor() as cur:
                cur.executemany(_INSERT, rows)
        batches += 1
        if len(pending) < batch_size:
            break
    return report


def _score_batch(
    conn: psycopg.Connection[Any],
    shelf: ModelShelf,
    pending: Sequence[tuple[Any, ...]],
    *,
    now: datetime,
    report: ScoreReport,
) -> list[tuple[object, ...]]:
    wanted = sorted({rid for *_, ids, _ in pending for rid in ids}, key=str)
    found = {
        r[0]: StoredReading(r[0], r[1], r[2], r[3])
        for r in conn.execute(_READINGS, {"ids": wanted}).fetchall()
    }
    out: list[tuple[object, ...]] = []
    to_run: dict[str, list[tuple[tuple[Any, ...], Rebuilt]]] = {}
    for item in pending:
        triage_id, version, edge_band, edge_hash, ids, computed_at = item
        reason = _unscorable(version, ids, found, shelf)
        if reason is None:
            try:
                rebuilt = rebuild([found[rid] for rid in ids], edge_hash)
            except InvalidVital:
                reason = "invalid_vitals"
            else:
                to_run.setdefault(version, []).append((item, rebuilt))
                continue
        report.not_scorable[reason] = report.not_scorable.get(reason, 0) + 1
        out.append(
            (
                *(triage_id, version, computed_at, "not_scorable", reason),
                *(None, None, edge_band, None),
                *(None, None, now),
            )
        )
    for version, group in to_run.items():
        model = shelf.get(version)
        assert model is not None  # noqa: S101 - checked by _unscorable
        outputs = model.predict([rebuilt.row for _, rebuilt in group])
        for (item, rebuilt), (probability, model_band) in zip(group, outputs, strict=True):
            triage_id, _, edge_band, _, _, computed_at = item
            cloud_band = higher_band(rebuilt.news2.band, model_band)
            agree = cloud_band.value == edge_band
            report.scored += 1
            report.agreed += agree
            out.append(
                (
                    *(triage_id, version, computed_at, "scored", None),
                    *(min(1.0, max(0.0, probability)), cloud_band.value, edge_band, agree),
                    *(rebuilt.input_match, rebuilt.input_hash, now),
                )
            )
    return out


def _unscorable(
    version: str,
    ids: Sequence[UUID],
    found: Mapping[UUID, StoredReading],
    shelf: ModelShelf,
) -> str | None:
    """Why a triage result cannot be scored, or None."""
    if version == NEWS2_ONLY:
        return "news2_only"
    if not ids:
        return "no_readings"
    if any(rid not in found for rid in ids):
        return "readings_missing"
    if shelf.get(version) is None:
        return "unknown_model"
    return None
