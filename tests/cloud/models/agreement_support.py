"""Hub-side triage for the cloud's agreement tests: readings as BLE devices send them, and the
hub's results computed the hub's way (wire features + the int8 model via LiteRT), independently
of cloud/models/full.py's reconstruction."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from cloud.models.litert import LiteRTRunner
from wire import (
    Body,
    Component,
    Compression,
    Counts,
    Header,
    MedicalRecord,
    Priority,
    Reading,
    RiskBand,
    TriageResult,
)
from wire.keys import key_id
from wire.news2 import Consciousness, Vitals
from wire.triage_features import (
    Normalisation,
    TimedVitals,
    band_of_probability,
    extract_with_news2,
    higher_band,
    input_hash,
    normalise,
)

ARTIFACT = Path(__file__).resolve().parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"
T0 = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
KPA_TO_MMHG = 7.500_615_75


@dataclass(frozen=True)
class Patient:
    """One patient's readings and the vitals series the hub derived from them."""

    patient_id: str
    readings: tuple[Reading, ...]
    series: tuple[TimedVitals, ...]
    records: tuple[MedicalRecord, ...] = ()
    age: float | None = None


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _reading(rng, patient_id, at, kind, components) -> Reading:
    return Reading(
        id=_uuid(rng),
        device_id=f"ble-{kind[:4]}-0001",
        kind=kind,
        components={n: Component(value=v, unit=u) for n, (v, u) in components.items()},
        measured_at=at,
        received_at=at + timedelta(seconds=2),
        patient_id=patient_id,
    )


def make_patient(rng: random.Random, n: int, *, at: datetime = T0) -> Patient:
    """2-4 readings over the last hour: BP (mmHg or kPa), SpO2, temperature (Cel or degF), HR.

    A third of the patients deteriorate (falling SpO2 and pressure, rising pulse and fever), so
    every band occurs.
    """
    patient_id = f"pat-{n:06d}"
    sick = rng.random() < 0.35
    readings: list[Reading] = []
    series: list[TimedVitals] = []
    for step in range(rng.randint(2, 4)):
        when = at - timedelta(minutes=50 - 15 * step, seconds=rng.randint(0, 59))
        drift = step * (1 if sick else 0)
        kind = rng.choice(("blood_pressure", "spo2_spot_check", "body_temperature", "heart_rate"))
        if kind == "blood_pressure":
            systolic = round(rng.gauss(125 - 12 * drift, 14))
            pulse = round(rng.gauss(78 + 10 * drift, 10))
            if rng.random() < 0.2:
                kpa = round(systolic / KPA_TO_MMHG, 1)
                comps = {"systolic": (kpa, "kPa"), "pulse": (float(pulse), "/min")}
                vitals = Vitals(systolic=kpa * KPA_TO_MMHG, pulse=float(pulse))
            else:
                comps = {"systolic": (float(systolic), "mm[Hg]"), "pulse": (float(pulse), "/min")}
                vitals = Vitals(systolic=float(systolic), pulse=float(pulse))
            comps["diastolic"] = (float(round(systolic * 0.65)), "mm[Hg]")
        elif kind == "spo2_spot_check":
            spo2 = float(min(100, round(rng.gauss(96 - 3 * drift, 2))))
            pulse = float(round(rng.gauss(80 + 9 * drift, 10)))
            comps = {"spo2": (spo2, "%"), "pulse": (pulse, "/min")}
            vitals = Vitals(spo2=spo2, pulse=pulse)
        elif kind == "body_temperature":
            celsius = round(rng.gauss(36.9 + 0.6 * drift, 0.5), 1)
            if rng.random() < 0.3:
                fahrenheit = round(celsius * 9 / 5 + 32, 1)
                comps = {"temperature": (fahrenheit, "[degF]")}
                vitals = Vitals(temperature=(fahrenheit - 32) * 5 / 9)
            else:
                comps = {"temperature": (celsius, "Cel")}
                vitals = Vitals(temperature=celsius)
        else:
            pulse = float(round(rng.gauss(76 + 12 * drift, 12)))
            comps = {"heart_rate": (pulse, "/min")}
            vitals = Vitals(pulse=pulse)
        readings.append(_reading(rng, patient_id, when, kind, comps))
        series.append(TimedVitals(at=when, vitals=vitals))
    return Patient(patient_id, tuple(readings), tuple(series))


