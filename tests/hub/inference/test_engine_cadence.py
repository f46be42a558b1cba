"""The engine's cadence: readings that change nothing NEWS2 sees wait, danger never does.

Each test plays a continuous oximeter bound to a patient, one reading a pass, on a real buffer,
with the engine's clock moved by hand. A held reading has no result yet; it gets one later.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

from hub.buffer.values import NewReading
from hub.inference.engine import EngineConfig, TriageEngine
from hub.inference.runtime import MANIFEST_FILE, from_manifest
from wire.canonical import content_hash
from wire.items import Component, MedicalRecord, Reading, RiskBand

if TYPE_CHECKING:
    from hub.buffer import Buffer

MODEL_DIR = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)
CADENCE = EngineConfig(rescore_s=60)


class Ward:
    """One patient's oximeter, the engine and its clock."""

    def __init__(self, buffer: Buffer, path: Path, model, config=CADENCE, patient="pat-1"):
        self.buffer, self.path, self.model, self.config = buffer, path, model, config
        self.patient = patient
        self.now = START
        self.readings: list[Reading] = []
        self.engine = self.new_engine()

    def new_engine(self) -> TriageEngine:
        return TriageEngine(
            self.buffer, self.path, lambda: self.model, self.config, clock=lambda: self.now
        )

    async def reading(self, spo2: float = 97, pulse: float = 72) -> Reading:
        """The next oximeter reading, stored; the engine then runs one drain."""
        self.now += STEP
        reading = Reading(
            id=uuid4(),
            device_id="ox-1",
            kind="spo2_continuous",
            components={
                "spo2": Component(value=spo2, unit="%"),
                "pulse": Component(value=pulse, unit="/min"),
            },
            measured_at=self.now - timedelta(seconds=1),
            received_at=self.now,
            patient_id=self.patient,
        )
        await self.buffer.insert_many([NewReading(reading, f"k-{reading.id}")])
        self.readings.append(reading)
        await self.engine.drain()
        return reading

    async def record(self, **observations) -> None:
        payload = {"observations": observations}
        await self.buffer.sync_records(
            [
                MedicalRecord(
                    id=uuid4(),
                    revision=1,
                    updated_at=self.now,
                    patient_id=self.patient,
                    agent_id="agent-1",
                    type="visit",
                    payload=payload,
                    content_hash=content_hash(payload),
                )
            ],
            self.now,
        )

    def covered(self, reading: Reading) -> bool:
        return bool(self.buffer.triage_for_readings([reading.id]).get(reading.id))

    def results(self):
        return self.buffer.recent_triage(patient_id=self.patient, limit=10_000)


