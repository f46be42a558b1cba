"""The triage engine end to end on a real buffer: cost per reading triaged. SYNTHETIC patients.

Run: .venv/bin/python -m bench triage_engine
     (or: .venv/bin/python bench/bench_triage_engine.py [--patients N] [--per-patient N])

Each synthetic patient has a cuff, an oximeter and a thermometer reading per round and one
record of the agent's observations; the engine (`hub.inference.engine.TriageEngine`) finds the
untriaged readings, reads each patient's window (readings and records), scores the batch with
the committed int8 model in one invocation and stores the results durably (`add_triage`). The
figure is the wall time of `drain()` divided by the readings stored (all end up covered by a
result), next to the cost per
reading of storing them (`insert_many`) measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from hub.buffer import Buffer, BufferConfig
from hub.buffer.values import NewReading
from hub.inference.engine import EngineConfig, TriageEngine
from hub.inference.runtime import load_model
from wire.canonical import content_hash
from wire.items import Component, MedicalRecord, Reading

MODEL_DIR = Path(__file__).parents[1] / "cloud" / "models" / "artifacts" / "triage-v1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _readings(patient: str, rounds: int, rng: random.Random) -> list[Reading]:
    out = []
    for n in range(rounds):
        at = NOW - timedelta(minutes=50 - n * 40 / max(rounds, 1))
        kinds = {
            "blood_pressure": {
                "systolic": (rng.uniform(85, 170), "mm[Hg]"),
                "pulse": (rng.uniform(50, 140), "/min"),
            },
            "spo2_spot_check": {"spo2": (rng.uniform(86, 100), "%")},
            "body_temperature": {"temperature": (rng.uniform(35.5, 39.8), "Cel")},
        }
        for kind, comps in kinds.items():
            out.append(
                Reading(
                    id=uuid4(),
                    device_id=f"dev-{patient}",
                    kind=kind,
                    components={k: Component(value=v, unit=u) for k, (v, u) in comps.items()},
                    measured_at=at,
                    received_at=at + timedelta(seconds=2),
                    patient_id=patient,
                )
            )
    return out


def _record(patient: str, rng: random.Random) -> MedicalRecord:
    payload = {
        "observations": {
            "resp_rate": rng.randint(10, 28),
            "consciousness": "A",
            "on_oxygen": False,
        },
        "patient": {"age_years": rng.randint(1, 90)},
    }
    return MedicalRecord(
        id=uuid4(),
        revision=1,
        updated_at=NOW - timedelta(minutes=55),
        patient_id=patient,
        agent_id="agent-bench",
        type="visit",
        payload=payload,
        content_hash=content_hash(payload),
    )


async def run(patients: int, rounds: int, batch: int) -> float:
    """Store the readings, then triage them all; print the figures, return ms per reading."""
    rng = random.Random(6)
    model = load_model(MODEL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "buffer.sqlite3"
        async with Buffer.open(BufferConfig(path=path)) as buffer:
            readings = [r for p in range(patients) for r in _readings(f"p{p}", rounds, rng)]
            records = [_record(f"p{p}", rng) for p in range(patients)]
            await buffer.sync_records(records, NOW)
            start = time.perf_counter()
            await buffer.insert_many([NewReading(r, f"k-{r.id}") for r in readings])
            insert_s = time.perf_counter() - start
            config = EngineConfig(batch_size=batch, rescore_s=0)  # latency: every reading scored
            engine = TriageEngine(buffer, path, lambda: model, config, clock=lambda: NOW)
            start = time.perf_counter()
            await engine.drain()
            taken = len(readings)  # all covered; a few as readings a neighbour's result used
            triage_s = time.perf_counter() - start
            engine.close()
    print(f"synthetic: {patients} patients x {rounds} rounds x 3 readings = {taken} readings")
    print(f"batch size {batch}: {engine.stats.batches} batches, {engine.stats.results} results")
    print(f"  bands: {dict(sorted(engine.stats.by_band.items()))}")
    print(f"  triage end to end: {triage_s / taken * 1e3:.3f} ms per reading")
    print(f"  storing (insert_many): {insert_s / taken * 1e3:.3f} ms per reading")
    return triage_s / taken * 1e3


def _continuous(patient: str, at: datetime, rng: random.Random) -> Reading:
    comps = {"spo2": (rng.uniform(88, 100), "%"), "pulse": (rng.uniform(55, 130), "/min")}
    return Reading(
        id=uuid4(),
        device_id=f"ox-{patient}",
        kind="spo2_continuous",
        components={k: Component(value=v, unit=u) for k, (v, u) in comps.items()},
        measured_at=at,
        received_at=at + timedelta(seconds=1),
        patient_id=patient,
    )


async def run_stream(patients: int, period_s: float, passes: int) -> float:
    """Steady state: ms of engine wall time per new reading, one new reading per patient a pass."""
    rng = random.Random(7)
    model = load_model(MODEL_DIR)
    step = timedelta(seconds=period_s)
    history = int(3600 / period_s)
    names = [f"s{p}" for p in range(patients)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "buffer.sqlite3"
        async with Buffer.open(BufferConfig(path=path)) as buffer:
            await buffer.sync_records([_record(p, rng) for p in names], NOW)
            start_at = NOW - timedelta(minutes=60, seconds=-0.5)  # off the record's time
            old = [_continuous(p, start_at + n * step, rng) for n in range(history) for p in names]
            await buffer.insert_many([NewReading(r, f"k-{r.id}") for r in old])
            every = EngineConfig(rescore_s=0)  # latency: every reading scored, none held
            engine = TriageEngine(
                buffer, path, lambda: model, every, clock=lambda: NOW + timedelta(hours=1)
            )
            await engine.drain()  # the hour before: not timed
            spent = 0.0
            for n in range(passes):
                at = start_at + (history + n) * step
                new = [_continuous(p, at, rng) for p in names]
                await buffer.insert_many([NewReading(r, f"k-{r.id}") for r in new])
                start = time.perf_counter()
                await engine.drain()
                spent += time.perf_counter() - start
            engine.close()
    per_reading = spent / (passes * patients) * 1e3
    print(
        f"streaming: {patients} patients x 1 reading / {period_s:g} s, {history} readings in "
        f"each window; {passes} passes of {patients} new readings"
    )
    print(f"  triage end to end: {per_reading:.3f} ms per new reading  (target < 1 ms)")
    return per_reading


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--per-patient", type=int, default=3, help="rounds of 3 readings")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--stream-patients", type=int, default=20)
    parser.add_argument("--stream-period", type=float, default=5.0, help="seconds")
    parser.add_argument("--stream-passes", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.patients, args.per_patient, args.batch))
    asyncio.run(run_stream(args.stream_patients, args.stream_period, args.stream_passes))


if __name__ == "__main__":
    main()
