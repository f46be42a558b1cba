"""The phone client against a real hub daemon (`tecsa-hub run`) over TLS, found by zeroconf."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime

import pytest
from hubproc import BIN, HubProcess
from proxy import CutProxy

from phone.client import HubClient
from phone.discovery import HubBrowser
from phone.errors import NetworkError, PinMismatch, ProtocolError, TokenRefused
from phone.queue import Queue, State, new_record
from phone.sync import sync_queue
from wire.canonical import content_hash
from wire.tokens import Role

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    proc = HubProcess(tmp_path_factory.mktemp("hub"), "hub-phone-sync").start()
    yield proc
    assert proc.stop() == 0


def _records(n, *, agent="agent-17", start=0, payload=None):
    now = datetime.now(UTC)
    return [
        new_record(
            patient_id=f"pat-{(start + i) % 50:03d}",
            agent_id=agent,
            type_="household_visit",
            payload=payload or {"visit": start + i, "children_under_5": i % 4},
            now=now,
            rand=os.urandom(10),
        )
        for i in range(n)
    ]


def _client(hub, token, *, port=None, fingerprint=None):
    return HubClient(
        "127.0.0.1", port or hub.port, fingerprint=fingerprint or hub.fingerprint(), token=token
    )


def _sync(queue, client, hub, **kw):
    sleeps = []
    report = sync_queue(queue, client, hub_id=hub.hub_id, sleep=sleeps.append, **kw)
    return report, sleeps


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_phone_discovers_a_hub_in_another_process_and_drops_it_when_it_goes(tmp_path, stop):
    own = HubProcess(tmp_path, "hub-goes-away").start()

    def going():
        if stop == "sigterm":
            own.stop()  # a clean stop (goodbye packets, when the hub sends them)
        else:
            own.proc.kill()  # a power cut: no goodbye at all
            own.proc.communicate(timeout=30)

    async def scenario():
        async with HubBrowser(interfaces=["127.0.0.1"], probe_every_s=0.5) as browser:
            seen = await browser.wait_for(hub_id="hub-goes-away", within_s=20)
            assert seen is not None
            assert (seen.host, seen.port, seen.api) == ("127.0.0.1", own.port, "1")
            assert seen.fingerprint == own.fingerprint()
            await asyncio.to_thread(going)
            assert await browser.wait_gone("hub-goes-away", within_s=20)
            assert all(h.hub_id != "hub-goes-away" for h in browser.hubs)

    asyncio.run(scenario())


def test_every_outcome_is_recorded_in_the_phone_queue(hub, tmp_path):
    ok, dup, conflicted, bad_hash, other_agent = _records(5, start=100)
    bad_hash = bad_hash | {"content_hash": content_hash({"not": "the payload"})}
    other_agent = other_agent | {"agent_id": "agent-99"}
    with Queue.open(tmp_path / "first.sqlite3") as first:  # another phone of the same agent
        first.add_many([dup, conflicted])
        report, _ = _sync(first, _client(hub, hub.token()), hub)
        assert report.complete
    with Queue.open(tmp_path / "phone.sqlite3") as queue:
        changed = conflicted | {"payload": {"visit": "edited"}}
        changed["content_hash"] = content_hash(changed["payload"])
        queue.add_many([ok, dup, changed, bad_hash, other_agent])
        report, _ = _sync(queue, _client(hub, hub.token()), hub)
        assert report.complete
        by_id = {q.id: q for q in queue.records()}
    assert by_id[ok["id"]].state is State.SYNCED
    assert by_id[ok["id"]].answer["outcome"] == "accepted"
    assert by_id[dup["id"]].state is State.SYNCED
    assert by_id[dup["id"]].answer["outcome"] == "duplicate"
    assert by_id[changed["id"]].state is State.CONFLICT
    assert by_id[changed["id"]].answer["stored"]["payload"] == conflicted["payload"]
    assert by_id[bad_hash["id"]].state is State.REJECTED
    assert "content_hash" in by_id[bad_hash["id"]].answer["reason"]
    assert by_id[other_agent["id"]].state is State.REJECTED
    assert "agent" in by_id[other_agent["id"]].answer["reason"]
    assert all(q.hub_id == hub.hub_id for q in by_id.values())


def test_a_role_that_may_not_sync_gets_every_record_rejected_with_the_hubs_answer(hub, tmp_path):
    with Queue.open(tmp_path / "tech.sqlite3") as queue:
        queue.add_many(_records(3, agent="tech-1", start=200))
        report, _ = _sync(queue, _client(hub, hub.token("tech-1", Role.TECHNICIAN)), hub)
        rejected = queue.records(state=State.REJECTED)
    assert report.answered[State.REJECTED] == 3
    assert len(rejected) == 3
    assert {(q.answer["status"], q.answer["error"]) for q in rejected} == {(403, "RoleRefused")}


def test_an_expired_token_stops_the_run_at_once_and_keeps_the_queue(hub, tmp_path):
    with Queue.open(tmp_path / "p.sqlite3") as queue:
        queue.add_many(_records(4, start=300))
        report, sleeps = _sync(queue, _client(hub, hub.token(expired=True)), hub)
        assert isinstance(report.error, TokenRefused)
        assert "expired" in str(report.error).lower()
        assert (report.requests, report.retries, sleeps) == (1, 0, [])  # never retried
        assert queue.counts()[State.PENDING] == 4


def test_a_certificate_other_than_the_advertised_one_is_refused_before_sending(hub, tmp_path):
    records = _records(2, start=400)
    with Queue.open(tmp_path / "p.sqlite3") as queue:
        queue.add_many(records)
        client = _client(hub, hub.token(), fingerprint="0" * 64)
        report, _ = _sync(queue, client, hub)
        assert isinstance(report.error, PinMismatch)
        assert report.error.got == hub.fingerprint()
        assert queue.counts()[State.PENDING] == 2
    stored = hub.stored()
    assert all((r["id"], 1) not in stored for r in records)


def test_the_same_request_replayed_gives_duplicates_only(hub):
    records = _records(20, start=500)
    with _client(hub, hub.token()) as client:
        first = client.bulk_sync(records)
        again = client.bulk_sync(records)
    assert {r["outcome"] for r in first} == {"accepted"}
    assert {r["outcome"] for r in again} == {"duplicate"}
    stored = hub.stored()
    assert [stored[(r["id"], 1)] for r in records] == [1] * 20


def test_a_cut_after_the_hub_committed_then_a_retry_duplicates_nothing(hub, tmp_path):
    records = _records(50, start=600)
    keys = [(r["id"], 1) for r in records]

    def committed():
        stored = hub.stored()
        return all(k in stored for k in keys)

    proxy = CutProxy(hub.port, threshold=8000, committed=committed)
    try:
        with Queue.open(tmp_path / "p.sqlite3") as queue:
            queue.add_many(records)
            client = _client(hub, hub.token(), port=proxy.port)
            # The first try alone: the hub commits, the answer is lost, nothing is marked.
            with pytest.raises(NetworkError):
                client.bulk_sync([q.record for q in queue.pending()])
            assert proxy.cuts == 1
            assert committed()
            assert queue.counts()[State.PENDING] == 50
            # A sync run now: the retry is answered `duplicate` for every record.
            proxy.armed = True
            report, sleeps = _sync(queue, client, hub)
            assert proxy.cuts == 2
            assert report.complete
            assert report.retries == 1
            assert len(sleeps) == 1
            synced = queue.records(state=State.SYNCED)
    finally:
        proxy.close()
    assert len(synced) == 50
    assert {q.answer["outcome"] for q in synced} == {"duplicate"}
    stored = hub.stored()
    assert [stored[k] for k in keys] == [1] * 50


def _phone_counts(path):
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT state, count(*) FROM queue GROUP BY state").fetchall()
    return dict(rows)


def test_a_phone_killed_mid_sync_resumes_and_loses_and_doubles_nothing(hub, tmp_path):
    path = tmp_path / "phone.sqlite3"
    records = _records(12_000, start=10_000)
    with Queue.open(path) as queue:
        queue.add_many(records)
    env = os.environ | {"TECSA_PHONE_TOKEN": hub.token(), "TECSA_PHONE_QUEUE": str(path)}
    cmd = [str(BIN / "tecsa-phone"), "sync", "--hub-id", hub.hub_id, "--timeout", "20"]
    phone = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and phone.poll() is None:
            if _phone_counts(path).get("synced", 0) >= 1000:
                break
            time.sleep(0.005)
        phone.send_signal(signal.SIGKILL)
    finally:
        phone.communicate(timeout=30)
    at_kill = _phone_counts(path)
    assert phone.returncode == -signal.SIGKILL
    assert 0 < at_kill.get("pending", 0) < 12_000, at_kill
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["queue"] == {"pending": 0, "synced": 12_000, "conflict": 0, "rejected": 0}
    assert summary["answered"]["rejected"] == 0
    stored = hub.stored()
    assert [stored.get((r["id"], 1)) for r in records] == [1] * 12_000


def _cli(*args, env):
    return subprocess.run(
        [str(BIN / "tecsa-phone"), *args], env=env, capture_output=True, text=True, check=False
    )


def test_the_cli_records_finds_the_hub_syncs_and_reports(hub, tmp_path):
    env = os.environ | {"TECSA_PHONE_TOKEN": hub.token(), "TECSA_PHONE_QUEUE": str(tmp_path / "q")}
    made = _cli("record", "--patient", "pat-7", "--type", "household_visit",
                "--payload", '{"children_under_5": 1}', env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("queued ")
    assert made.stdout.strip().endswith("revision 1")
    record_id = made.stdout.split()[1]
    revised = _cli("record", "--patient", "pat-7", "--type", "household_visit",
                   "--payload", '{"children_under_5": 2}', "--revise", record_id,
                   env=env)  # fmt: skip
    assert revised.stdout.strip() == f"queued {record_id} revision 2"
    bad = _cli("record", "--patient", "pat-7", "--type", "Visit!", "--payload", "{}", env=env)
    assert bad.returncode == 1
    assert "type" in bad.stderr
    hubs = _cli("hubs", "--json", "--seconds", "3", env=env)
    seen = {h["hub_id"]: h for h in json.loads(hubs.stdout)}
    assert seen[hub.hub_id]["tls"] == hub.fingerprint()
    assert seen[hub.hub_id]["port"] == hub.port
    synced = _cli("sync", "--json", "--hub-id", hub.hub_id, env=env)
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["answered"]["synced"] == 2
    status = json.loads(_cli("status", "--json", env=env).stdout)
    assert status["counts"] == {"pending": 0, "synced": 2, "conflict": 0, "rejected": 0}
    assert hub.stored()[(record_id, 2)] == 1


def test_the_cli_sync_exit_status_says_what_to_do(hub, tmp_path):
    env = os.environ | {"TECSA_PHONE_QUEUE": str(tmp_path / "q")}
    expired = env | {"TECSA_PHONE_TOKEN": hub.token(expired=True)}
    _cli("record", "--patient", "p", "--type", "visit", "--payload", "{}", "--agent", "agent-17",
         env=expired)  # fmt: skip
    refused = _cli("sync", "--hub-id", hub.hub_id, env=expired)
    assert refused.returncode == 3
    assert "token" in refused.stderr
    nowhere = _cli("sync", "--hub-id", "hub-nowhere", "--timeout", "1", env=expired)
    assert nowhere.returncode == 4
    assert "no hub found" in nowhere.stderr
    status = _cli("status", env=env)
    assert status.stdout.startswith("pending 1  synced 0")


def test_records_the_hub_rewrites_or_refuses_never_block_the_queue(hub, tmp_path):
    upper, not_uuid, fine = _records(3, start=700)
    upper = upper | {"id": upper["id"].upper()}  # the hub answers with the canonical form
    not_uuid = not_uuid | {"id": "visit-700"}
    with Queue.open(tmp_path / "p.sqlite3") as queue:
        queue.add_many([upper, not_uuid, fine])
        report, _ = _sync(queue, _client(hub, hub.token()), hub)
        states = {q.id: q.state for q in queue.records()}
    assert report.complete
    assert states == {
        upper["id"]: State.SYNCED,
        "visit-700": State.REJECTED,
        fine["id"]: State.SYNCED,
    }


def test_the_client_binds_a_device_to_a_patient_and_ends_the_visit(hub):
    device = "D1:00:00:00:00:42"
    with _client(hub, hub.token()) as client:
        first = client.start_encounter(device, "pat-visit-1")
        with pytest.raises(ProtocolError, match=f"encounter {first}") as clash:
            client.start_encounter(device, "pat-visit-2")  # bound to someone else: 409
        assert clash.value.status == 409
        ended = client.end_encounter(first)
        assert (ended["id"], ended["patient_id"]) == (first, "pat-visit-1")
        assert ended["ended_at"] is not None
        second = client.start_encounter(device, "pat-visit-2")  # free again
        assert second != first
        client.end_encounter(second)
