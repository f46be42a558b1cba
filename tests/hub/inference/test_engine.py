"""The triage engine on a real buffer: new readings of bound patients in, stored results out."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from structlog.testing import capture_logs

from hub.buffer import Buffer, BufferConfig
from hub.buffer.values import NewReading
from hub.inference.engine import EngineConfig, TriageEngine, result_id
from hub.inference.runtime import MANIFEST_FILE, ModelOutput, from_manifest
from wire.canonical import content_hash
from wire.items import Component, MedicalRecord, Reading, RiskBand

MODEL_DIR = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _reading(patient, kind, minutes_ago, **components) -> Reading:
    at = NOW - timedelta(minutes=minutes_ago)
    return Reading(
        id=uuid4(),
        device_id="dev-1",
        kind=kind,
        components={k: Component(value=v, unit=u) for k, (v, u) in components.items()},
        measured_at=at,
        received_at=at + timedelta(seconds=5),
        patient_id=patient,
    )


def _normal(patient, minutes_ago=5) -> list[Reading]:
    return [
        _reading(
            patient, "blood_pressure", minutes_ago, systolic=(124, "mm[Hg]"), pulse=(72, "/min")
        ),
        _reading(patient, "spo2_spot_check", minutes_ago, spo2=(98, "%"), pulse=(74, "/min")),
        _reading(patient, "body_temperature", minutes_ago, temperature=(36.8, "Cel")),
    ]


def _danger(patient, minutes_ago=3) -> list[Reading]:
    return [
        _reading(
            patient, "blood_pressure", minutes_ago, systolic=(88, "mm[Hg]"), pulse=(135, "/min")
        ),
        _reading(patient, "spo2_spot_check", minutes_ago, spo2=(89, "%"), pulse=(136, "/min")),
        _reading(patient, "body_temperature", minutes_ago, temperature=(39.4, "Cel")),
    ]


def _record(patient, minutes_ago=8, **observations) -> MedicalRecord:
    payload = {"observations": observations, "patient": {"age_years": 67}}
    return MedicalRecord(
        id=uuid4(),
        revision=1,
        updated_at=NOW - timedelta(minutes=minutes_ago),
        patient_id=patient,
        agent_id="agent-1",
        type="visit",
        payload=payload,
        content_hash=content_hash(payload),
    )


async def _store(buffer: Buffer, readings: list[Reading], records=()) -> None:
    await buffer.insert_many([NewReading(r, f"k-{r.id}") for r in readings])
    if records:
        await buffer.sync_records(list(records), NOW)


def _covered(buffer: Buffer, readings: list[Reading]) -> dict[UUID, list]:
    return buffer.triage_for_readings([r.id for r in readings])


async def test_normal_vitals_are_low_complete_and_visible_per_reading(buffer, model, tmp_path):
    readings = _normal("pat-1")
    await _store(
        buffer, readings, [_record("pat-1", resp_rate=16, consciousness="A", on_oxygen=False)]
    )
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: model, clock=lambda: NOW)
    assert await engine.drain() == 3
    [result] = buffer.recent_triage(patient_id="pat-1")
    assert result.band is RiskBand.LOW
    assert result.complete
    assert result.news2_score == 0
    assert result.model_version == "triage-v1"
    assert result.input_hash.startswith("sha256:")
    assert set(result.news2_subscores) >= {"respiration_rate", "spo2", "systolic", "pulse"}
    covered = _covered(buffer, readings)
    assert {r.id for r in readings} == covered.keys()
    assert all(v == [result] for v in covered.values())
    assert await engine.run_once() == 0  # nothing left: the cursor is what results cover


async def test_danger_vitals_are_high_logged_and_queued_at_alert_priority(buffer, model, tmp_path):
    await _store(
        buffer,
        _danger("pat-2"),
        [_record("pat-2", resp_rate=27, consciousness="V", on_oxygen=True)],
    )
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: model, clock=lambda: NOW)
    with capture_logs() as logs:
        await engine.drain()
    [result] = buffer.recent_triage(min_band=RiskBand.HIGH)
    assert (result.patient_id, result.complete) == ("pat-2", True)
    assert result.news2_score is not None
    assert result.news2_score >= 7
    assert engine.stats.high == 1
    high = [e for e in logs if e["event"] == "triage_high"]
    assert [e["triage_id"] for e in high] == [str(result.id)]
    # The uplink takes it before routine data: it heads the unsent items.
    [first] = buffer.unsent_items(limit=1)
    assert (first.key, first.priority) == ((str(result.id),), 0)


class _AlwaysLow:
    """A model that calls everything low: the engine must still keep NEWS2's high band."""

    version = "always-low-1"

    def predict(self, rows):
        return [ModelOutput(0.0, RiskBand.LOW) for _ in rows]