async def test_steady_readings_wait_and_are_scored_together_when_due(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    first = await ward.reading()
    assert ward.covered(first)  # the patient's first reading is scored at once
    held = [await ward.reading(spo2=98, pulse=75) for _ in range(5)]  # same subscores (0, 0)
    assert not any(ward.covered(r) for r in held)
    assert ward.engine.holding == 5
    assert len(ward.results()) == 1
    ward.now += timedelta(seconds=60)  # the cadence is due: the held readings are scored
    await ward.engine.drain()
    assert all(ward.covered(r) for r in held)
    assert ward.engine.holding == 0
    assert len(ward.results()) == 2
    assert ward.engine.stats.held == 5
    assert ward.engine.stats.readings == 6


async def test_a_reading_that_scores_more_points_is_scored_at_once(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading(spo2=97)
    held = await ward.reading(spo2=96)  # 96 scores 0 like 97
    assert not ward.covered(held)
    worse = await ward.reading(spo2=94)  # 94-95 score 1 on scale 1
    assert ward.covered(worse)
    assert ward.covered(held)  # the held ones go with it
    assert ward.results()[0].news2_subscores["spo2"] == 1


async def test_a_vital_the_last_result_lacked_is_scored_at_once(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading()
    ward.now += STEP
    thermometer = Reading(
        id=uuid4(),
        device_id="thermo-1",
        kind="body_temperature",
        components={"temperature": Component(value=36.9, unit="Cel")},  # 0 points, but new
        measured_at=ward.now,
        received_at=ward.now,
        patient_id=ward.patient,
    )
    await buffer.insert_many([NewReading(thermometer, f"k-{thermometer.id}")])
    await ward.engine.drain()
    assert ward.covered(thermometer)
    assert ward.results()[0].news2_subscores["temperature"] == 0


async def test_a_red_reading_is_scored_at_once_even_when_its_subscore_is_unchanged(
    buffer, model, tmp_path
):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading(spo2=97, pulse=135)  # pulse >= 131 scores 3: red (low-medium at least)
    again = await ward.reading(spo2=97, pulse=136)
    assert ward.covered(again)
    assert ward.engine.holding == 0


async def test_a_high_band_patient_is_scored_on_every_reading(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.record(resp_rate=22, consciousness="A", on_oxygen=True)  # 2 + 0 + 2
    first = await ward.reading(spo2=94, pulse=115)  # 1 + 2: aggregate 7, no parameter at 3
    assert ward.results()[0].band is RiskBand.HIGH
    assert max(ward.results()[0].news2_subscores.values()) < 3
    later = [await ward.reading(spo2=94, pulse=115) for _ in range(3)]  # nothing NEWS2 sees
    assert ward.covered(first)
    assert all(ward.covered(r) for r in later)
    assert len(ward.results()) == 4


async def test_a_new_record_of_the_patient_is_scored_with_the_next_reading(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading()
    await ward.record(consciousness="V")  # new confusion: 3 points, whatever the oximeter says
    reading = await ward.reading()
    assert ward.covered(reading)
    assert ward.results()[0].news2_subscores["consciousness"] == 3


async def test_a_new_model_scores_the_next_reading_at_once(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading()
    held = await ward.reading()
    assert not ward.covered(held)
    manifest = json.loads((MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    content = (MODEL_DIR / "model_int8.tflite").read_bytes()
    ward.model = from_manifest(manifest | {"version": "triage-v2"}, content)
    reading = await ward.reading()
    assert ward.covered(reading)
    assert ward.covered(held)
    assert ward.results()[0].model_version == "triage-v2"


async def test_held_readings_survive_a_restart_and_are_scored_once(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading()
    held = [await ward.reading() for _ in range(4)]
    assert ward.engine.holding == 4
    ward.engine.close()
    ward.engine = ward.new_engine()  # the daemon restarted: nothing in memory
    await ward.engine.drain()
    assert all(ward.covered(r) for r in held)
    ward.now += timedelta(minutes=10)
    await ward.engine.drain()  # nothing is due twice
    assert len(ward.results()) == 2
    assert ward.engine.holding == 0


async def test_with_the_cadence_off_every_reading_is_scored_at_once(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model, EngineConfig(rescore_s=0))
    readings = [await ward.reading() for _ in range(4)]
    assert all(ward.covered(r) for r in readings)
    assert len(ward.results()) == 4
    assert ward.engine.holding == 0


async def test_an_improving_reading_waits_and_the_higher_band_stays_shown(buffer, model, tmp_path):
    ward = Ward(buffer, tmp_path / "buffer.sqlite3", model)
    await ward.reading(spo2=94)  # 1 point
    better = await ward.reading(spo2=97)  # 0 points: better, may wait
    assert not ward.covered(better)
    flap = await ward.reading(spo2=95)  # 1 point again: no worse than the last result
    assert not ward.covered(flap)
    assert ward.results()[0].news2_subscores["spo2"] == 1
    worse = await ward.reading(spo2=93)  # 2 points: worse than the last result, at once
    assert ward.covered(worse)
    assert ward.results()[0].news2_subscores["spo2"] == 2
