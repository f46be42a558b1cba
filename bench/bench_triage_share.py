"""Triage's share of the hub's ingest path, defined precisely (issue 6). SYNTHETIC ward.

Run: .venv/bin/python -m bench triage_share
     (or: .venv/bin/python bench/bench_triage_share.py [--patients N] [--period S] [--ticks N])

A ward of `--patients` patients, each with a continuous oximeter bound to them by an encounter,
sending one reading every `--period` seconds; an hour of it is stored and triaged first (not
timed), so every patient has a full window, as in a ward that has been running. Then the same
`--ticks` ticks of 2 s (the engine's default interval) are played twice in this one process:
triage off, then triage on. Each tick:

- ingest, per reading: parse the PLX Continuous indication bytes (`hub.ble.parsers.dispatch`),
  convert them (`hub.ble.readings.to_reading`, with the encounter lookup the Central does) and
  store the row durably (`Buffer.insert_many`, one indication a call, as the Central does);
  every 500 readings, seal them as one uplink batch (`hub.uplink.sealing.seal_readings`:
  serialise, sign, encrypt) and mark them sent to it (`Buffer.assign_batch`);
- triage on only: one engine pass (`TriageEngine.run_once` until nothing is new), as the
  engine does every tick.

**CPU share** = hub CPU per reading spent in triage ÷ hub CPU per reading of the ingest path,
where both are process CPU time (user + system, every thread: the buffer's writer included),
triage's being the "on" run minus the "off" run. Not in the ingest figure: the GATT/bleak stack
(below the parser; see `bench ble`) and MQTT publishing and acks (see `bench uplink`, about
0.1 ms of CPU a reading more): adding them would lower the share somewhat, not change its order.

**Latency added** to BLE indication → durable row: triage runs off that path (its own thread
and read connection; it writes through the buffer's writer, which the Central's inserts share).
Measured over the real Central and the bumble virtual radio like `bench ble`: a bound
thermometer indicating every 50 ms, while the same ward (an hour stored) keeps storing its
oximeters' readings in real time, with the engine running (every 2 s, the default) vs not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.bench_triage_engine import MODEL_DIR, _continuous, _record
from hub.ble.parsers.dispatch import parse
from hub.ble.parsers.pulse_oximeter import PLX_CONTINUOUS
from hub.ble.readings import to_reading
from hub.ble.virtual import encode
from hub.buffer import Buffer, BufferConfig
from hub.buffer.values import NewReading
from hub.inference.engine import EngineConfig, TriageEngine
from hub.inference.runtime import load_model
from hub.uplink.sealing import seal_readings
from wire.envelope import DEFAULT_LIMITS
from wire.ids import uuid7

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.inference.runtime import TriageModel
    from wire.items import Reading

TICK = timedelta(seconds=2)
BATCH = 500
START = datetime(2026, 11, 28, 11, 0, 0, 500_000, tzinfo=UTC)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _address(n: int) -> str:
    return f"C0:00:00:00:{n // 256:02X}:{n % 256:02X}"


async def _ward(
    buffer: Buffer, patients: int, period: timedelta, start: datetime = START
) -> datetime:
    """Bind the oximeters, store an hour of readings and the agent's records; the hour's end."""
    rng = random.Random(11)
    names = [f"w{p}" for p in range(patients)]
    for n, name in enumerate(names):
        await buffer.start_encounter(_address(n), name, started_at=start - timedelta(days=1))
    await buffer.sync_records([_record(name, rng) for name in names], start)
    steps = int(timedelta(hours=1) / period)
    old = [_continuous(p, start + i * period, rng) for i in range(steps) for p in names]
    for i in range(0, len(old), 5000):
        await buffer.insert_many([NewReading(r, f"k-{r.id}") for r in old[i : i + 5000]])
    return START + steps * period


async def _ward_now(buffer: Buffer, patients: int, period: timedelta) -> None:
    """The ward, its hour ending now (the engine runs on the wall clock in the latency part)."""
    await _ward(buffer, patients, period, datetime.now(UTC) - timedelta(hours=1))


class _Noisy:
    """Values drawn anew each reading, SpO2 88-99 and pulse 55-130: NEWS2 changes all the time.

    The worst case for the cadence (nearly every reading changes a subscore); no ward looks so.
    """

    name = "noisy ward (every reading random)"

    def __init__(self, patients: int) -> None:  # noqa: ARG002 - the wards' one signature
        self.rng = random.Random(5)

    def __call__(self, n: int) -> tuple[int, int]:  # noqa: ARG002
        return self.rng.randint(88, 99), self.rng.randint(55, 130)


class _Steady:
    """Each patient's oximeter drifts around the patient's own baseline, as a monitor's does.

    SpO2 moves by at most a point a reading within 2 below to 1 above the baseline (92-99) and
    pulse by up to 3 a reading within 8 of its baseline (60-118): baselines near a chart
    boundary (SpO2 95/96, pulse 90/91) flip a subscore now and then, so some readings are
    scored at once, as in a real ward.
    """

    name = "steady ward (each patient drifts around a baseline)"

    def __init__(self, patients: int) -> None:
        self.rng = random.Random(5)
        self.base = [(self.rng.randint(92, 99), self.rng.randint(60, 118)) for _ in range(patients)]
        self.now = list(self.base)

    def __call__(self, n: int) -> tuple[int, int]:
        (spo2, pulse), (b_spo2, b_pulse) = self.now[n], self.base[n]
        spo2 = min(b_spo2 + 1, max(b_spo2 - 2, spo2 + self.rng.choice((-1, 0, 0, 0, 1))), 100)
        pulse = min(b_pulse + 8, max(b_pulse - 8, pulse + self.rng.randint(-3, 3)))
        self.now[n] = (spo2, pulse)
        return spo2, pulse


class _Ingest:
    """The hub's per-reading ingest work, from indication bytes to a sealed batch."""

    def __init__(self, buffer: Buffer, values: Callable[[int], tuple[int, int]]) -> None:
        self.buffer = buffer
        self.hub_key = Ed25519PrivateKey.generate()
        self.cloud_key = X25519PrivateKey.generate().public_key()
        self.unsealed: list[Reading] = []
        self.sealed = 0
        self.values = values

    async def indication(self, n: int, at: datetime) -> None:
        raw = encode.plx_continuous(*self.values(n))
        result = parse(PLX_CONTINUOUS, raw)
        address = _address(n)
        match = self.buffer.patient_for(address, at)
        converted = to_reading(
            result,  # type: ignore[arg-type]  # a PLX Continuous value is a Measurement
            address=address,
            raw=raw,
            received_at=at,
            clock_offset_s=None,
            device_tz=UTC,
            patient=(match.patient_id, match.encounter_id) if match else None,
            rand=os.urandom(10),
        )
        assert converted is not None  # noqa: S101 - a bench: a bound oximeter's reading
        await self.buffer.insert_many([NewReading(converted.reading, converted.dedupe_key)])
        self.unsealed.append(converted.reading)
        if len(self.unsealed) >= BATCH:
            await self.seal(at)

    async def seal(self, at: datetime) -> None:
        batch_id = uuid7(at, os.urandom(10))
        seal_readings(
            [r.model_dump_json() for r in self.unsealed],
            hub_id="hub-bench",
            batch_id=batch_id,
            seq=self.sealed,
            now=at,
            priority=1,
            hub_key=self.hub_key,
            cloud_key=self.cloud_key,
            limits=DEFAULT_LIMITS,
        )
        await self.buffer.assign_batch(batch_id, [r.id for r in self.unsealed])
        self.sealed += 1
        self.unsealed = []


