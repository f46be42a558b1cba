"""The phone's local queue and backoff policy, on a real SQLite file."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from uuid import UUID

import pytest

from phone.errors import QueueError
from phone.queue import Answer, Queue, State, new_record
from phone.sync import SyncPolicy
from wire.canonical import content_hash
from wire.ids import uuid7_time_ms

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _rec(n, **kw):
    return new_record(
        patient_id="pat-42",
        agent_id="agent-17",
        type_="household_visit",
        payload={"visit": n},
        now=NOW,
        rand=n.to_bytes(10, "big"),
        **kw,
    )


def test_new_record_is_a_valid_hashed_revision():
    rec = _rec(1)
    assert rec["revision"] == 1
    assert rec["content_hash"] == content_hash({"visit": 1})
    assert uuid7_time_ms(UUID(rec["id"])) == int(NOW.timestamp() * 1000)
    assert rec["agent_id"] == "agent-17"
    assert rec["updated_at"] == "2026-11-28T09:00:00Z"


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [("type_", "Not A Slug", "type"), ("patient_id", "", "patient_id")],
)
def test_new_record_refuses_invalid_input_with_the_field(field, value, where):
    args = {
        "patient_id": "pat-1",
        "agent_id": "a",
        "type_": "visit",
        "payload": {},
        "now": NOW,
        "rand": bytes(10),
    }
    with pytest.raises(QueueError, match=where):
        new_record(**(args | {field: value}))


def test_a_queued_record_is_durable_and_pending_until_answered(tmp_path):
    path = tmp_path / "q.sqlite3"
    with Queue.open(path) as queue:
        queued = queue.add(_rec(1))
        queue.add(_rec(2))
    with Queue.open(path) as again:  # another connection, as after a restart
        assert [q.id for q in again.pending()] == [queued.id, _rec(2)["id"]]
        assert again.counts() == {
            State.PENDING: 2, State.SYNCED: 0, State.CONFLICT: 0, State.REJECTED: 0,
        }  # fmt: skip
        journal = again._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"


def test_answers_are_stored_with_the_record_and_only_once(tmp_path):
    with Queue.open(tmp_path / "q.sqlite3") as queue:
        a, b, c = (queue.add(_rec(n)) for n in (1, 2, 3))
        queue.record_answers(
            [
                Answer(a.seq, State.SYNCED, {"outcome": "accepted"}),
                Answer(b.seq, State.CONFLICT, {"outcome": "conflict", "stored": {"x": 1}}),
            ],
            hub_id="hub-1",
            now=NOW,
        )
        # A late second answer for an answered record changes nothing.
        queue.record_answers(
            [Answer(a.seq, State.REJECTED, {"outcome": "rejected"})], hub_id="hub-2", now=NOW
        )
        by_id = {q.id: q for q in queue.records()}
        assert by_id[a.id].state is State.SYNCED
        assert by_id[a.id].hub_id == "hub-1"
        assert by_id[b.id].answer == {"outcome": "conflict", "stored": {"x": 1}}
        assert [q.id for q in queue.pending()] == [c.id]


def test_the_same_revision_is_refused_a_new_revision_is_queued(tmp_path):
    with Queue.open(tmp_path / "q.sqlite3") as queue:
        first = queue.add(_rec(1))
        with pytest.raises(QueueError, match="already queued"):
            queue.add(_rec(1))
        assert queue.next_revision(first.id) == 2
        queue.add(_rec(1, record_id=first.id, revision=2))
        assert [q.revision for q in queue.pending()] == [1, 2]


def test_add_many_is_all_or_nothing(tmp_path):
    with Queue.open(tmp_path / "q.sqlite3") as queue:
        with pytest.raises(QueueError):
            queue.add_many([_rec(1), _rec(2), {"id": 3, "revision": 1}])
        assert queue.pending() == []
        assert queue.add_many([_rec(1), _rec(2)]) == 2


def test_a_record_needs_an_id_and_a_revision(tmp_path):
    with Queue.open(tmp_path / "q.sqlite3") as queue, pytest.raises(QueueError):
        queue.add({"id": "x", "revision": "1"})


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = SyncPolicy(base_delay_s=1.0, max_delay_s=8.0)
    rng = random.Random(5)
    delays = [[policy.delay(attempt, rng) for _ in range(50)] for attempt in (1, 2, 3, 4, 5, 9)]
    for ceiling, seen in zip((1, 2, 4, 8, 8, 8), delays, strict=True):
        assert all(ceiling / 2 <= d <= ceiling for d in seen)
        assert len(set(seen)) > 40  # jittered: phones do not retry in lockstep
