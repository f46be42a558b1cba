"""Edge/cloud agreement: the gauges and alert the ingestor's scorer sets, the operator commands
and their exit codes, and the ingestor's hook (after the ack, never failing a batch)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from agreement_support import (
    T0,
    HubTriage,
    header_for,
    hub_body,
    make_patient,
    with_band,
    with_records,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from cloud.config import DatabaseSettings
from cloud.db import add_hub, connect, open_pool, store_batch
from cloud.models.agreement import AgreementMetrics, CloudScorer
from cloud.models.agreement_cli import parse_since
from wire import Body, RiskBand
from wire.samples import sample_batch_id

sys.path.insert(0, str(Path(__file__).parents[1] / "ingest"))

from ingest_support import (
    BatchMaker,
    TestHub,
    hub_key,
    register,
    running_ingestor,
    unique_hub,
)

HUB_ID = "hub-agree-02"
HUB_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
NOW = T0 + timedelta(hours=1)
SINCE = "2026-03-01"


@pytest.fixture(scope="module")
def hub_triage() -> HubTriage:
    return HubTriage()


@pytest.fixture
def conn(db):
    with connect(db) as c:
        add_hub(c, HUB_ID, HUB_KEY.public_key())
        yield c


@pytest.fixture
def pool(db):
    p = open_pool(DatabaseSettings(url=db, pool_max=2))
    yield p
    p.close()


def store(conn, body: Body, seq: int = 1) -> None:
    batch_id = sample_batch_id(random.Random(seq), NOW)
    header = header_for(body, hub_id=HUB_ID, hub_key=HUB_KEY, batch_id=batch_id, seq=seq)
    store_batch(conn, header, body, s3_key=f"raw/{HUB_ID}/{batch_id}", received_at=NOW)


def one_wrong(body: Body) -> Body:
    """The body with its first low result claimed high by the hub."""
    results = list(body.triage_results)
    i = next(i for i, t in enumerate(results) if t.band is RiskBand.LOW)
    results[i] = with_band(results[i], RiskBand.HIGH)
    return body.model_copy(update={"triage_results": tuple(results)})


def gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_wrong_edge_band_drives_agreement_below_the_threshold_and_alerts(conn, pool, hub_triage):
    body, _ = hub_body(50, seed=21, hub=hub_triage)
    store(conn, body)
    registry = CollectorRegistry()
    scorer = CloudScorer(pool, AgreementMetrics(registry), clock=lambda: NOW)

    with structlog.testing.capture_logs() as logs:
        scorer.run_once()
    assert gauge(registry, "tecsa_models_edge_cloud_agreement", version="triage-v1") == 1.0
    assert gauge(registry, "tecsa_models_agreement_alert", version="triage-v1") == 0
    assert gauge(registry, "tecsa_models_scored_total", status="scored") == 50
    assert not [e for e in logs if e["event"] == "agreement_below_threshold"]

    store(conn, one_wrong(hub_body(40, seed=22, hub=hub_triage)[0]), seq=2)
    with structlog.testing.capture_logs() as logs:
        scorer.run_once()

    share = gauge(registry, "tecsa_models_edge_cloud_agreement", version="triage-v1")
    assert share == pytest.approx(89 / 90)
    assert gauge(registry, "tecsa_models_agreement_alert", version="triage-v1") == 1
    (warning,) = [e for e in logs if e["event"] == "agreement_below_threshold"]
    assert warning["log_level"] == "warning"
    assert (warning["version"], warning["scored"]) == ("triage-v1", 90)
    assert warning["disagreements"] == {"high->low": 1}
    assert gauge(registry, "tecsa_models_scoring_errors_total") == 0


def test_a_scoring_failure_is_logged_and_counted_never_raised(pool, conn, hub_triage):
    store(conn, hub_body(5, seed=23, hub=hub_triage)[0])
    registry = CollectorRegistry()
    scorer = CloudScorer(pool, AgreementMetrics(registry), clock=lambda: NOW)
    conn.execute("ALTER TABLE cloud_predictions RENAME TO cloud_predictions_gone")

    with structlog.testing.capture_logs() as logs:
        scorer.run_once()

    assert gauge(registry, "tecsa_models_scoring_errors_total") == 1
    assert [e["event"] for e in logs] == ["cloud_scoring_failed"]
    conn.execute("ALTER TABLE cloud_predictions_gone RENAME TO cloud_predictions")
    scorer.run_once()  # catches up
    assert gauge(registry, "tecsa_models_scored_total", status="scored") == 5


def cli(db: str, *args: str):
    env = {
        "TECSA_CLOUD_DATABASE__URL": db,
        "TECSA_CLOUD_S3__BUCKET": "unused",
    }
    return CliRunner().invoke(cloud_app, ["models", *args], env=env)


def test_the_operator_commands_and_their_exit_codes(db, conn, hub_triage):
    body, _ = hub_body(40, seed=24, hub=hub_triage)
    store(conn, body)

    nothing = cli(db, "agreement", "--since", SINCE)
    assert nothing.exit_code == 0, nothing.output
    assert "no scored triage results" in nothing.output

    scored = cli(db, "score", "--since", SINCE)
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output) == {
        "scored": 40,
        "agreed": 40,
        "not_scorable": {},
        "total": 40,
    }
    assert json.loads(cli(db, "score").output)["total"] == 0  # nothing twice

    fine = cli(db, "agreement", "--since", SINCE, "--json")
    assert fine.exit_code == 0, fine.output
    (version,) = json.loads(fine.output)["versions"]
    assert version | {"disagreements": None} == {
        "version": "triage-v1",
        "scored": 40,
        "agreed": 40,
        "agreement": 1.0,
        "not_scorable": 0,
        "input_mismatch": 0,
        "disagreements": None,
        "threshold": 0.99,
        "below_threshold": False,
    }

    store(conn, one_wrong(hub_body(10, seed=25, hub=hub_triage)[0]), seq=2)
    assert json.loads(cli(db, "score").output)["scored"] == 10
    below = cli(db, "agreement", "--since", SINCE)
    assert below.exit_code == 1
    assert "agreement=0.9800" in below.output
    assert "BELOW THRESHOLD" in below.output
    assert "high->low: 1" in below.output
    assert cli(db, "agreement", "--since", SINCE, "--threshold", "0.95").exit_code == 0
    other = cli(db, "agreement", "--since", SINCE, "--version", "triage-v0", "--json")
    assert (other.exit_code, json.loads(other.output)["versions"]) == (0, [])
    # the window is the hub's triage time: a week back from today holds none of March's
    assert "no scored triage results" in cli(db, "agreement", "--since", "7d").output

    bad = cli(db, "agreement", "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "error: --since 'last tuesday'" in bad.output
    unreachable = cli("postgresql://postgres@127.0.0.1:1/none", "score")
    assert unreachable.exit_code == 2
    assert unreachable.output.startswith("error: ")


def test_since_accepts_durations_and_dates():
    assert parse_since("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_since("30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_since("2026-03-01", now=NOW).isoformat() == "2026-03-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="duration like 7d"):
        parse_since("7 days", now=NOW)


async def test_the_ingestor_scores_after_the_ack_and_a_failing_hook_fails_no_batch(
    mosquitto, db, s3_endpoint, s3_bucket, hub_triage
):
    hub_id = unique_hub()
    register(db, hub_id, hub_key(1))
    maker = BatchMaker(hub_id, hub_key(1))
    first, second = (hub_body(20, seed=s, hub=hub_triage)[0] for s in (26, 27))
    pool = open_pool(DatabaseSettings(url=db, pool_max=2))
    registry = CollectorRegistry()
    scorer = CloudScorer(pool, AgreementMetrics(registry), clock=lambda: NOW)
    calls = []

    def broken_hook(outcome):
        calls.append(outcome.batch_id)
        raise RuntimeError("a bug in the hook")

    # capture_logs: the events are asserted, and go nowhere an earlier test pointed logging at
    with structlog.testing.capture_logs() as logs:
        try:
            async with (
                running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket) as ingestor,
                TestHub(mosquitto.url, hub_id) as hub,
            ):
                ingestor.after_stored = broken_hook
                batch = maker.make(body=first)
                assert (await hub.deliver(batch)).status.value == "stored"
                # the hook runs after the ack is published: the hub may hear the ack first
                for _ in range(200):
                    if calls:
                        break
                    await asyncio.sleep(0.05)
                assert calls == [batch.batch_id]

                ingestor.after_stored = scorer.after_stored
                assert (await hub.deliver(maker.make(body=second))).status.value == "stored"
                assert await asyncio.to_thread(scorer.idle.wait, 30)
        finally:
            scorer.close()
            pool.close()

    assert "after_stored_failed" in [e["event"] for e in logs]
    with connect(db) as c:
        rows = c.execute("SELECT status, agree FROM cloud_predictions").fetchall()
    assert len(rows) == 40  # the second run caught up on the first batch's results too
    assert all(row == ("scored", True) for row in rows)
    assert gauge(registry, "tecsa_models_edge_cloud_agreement", version="triage-v1") == 1.0


async def test_a_high_result_that_lands_before_its_inputs_is_scored_once_they_arrive(
    mosquitto, db, s3_endpoint, s3_bucket, hub_triage
):
    """Alert priority puts the high result ahead of its readings and records: the ingestor's
    scorer finds them missing, then scores it by itself once a later batch brings them."""
    rng = random.Random(31)
    patients = [with_records(rng, make_patient(rng, n)) for n in range(40)]
    results = hub_triage.results(patients, rng)
    (patient, high) = next(
        (p, r) for p, r in zip(patients, results, strict=True) if r.band.value == "high"
    )
    hub_id = unique_hub()
    register(db, hub_id, hub_key(2))
    maker = BatchMaker(hub_id, hub_key(2))
    pool = open_pool(DatabaseSettings(url=db, pool_max=2))
    scorer = CloudScorer(pool, AgreementMetrics(CollectorRegistry()), clock=lambda: NOW)
    try:
        async with (
            running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket) as ingestor,
            TestHub(mosquitto.url, hub_id) as hub,
        ):
            ingestor.after_stored = scorer.after_stored
            alert = maker.make(body=Body(triage_results=(high,)))
            assert (await hub.deliver(alert)).status.value == "stored"
            assert await asyncio.to_thread(scorer.idle.wait, 30)
            with connect(db) as c:
                first = c.execute("SELECT status, reason FROM cloud_predictions").fetchall()
            assert first == [("not_scorable", "readings_missing")]

            inputs = Body(readings=patient.readings, medical_records=patient.records)
            assert (await hub.deliver(maker.make(body=inputs))).status.value == "stored"
            for _ in range(200):
                if scorer.runs >= 2 and scorer.idle.is_set():
                    break
                await asyncio.sleep(0.05)
    finally:
        scorer.close()
        pool.close()

    with connect(db) as c:
        rows = c.execute(
            "SELECT status, edge_band, cloud_band, agree, input_match, attempts"
            " FROM cloud_predictions"
        ).fetchall()
    assert rows == [("scored", "high", "high", True, True, 2)]
