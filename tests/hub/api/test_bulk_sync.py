"""POST /api/v1/medical-records/bulk-sync against the real SQLite buffer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from hub.api.app import ApiContext, HubStatus, create_app
from hub.buffer import Buffer, BufferConfig
from wire.canonical import content_hash
from wire.tokens import Role, issue

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _token(agent="agent-17", role=Role.AGENT):
    return issue(
        CLOUD, agent_id=agent, role=role, now=NOW, lifetime=timedelta(hours=8), token_id="t"
    )


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


@pytest.fixture
def hub(tmp_path):
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))
    full = {"value": False}
    ctx = ApiContext(
        hub_id="hub-sync-01",
        cloud_signing_key=CLOUD.public_key(),
        revoked=frozenset,
        status=lambda: HubStatus(backlog=0, at_capacity=full["value"], capacity_hours_left=None),
        sync_records=buffer.sync_records,
        now=lambda: NOW + timedelta(minutes=5),
    )
    with TestClient(create_app(ctx)) as client:
        yield client, buffer, full
    buffer.close()


def _sync(client, records, token=None):
    return client.post(
        "/api/v1/medical-records/bulk-sync",
        json={"records": records},
        headers={"Authorization": f"Bearer {token or _token()}"},
    )


def test_every_outcome_in_one_request_in_order(hub):
    client, buffer, _ = hub
    assert _sync(client, [_record(1)]).json()["results"][0]["outcome"] == "accepted"
    bad_hash = _record(3) | {"content_hash": content_hash({"something": "else"})}
    response = _sync(
        client,
        [_record(1), _record(1, payload={"visit": "changed"}), _record(2), bad_hash, {"id": 5}],
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == [
        "duplicate", "conflict", "accepted", "rejected", "rejected",
    ]  # fmt: skip
    assert results[1]["stored"]["payload"] == {"visit": 1}  # the version the hub kept
    assert "content_hash" in results[3]["reason"]
    assert results[4]["reason"]
    versions = buffer.record_versions(UUID(_record(1)["id"]))
    assert len(versions) == 2


def test_the_same_request_replayed_gives_duplicates_only(hub):
    client, _, _ = hub
    batch = [_record(n) for n in range(1, 21)]
    assert {r["outcome"] for r in _sync(client, batch).json()["results"]} == {"accepted"}
    assert {r["outcome"] for r in _sync(client, batch).json()["results"]} == {"duplicate"}


def test_an_agent_syncs_only_its_own_records_a_supervisor_anyones(hub):
    client, _, _ = hub
    theirs = _record(7, agent="agent-99")
    assert _sync(client, [theirs]).json()["results"][0]["outcome"] == "rejected"
    supervisor = _token("sup-1", Role.SUPERVISOR)
    assert _sync(client, [theirs], supervisor).json()["results"][0]["outcome"] == "accepted"
    technician = _token("tech-1", Role.TECHNICIAN)
    assert _sync(client, [theirs], technician).status_code == 403


def test_full_hub_answers_507_and_keeps_nothing(hub):
    client, _, full = hub
    full["value"] = True
    response = _sync(client, [_record(9)])
    assert response.status_code == 507
    assert response.json()["error"] == "HubFull"
    full["value"] = False
    assert _sync(client, [_record(9)]).json()["results"][0]["outcome"] == "accepted"


def test_more_than_1000_records_is_refused_clearly(hub):
    client, _, _ = hub
    response = _sync(client, [_record(n) for n in range(1001)])
    assert response.status_code in (413, 422)
    assert response.json()["error"] in {"TooLarge", "InvalidRequest"}
