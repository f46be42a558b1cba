"""The cloud's full model on real PostgreSQL: hub results rescored with the float model, stored
next to the hub's, once; what cannot be scored is recorded with the reason and stops nothing."""

from __future__ import annotations

import random
import shutil
import threading
from datetime import timedelta
from uuid import UUID

import pytest
from agreement_support import (
    T0,
    HubTriage,
    Patient,
    header_for,
    hub_body,
    make_patient,
    with_band,
    with_records,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import add_hub, connect, store_batch
from cloud.models import full
from cloud.models.agreement import agreement
from cloud.models.full import (
    FullModelError,
    ModelShelf,
    StoredReading,
    load_full_model,
    score_pending,
    series_of,
    snapshot_of,
)
from hub.inference import vitals as hub_vitals
from wire import Body, RiskBand
from wire.samples import sample_batch_id
from wire.triage_features import TimedVitals, extract_with_news2, input_hash

HUB_ID = "hub-agree-01"
HUB_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NOW = T0 + timedelta(hours=1)


@pytest.fixture(scope="module")
def hub_triage() -> HubTriage:
    return HubTriage()


@pytest.fixture
def conn(db):
    with connect(db) as c:
        add_hub(c, HUB_ID, HUB_KEY.public_key())
        yield c


def store(conn, body: Body, seq: int = 1) -> None:
    batch_id = sample_batch_id(random.Random(seq), NOW)
    store_batch(
        conn,
        header_for(body, hub_id=HUB_ID, hub_key=HUB_KEY, batch_id=batch_id, seq=seq),
        body,
        s3_key=f"raw/{HUB_ID}/{batch_id}",
        received_at=NOW,
    )


def predictions(conn) -> list[tuple]:
    return conn.execute(
        "SELECT triage_id, status, reason, cloud_band, edge_band, agree, input_match"
        " FROM cloud_predictions ORDER BY triage_id"
    ).fetchall()


def stored(reading) -> StoredReading:
    return StoredReading(
        reading.id,
        reading.measured_at,
        reading.kind,
        {k: {"value": c.value, "unit": c.unit} for k, c in reading.components.items()},
    )


def test_the_cloud_gathers_vitals_from_readings_as_the_hub_does():
    """Both take the table and conversions from wire.triage_inputs; the gathering must agree."""
    rng = random.Random(5)
    for n in range(40):
        patient = make_patient(rng, n)
        gathered = hub_vitals.gather(patient.readings, at=T0, window=timedelta(hours=2))
        (snapshot,) = snapshot_of(series_of([stored(r) for r in patient.readings]))
        assert snapshot.vitals == gathered.vitals


def test_agreement_is_one_when_the_hub_ran_the_int8_model_on_the_same_features(conn, hub_triage):
    body, _ = hub_body(80, seed=11, hub=hub_triage)
    store(conn, body)

    report = score_pending(conn, ModelShelf(), now=NOW, batch_size=32)

    assert report.scored == 80
    assert report.not_scorable == {}
    rows = predictions(conn)
    assert len(rows) == 80
    assert all(status == "scored" and match for _, status, _, _, _, _, match in rows)
    edge = {t.id: t.band.value for t in body.triage_results}
    assert {r[0]: r[4] for r in rows} == edge
    (summary,) = agreement(conn, since=T0 - timedelta(days=1))
    assert (summary.version, summary.scored, summary.agreement) == ("triage-v1", 80, 1.0)
    assert summary.disagreements == {}
    assert summary.input_mismatch == 0
    # the cloud's bands are real bands, not a copy of the hub's: several bands occur
    assert len({r[3] for r in rows}) >= 3


def test_a_wrong_edge_band_is_stored_as_a_disagreement(conn, hub_triage):
    body, _ = hub_body(30, seed=12, hub=hub_triage)
    results = list(body.triage_results)
    low = next(i for i, t in enumerate(results) if t.band is RiskBand.LOW)
    results[low] = with_band(results[low], RiskBand.HIGH)
    store(conn, body.model_copy(update={"triage_results": tuple(results)}))

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert (report.scored, report.agreed) == (30, 29)
    row = conn.execute(
        "SELECT edge_band, cloud_band, agree FROM cloud_predictions WHERE triage_id = %s",
        (results[low].id,),
    ).fetchone()
    assert row == ("high", "low", False)
    (summary,) = agreement(conn, since=T0 - timedelta(days=1))
    assert summary.disagreements == {"high->low": 1}
    assert summary.agreement == pytest.approx(29 / 30)


def test_rescoring_scores_nothing_twice_even_when_two_scorers_race(conn, db, hub_triage):
    body, _ = hub_body(60, seed=13, hub=hub_triage)
    store(conn, body)
    reports = []

    def scorer():
        with connect(db) as own:
            reports.append(score_pending(own, ModelShelf(), now=NOW, batch_size=7))

    threads = [threading.Thread(target=scorer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert conn.execute("SELECT count(*) FROM cloud_predictions").fetchone()[0] == 60
    assert sum(r.scored for r in reports) >= 60  # a raced row is computed, stored once
    again = score_pending(conn, ModelShelf(), now=NOW)
    assert again.total == 0
    assert conn.execute("SELECT count(*) FROM cloud_predictions").fetchone()[0] == 60


def test_results_that_cannot_be_scored_are_recorded_and_stop_nothing(conn, hub_triage):
    rng = random.Random(1014)
    body, _ = hub_body(10, seed=14, hub=hub_triage)
    good = list(body.triage_results)
    late = make_patient(rng, 900)  # its readings come in a later batch
    (missing,) = hub_triage.results([late], rng)
    news2_only = good[0].model_copy(
        update={"id": UUID(int=1, version=4), "model_version": "news2-only"}
    )
    unknown = good[1].model_copy(update={"id": UUID(int=2, version=4), "model_version": "v9"})
    empty = good[2].model_copy(update={"id": UUID(int=3, version=4), "reading_ids": ()})
    odd = [missing, news2_only, unknown, empty]
    store(conn, body.model_copy(update={"triage_results": (*odd[:2], *good, *odd[2:])}))

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert report.scored == 10
    assert report.not_scorable == {
        "readings_missing": 1,
        "news2_only": 1,
        "unknown_model": 1,
        "no_readings": 1,
    }
    reasons = dict(
        conn.execute(
            "SELECT triage_id, reason FROM cloud_predictions WHERE status = 'not_scorable'"
        ).fetchall()
    )
    assert reasons[missing.id] == "readings_missing"
    by_version = {s.version: s for s in agreement(conn, since=T0 - timedelta(days=1))}
    assert sorted(by_version) == ["news2-only", "triage-v1", "v9"]
    summary = by_version["triage-v1"]
    assert (summary.scored, summary.agreement, summary.not_scorable) == (10, 1.0, 2)
    assert (by_version["v9"].scored, by_version["v9"].agreement) == (0, None)

    # the readings arrive: the next run retries the verdict by itself; --retry-missing also
    # looks again at the unknown model
    store(conn, Body(readings=late.readings), seq=2)
    again = score_pending(conn, ModelShelf(), now=NOW)
    assert (again.retried, again.scored, again.agreed) == (1, 1, 1)
    retried = score_pending(conn, ModelShelf(), now=NOW, retry_missing=True)
    assert retried.not_scorable == {"unknown_model": 1}  # checked again: still no v9 artifacts


def test_inputs_the_cloud_cannot_rebuild_are_never_scored_with_other_inputs(conn, hub_triage):
    """A hub that used an age the cloud never received: not scorable, never a mismatched score."""
    rng = random.Random(15)
    patient = make_patient(rng, 1)
    (result,) = hub_triage.results([patient], rng)
    row, _ = extract_with_news2(patient.series, age_years=82)
    result = result.model_copy(update={"input_hash": input_hash(row)})
    store(conn, Body(readings=patient.readings, triage_results=(result,)))

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert report.not_scorable == {"inputs_missing": 1}
    ((_, status, reason, _, _, _, match),) = predictions(conn)
    assert (status, reason, match) == ("not_scorable", "inputs_missing", None)
    (summary,) = agreement(conn, since=T0 - timedelta(days=1))
    assert (summary.scored, summary.not_scorable, summary.input_mismatch) == (0, 1, 0)


def test_results_made_from_readings_and_records_are_rebuilt_exactly(conn, hub_triage):
    """Observations and age from the agent's records drive the hub's bands; the cloud rebuilds
    them: every input hash matches and agreement measures the int8 model against the float."""
    rng = random.Random(21)
    patients = [with_records(rng, make_patient(rng, n)) for n in range(60)]
    results = hub_triage.results(patients, rng)
    body = Body(
        readings=tuple(r for p in patients for r in p.readings),
        medical_records=tuple(r for p in patients for r in p.records),
        triage_results=tuple(results),
    )
    store(conn, body)

    report = score_pending(conn, ModelShelf(), now=NOW, batch_size=25)

    assert (report.scored, report.not_scorable) == (60, {})
    rows = predictions(conn)
    assert all(status == "scored" and match for _, status, _, _, _, _, match in rows)
    (summary,) = agreement(conn, since=T0 - timedelta(days=1))
    assert (summary.scored, summary.agreement, summary.input_mismatch) == (60, 1.0, 0)
    # the observations mattered: without them the hub's rows differ
    plain = [
        extract_with_news2(series_of([stored(r) for r in p.readings]), age_years=None)
        for p in patients
    ]
    assert (
        sum(input_hash(row) != r.input_hash for (row, _), r in zip(plain, results, strict=True))
        == 60
    )
    assert {"high", "medium"} <= {r[4] for r in rows}


def test_a_record_not_in_the_cloud_yet_leaves_the_result_unscored_until_it_arrives(
    conn, hub_triage
):
    rng = random.Random(22)
    patient = with_records(rng, make_patient(rng, 7))
    (result,) = hub_triage.results([patient], rng)
    late = patient.records[-1]
    store(
        conn,
        Body(
            readings=patient.readings,
            medical_records=patient.records[:-1],
            triage_results=(result,),
        ),
    )

    first = score_pending(conn, ModelShelf(), now=NOW)
    second = score_pending(conn, ModelShelf(), now=NOW)  # retried at once, then it waits
    third = score_pending(conn, ModelShelf(), now=NOW)

    assert first.not_scorable == {"inputs_missing": 1}
    assert (second.retried, second.not_scorable) == (1, {"inputs_missing": 1})
    assert third.total == 0
    attempts, due = conn.execute(
        "SELECT attempts, retry_at FROM cloud_predictions WHERE triage_id = %s", (result.id,)
    ).fetchone()
    assert (attempts, due) == (2, NOW + full.RETRY_BASE)

    # the record arrives: retried on the next run, though its time is not due
    store(conn, Body(medical_records=(late,)), seq=2)
    later = score_pending(conn, ModelShelf(), now=NOW)
    assert (later.retried, later.scored, later.agreed) == (1, 1, 1)
    ((_, status, _, _, _, agree, match),) = predictions(conn)
    assert (status, agree, match) == ("scored", True, True)


def test_a_result_whose_inputs_never_arrive_is_retried_a_bounded_number_of_times(conn, hub_triage):
    rng = random.Random(23)
    patient = make_patient(rng, 8)
    (result,) = hub_triage.results([patient], rng)
    store(conn, Body(readings=patient.readings[1:], triage_results=(result,)))

    now, tries = NOW, 0
    for _ in range(3 * full.RETRY_ATTEMPTS):
        report = score_pending(conn, ModelShelf(), now=now)
        tries += report.total
        now += timedelta(days=1)

    assert tries == full.RETRY_ATTEMPTS
    row = conn.execute(
        "SELECT status, reason, attempts, retry_at FROM cloud_predictions"
    ).fetchone()
    assert row == ("not_scorable", "readings_missing", full.RETRY_ATTEMPTS, None)
    assert [full.retry_at("readings_missing", n, NOW) for n in (1, 2, 3)] == [
        NOW,
        NOW + full.RETRY_BASE,
        NOW + 3 * full.RETRY_BASE,
    ]
    assert full.retry_at("unknown_model", 1, NOW) is None


def test_a_float_model_that_does_not_match_its_manifest_is_refused(tmp_path):
    shutil.copytree(full.ARTIFACTS_DIR / "triage-v1", tmp_path / "triage-v1")
    model = tmp_path / "triage-v1" / "model_float.tflite"
    assert load_full_model("triage-v1", tmp_path).version == "triage-v1"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    with pytest.raises(FullModelError, match="SHA-256"):
        load_full_model("triage-v1", tmp_path)
    with pytest.raises(FullModelError, match="no model artifacts"):
        load_full_model("../triage-v1", tmp_path)
    assert ModelShelf(tmp_path).get("triage-v1") is None


def test_the_window_readings_the_hub_held_are_found_without_being_referenced(conn, hub_triage):
    """A hub result lists the new readings and those giving the latest values, yet its trends
    span every reading of the window: the cloud finds those too, but not a reading the hub
    received after it triaged."""
    rng = random.Random(24)
    patients = [with_records(rng, make_patient(rng, n)) for n in range(30)]
    results = []
    late = []
    for patient, result in zip(patients, hub_triage.results(patients, rng), strict=True):
        newest = max(patient.readings, key=lambda r: r.measured_at)
        results.append(result.model_copy(update={"reading_ids": (newest.id,)}))
        # measured within the window (the first of it), other values, received after the
        # hub's triage: not in the hub's series, it would change the trends
        early = min(patient.readings, key=lambda r: r.measured_at)
        components = {
            name: c.model_copy(update={"value": round(c.value * 0.95, 1)})
            for name, c in early.components.items()
        }
        late.append(
            early.model_copy(
                update={
                    "id": UUID(int=rng.getrandbits(128), version=4),
                    "components": components,
                    "measured_at": early.measured_at - timedelta(seconds=1),
                    "received_at": result.computed_at + timedelta(minutes=5),
                }
            )
        )
    with_late = full.rebuild(
        [stored(r) for r in patients[0].readings],
        results[0].input_hash,
        window_readings=[stored(late[0])],
        records=[full.StoredRecord(r.updated_at, r.payload) for r in patients[0].records],
    )
    assert not with_late.input_match  # the late reading matters, were it taken
    body = Body(
        readings=(*(r for p in patients for r in p.readings), *late),
        medical_records=tuple(r for p in patients for r in p.records),
        triage_results=tuple(results),
    )
    store(conn, body)

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert (report.scored, report.agreed, report.not_scorable) == (30, 30, {})
    assert all(row[6] for row in predictions(conn))


def _two_hour_patients(rng: random.Random, n: int, hub_triage: HubTriage, *, window_s) -> Body:
    """Patients with one more reading 100 minutes before their newest: inside a 2-hour window
    only. The hub (`window_s` = 7200) triaged with it; the result lists the newest reading only,
    so the cloud must find the early one through the window it rebuilds with."""
    patients, early_readings = [], []
    for k in range(n):
        patient = make_patient(rng, k)
        newest = max(patient.readings, key=lambda r: r.measured_at)
        early = newest.model_copy(
            update={
                "id": UUID(int=rng.getrandbits(128), version=4),
                "measured_at": newest.measured_at - timedelta(minutes=100),
                "received_at": newest.measured_at - timedelta(minutes=99),
                "components": {
                    name: c.model_copy(update={"value": round(c.value * 0.9, 1)})
                    for name, c in newest.components.items()
                },
            }
        )
        vitals = hub_vitals.gather([early], at=early.measured_at, window=timedelta(seconds=1))
        timed = TimedVitals(early.measured_at, vitals.vitals)
        patients.append(
            Patient(
                patient.patient_id,
                (*patient.readings, early),
                (*patient.series, timed),
            )
        )
        early_readings.append(early)
    results = [
        result.model_copy(
            update={
                "reading_ids": (max(p.readings, key=lambda r: r.measured_at).id,),
                "window_s": window_s,
            }
        )
        for p, result in zip(patients, hub_triage.results(patients, rng), strict=True)
    ]
    readings = tuple(r for p in patients for r in p.readings)
    return Body(readings=readings, triage_results=tuple(results))


def test_a_result_is_rebuilt_with_the_window_its_hub_used(conn, hub_triage):
    """A hub configured with a 2-hour window says so in each result (`window_s`): the cloud
    rebuilds its inputs over those two hours, not over the default hour."""
    body = _two_hour_patients(random.Random(31), 20, hub_triage, window_s=7200)
    store(conn, body)

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert (report.scored, report.agreed, report.not_scorable) == (20, 20, {})
    assert all(row[6] for row in predictions(conn))  # input_match: the hub's very rows


def test_without_window_s_the_default_hour_is_assumed(conn, hub_triage):
    """The same results without `window_s` (a hub from before it) are rebuilt over the default
    hour: the early reading is left out, the inputs do not match, nothing is scored wrongly."""
    body = _two_hour_patients(random.Random(31), 20, hub_triage, window_s=None)
    store(conn, body)

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert report.scored == 0
    assert report.not_scorable == {"inputs_missing": 20}


class _ArrivesMidBatch:
    """A connection on which `hook` runs once, right after the scorer read a batch's readings:
    inputs that reach the cloud while a batch is being scored."""

    def __init__(self, conn, hook) -> None:
        self._conn, self._hook = conn, hook

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def execute(self, query, *args, **kwargs):
        cursor = self._conn.execute(query, *args, **kwargs)
        if query is full._READINGS and self._hook is not None:
            hook, self._hook = self._hook, None
            hook()
        return cursor


def test_inputs_arriving_while_a_batch_is_scored_get_the_verdict_retried(conn, db, hub_triage):
    """The verdict says what the scorer saw: a reading stored between the scorer's read and its
    verdict makes the next run retry (it would wait for `retry_at` were it counted as seen)."""
    rng = random.Random(25)
    patient = make_patient(rng, 9)
    (result,) = hub_triage.results([patient], rng)
    missing = patient.readings[0]
    store(conn, Body(readings=patient.readings[1:], triage_results=(result,)))
    first = score_pending(conn, ModelShelf(), now=NOW)  # readings_missing, due again at once

    def arrives() -> None:
        with connect(db) as other:
            store(other, Body(readings=(missing,)), seq=2)

    second = score_pending(_ArrivesMidBatch(conn, arrives), ModelShelf(), now=NOW)
    third = score_pending(conn, ModelShelf(), now=NOW)  # not due: retried for the new input

    assert first.not_scorable == {"readings_missing": 1}
    assert (second.retried, second.not_scorable) == (1, {"readings_missing": 1})
    assert (third.retried, third.scored, third.agreed) == (1, 1, 1)


async def test_results_an_agents_record_caused_are_rebuilt_at_their_moment(conn, tmp_path):
    """The hub's own engine triages readings, then a record written after them, then a record
    of a patient without readings: the cloud rebuilds each result at the moment it says (`at`)
    and scores all of them on the hub's very inputs."""
    from hub.buffer import Buffer, BufferConfig  # noqa: PLC0415 - the hub side of this test
    from hub.buffer.values import NewReading  # noqa: PLC0415
    from hub.inference.engine import TriageEngine  # noqa: PLC0415
    from hub.inference.runtime import load_model  # noqa: PLC0415
    from wire import Component, MedicalRecord, Reading  # noqa: PLC0415
    from wire.canonical import content_hash  # noqa: PLC0415

    at = T0 - timedelta(minutes=20)
    danger = {"observations": {"resp_rate": 27, "consciousness": "V", "on_oxygen": False}}

    def record(patient: str, when) -> MedicalRecord:
        return MedicalRecord(
            id=UUID(int=random.Random(patient).getrandbits(128), version=4),
            revision=1,
            updated_at=when,
            patient_id=patient,
            agent_id="agent-1",
            type="visit",
            payload=danger,
            content_hash=content_hash(danger),
        )

    readings = [
        Reading(
            id=UUID(int=random.Random(n).getrandbits(128), version=4),
            device_id="cuff-1",
            kind="blood_pressure",
            components={
                "systolic": Component(value=118 + n, unit="mm[Hg]"),
                "pulse": Component(value=80 + n, unit="/min"),
            },
            measured_at=at + timedelta(minutes=n),
            received_at=at + timedelta(minutes=n, seconds=2),
            patient_id="pat-rec-1",
        )
        for n in range(3)
    ]
    records = [record("pat-rec-1", at + timedelta(minutes=5)), record("pat-rec-2", at)]
    path = tmp_path / "hub.sqlite3"
    model = load_model(full.ARTIFACTS_DIR / "triage-v1")
    async with Buffer.open(BufferConfig(path=path)) as buffer:
        engine = TriageEngine(buffer, path, lambda: model, clock=lambda: T0)
        await buffer.insert_many([NewReading(r, f"k-{r.id}") for r in readings])
        await engine.drain()
        await buffer.sync_records(records, T0)  # the records reach the hub after the readings
        await engine.drain()
        engine.close()
        results = buffer.recent_triage(limit=100)
    by_moment = {r.at for r in results}
    assert {at + timedelta(minutes=2), at + timedelta(minutes=5), at} <= by_moment
    assert any(r.reading_ids == () for r in results)  # the record alone
    store(
        conn,
        Body(
            readings=tuple(readings),
            medical_records=tuple(records),
            triage_results=tuple(results),
        ),
    )

    report = score_pending(conn, ModelShelf(), now=NOW)

    assert (report.scored, report.agreed, report.not_scorable) == (len(results), len(results), {})
    assert all(row[6] for row in predictions(conn))  # input_match