class HubTriage:
    """The hub's triage of patients: wire features, the int8 model, the safety rule."""

    def __init__(self, artifact: Path = ARTIFACT) -> None:
        manifest = json.loads((artifact / "manifest.json").read_text())
        self.version = str(manifest["version"])
        self.spec = Normalisation(
            tuple(manifest["features"]["mean"]), tuple(manifest["features"]["std"])
        )
        self.thresholds = dict(manifest["band_thresholds"])
        self.runner = LiteRTRunner((artifact / "model_int8.tflite").read_bytes())

    def results(self, patients: list[Patient], rng: random.Random) -> list[TriageResult]:
        """One result per patient, the model run once over the batch as the hub does."""
        extracted = [extract_with_news2(p.series, age_years=p.age) for p in patients]
        probabilities = self.runner.predict([normalise(row, self.spec) for row, _ in extracted])
        out = []
        for patient, (row, news2), p in zip(patients, extracted, probabilities, strict=True):
            model_band = band_of_probability(float(p), self.thresholds)
            out.append(
                TriageResult(
                    id=_uuid(rng),
                    patient_id=patient.patient_id,
                    reading_ids=tuple(r.id for r in patient.readings),
                    computed_at=T0,
                    band=higher_band(news2.band, model_band),
                    score=float(p),
                    news2_score=news2.score,
                    news2_subscores=news2.subscores,
                    complete=news2.complete,
                    model_version=self.version,
                    input_hash=input_hash(row),
                )
            )
        return out


def record(rng: random.Random, patient_id: str, at: datetime, payload: dict) -> MedicalRecord:
    """A record an agent wrote on a phone at `at`."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return MedicalRecord(
        id=_uuid(rng),
        revision=1,
        updated_at=at,
        patient_id=patient_id,
        agent_id="agent-0001",
        type="observation",
        payload=payload,
        content_hash=f"sha256:{digest}",
    )


def with_records(rng: random.Random, patient: Patient) -> Patient:
    """The patient with an agent's records, and the series and age the hub triages with them.

    An old record (two hours back) gives the age and observations outside the window (the hub
    ignores those); two recent ones (before the newest reading: the moment the hub triages)
    give respiration rate, consciousness, oxygen and sometimes
    SpO2 scale 2, the later one winning. Written independently of cloud/models/full.py.
    """
    pid = patient.patient_id
    at = max(r.measured_at for r in patient.readings if r.measured_at is not None)
    old, first, second = (
        at - timedelta(hours=2),
        at - timedelta(minutes=40),
        at - timedelta(minutes=8),
    )
    age = float(rng.randint(18, 95))
    rr1, rr2 = rng.randint(10, 20), rng.randint(8, 30)
    level = rng.choice("AAAACVPU")
    oxygen = rng.random() < 0.3
    scale2 = oxygen and rng.random() < 0.5
    obs2: dict = {"resp_rate": rr2, "consciousness": level, "on_oxygen": oxygen}
    if scale2:
        obs2["spo2_scale"] = 2
    records = (
        record(rng, pid, old, {"patient": {"age_years": age}, "observations": {"resp_rate": 40}}),
        record(rng, pid, first, {"observations": {"resp_rate": rr1, "consciousness": "A"}}),
        record(rng, pid, second, {"observations": obs2, "note": "seen at bedside"}),
    )
    observed = [
        TimedVitals(first, Vitals(respiration_rate=float(rr1), consciousness=Consciousness("A"))),
        TimedVitals(
            second,
            Vitals(
                respiration_rate=float(rr2), consciousness=Consciousness(level), on_oxygen=oxygen
            ),
        ),
    ]
    series = [*observed, *patient.series]
    if scale2:
        series = [TimedVitals(e.at, replace(e.vitals, spo2_scale=2)) for e in series]
    return replace(patient, records=records, series=tuple(series), age=age)


def hub_body(n: int, seed: int = 11, *, hub: HubTriage | None = None) -> tuple[Body, list[Patient]]:
    """A batch body with `n` patients' readings and the hub's triage of each."""
    rng = random.Random(seed)
    patients = [make_patient(rng, i) for i in range(n)]
    results = (hub or HubTriage()).results(patients, rng)
    readings = tuple(r for p in patients for r in p.readings)
    return Body(readings=readings, triage_results=tuple(results)), patients


def with_band(result: TriageResult, band: RiskBand) -> TriageResult:
    """The same result with another band (a hub that got it wrong)."""
    return result.model_copy(update={"band": band})


def header_for(body: Body, *, hub_id: str, hub_key, batch_id: UUID, seq: int = 1) -> Header:
    """A header as the hub seals it (the loader reads ids, counts and keys from it)."""
    return Header(
        v=1,
        hub_id=hub_id,
        batch_id=batch_id,
        seq=seq,
        created_at=T0,
        priority=Priority.ROUTINE,
        counts=Counts(**body.counts()),
        hub_key=key_id(hub_key),
        cloud_key="00112233445566ff",
        epk="A" * 43,
        nonce="A" * 16,
        compression=Compression.ZSTD,
        body_len=1,
    )
