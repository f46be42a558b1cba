"""Records by id, plans, encounters and readings through the API, against the real SQLite buffer."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from hub.api.app import ApiContext, HubStatus, StoredRecord, create_app
from hub.api.cursor import Cursor
from hub.buffer import Buffer, BufferConfig
from wire.canonical import content_hash
from wire.items import RiskBand, TriageResult
from wire.plans import Plan
from wire.samples import sample_reading
from wire.tokens import Role, issue

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
HUB_NOW = NOW + timedelta(minutes=5)
DEVICE = "D0:00:00:00:00:01"


def _auth(agent="agent-17", role=Role.AGENT):
    token = issue(
        CLOUD, agent_id=agent, role=role, now=NOW, lifetime=timedelta(hours=8), token_id="t"
    )
    return {"Authorization": f"Bearer {token}"}


AGENT = _auth()
OTHER_AGENT = _auth("agent-99")
SUPERVISOR = _auth("sup-1", Role.SUPERVISOR)
TECHNICIAN = _auth("tech-1", Role.TECHNICIAN)


def _record(n=1, revision=1, payload=None, agent="agent-17"):
    payload = payload or {"visit": n}
    return {
        "id": f"019ac990-0000-7000-8000-{n:012x}",
        "revision": revision,
        "updated_at": "2026-11-28T08:30:00Z",
        "patient_id": "pat-42",
        "agent_id": agent,
        "type": "household_visit",
        "payload": payload,
        "content_hash": content_hash(payload),
    }


clock = [HUB_NOW]
"""The hub's clock in these tests (a test may move it on)."""


@pytest.fixture
def hub(tmp_path):
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))
    clock[0] = HUB_NOW
    ctx = ApiContext(
        hub_id="hub-api-02",
        cloud_signing_key=CLOUD.public_key(),
        revoked=frozenset,
        status=lambda: HubStatus(backlog=0, at_capacity=False, capacity_hours_left=None),
        sync_records=buffer.sync_records,
        now=lambda: clock[0],
        record_versions=lambda rid: [
            StoredRecord(r, c) for r, c in buffer.record_versions_flagged(rid)
        ],
        plans=buffer.plans,
        plans_version=buffer.plans_version,
        start_encounter=buffer.start_encounter,
        end_encounter=buffer.end_encounter,
        readings_for_patient=buffer.readings_for_patient,
        triage_for_readings=buffer.triage_for_readings,
        recent_triage=buffer.recent_triage,
    )
    with TestClient(create_app(ctx)) as client:
        yield client, buffer
    buffer.close()


# --- GET /api/v1/medical-records/{id} ------------------------------------------------------------


def test_a_record_with_its_versions_latest_first_and_conflicts_flagged(hub):
    client, _ = hub
    sync = "/api/v1/medical-records/bulk-sync"
    assert client.post(sync, json={"records": [_record(1)]}, headers=AGENT).status_code == 200
    later = [_record(1, revision=2, payload={"visit": "second"})]
    clash = [_record(1, revision=2, payload={"visit": "clash"})]
    client.post(sync, json={"records": later}, headers=AGENT)
    outcome = client.post(sync, json={"records": clash}, headers=AGENT).json()["results"][0]
    assert outcome["outcome"] == "conflict"

    response = client.get(f"/api/v1/medical-records/{_record(1)['id']}", headers=AGENT)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == _record(1)["id"]
    assert [(v["record"]["revision"], v["conflict"]) for v in body["versions"]] == [
        (2, True), (2, True), (1, False),
    ]  # fmt: skip
    assert {v["record"]["payload"]["visit"] for v in body["versions"][:2]} == {"second", "clash"}


def test_an_unknown_record_is_404_json(hub):
    client, _ = hub
    response = client.get(f"/api/v1/medical-records/{uuid4()}", headers=SUPERVISOR)
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"


def test_an_agent_gets_404_for_another_agents_record_a_supervisor_sees_it(hub):
    client, _ = hub
    theirs = _record(5, agent="agent-99")
    client.post(
        "/api/v1/medical-records/bulk-sync", json={"records": [theirs]}, headers=OTHER_AGENT
    )
    path = f"/api/v1/medical-records/{theirs['id']}"
    mine = client.get(path, headers=AGENT)
    unknown = client.get(f"/api/v1/medical-records/{uuid4()}", headers=AGENT)
    assert (mine.status_code, mine.json()["error"]) == (404, "NotFound")
    # The same answer as for an id that does not exist: nothing leaks.
    assert unknown.status_code == 404
    assert mine.json()["message"] == f"no record {theirs['id']} on this hub"
    assert client.get(path, headers=OTHER_AGENT).status_code == 200
    assert (
        client.get(path, headers=SUPERVISOR).json()["versions"][0]["record"]["id"] == theirs["id"]
    )
    assert client.get(path, headers=TECHNICIAN).status_code == 403
    assert client.get(path).status_code == 401