async def cpu_share(  # noqa: PLR0917 - a bench's knobs
    patients: int,
    period_s: float,
    ticks: int,
    model: TriageModel,
    ward: type[_Noisy | _Steady],
    config: EngineConfig,
) -> None:
    """Play the ticks with triage off, then on, each on its own copy of the ward; print.

    With triage on, the readings the cadence still holds at the end are scored too (the clock
    moved on by `rescore_s`), in the timed part: every reading is paid for.
    """
    period = timedelta(seconds=period_s)
    cpu: dict[bool, float] = {}
    wall: dict[bool, float] = {}
    readings = results = held = 0
    for triage_on in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "buffer.sqlite3"
            async with Buffer.open(BufferConfig(path=path)) as buffer:
                now = await _ward(buffer, patients, period)
                clock = [now]
                engine = TriageEngine(buffer, path, lambda: model, config, clock=lambda: clock[0])  # noqa: B023
                await engine.drain()  # the hour before: not timed
                before = engine.stats.results
                ingest = _Ingest(buffer, ward(patients))
                rng = random.Random(3)
                due = [now + period * rng.random() for _ in range(patients)]
                readings = 0
                wall0, cpu0 = time.perf_counter(), _cpu()
                for _ in range(ticks):
                    end = clock[0] + TICK
                    for n in range(patients):
                        while due[n] < end:
                            await ingest.indication(n, due[n])
                            due[n] += period
                            readings += 1
                    clock[0] = end
                    if triage_on:
                        await engine.drain()
                if ingest.unsealed:
                    await ingest.seal(clock[0])
                if triage_on:  # what is still held is scored: every reading is paid for
                    clock[0] += timedelta(seconds=config.rescore_s)
                    await engine.drain()
                    results, held = engine.stats.results - before, engine.stats.held
                    assert engine.holding == 0  # noqa: S101 - a bench: nothing left unscored
                cpu[triage_on] = _cpu() - cpu0
                wall[triage_on] = time.perf_counter() - wall0
                engine.close()
    ingest_us = cpu[False] / readings * 1e6
    triage_us = (cpu[True] - cpu[False]) / readings * 1e6
    cadence = f"rescore_s {config.rescore_s:g}" if config.rescore_s else "every reading scored"
    print(
        f"{ward.name}, {cadence}: {patients} patients x 1 oximeter reading / {period_s:g} s, "
        f"an hour in each window; {ticks} ticks of 2 s = {readings} readings, triage off and on"
    )
    print(f"  results stored: {results} ({results / readings:.3f} a reading); held: {held}")
    print(f"  hub CPU per reading, ingest path (parse..sealed): {ingest_us:8.1f} us")
    print(f"  hub CPU per reading, triage (on - off):           {triage_us:8.1f} us")
    share = triage_us / ingest_us
    verdict = "meets" if share < 0.01 else "does NOT meet"
    print(f"  triage's CPU share of the ingest path:            {share:8.1%}   ({verdict} < 1 %)")
    print(f"  (wall: off {wall[False]:.2f} s, on {wall[True]:.2f} s)")


