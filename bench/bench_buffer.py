"""Hub buffer insert rate, durable when acknowledged, against a plain sqlite3 baseline.

Run: .venv/bin/python bench/bench_buffer.py [--readings N] [--producers P]

Every buffer figure counts a reading only once its `await buffer.insert(...)` returned, which
happens after the group commit that holds it (WAL, synchronous=NORMAL unless stated).
The baseline stores the same readings' JSON as one-column rows with batched executemany + commit,
no dedupe, no indexes, no acknowledgement: the floor of what SQLite costs on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hub.buffer import Buffer, BufferConfig, NewReading
from wire.samples import sample_reading

if TYPE_CHECKING:
    from hub.buffer.config import Synchronous
    from wire.items import Reading


def make_readings(n: int) -> list[NewReading]:
    """`n` sample readings received 37 ms apart, 2 % of them alerts.

    Dedupe keys are shaped like the BLE central's: device, characteristic, the device's own
    record sequence, a hash of the raw bytes. They grow per device, as real ones do, so each
    commit touches a few index pages per device rather than one page per reading.
    """
    rng = random.Random(20260501)
    start = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    sequences: dict[str, int] = {}
    items = []
    for i in range(n):
        reading = sample_reading(
            rng,
            start + timedelta(milliseconds=37 * i),
            device=rng.randint(1, 12),
            patient=rng.randint(1, 400),
        )
        seq = sequences[reading.device_id] = sequences.get(reading.device_id, 0) + 1
        key = f"{reading.device_id}/2a35/{seq:010d}/sha256:{rng.getrandbits(64):016x}"
        items.append(NewReading(reading, key, 0 if rng.random() < 0.02 else 1))
    return items


async def bench_single(
    path: Path, items: list[NewReading], producers: int, synchronous: Synchronous = "NORMAL"
) -> float:
    """Readings/s with `producers` tasks each awaiting `insert` one reading at a time."""
    buffer = Buffer.open(BufferConfig(path=path, synchronous=synchronous))

    async def produce(k: int) -> None:
        for item in items[k::producers]:
            await buffer.insert(item.reading, dedupe_key=item.dedupe_key, priority=item.priority)

    started = time.perf_counter()
    await asyncio.gather(*(produce(k) for k in range(producers)))
    elapsed = time.perf_counter() - started
    await buffer.aclose()
    return len(items) / elapsed


async def bench_many(path: Path, items: list[NewReading], producers: int, chunk: int) -> float:
    """Readings/s with tasks each storing `chunk` readings per `insert_many` (an RACP download)."""
    buffer = Buffer.open(BufferConfig(path=path))
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]

    async def produce(k: int) -> None:
        for part in chunks[k::producers]:
            await buffer.insert_many(part)

    started = time.perf_counter()
    await asyncio.gather(*(produce(k) for k in range(producers)))
    elapsed = time.perf_counter() - started
    await buffer.aclose()
    return len(items) / elapsed


def bench_baseline(path: Path, readings: list[Reading], batch: int) -> float:
    """Readings/s for plain sqlite3: serialise, executemany into one JSON column, commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE readings (json TEXT NOT NULL)")
    started = time.perf_counter()
    for i in range(0, len(readings), batch):
        rows = [(r.model_dump_json(),) for r in readings[i : i + batch]]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO readings (json) VALUES (?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(readings) / elapsed


def main() -> None:
    """Print the figures."""
    from hub.logging import configure_logging  # noqa: PLC0415 - only when run

    configure_logging(level="WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--producers", type=int, default=1000)
    args = parser.parse_args()
    items = make_readings(args.readings)
    mean_bytes = sum(len(i.reading.model_dump_json()) for i in items[:1000]) / 1000
    print(f"{len(items):,} sample readings (~{mean_bytes:.0f} B of JSON each)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        single = asyncio.run(bench_single(root / "single.sqlite3", items, args.producers))
        many = asyncio.run(bench_many(root / "many.sqlite3", items, 20, 50))
        full_items = items[: len(items) // 5]
        full = asyncio.run(
            bench_single(root / "full.sqlite3", full_items, args.producers, synchronous="FULL")
        )
        base = bench_baseline(root / "baseline.sqlite3", [i.reading for i in items], 2000)
    print(f"buffer, {args.producers} tasks x insert():      {single:10,.0f} readings/s (durable)")
    print(f"buffer, 20 tasks x insert_many(50):    {many:10,.0f} readings/s (durable)")
    print(f"buffer, synchronous=FULL, insert():    {full:10,.0f} readings/s ({len(full_items):,})")
    print(f"plain sqlite3, 1 JSON column, batches: {base:10,.0f} readings/s")
    print(f"ratio buffer insert() / plain sqlite3: {single / base:10.2f}")


if __name__ == "__main__":
    main()