# --- GET /api/v1/plans/ ------------------------------------------------------------------------


def _plan(pid, agents=()):
    return Plan(id=pid, title=f"Plan {pid}", kind="campaign", starts_at=NOW, agent_ids=agents)


async def test_plans_are_filtered_for_an_agent_and_all_shown_to_a_supervisor(hub):
    client, buffer = hub
    empty = client.get("/api/v1/plans/", headers=AGENT)
    assert empty.status_code == 200
    assert empty.json() == {"version": None, "plans": []}
    plans = [_plan("all"), _plan("for-17", ("agent-17",)), _plan("for-99", ("agent-99", "a-3"))]
    await buffer.replace_plans(plans, version=7, source="cloud")

    agent = client.get("/api/v1/plans/", headers=AGENT).json()
    assert agent["version"] == 7
    assert [p["id"] for p in agent["plans"]] == ["all", "for-17"]
    supervisor = client.get("/api/v1/plans/", headers=SUPERVISOR).json()
    assert [p["id"] for p in supervisor["plans"]] == ["all", "for-17", "for-99"]
    assert client.get("/api/v1/plans/", headers=TECHNICIAN).status_code == 403
    assert client.get("/api/v1/plans/").status_code == 401


async def test_a_new_snapshot_replaces_the_plans_whole(hub):
    client, buffer = hub
    await buffer.replace_plans([_plan("a"), _plan("b")], version=1, source="import")
    await buffer.replace_plans([_plan("c")], version=2, source="cloud")
    body = client.get("/api/v1/plans/", headers=SUPERVISOR).json()
    assert (body["version"], [p["id"] for p in body["plans"]]) == (2, ["c"])


async def test_a_snapshot_with_a_repeated_id_is_refused_and_changes_nothing(hub):
    client, buffer = hub
    await buffer.replace_plans([_plan("a")], version=1, source="cloud")
    with pytest.raises(ValueError, match="unique"):
        await buffer.replace_plans([_plan("x"), _plan("x")], version=2, source="cloud")
    body = client.get("/api/v1/plans/", headers=SUPERVISOR).json()
    assert (body["version"], [p["id"] for p in body["plans"]]) == (1, ["a"])


# --- POST/DELETE /api/v1/encounters ---------------------------------------------------------


def _bind(client, headers=AGENT, **fields):
    body = {"device_address": DEVICE.lower(), "patient_id": "pat-42"} | fields
    return client.post("/api/v1/encounters", json=body, headers=headers)


def test_binding_a_device_answers_201_and_starts_now_by_default(hub):
    client, buffer = hub
    response = _bind(client)
    assert response.status_code == 201
    body = response.json()
    assert body["device_address"] == DEVICE  # stored uppercase, as the BLE central sees it
    assert (body["patient_id"], body["ended_at"]) == ("pat-42", None)
    assert datetime.fromisoformat(body["started_at"]) == HUB_NOW
    match = buffer.patient_for(DEVICE, HUB_NOW + timedelta(minutes=1))
    assert match is not None
    assert (match.patient_id, str(match.encounter_id)) == ("pat-42", body["id"])


def test_an_overlapping_encounter_is_409_naming_the_other(hub):
    client, _ = hub
    first = _bind(client).json()
    clash = _bind(client, headers=SUPERVISOR, patient_id="pat-43")
    assert clash.status_code == 409
    assert clash.json()["error"] == "Conflict"
    assert first["id"] in clash.json()["message"]


def test_a_closed_window_then_another_after_it(hub):
    client, _ = hub
    window = {"started_at": "2026-11-28T08:00:00Z", "ended_at": "2026-11-28T08:30:00Z"}
    assert _bind(client, **window).status_code == 201
    assert _bind(client, started_at="2026-11-28T08:30:00Z").status_code == 201


