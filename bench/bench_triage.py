"""Triage latency per reading on the hub, and its share of the ingest path. SYNTHETIC patients.

Run: .venv/bin/python -m bench triage   (or: .venv/bin/python bench/bench_triage.py [--cases N])

Per case = `hub.inference.triage.triage`: feature extraction (wire.triage_features), NEWS2
(wire.news2), the committed int8 LiteRT model (normalise, quantise, invoke, dequantise, band),
the safety rule and building the `TriageResult` with its input hash. Cases are seeded synthetic
patients (1-4 sets of vitals each). "Single" scores one case per call; "batched" one model
invocation per batch.

Per reading end to end = the engine on a real buffer (`bench/bench_triage_engine.py`): find the
new readings, read the patient's window and records, score, store the result durably. "Batched":
a burst of spot checks (300 patients x 3 rounds x 3 readings), 500 readings a pass. "Single": one
patient whose oximeter sends a reading every 5 s, one new reading a pass, scored against the
hour before it (720 readings); and the same with a reading every 5 minutes (12 in the hour).
The cost of a pass grows with the readings in the window. Triage's share of the ingest path:
`python -m bench triage_share`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from bench.bench_triage_engine import run as run_burst
from bench.bench_triage_engine import run_stream
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

    print("per reading end to end, the engine on a real buffer (read, score, store durably):")
    batched_ms = asyncio.run(run_burst(300, 3, 500))
    single_ms = asyncio.run(run_stream(1, 5.0, 50))
    spot_ms = asyncio.run(run_stream(1, 300.0, 50))
    print(f"end to end per reading, batched (burst, 500 a pass): {batched_ms:6.3f} ms  (< 1)")
    print(f"end to end per reading, single (1 a pass, 720 before): {single_ms:6.3f} ms  (< 1)")
    print(f"end to end per reading, single (1 a pass, 12 before):  {spot_ms:6.3f} ms  (< 1)")


if __name__ == "__main__":
    main()
