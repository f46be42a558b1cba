"""Cloud scoring figures (issue 6 section 4): triage results/s the cloud rescores, and agreement.

    .venv/bin/python -m bench agreement

Stores BATCHES batches of PATIENTS patients each (blood pressure, SpO2 and temperature readings
over an hour, a third of them deteriorating) with the hub's triage of each, computed the hub's
way (wire features + the int8 model); then times `cloud.models.full.score_pending` over all of
them (rebuild from PostgreSQL, float model, store) and a re-run that finds nothing to do, and
prints the edge/cloud agreement. Needs PostgreSQL on 127.0.0.1:5432 (or TECSA_BENCH_PG).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cloud.db import add_hub, connect, store_batch, upgrade
from cloud.models.agreement import agreement
from cloud.models.full import ARTIFACTS_DIR, ModelShelf, score_pending
from cloud.models.litert import LiteRTRunner
from wire import (
    Body,
    Component,
    Compression,
    Counts,
    Header,
    Priority,
    Reading,
    TriageResult,
)
from wire.keys import key_id
from wire.news2 import Vitals
from wire.samples import sample_batch_id
from wire.triage_features import (
    Normalisation,
    TimedVitals,
    band_of_probability,
    extract_with_news2,
    higher_band,
    input_hash,
    normalise,
)

PATIENTS = 200
BATCHES = 20
VERSION = "triage-v1"
HUB_ID = "hub-bench-agree"
ADMIN = os.environ.get("TECSA_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def main() -> None:
    """Print results/s of cloud scoring, the idle re-run, and the edge/cloud agreement."""
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
    now = datetime.now(UTC).replace(microsecond=0)
    key = Ed25519PrivateKey.generate()
    hub = _HubSide()
    with connect(url) as conn:
        add_hub(conn, HUB_ID, key.public_key())
        for seq in range(1, BATCHES + 1):
            body = hub.body(rng, now, PATIENTS)
            batch_id = sample_batch_id(rng, now)
            store_batch(
                conn,
                _header(body, batch_id, seq, key, now),
                body,
                s3_key=f"b/{seq}",
                received_at=now,
            )
        shelf = ModelShelf()
        shelf.get(VERSION)  # loading the model is not scoring
        start = time.perf_counter()
        report = score_pending(conn, shelf, now=now)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        again = score_pending(conn, shelf, now=now)
        idle = time.perf_counter() - start
        (summary,) = agreement(conn, since=now - timedelta(days=1))
    n = PATIENTS * BATCHES
    print(f"cloud scoring: {report.scored} of {n} triage results in {elapsed:.2f} s")
    print(f"  {n / elapsed:,.0f} results/s, {elapsed / n * 1e3:.3f} ms per result (batches of 500)")
    print(f"  re-run: {again.total} scored in {idle * 1e3:.1f} ms (idempotent)")
    print(
        f"edge (int8) / cloud (float) final-band agreement: {summary.agreement:.4f}"
        f" ({summary.agreed}/{summary.scored}), disagreements {summary.disagreements or 'none'}"
    )


class _HubSide:
    """The hub's triage: wire features and the int8 model, as hub/inference/triage.py does."""

    def __init__(self) -> None:
        manifest = json.loads((ARTIFACTS_DIR / VERSION / "manifest.json").read_text())
        features = manifest["features"]
        self.spec = Normalisation(tuple(features["mean"]), tuple(features["std"]))
        self.thresholds = dict(manifest["band_thresholds"])
        self.runner = LiteRTRunner((ARTIFACTS_DIR / VERSION / "model_int8.tflite").read_bytes())

    def body(self, rng: random.Random, now: datetime, patients: int) -> Body:
        readings: list[Reading] = []
        cases = []
        for n in range(patients):
            sick = rng.random() < 0.35
            series, ids = [], []
            for step in range(3):
                at = now - timedelta(minutes=45 - 20 * step)
                drift = step if sick else 0
                systolic = float(round(rng.gauss(125 - 12 * drift, 14)))
                spo2 = float(min(100, round(rng.gauss(96 - 3 * drift, 2))))
                pulse = float(round(rng.gauss(78 + 10 * drift, 10)))
                temp = round(rng.gauss(36.9 + 0.6 * drift, 0.5), 1)
                for kind, comps in (
                    (
                        "blood_pressure",
                        {"systolic": (systolic, "mm[Hg]"), "pulse": (pulse, "/min")},
                    ),
                    ("spo2_spot_check", {"spo2": (spo2, "%")}),
                    ("body_temperature", {"temperature": (temp, "Cel")}),
                ):
                    reading = Reading(
                        id=UUID(int=rng.getrandbits(128), version=4),
                        device_id=f"ble-{kind[:4]}-0001",
                        kind=kind,
                        components={k: Component(value=v, unit=u) for k, (v, u) in comps.items()},
                        measured_at=at,
                        received_at=at,
                        patient_id=f"pat-{n:06d}",
                    )
                    readings.append(reading)
                    ids.append(reading.id)
                vitals = Vitals(systolic=systolic, pulse=pulse, spo2=spo2, temperature=temp)
                series.append(TimedVitals(at=at, vitals=vitals))
            cases.append((f"pat-{n:06d}", tuple(series), tuple(ids)))
        extracted = [extract_with_news2(series, age_years=None) for _, series, _ in cases]
        probabilities = self.runner.predict([normalise(row, self.spec) for row, _ in extracted])
        results = tuple(
            TriageResult(
                id=UUID(int=rng.getrandbits(128), version=4),
                patient_id=patient,
                reading_ids=ids,
                computed_at=now,
                band=higher_band(news2.band, band_of_probability(float(p), self.thresholds)),
                score=float(p),
                news2_score=news2.score,
                news2_subscores=news2.subscores,
                complete=news2.complete,
                model_version=VERSION,
                input_hash=input_hash(row),
            )
            for (patient, _, ids), (row, news2), p in zip(
                cases, extracted, probabilities, strict=True
            )
        )
        return Body(readings=tuple(readings), triage_results=results)


def _header(body: Body, batch_id: UUID, seq: int, key: Ed25519PrivateKey, now: datetime) -> Header:
    return Header(
        v=1,
        hub_id=HUB_ID,
        batch_id=batch_id,
        seq=seq,
        created_at=now,
        priority=Priority.ROUTINE,
        counts=Counts(**body.counts()),
        hub_key=key_id(key),
        cloud_key="00112233445566ff",
        epk="A" * 43,
        nonce="A" * 16,
        compression=Compression.ZSTD,
        body_len=1,
    )
