"""An agent's record is triaged when it arrives, not only with the patient's next reading.

An agent often measures first and writes the visit down after: the respiration rate and the
level of consciousness (NEWS2 parameters no BLE device measures) then reach the hub after the
readings were triaged. The engine gives such a record a case of its own, at the record's time
(or the patient's newest reading, if later), unless a result already took it in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

from hub.buffer.values import NewReading
from hub.inference.engine import EngineConfig, TriageEngine
from wire.canonical import content_hash
from wire.items import Component, MedicalRecord, Reading, RiskBand

if TYPE_CHECKING:
    from hub.buffer import Buffer

MODEL_DIR = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Post:
    """A health post: the buffer, an engine on a clock moved by hand, one patient."""

    def __init__(self, buffer: Buffer, path: Path, model) -> None:
        self.buffer, self.path, self.model = buffer, path, model
        self.now = NOW
        self.engine = self.new_engine()

    def new_engine(self) -> TriageEngine:
        config = EngineConfig(rescore_s=300)
        return TriageEngine(
            self.buffer, self.path, lambda: self.model, config, clock=lambda: self.now
        )

    async def vitals(self, patient: str, minutes_ago: float, **components) -> Reading:
        at = self.now - timedelta(minutes=minutes_ago)
        reading = Reading(
            id=uuid4(),
            device_id="dev-1",
            kind="blood_pressure" if "systolic" in components else "spo2_spot_check",
            components={k: Component(value=v, unit=u) for k, (v, u) in components.items()},
            measured_at=at,
            received_at=at + timedelta(seconds=2),
            patient_id=patient,
        )
        await self.buffer.insert_many([NewReading(reading, f"k-{reading.id}")])
        return reading

    async def record(self, patient: str, minutes_ago: float, payload: dict) -> MedicalRecord:
        record = MedicalRecord(
            id=uuid4(),
            revision=1,
            updated_at=self.now - timedelta(minutes=minutes_ago),
            patient_id=patient,
            agent_id="agent-1",
            type="visit",
            payload=payload,
            content_hash=content_hash(payload),
        )
        await self.buffer.sync_records([record], self.now)  # received now
        return record

    def results(self, patient: str):
        return self.buffer.recent_triage(patient_id=patient, limit=1000)


DANGER = {"observations": {"resp_rate": 27, "consciousness": "V", "on_oxygen": False}}
"""A respiration rate of 27 and new confusion: 3 + 3 points, whatever the devices say."""


async def test_a_record_written_after_the_readings_is_triaged_when_it_arrives(
    buffer, model, tmp_path
):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    reading = await post.vitals("pat-1", 10, systolic=(124, "mm[Hg]"), pulse=(72, "/min"))
    await post.engine.drain()
    (first,) = post.results("pat-1")
    assert "respiration_rate" not in first.news2_subscores  # no agent observation yet

    post.now += timedelta(minutes=1)
    await post.record("pat-1", 2, DANGER)  # written after the measurement
    await post.engine.drain()

    latest = post.results("pat-1")[0]
    assert latest.id != first.id
    assert latest.news2_subscores["respiration_rate"] == 3
    assert latest.news2_subscores["consciousness"] == 3
    assert latest.news2_score == 6  # 3 + 3, pressure and pulse 0, on air 0: medium
    assert latest.band in {RiskBand.MEDIUM, RiskBand.HIGH}  # the model may raise it
    assert reading.id in latest.reading_ids  # the readings it used
    assert latest.at == post.now - timedelta(minutes=2)  # the record's time, after the reading
    assert post.buffer.triage_for_readings([reading.id])[reading.id][0].id == latest.id


async def test_a_record_alone_is_triaged_on_the_observations(buffer, model, tmp_path):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.record("pat-2", 1, DANGER)
    await post.engine.drain()
    (result,) = post.results("pat-2")
    assert result.reading_ids == ()
    assert result.complete is False  # no SpO2, pressure, pulse or temperature: a lower bound
    assert result.news2_score == 6
    assert result.band in {RiskBand.MEDIUM, RiskBand.HIGH}  # the model may raise it


async def test_a_record_with_nothing_to_score_gives_no_result(buffer, model, tmp_path):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.record("pat-3", 1, {"note": "seen at home, no complaint"})
    await post.engine.drain()
    assert post.results("pat-3") == []


async def test_a_record_is_triaged_once_across_restarts(buffer, model, tmp_path):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.vitals("pat-4", 10, spo2=(95, "%"), pulse=(88, "/min"))
    await post.engine.drain()
    await post.record("pat-4", 2, DANGER)
    await post.engine.drain()
    assert len(post.results("pat-4")) == 2
    for _ in range(2):  # restarts look at every record of the last days again
        post.engine.close()
        post.engine = post.new_engine()
        post.now += timedelta(minutes=1)
        await post.engine.drain()
    assert len(post.results("pat-4")) == 2
    assert post.engine.stats.results == 0  # not even computed again


async def test_a_record_that_reaches_the_hub_with_the_readings_takes_no_case_of_its_own(
    buffer, model, tmp_path
):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.record("pat-5", 12, DANGER)  # written first, the devices after
    await post.vitals("pat-5", 10, systolic=(124, "mm[Hg]"), pulse=(72, "/min"))
    await post.engine.drain()
    (result,) = post.results("pat-5")  # the readings' case took the record in
    assert result.news2_subscores["consciousness"] == 3
    post.now += timedelta(minutes=5)
    await post.engine.drain()
    assert len(post.results("pat-5")) == 1


async def test_a_record_older_than_the_window_before_the_newest_reading_changes_nothing(
    buffer, model, tmp_path
):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.vitals("pat-6", 1, spo2=(97, "%"), pulse=(70, "/min"))
    await post.engine.drain()
    await post.record("pat-6", 90, DANGER)  # a visit an hour and a half before: out of it
    await post.engine.drain()
    assert len(post.results("pat-6")) == 1


async def test_held_readings_are_scored_when_a_record_of_their_patient_arrives(
    buffer, model, tmp_path
):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.vitals("pat-7", 3, spo2=(97, "%"), pulse=(70, "/min"))
    await post.engine.drain()
    held = await post.vitals("pat-7", 2, spo2=(98, "%"), pulse=(72, "/min"))
    await post.engine.drain()
    assert post.engine.holding == 1
    await post.record("pat-7", 1, DANGER)
    await post.engine.drain()  # the held reading first, then the record's own case
    assert post.engine.holding == 0
    assert post.buffer.triage_for_readings([held.id]).get(held.id)
    await post.engine.drain()
    latest = post.results("pat-7")[0]
    assert latest.news2_subscores["consciousness"] == 3


async def test_records_without_triage_inputs_cost_no_case(buffer, model, tmp_path):
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.vitals("pat-8", 10, spo2=(97, "%"), pulse=(70, "/min"))
    await post.engine.drain()
    for n in range(5):
        await post.record("pat-8", 5 - n, {"household_size": 4, "notes": f"visit {n}"})
    await post.engine.drain()
    assert len(post.results("pat-8")) == 1
    assert post.engine.stats.results == 1  # none even computed for the records
    await post.record("pat-8", 0, {"patient": {"age_years": 71}})  # the age is a model input
    await post.engine.drain()
    assert len(post.results("pat-8")) == 2


async def test_a_record_stamped_before_one_already_seen_is_not_missed(buffer, model, tmp_path):
    """Two phones sync at once: the later stamp commits first, the engine looks, then the
    earlier one commits (its `received_at` is below what the engine has seen)."""
    post = Post(buffer, tmp_path / "buffer.sqlite3", model)
    await post.record("pat-9", 1, {"observations": {"resp_rate": 16}})  # received now
    await post.engine.drain()
    assert len(post.results("pat-9")) == 1
    early = MedicalRecord(
        id=uuid4(),
        revision=1,
        updated_at=post.now,
        patient_id="pat-10",
        agent_id="agent-2",
        type="visit",
        payload=DANGER,
        content_hash=content_hash(DANGER),
    )
    await post.buffer.sync_records([early], post.now - timedelta(seconds=3))  # stamped earlier
    await post.engine.drain()
    assert len(post.results("pat-10")) == 1
    await post.engine.drain()
    assert post.engine.stats.results == 2  # each once