async def test_a_case_news2_calls_high_is_never_lowered_by_the_model(buffer, tmp_path):
    await _store(buffer, _danger("pat-3"), [_record("pat-3", resp_rate=30, consciousness="P")])
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", _AlwaysLow, clock=lambda: NOW)
    await engine.drain()
    [result] = buffer.recent_triage()
    assert result.model_version == "always-low-1"
    assert result.score == 0.0
    assert result.band is RiskBand.HIGH


async def test_vitals_without_the_agents_observations_are_incomplete(buffer, model, tmp_path):
    await _store(buffer, _normal("pat-4"))
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: model, clock=lambda: NOW)
    await engine.drain()
    [result] = buffer.recent_triage()
    assert result.complete is False
    assert "respiration_rate" not in result.news2_subscores


async def test_readings_without_a_patient_or_outside_the_window_are_left_out(
    buffer, model, tmp_path
):
    unbound = _normal(None)
    old = _reading("pat-5", "body_temperature", 300, temperature=(40.5, "Cel"))  # 5 h before
    recent = _normal("pat-5")
    await _store(buffer, [*unbound, old, *recent])
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: model, clock=lambda: NOW)
    await engine.drain()
    assert _covered(buffer, unbound) == {}
    results = buffer.recent_triage(patient_id="pat-5")
    # The old reading has its own case (its own window); the recent ones do not see its fever.
    assert len(results) == 2
    newest = max(results, key=lambda r: old.id not in r.reading_ids)
    assert old.id not in newest.reading_ids
    assert newest.news2_subscores["temperature"] == 0


KILLED_MID_BATCH = """
import asyncio, os, signal, sys
from pathlib import Path
from datetime import datetime
from hub.buffer import Buffer, BufferConfig
from hub.inference.engine import EngineConfig, TriageEngine
from hub.inference.runtime import load_model

path, model_dir, now = Path(sys.argv[1]), Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
real = load_model(model_dir)

class DiesOnSecondBatch:
    version = real.version
    calls = 0

    def predict(self, rows):
        DiesOnSecondBatch.calls += 1
        if DiesOnSecondBatch.calls == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: scored nothing, stored nothing
        return real.predict(rows)

async def main():
    buffer = Buffer.open(BufferConfig(path=path))
    engine = TriageEngine(buffer, path, DiesOnSecondBatch, EngineConfig(batch_size=5),
                          clock=lambda: now)
    await engine.drain()

asyncio.run(main())
"""


async def test_a_kill_mid_way_then_restart_neither_skips_nor_doubles(model, tmp_path):
    path = tmp_path / "buffer.sqlite3"
    readings = [r for n in range(6) for r in _normal(f"pat-r{n}", minutes_ago=10 - n)]
    async with Buffer.open(BufferConfig(path=path)) as buffer:
        await _store(buffer, readings)
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_BATCH, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(path), str(MODEL_DIR), NOW.isoformat()
    )
    assert await proc.wait() == -signal.SIGKILL
    async with Buffer.open(BufferConfig(path=path)) as buffer:
        before = buffer.recent_triage(limit=100)
        assert 0 < len(before) < 6  # the first batch was stored, the second was not
        engine = TriageEngine(buffer, path, lambda: model, clock=lambda: NOW)
        await engine.drain()
        covered = _covered(buffer, readings)
        assert covered.keys() == {r.id for r in readings}  # nothing skipped
        assert all(len(v) == 1 for v in covered.values())  # nothing doubled
        results = buffer.recent_triage(limit=100)
        assert {r.id for r in before} <= {r.id for r in results}
        assert {r.patient_id for r in results} == {f"pat-r{n}" for n in range(6)}


async def test_redoing_a_batch_gives_the_same_result_ids(model, tmp_path):
    """After a crash between scoring and storing, the redo stores the very same results."""
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    readings = _danger("pat-redo")
    for path in (first, second):
        async with Buffer.open(BufferConfig(path=path)) as buffer:
            await _store(buffer, readings)
    ids = []
    for path in (first, second):
        async with Buffer.open(BufferConfig(path=path)) as buffer:
            await TriageEngine(buffer, path, lambda: model, clock=lambda: NOW).drain()
            ids.append([r.id for r in buffer.recent_triage()])
            # Storing the redone results again adds nothing.
            assert await buffer.add_triage(buffer.recent_triage()) == 0
    assert ids[0] == ids[1]
    assert len(ids[0]) == 1