@pytest.mark.parametrize(
    "fields",
    [
        {"device_address": "not-an-address"},
        {"device_address": "../../etc/passwd"},
        {"device_address": "D0:00:00:00:00:01\u0000"},
        {"device_address": "D0:00:00:00:00:01' OR '1'='1"},
        {"patient_id": ""},
        {"patient_id": "pat 42"},
        {"patient_id": "p" * 129},
        {"patient_id": "pat\u000042"},
        {"started_at": "2026-11-28T08:00:00"},  # no offset
        {"started_at": "99999-01-01T00:00:00Z"},
        {"started_at": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
        {"ended_at": "9999-12-31T23:59:59-12:00"},  # after year 9999 in UTC
        {"ended_at": "2026-11-28T08:00:00Z", "started_at": "2026-11-28T09:00:00Z"},
        {"surprise": 1},
    ],
)
def test_bad_encounters_are_422_json_and_store_nothing(hub, fields):
    client, buffer = hub
    response = _bind(client, **fields)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidRequest"
    assert buffer.stats().open_encounters == 0
    assert buffer.patient_for(DEVICE, HUB_NOW) is None


def test_ending_an_encounter_now_then_again(hub):
    client, _ = hub
    enc = _bind(client).json()
    clock[0] = HUB_NOW + timedelta(minutes=20)
    ended = client.delete(f"/api/v1/encounters/{enc['id']}", headers=SUPERVISOR)
    assert ended.status_code == 200
    assert datetime.fromisoformat(ended.json()["ended_at"]) == clock[0]
    again = client.delete(f"/api/v1/encounters/{enc['id']}", headers=AGENT)
    assert (again.status_code, again.json()["error"]) == (409, "Conflict")
    unknown = client.delete(f"/api/v1/encounters/{uuid4()}", headers=AGENT)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "NotFound")


def test_encounter_roles_and_auth(hub):
    client, _ = hub
    assert _bind(client, headers=TECHNICIAN).status_code == 403
    assert _bind(client, headers={}).status_code == 401
    enc = _bind(client).json()
    assert client.delete(f"/api/v1/encounters/{enc['id']}", headers=TECHNICIAN).status_code == 403
    assert client.delete(f"/api/v1/encounters/{enc['id']}").status_code == 401


def test_an_agent_ends_only_the_encounters_they_opened_a_supervisor_any(hub):
    client, _ = hub
    mine = _bind(client).json()
    assert mine["opened_by"] == "agent-17"
    clock[0] = HUB_NOW + timedelta(minutes=20)  # an encounter must end after it starts
    refused = client.delete(f"/api/v1/encounters/{mine['id']}", headers=OTHER_AGENT)
    assert (refused.status_code, refused.json()["error"]) == (403, "RoleRefused")
    assert "opened by another agent" in refused.json()["message"]
    assert client.delete(f"/api/v1/encounters/{mine['id']}", headers=AGENT).status_code == 200
    theirs = _bind(client, headers=OTHER_AGENT).json()
    clock[0] = HUB_NOW + timedelta(minutes=40)
    ended = client.delete(f"/api/v1/encounters/{theirs['id']}", headers=SUPERVISOR)
    assert (ended.status_code, ended.json()["opened_by"]) == (200, "agent-99")


# --- GET /api/v1/readings -------------------------------------------------------------------


async def _store_readings(buffer, times, patient=1):
    rng = random.Random(5)
    stored = []
    for n, at in enumerate(times):
        reading = sample_reading(rng, at, device=1, patient=patient)
        await buffer.insert(reading, dedupe_key=f"r-{patient}-{n}")
        stored.append(reading)
    return stored


async def test_readings_come_with_their_triage_or_an_empty_list(hub):
    client, buffer = hub
    first, second = await _store_readings(buffer, [NOW, NOW + timedelta(seconds=1)])
    await _store_readings(buffer, [NOW], patient=2)  # someone else's
    triage = TriageResult(
        id=uuid4(),
        patient_id=first.patient_id,
        reading_ids=(first.id,),
        computed_at=NOW,
        band=RiskBand.HIGH,
        score=0.9,
        news2_score=7,
        news2_subscores={"spo2": 3},
        complete=False,
        model_version="news2-1",
        input_hash=content_hash({"x": 1}),
    )
    await buffer.add_triage([triage])
    response = client.get(
        "/api/v1/readings", params={"patient_id": first.patient_id}, headers=AGENT
    )
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert [r["reading"]["id"] for r in body["readings"]] == [str(first.id), str(second.id)]
    assert [t["id"] for t in body["readings"][0]["triage"]] == [str(triage.id)]
    assert body["readings"][0]["triage"][0]["band"] == "high"
    assert body["readings"][1]["triage"] == []


