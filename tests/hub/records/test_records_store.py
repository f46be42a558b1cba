"""Records in the real SQLite buffer: decided and stored in one transaction, durable on return."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.buffer import Buffer, BufferConfig
from hub.records.merge import Outcome, check
from wire.canonical import content_hash
from wire.items import MedicalRecord

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _record(revision=1, payload=None, rid="019ac990-0000-7000-8000-00000000000a") -> MedicalRecord:
    payload = payload or {"weeks": 31}
    record = check(
        {
            "id": rid,
            "revision": revision,
            "updated_at": "2026-11-28T09:30:00Z",
            "patient_id": "pat-42",
            "agent_id": "agent-17",
            "type": "antenatal_visit",
            "payload": payload,
            "content_hash": content_hash(payload),
        }
    )
    assert isinstance(record, MedicalRecord)
    return record


@pytest.fixture
def path(tmp_path):
    return tmp_path / "buffer.sqlite3"


async def test_every_outcome_and_both_versions_of_a_conflict_are_kept(path):
    buffer = Buffer.open(BufferConfig(path=path))
    try:
        first = _record(1)
        results = await buffer.sync_records([first], NOW)
        assert [r.outcome for r in results] == [Outcome.ACCEPTED]
        again = await buffer.sync_records([first], NOW)
        assert [r.outcome for r in again] == [Outcome.DUPLICATE]
        rival = _record(1, {"weeks": 32})
        (conflict,) = await buffer.sync_records([rival], NOW)
        assert conflict.outcome is Outcome.CONFLICT
        assert conflict.stored == first  # the stored version goes back to the phone
        (newer,) = await buffer.sync_records([_record(2, {"weeks": 33})], NOW)
        assert newer.outcome is Outcome.ACCEPTED
        (older,) = await buffer.sync_records([_record(1, {"weeks": 30})], NOW)
        assert older.outcome is Outcome.CONFLICT
    finally:
        buffer.close()
    reopened = Buffer.open(BufferConfig(path=path))  # durable: a fresh process sees them
    try:
        versions = reopened.record_versions(first.id)
        assert [v.revision for v in versions] == [2, 1, 1, 1]
        assert {v.payload["weeks"] for v in versions} == {30, 31, 32, 33}
    finally:
        reopened.close()


async def test_one_request_mixes_outcomes_without_one_failing_the_others(path):
    buffer = Buffer.open(BufferConfig(path=path))
    try:
        a = _record(1, rid="019ac990-0000-7000-8000-00000000000b")
        b = _record(1, rid="019ac990-0000-7000-8000-00000000000c")
        results = await buffer.sync_records([a, b, a], NOW)
        assert [r.outcome for r in results] == [
            Outcome.ACCEPTED,
            Outcome.ACCEPTED,
            Outcome.DUPLICATE,
        ]
    finally:
        buffer.close()