def test_result_ids_are_deterministic_and_depend_on_the_model_version():
    ids = [UUID(int=2), UUID(int=1)]
    assert result_id("p", ids, "v1") == result_id("p", list(reversed(ids)), "v1")
    assert result_id("p", ids, "v1") != result_id("p", ids, "v2")
    assert result_id("p", ids, "v1") != result_id("q", ids, "v1")


async def test_a_model_swap_between_batches_uses_the_new_version(buffer, model, tmp_path):
    manifest = json.loads((MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    content = (MODEL_DIR / "model_int8.tflite").read_bytes()
    newer = from_manifest(manifest | {"version": "triage-v2"}, content)
    in_use = [model]
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: in_use[0], clock=lambda: NOW)
    await _store(buffer, _normal("pat-6", minutes_ago=20))
    await engine.drain()
    in_use[0] = newer
    await _store(buffer, _normal("pat-6", minutes_ago=2))
    await engine.drain()
    versions = [r.model_version for r in buffer.recent_triage(patient_id="pat-6")]
    assert versions == ["triage-v2", "triage-v1"]


async def test_one_patients_impossible_value_never_stops_the_others(buffer, model, tmp_path):
    await _store(
        buffer,
        [*_normal("pat-ok"), *_normal("pat-bad")],
        [_record("pat-bad", resp_rate=500), _record("pat-ok", resp_rate=15, consciousness="oops")],
    )
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: model, clock=lambda: NOW)
    with capture_logs() as logs:
        await engine.drain()
    assert [r.patient_id for r in buffer.recent_triage()] == ["pat-ok"]
    assert engine.stats.failed_cases == 1
    assert engine.stats.bad_observations == 1  # "oops" is no ACVPU letter: ignored, logged
    events = {e["event"] for e in logs}
    assert {"triage_case_failed", "triage_bad_observation"} <= events


class _Broken:
    version = "broken-1"

    def predict(self, rows):
        raise RuntimeError(f"interpreter exploded on {len(rows)} rows")


async def test_a_failing_model_falls_back_to_news2_alone(buffer, tmp_path):
    await _store(buffer, _danger("pat-7"))
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", _Broken, clock=lambda: NOW)
    await engine.drain()
    [result] = buffer.recent_triage()
    assert result.model_version == "news2-only"
    assert engine.stats.model_failures == 1


async def test_the_loop_triages_new_readings_and_stops(buffer, model, tmp_path):
    engine = TriageEngine(
        buffer,
        tmp_path / "buffer.sqlite3",
        lambda: model,
        EngineConfig(interval_s=0.05),
        clock=lambda: NOW,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    await _store(buffer, _normal("pat-8"))
    engine.wake()
    async with asyncio.timeout(30):
        while not buffer.recent_triage():  # noqa: ASYNC110 - the engine signals nothing
            await asyncio.sleep(0.02)
    stop.set()
    await task
    assert buffer.recent_triage()[0].patient_id == "pat-8"


async def test_readings_stored_after_an_empty_pass_are_still_triaged(buffer, model, tmp_path):
    engine = TriageEngine(buffer, tmp_path / "buffer.sqlite3", lambda: model, clock=lambda: NOW)
    await _store(buffer, _normal(None))
    assert await engine.run_once() == 0  # nothing bound: the engine moves past these readings
    later = _normal("pat-9")
    await _store(buffer, later)
    assert await engine.drain() == 3
    assert _covered(buffer, later).keys() == {r.id for r in later}


@pytest.mark.parametrize("minutes", [60, 120])
async def test_each_result_says_the_window_it_was_triaged_over(buffer, model, tmp_path, minutes):
    config = EngineConfig(window=timedelta(minutes=minutes))
    engine = TriageEngine(
        buffer, tmp_path / "buffer.sqlite3", lambda: model, config, clock=lambda: NOW
    )
    await _store(buffer, _normal("pat-w"))
    await engine.drain()
    results = buffer.recent_triage(patient_id="pat-w")
    assert results
    assert {r.window_s for r in results} == {minutes * 60}


@pytest.mark.parametrize("loaded", [False, True])
async def test_a_model_not_loaded_yet_is_never_loaded_on_the_event_loop(
    buffer, model, tmp_path, loaded
):
    """Loading the runtime takes about a second: off the loop (BLE and the API share it). A
    small pass with the model already loaded runs on the loop (a thread hop costs more)."""
    threads: list[int] = []

    def holder_model():
        threads.append(threading.get_ident())
        return model

    engine = TriageEngine(
        buffer,
        tmp_path / "buffer.sqlite3",
        holder_model,
        clock=lambda: NOW,
        model_loaded=lambda: loaded,
    )
    await _store(buffer, _normal("pat-loop")[:1])  # one reading: a small pass
    await engine.drain()
    assert threads
    on_loop = threads[0] == threading.get_ident()
    assert on_loop is loaded
