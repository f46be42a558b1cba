from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from hub.records.merge import MAX_PAYLOAD_BYTES, Decision, Outcome, StoredVersion, check, decide
from wire.canonical import content_hash
from wire.items import MedicalRecord

PAYLOAD = {"gestational_weeks": 31, "notes": "oedème des chevilles", "danger_signs": []}


def _raw(**kw):
    base = {
        "id": "019ac990-0000-7000-8000-00000000000a",
        "revision": 2,
        "updated_at": "2026-11-28T09:30:00Z",
        "patient_id": "pat-42",
        "agent_id": "agent-17",
        "type": "antenatal_visit",
        "payload": PAYLOAD,
        "content_hash": content_hash(PAYLOAD),
    }
    return base | kw


def test_a_valid_record_parses():
    record = check(_raw())
    assert isinstance(record, MedicalRecord)
    assert record.id == UUID("019ac990-0000-7000-8000-00000000000a")
    assert record.updated_at == datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_raw(content_hash=content_hash({"other": 1})), "content_hash is not"),
        (_raw(revision=0), "revision"),
        (_raw(patient_id=""), "patient_id"),
        (_raw(payload={"x": float("nan")}), "payload"),
        (_raw(surprise=True), "surprise"),
        ("not a record", "record"),
    ],
)
def test_invalid_records_are_rejected_with_the_reason(raw, reason):
    decision = check(raw)
    assert isinstance(decision, Decision)
    assert decision.outcome is Outcome.REJECTED
    assert reason in decision.reason


def test_outcomes():
    record = check(_raw())
    assert isinstance(record, MedicalRecord)
    same = StoredVersion(2, record.content_hash)
    other = StoredVersion(2, content_hash({"x": 1}))
    newer = StoredVersion(3, content_hash({"x": 2}))
    older = StoredVersion(1, content_hash({"x": 3}))
    assert decide(record, same_revision=None, latest=None).outcome is Outcome.ACCEPTED
    assert decide(record, same_revision=same, latest=same).outcome is Outcome.DUPLICATE
    assert decide(record, same_revision=other, latest=other).outcome is Outcome.CONFLICT
    assert decide(record, same_revision=None, latest=newer).outcome is Outcome.CONFLICT
    assert decide(record, same_revision=None, latest=older).outcome is Outcome.ACCEPTED


def test_a_payload_too_big_for_one_batch_is_rejected_and_one_at_the_limit_is_not():
    def payload_of(size: int) -> dict[str, str]:
        return {"notes": "x" * (size - len('{"notes":""}'))}

    at_limit, over = payload_of(MAX_PAYLOAD_BYTES), payload_of(MAX_PAYLOAD_BYTES + 1)
    assert isinstance(
        check(_raw(payload=at_limit, content_hash=content_hash(at_limit))), MedicalRecord
    )
    refused = check(_raw(payload=over, content_hash=content_hash(over)))
    assert isinstance(refused, Decision)
    assert refused.outcome is Outcome.REJECTED
    assert f"payload is {MAX_PAYLOAD_BYTES + 1} bytes" in refused.reason