async def test_pages_with_the_next_cursor_lose_and_repeat_nothing_even_on_ties(hub):
    client, buffer = hub
    # 7 readings received in one download (same received_at) between two others.
    times = [NOW] + [NOW + timedelta(seconds=1)] * 7 + [NOW + timedelta(seconds=2)]
    stored = await _store_readings(buffer, times)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"patient_id": stored[0].patient_id, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/readings", params=params, headers=SUPERVISOR).json()
        seen += [r["reading"]["id"] for r in body["readings"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [str(r.id) for r in stored]
    assert pages == 3


async def test_since_is_exclusive_and_limit_defaults_and_caps(hub):
    client, buffer = hub
    stored = await _store_readings(buffer, [NOW + timedelta(seconds=s) for s in range(5)])
    pid = stored[0].patient_id
    since = (NOW + timedelta(seconds=2)).isoformat()
    body = client.get(
        "/api/v1/readings", params={"patient_id": pid, "since": since}, headers=AGENT
    ).json()
    assert [r["reading"]["id"] for r in body["readings"]] == [str(r.id) for r in stored[3:]]
    for limit in (0, 1001, -1, 10**30):
        response = client.get(
            "/api/v1/readings", params={"patient_id": pid, "limit": limit}, headers=AGENT
        )
        assert (response.status_code, response.json()["error"]) == (422, "InvalidRequest")


def test_readings_roles_and_auth(hub):
    client, _ = hub
    params = {"patient_id": "pat-42"}
    assert client.get("/api/v1/readings", params=params, headers=TECHNICIAN).status_code == 403
    assert client.get("/api/v1/readings", params=params).status_code == 401
    assert client.get("/api/v1/readings", params=params, headers=AGENT).json() == {
        "patient_id": "pat-42", "readings": [], "next": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"patient_id": ""},
        {"patient_id": "pat 42' OR 1=1 --"},
        {"patient_id": "pat\x0042"},
        {"patient_id": "p" * 10_000},
        {"patient_id": "pat-42", "since": "yesterday"},
        {"patient_id": "pat-42", "since": "2026-11-28T08:00:00"},
        {"patient_id": "pat-42", "since": "9" * 400},
        {"patient_id": "pat-42", "since": "0001-01-01T00:00:00+14:00"},
        {"patient_id": "pat-42", "cursor": "not-a-cursor"},
        {"patient_id": "pat-42", "cursor": "x" * 5000},
        {"patient_id": "pat-42", "cursor": Cursor(NOW, 0).encode()},
        {"patient_id": "pat-42", "cursor": "eyJ0IjoxLCJuIjoxfQ"},  # {"t":1,"n":1}
    ],
)
def test_bad_reading_queries_are_422_json(hub, params):
    client, _ = hub
    response = client.get("/api/v1/readings", params=params, headers=AGENT)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidRequest"
    assert response.json()["message"]


async def test_sql_text_in_a_valid_patient_id_is_only_data(hub):
    client, buffer = hub
    await _store_readings(buffer, [NOW])
    evil = "x';DROP-TABLE-reading_rows;--"
    response = client.get("/api/v1/readings", params={"patient_id": evil}, headers=AGENT)
    assert response.json() == {"patient_id": evil, "readings": [], "next": None}
    assert buffer.stats().total == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/medical-records/not-a-uuid",
        "/api/v1/medical-records/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/medical-records/../../etc/passwd",
        "/api/v1/medical-records/1'%20OR%20'1'='1",
        "/api/v1/medical-records/%00",
        "/api/v1/medical-records/019ac990-0000-7000-8000-000000000001%00",
        "/api/v1/medical-records/" + "9" * 5000,
        "/api/v1/encounters/not-a-uuid",
        "/api/v1/encounters/%3B%20DELETE%20FROM%20encounters",
        "/api/v1/plans/..%2F..%2F",
    ],
)
def test_path_injection_attempts_are_404_or_422_json_never_500(hub, path):
    client, _ = hub
    method = client.delete if "/encounters/" in path else client.get
    response = method(path, headers=SUPERVISOR)
    assert response.status_code in (404, 405, 422)
    assert response.json()["error"] in {"NotFound", "MethodNotAllowed", "InvalidRequest"}
    assert response.json()["message"]


def test_the_openapi_documents_every_route_with_its_errors(hub):
    client, _ = hub
    spec = client.get("/api/v1/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/api/v1/medical-records/{record_id}"]["get"]["responses"]) >= {
        "200", "401", "403", "404",
    }  # fmt: skip
    assert set(paths["/api/v1/encounters"]["post"]["responses"]) >= {"201", "409", "422"}
    assert set(paths["/api/v1/encounters/{encounter_id}"]["delete"]["responses"]) >= {"404", "409"}
    assert "/api/v1/plans/" in paths
    assert "/api/v1/readings" in paths