async def _feed(buffer: Buffer, patients: int, period: timedelta, stop: asyncio.Event) -> None:
    """Store the ward's oximeter readings in real time (1/`period` a patient), until `stop`."""
    ingest = _Ingest(buffer, _Noisy(patients))
    n = 0
    while not stop.is_set():
        await ingest.indication(n % patients, datetime.now(UTC))
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period.total_seconds() / patients)


async def _latency(
    tmp: Path,
    model: TriageModel,
    *,
    triage_on: bool,
    samples: int,
    patients: int,
    period: timedelta,
) -> list[float]:
    from hub.ble.bumble_backend import VirtualRadio  # noqa: PLC0415 - keep `-m bench` start fast
    from hub.ble.central import Backends, Central  # noqa: PLC0415
    from hub.ble.profiles import default_profiles_dir, load_profiles  # noqa: PLC0415
    from hub.ble.virtual import Thermometer  # noqa: PLC0415
    from hub.config import BleSettings  # noqa: PLC0415

    path = tmp / f"latency-{triage_on}.sqlite3"
    address = "B0:00:00:00:00:01"
    out: list[float] = []
    async with Buffer.open(BufferConfig(path=path)) as buffer:
        await _ward_now(buffer, patients, period)
        await buffer.start_encounter(address, "thermo-patient", started_at=START)
        stored = asyncio.Event()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_feed(buffer, patients, period, stop))]
        if triage_on:
            engine = TriageEngine(buffer, path, lambda: model, EngineConfig())
            await engine.drain()  # the hour before
            tasks.append(asyncio.create_task(engine.run(stop)))
        async with VirtualRadio() as radio:
            central = Central(
                profiles=load_profiles(default_profiles_dir()),
                buffer=buffer,
                settings=BleSettings(),
                backends=Backends(radio.scanner_backend, radio.client_backend),
                on_stored=lambda _r: stored.set(),
            )
            tasks.append(asyncio.create_task(central.run(stop)))
            thermo = await radio.add(Thermometer(address=address, frames=[]))
            while thermo.address not in central.connected:  # noqa: ASYNC110 - a bench
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # let the session finish its reads and clock sync
            for i in range(samples + 20):
                stored.clear()
                start = time.perf_counter()
                await thermo.measure(35.0 + i / 100)  # distinct: identical values dedupe
                await asyncio.wait_for(stored.wait(), 5)
                if i >= 20:  # the first 20 are warm-up
                    out.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.05)  # over several engine passes (every 2 s)
            stop.set()
            await asyncio.gather(*tasks)
        if triage_on:
            covered = buffer.recent_triage(patient_id="thermo-patient", limit=1)
            assert covered, "the engine triaged none of the thermometer's readings"  # noqa: S101
    return out


def main() -> None:
    """Print both figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--period", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--ticks", type=int, default=450, help="2 s ticks played (450: 15 min)")
    parser.add_argument("--samples", type=int, default=300, help="BLE latency samples")
    args = parser.parse_args()
    model = load_model(MODEL_DIR)
    default, every = EngineConfig(), EngineConfig(rescore_s=0)
    for ward, config in ((_Steady, default), (_Steady, every), (_Noisy, default)):
        asyncio.run(cpu_share(args.patients, args.period, args.ticks, model, ward, config))
    print("a ward of spot checks (10x the patients, a reading a minute each):")
    asyncio.run(cpu_share(args.patients * 10, 60.0, args.ticks, model, _Steady, default))
    print("while the ward's readings arrive in real time, a bound thermometer indicating:")
    with tempfile.TemporaryDirectory() as tmp:
        for triage_on in (False, True):
            samples = asyncio.run(
                _latency(
                    Path(tmp),
                    model,
                    triage_on=triage_on,
                    samples=args.samples,
                    patients=args.patients,
                    period=timedelta(seconds=args.period),
                )
            )
            q = statistics.quantiles(samples, n=100)
            label = "engine running (every 2 s)" if triage_on else "no triage engine          "
            print(
                f"indication -> durable row, {label}: p50 {q[49]:5.2f} ms  p99 {q[98]:5.2f} ms"
                f"  ({len(samples)} samples)"
            )


if __name__ == "__main__":
    main()
