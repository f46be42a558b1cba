"""Database figures (issue 4): rows/s of `store_batch`, and the bound, a plain COPY.

    make bench            # or: .venv/bin/python -m bench db

Loads BATCHES batches of BATCH mixed vitals readings with `cloud.db.store_batch` (claim, partition
check, COPY straight into `readings` in a savepoint, batch bookkeeping, one commit per batch) into
a fresh database; then EXACT batches whose last reading was stored before, which take the exact
path (the COPY fails on the primary key at its end, the savepoint is rolled back, COPY into a
temporary table, INSERT ... ON CONFLICT DO NOTHING); then the same rows with a plain COPY straight
into the same partitioned `readings` table, one commit per batch: the ratio is what idempotency
costs.
Needs PostgreSQL on 127.0.0.1:5432 (or TECSA_BENCH_PG, a libpq conninfo of a maintenance db).
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from cloud.db import add_hub, connect, ensure_partitions_around, store_batch, upgrade
from wire import Body, Compression, Counts, Header, Priority, Reading
from wire.keys import key_id
from wire.samples import sample_batch_id, sample_body

BATCH = 500
BATCHES = 200
EXACT = 50
HUB_ID = "hub-bench-01"
ADMIN = os.environ.get("TECSA_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
_RAW_TYPES = [
    "uuid", "timestamptz", "timestamptz", "timestamptz", "timestamp", "text", "text", "jsonb",
    "text[]", "text", "uuid", "int8", "text", "uuid",
]  # fmt: skip
_RAW_COLUMNS = (
    "id, measured_at, measured_at_reported, received_at, device_time, device_id, kind, "
    "components, quality, patient_id, encounter_id, device_seq, hub_id, batch_id"
)


def main() -> None:
    """Print rows/s for store_batch and for a raw COPY into the same table, and their ratio."""
    name = f"tecsa_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        _run(make_conninfo(ADMIN, dbname=name))
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _run(url: str) -> None:
    upgrade(url)
    rng = random.Random(20261128)
    now = datetime.now(UTC)
    hub_key = Ed25519PrivateKey.generate()
    batches = []
    for i in range(BATCHES):
        t = now + timedelta(seconds=20 * i)
        body = sample_body(BATCH, rng, t)
        batches.append((_header(sample_batch_id(rng, t), i, hub_key, t), body))
    rows = BATCH * BATCHES
    with connect(url) as conn:
        add_hub(conn, HUB_ID, hub_key.public_key())
        ensure_partitions_around(conn, now)  # as `db upgrade` does: no DDL inside the timing
        conn.execute("CHECKPOINT")
        per_batch = []
        start = time.perf_counter()
        for header, body in batches:
            t0 = time.perf_counter()
            store_batch(conn, header, body, s3_key=f"raw/{header.batch_id}", received_at=now)
            per_batch.append(time.perf_counter() - t0)
        stored_s = time.perf_counter() - start
        again = time.perf_counter()
        for header, body in batches[:50]:
            store_batch(conn, header, body, s3_key="x", received_at=now)
        duplicate_s = (time.perf_counter() - again) / 50
        exact = []
        for i in range(EXACT):
            t = now + timedelta(seconds=20 * (BATCHES + i))
            fresh = sample_body(BATCH - 1, rng, t).readings
            body = Body(readings=(*fresh, batches[i][1].readings[-1]))
            exact.append((_header(sample_batch_id(rng, t), BATCHES + i, hub_key, t), body))
        conn.execute("CHECKPOINT")
        start = time.perf_counter()
        for header, body in exact:
            result = store_batch(conn, header, body, s3_key="x", received_at=now)
            if result.readings.duplicate != 1:
                raise RuntimeError(f"expected 1 duplicate reading, got {result.readings}")
        exact_rate = EXACT * BATCH / (time.perf_counter() - start)

        conn.execute("TRUNCATE readings")
        conn.execute("CHECKPOINT")
        start = time.perf_counter()
        for header, body in batches:
            with conn.transaction(), conn.cursor() as cur, cur.copy(_RAW_COPY) as copy:
                copy.set_types(_RAW_TYPES)
                for r in body.readings:
                    copy.write_row(_raw_row(r, header))
        raw_s = time.perf_counter() - start

    store_rate, raw_rate = rows / stored_s, rows / raw_s
    print(f"{BATCHES} batches x {BATCH} readings into a fresh partitioned readings table")
    print(
        f"store_batch   {store_rate:>10,.0f} rows/s   "
        f"({statistics.median(per_batch) * 1000:.1f} ms median per batch, "
        f"p95 {sorted(per_batch)[int(0.95 * len(per_batch))] * 1000:.1f} ms)"
    )
    print(
        f"  exact path  {exact_rate:>10,.0f} rows/s   "
        "(batches with 1 reading of 500 stored before: savepoint rolled back, staging + "
        "ON CONFLICT)"
    )
    print(
        f"raw COPY      {raw_rate:>10,.0f} rows/s   "
        "(binary COPY of the same rows into the same table, one commit per batch)"
    )
    print(f"ratio         {store_rate / raw_rate:>10.2f}     store_batch / raw COPY")
    print(f"duplicate     {duplicate_s * 1000:>10.2f} ms   per already-stored batch (claim only)")


_RAW_COPY = f"COPY readings ({_RAW_COLUMNS}) FROM STDIN (FORMAT BINARY)"


def _raw_row(r: Reading, header: Header) -> tuple[object, ...]:
    components = {k: {"value": c.value, "unit": c.unit} for k, c in r.components.items()}
    return (
        r.id,
        r.measured_at or r.received_at,
        r.measured_at,
        r.received_at,
        r.device_time,
        r.device_id,
        r.kind,
        Jsonb(components),
        list(r.quality),
        r.patient_id,
        r.encounter_id,
        r.device_seq,
        header.hub_id,
        header.batch_id,
    )


def _header(batch_id: object, seq: int, hub_key: Ed25519PrivateKey, now: datetime) -> Header:
    return Header.model_validate(
        {
            "v": 1,
            "hub_id": HUB_ID,
            "batch_id": batch_id,
            "seq": seq,
            "created_at": now,
            "priority": Priority.ROUTINE,
            "counts": Counts(readings=BATCH, medical_records=0, triage_results=0, audit_events=0),
            "hub_key": key_id(hub_key),
            "cloud_key": "0" * 16,
            "epk": "A" * 43,
            "nonce": "A" * 16,
            "compression": Compression.ZSTD,
            "body_len": 0,
        }
    )


if __name__ == "__main__":
    main()