def test_a_hub_without_a_buffer_answers_503_not_500():
    app = create_app(
        ApiContext(
            "hub-bare",
            CLOUD.public_key(),
            frozenset,
            lambda: HubStatus(0, at_capacity=False, capacity_hours_left=None),
            now=lambda: HUB_NOW,
        )
    )
    client = TestClient(app)
    for path in ("/api/v1/plans/", f"/api/v1/medical-records/{uuid4()}"):
        response = client.get(path, headers=AGENT)
        assert (response.status_code, response.json()["error"]) == (503, "Unavailable")


def test_a_closed_buffer_is_503_json(hub):
    client, buffer = hub
    buffer.close()
    response = client.get(f"/api/v1/medical-records/{uuid4()}", headers=AGENT)
    assert (response.status_code, response.json()["error"]) == (503, "Unavailable")


def test_the_migration_adds_the_plans_and_phones_tables(tmp_path):
    with Buffer.open(BufferConfig(path=tmp_path / "b.sqlite3")):
        pass
    conn = sqlite3.connect(tmp_path / "b.sqlite3")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    conn.close()
    assert {"plans", "phones"} <= tables


def test_uuid_of_the_record_path_is_canonicalised(hub):
    client, _ = hub
    rid = _record(3)["id"]
    client.post("/api/v1/medical-records/bulk-sync", json={"records": [_record(3)]}, headers=AGENT)
    response = client.get(f"/api/v1/medical-records/{rid.upper()}", headers=AGENT)
    assert response.status_code == 200
    assert UUID(response.json()["id"]) == UUID(rid)


def _triage(patient_id: str, band: RiskBand, minutes: int, reading_ids=()) -> TriageResult:
    return TriageResult(
        id=uuid4(),
        patient_id=patient_id,
        reading_ids=tuple(reading_ids),
        computed_at=NOW + timedelta(minutes=minutes),
        band=band,
        score=0.5,
        news2_score=3,
        news2_subscores={"respiration_rate": 3},
        complete=False,
        model_version="news2-1",
        input_hash=content_hash({"m": minutes}),
        window_s=3600,
        at=NOW + timedelta(minutes=minutes),
    )


async def test_a_patients_triage_newest_first_with_the_results_of_records(hub):
    """An agent sees the triage of a record written without any device: no reading lists it."""
    client, buffer = hub
    (reading,) = await _store_readings(buffer, [NOW], patient=7)
    pid = reading.patient_id
    older = _triage(pid, RiskBand.LOW, 1, [reading.id])
    from_record = _triage(pid, RiskBand.MEDIUM, 5)  # an agent's record alone
    elsewhere = _triage("someone-else", RiskBand.HIGH, 6)
    await buffer.add_triage([older, from_record, elsewhere])

    response = client.get("/api/v1/triage", params={"patient_id": pid}, headers=AGENT)
    assert response.status_code == 200
    body = response.json()
    assert body["patient_id"] == pid
    assert [r["id"] for r in body["results"]] == [str(from_record.id), str(older.id)]
    assert body["results"][0]["reading_ids"] == []
    assert body["results"][0]["at"] is not None
    serious = client.get(
        "/api/v1/triage", params={"patient_id": pid, "min_band": "medium"}, headers=AGENT
    ).json()
    assert [r["id"] for r in serious["results"]] == [str(from_record.id)]
    one = client.get("/api/v1/triage", params={"patient_id": pid, "limit": 1}, headers=AGENT)
    assert [r["id"] for r in one.json()["results"]] == [str(from_record.id)]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"patient_id": "pat 42' OR 1=1 --"},
        {"patient_id": "pat-42", "limit": 0},
        {"patient_id": "pat-42", "limit": 10_000},
        {"patient_id": "pat-42", "min_band": "urgent"},
    ],
)
def test_triage_refuses_bad_queries_clearly(hub, params):
    client, _ = hub
    response = client.get("/api/v1/triage", params=params, headers=AGENT)
    assert (response.status_code, response.json()["error"]) == (422, "InvalidRequest")


def test_triage_roles_and_auth(hub):
    client, _ = hub
    params = {"patient_id": "pat-42"}
    assert client.get("/api/v1/triage", params=params, headers=TECHNICIAN).status_code == 403
    assert client.get("/api/v1/triage", params=params).status_code == 401
    assert client.get("/api/v1/triage", params=params, headers=AGENT).json() == {
        "patient_id": "pat-42", "results": [],
    }  # fmt: skip
