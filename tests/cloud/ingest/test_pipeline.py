"""The pipeline's decisions and their order, on in-memory ports (no network, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ingest_support import INGEST_KEY, T0, BatchMaker, hub_key

from cloud.db import DatabaseUnavailable, DataRefused, DecidedBatch, Hub, KindCounts, StoreResult
from cloud.ingest.pipeline import (
    MAX_REASON,
    QUARANTINE_SAMPLE,
    Prepared,
    Verdict,
    prepare_message,
    process_message,
)
from cloud.storage.errors import ArchiveConflict, StorageUnavailable
from wire import Limits
from wire.acks import AckStatus
from wire.keys import key_id, raw_public
from wire.topics import ack_topic, batch_topic

HUB = "hub-unit-01"
NOW = datetime(2026, 3, 14, 10, tzinfo=UTC)


class FakePorts:
    """Records every call in order; fails where told."""

    def __init__(self, *, active=True, known=True):
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.decided_batches: dict = {}
        self.active = active
        self.known = known
        self.quarantined: list[dict] = []

    def _call(self, name):
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def hub(self, hub_id):
        self._call("hub")
        if not self.known:
            return None
        key = hub_key(1)
        return Hub(
            hub_id=hub_id,
            identity_key=raw_public(key),
            identity_key_id=key_id(key),
            exchange_key=None,
            status="active" if self.active else "revoked",
            created_at=T0,
            revoked_at=None,
            revoke_reason=None,
            note=None,
        )

    def decided(self, batch_id):
        self._call("decided")
        return self.decided_batches.get(batch_id)

    def archive(self, hub_id, batch_id, _data):
        self._call("archive")
        return f"raw/{hub_id}/{batch_id}"

    def quarantine_object(self, hub_id, data, _received_at):
        self._call("quarantine_object")
        self.quarantined.append({"bytes": len(data)})
        return f"quarantine/{hub_id}"

    def store(self, _header, body, **_where):
        self._call("store")
        n = len(body.readings)
        return StoreResult("stored", KindCounts(n - 1, 1), KindCounts(), KindCounts(), KindCounts())

    def reject(self, _header, **_why):
        self._call("reject")
        return True

    def quarantine(self, **kwargs):
        self._call("quarantine")
        self.quarantined[-1] |= kwargs
        return 1


def _run(ports, data, *, topic=None, limits=Limits(), failpoints=None):
    return process_message(
        topic or batch_topic(HUB),
        data,
        NOW,
        ports=ports,
        cloud_keys=INGEST_KEY,
        limits=limits,
        failpoint=(failpoints.append if failpoints is not None else lambda _n: None),
    )


@pytest.fixture
def batch():
    return BatchMaker(HUB, hub_key(1)).make(10)


def test_a_good_batch_is_archived_then_stored_then_answered(batch):
    ports, hits = FakePorts(), []
    ports.calls = hits
    outcome = _run(ports, batch.data, failpoints=hits)
    assert hits == ["hub", "decided", "archive", "after_archive", "store", "after_store"]
    assert outcome.verdict is Verdict.STORED
    reply = outcome.reply
    assert (reply.hub_id, reply.batch_id, reply.seq) == (HUB, batch.batch_id, batch.seq)
    assert (reply.status, reply.counts.inserted, reply.counts.duplicate) == (
        AckStatus.STORED,
        9,
        1,
    )
    ack = reply.ack(now=NOW, key="0123456789abcdef", payload=batch.data)
    assert ack.delivered
    assert ack.answers(batch.data)
    assert ack_topic(ack.hub_id) == f"tecsa/v1/hubs/{HUB}/down/ack"


def test_preparing_stops_after_the_archive_and_committing_stores_then_answers(batch):
    ports, hits = FakePorts(), []
    ports.calls = hits
    prepared = prepare_message(
        batch_topic(HUB), batch.data, NOW, ports=ports, cloud_keys=INGEST_KEY,
        failpoint=hits.append,
    )  # fmt: skip
    assert isinstance(prepared, Prepared)
    assert hits == ["hub", "decided", "archive", "after_archive"]  # nothing stored, no answer
    assert (prepared.header.batch_id, prepared.size) == (batch.batch_id, len(batch.data))
    outcome = prepared.commit()
    assert hits[4:] == ["store", "after_store"]
    assert outcome.verdict is Verdict.STORED
    assert outcome.reply.counts.inserted == 9


def test_a_commit_that_failed_transiently_may_be_tried_again(batch):
    ports = FakePorts()
    prepared = prepare_message(
        batch_topic(HUB), batch.data, NOW, ports=ports, cloud_keys=INGEST_KEY
    )
    ports.fail["store"] = DatabaseUnavailable("down")
    with pytest.raises(DatabaseUnavailable):
        prepared.commit()
    del ports.fail["store"]
    assert prepared.commit().verdict is Verdict.STORED
    assert ports.calls.count("archive") == 1
    assert "quarantine" not in ports.calls


def test_a_batch_decided_without_storing_is_decided_when_prepared(batch):
    ports = FakePorts(active=False)
    outcome = prepare_message(batch_topic(HUB), batch.data, NOW, ports=ports, cloud_keys=INGEST_KEY)
    assert outcome.verdict is Verdict.REJECTED
    assert "archive" not in ports.calls


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ("hub", DatabaseUnavailable("down")),
        ("decided", DatabaseUnavailable("down")),
        ("archive", StorageUnavailable("down")),
        ("store", DatabaseUnavailable("down")),
    ],
)
def test_a_transient_failure_answers_nothing_and_quarantines_nothing(batch, step, error):
    ports = FakePorts()
    ports.fail[step] = error
    with pytest.raises(type(error)):
        _run(ports, batch.data)
    assert "quarantine" not in ports.calls
    assert "reject" not in ports.calls
    assert ports.calls[-1] == step


def test_a_batch_decided_before_is_answered_from_the_record_without_opening(batch):
    ports = FakePorts()
    ports.decided_batches[batch.batch_id] = DecidedBatch(
        batch.batch_id, HUB, 41, "stored", None, 10
    )
    outcome = _run(ports, batch.data)
    assert ports.calls == ["hub", "decided"]
    assert (outcome.verdict, outcome.reply.status, outcome.reply.seq) == (
        Verdict.DUPLICATE,
        AckStatus.DUPLICATE,
        41,
    )
    assert (outcome.reply.counts.inserted, outcome.reply.counts.duplicate) == (0, 10)


def test_a_batch_id_of_another_hub_is_refused(batch):
    ports = FakePorts()
    ports.decided_batches[batch.batch_id] = DecidedBatch(
        batch.batch_id, "hub-x", 1, "stored", None, 1
    )
    outcome = _run(ports, batch.data)
    assert outcome.reply.status is AckStatus.REJECTED
    assert "another hub" in outcome.reply.reason


def test_content_postgresql_refuses_is_rejected_as_authentic(batch):
    ports = FakePorts()
    ports.fail["store"] = DataRefused("NUL in text")
    outcome = _run(ports, batch.data)
    assert ports.calls[-3:] == ["store", "quarantine_object", "reject"]
    assert outcome.reply.status is AckStatus.REJECTED


def test_other_bytes_under_an_archived_batch_id_are_quarantined_undecided(batch):
    ports = FakePorts()
    ports.fail["archive"] = ArchiveConflict("raw/... holds other bytes", key="raw/x")
    outcome = _run(ports, batch.data)
    assert ports.calls[-2:] == ["quarantine_object", "quarantine"]
    assert outcome.reply.status is AckStatus.REJECTED


def test_nothing_to_answer_when_the_topic_names_no_hub(batch):
    ports = FakePorts()
    outcome = _run(ports, batch.data, topic="tecsa/v1/hubs/Not_A_Hub/up/batch")
    assert (outcome.verdict, outcome.reply, outcome.hub_id) == (Verdict.QUARANTINED, None, None)
    assert ports.calls == ["quarantine_object", "quarantine"]


def test_nothing_to_answer_for_bytes_without_a_header():
    ports = FakePorts()
    outcome = _run(ports, b"garbage" * 20)
    assert (outcome.verdict, outcome.reply, outcome.hub_id) == (Verdict.QUARANTINED, None, HUB)


def test_an_oversized_payload_is_refused_before_work_and_only_a_sample_kept(batch):
    ports = FakePorts()
    limits = Limits(max_sealed=len(batch.data) - 1)
    outcome = _run(ports, batch.data + b"x" * (2 * QUARANTINE_SAMPLE), limits=limits)
    assert ports.calls == ["quarantine_object", "quarantine"]  # no registry, no signature
    assert ports.quarantined[0]["bytes"] == QUARANTINE_SAMPLE
    assert ports.quarantined[0]["size"] == len(batch.data) + 2 * QUARANTINE_SAMPLE
    assert outcome.reply.batch_id == batch.batch_id  # named from the readable header
    assert "over the limit" in outcome.reply.reason


def test_a_long_reason_is_clipped_to_what_an_ack_carries(batch):
    ports = FakePorts()
    ports.fail["store"] = DataRefused("x" * 2000)
    outcome = _run(ports, batch.data)
    assert len(outcome.reply.reason) == MAX_REASON
    outcome.reply.ack(now=NOW, key="0123456789abcdef", payload=batch.data)  # valid as an ack


@pytest.mark.parametrize(
    ("known", "active", "why"), [(False, True, "not registered"), (True, False, "revoked")]
)
def test_unknown_and_revoked_hubs_are_refused_unopened(batch, known, active, why):
    ports = FakePorts(known=known, active=active)
    outcome = _run(ports, batch.data)
    assert ports.calls == ["hub", "quarantine_object", "quarantine"]
    assert why in outcome.reply.reason
    assert ports.quarantined[0]["batch_id"] == batch.batch_id
