"""Triage latency per reading on the hub, and its share of the ingest path. SYNTHETIC patients.

Run: .venv/bin/python -m bench triage   (or: .venv/bin/python bench/bench_triage.py [--cases N])

End to end per case = `hub.inference.triage.triage`: feature extraction (wire.triage_features),
NEWS2 (wire.news2), the committed int8 LiteRT model (normalise, quantise, invoke, dequantise,
band), the safety rule and building the `TriageResult` with its input hash. Cases are seeded
synthetic patients (1-4 sets of vitals each). "Single" scores one case per call; "batched" one
model invocation per batch. The share of the ingest path divides the batched triage cost per
case by the cost per reading of a durable `Buffer.insert` measured in this same run (one triage
per reading stored: the pessimistic case; a triage usually covers several readings).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from bench.bench_buffer import bench_many, bench_single, make_readings
from cloud.models.cohort import generate
from hub.inference.runtime import load_model
from hub.inference.triage import Case, triage
from wire.news2 import score
from wire.triage_features import extract, input_hash, latest_vitals

MODEL_DIR = Path(__file__).parents[1] / "cloud" / "models" / "artifacts" / "triage-v1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def per_case_us(fn, n: int, repeat: int = 5) -> float:  # noqa: ANN001 - any callable
    """Best-of-`repeat` microseconds per case of `fn()` which handles `n` cases."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--readings", type=int, default=3000, help="buffer inserts to time")
    args = parser.parse_args()

    model = load_model(MODEL_DIR)
    size = (MODEL_DIR / "model_int8.tflite").stat().st_size
    people = generate(args.cases, seed=99)
    cases = [Case(p.series, p.age_years) for p in people]
    ids = [UUID(int=i + 1) for i in range(len(cases))]
    rows = [extract(c.series, age_years=c.age_years) for c in cases]
    n, batch = len(cases), args.batch
    sets = statistics.mean(len(c.series) for c in cases)
    print(f"{n:,} synthetic cases, {sets:.1f} sets of vitals each; int8 model {size:,} B")

    features = per_case_us(lambda: [extract(c.series, age_years=c.age_years) for c in cases], n)
    news2 = per_case_us(lambda: [score(latest_vitals(c.series)) for c in cases], n)
    model_single = per_case_us(lambda: [model.predict([r]) for r in rows], n)
    model_batched = per_case_us(
        lambda: [model.predict(rows[i : i + batch]) for i in range(0, n, batch)], n
    )
    hashing = per_case_us(lambda: [input_hash(r) for r in rows], n)
    single = per_case_us(
        lambda: [triage([c], model, now=NOW, ids=[ids[k]]) for k, c in enumerate(cases)], n
    )
    batched = per_case_us(
        lambda: [
            triage(cases[i : i + batch], model, now=NOW, ids=ids[i : i + batch])
            for i in range(0, n, batch)
        ],
        n,
    )
    print(f"  features (wire.triage_features):      {features:8.1f} us/case")
    print(f"  NEWS2 (wire.news2):                   {news2:8.1f} us/case")
    print(f"  model only, one row per invoke:       {model_single:8.1f} us/case")
    print(f"  model only, {batch} rows per invoke:     {model_batched:8.1f} us/case")
    print(f"  input hash (float64 row + SHA-256):   {hashing:8.1f} us/case")
    print(f"end to end, single (1 case per call):   {single:8.1f} us/case  (target < 1000)")
    print(f"end to end, batched ({batch} per call):     {batched:8.1f} us/case  (target < 1000)")

    items = make_readings(args.readings)
    with tempfile.TemporaryDirectory() as tmp:
        insert_rate = asyncio.run(bench_single(Path(tmp) / "a.sqlite", items, 50))
        many_rate = asyncio.run(bench_many(Path(tmp) / "b.sqlite", items, 20, 50))
    insert_us, many_us = 1e6 / insert_rate, 1e6 / many_rate
    print(f"buffer insert(), 50 tasks (durable):    {insert_us:8.1f} us/reading")
    print(f"buffer insert_many(50), 20 tasks:       {many_us:8.1f} us/reading")
    print(
        f"triage (batched) / buffer insert():     {batched / insert_us:8.1%}   "
        f"/ insert_many(): {batched / many_us:.1%}   (target < 1 %; one triage per reading)"
    )


if __name__ == "__main__":
    main()
