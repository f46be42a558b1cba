"""The outbox in the buffer: sealing, recording and assigning are one transaction."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from uplink_testkit import T0, fill

from hub.buffer import (
    AckOutcome,
    BatchConflict,
    BatchNotSealed,
    Buffer,
    BufferConfig,
    OutboxState,
    UplinkState,
)
from hub.uplink.sealing import body_json
from wire.ids import uuid7
from wire.items import Body
from wire.samples import sample_reading


def bid(n: int):
    return uuid7(T0, n.to_bytes(10, "big"))


async def record(buffer: Buffer, n: int, rows, *, seal=None):
    return await buffer.record_batch(
        batch_id=bid(n),
        priority=1,
        created_at=T0,
        readings=rows,
        seal=seal or (lambda seq: b"sealed-%d" % seq),
    )


async def test_record_assigns_rows_and_allocates_increasing_seqs(buffer) -> None:
    await fill(buffer, 10)
    rows = buffer.unsent_page(limit=10)
    first = await record(buffer, 1, rows[:4])
    second = await record(buffer, 2, rows[4:])

    assert (first.seq, second.seq) == (0, 1)
    assert first.sealed == b"sealed-0"
    assert buffer.unsent_page() == []
    assert [r.id for r in buffer.batch_rows(bid(1))] == [r.id for r in rows[:4]]
    stored = buffer.outbox_batch(bid(1))
    assert stored is not None
    assert (stored.state, stored.readings, stored.sealed) == (OutboxState.IN_FLIGHT, 4, b"sealed-0")
    assert [b.seq for b in buffer.in_flight_batches()] == [0, 1]
    assert [b.seq for b in buffer.in_flight_batches(after_seq=0)] == [1]


async def test_a_failed_seal_or_a_taken_row_records_nothing(buffer) -> None:
    await fill(buffer, 6)
    rows = buffer.unsent_page()

    def broken(_seq: int) -> bytes:
        raise RuntimeError("no entropy")

    with pytest.raises(BatchNotSealed, match="no entropy"):
        await record(buffer, 1, rows[:3], seal=broken)
    await record(buffer, 2, rows[:3])
    with pytest.raises(BatchConflict, match="3 of 4"):
        await record(buffer, 3, rows[2:])  # rows[2] is in batch 2 already

    assert buffer.outbox_batch(bid(1)) is None
    assert buffer.outbox_batch(bid(3)) is None
    assert len(buffer.unsent_page()) == 3  # rows[3:] went back untouched
    assert (await record(buffer, 4, rows[3:])).seq == 1  # failures used no seq


async def test_acks_deliver_reject_or_change_nothing(buffer) -> None:
    await fill(buffer, 6)
    rows = buffer.unsent_page()
    a = await record(buffer, 1, rows[:3])
    b = await record(buffer, 2, rows[3:])

    wrong = await buffer.ack_batch(bid(1), seq=a.seq + 1, status="stored", reason=None, at=T0)
    unknown = await buffer.ack_batch(bid(9), seq=0, status="stored", reason=None, at=T0)
    assert (wrong.outcome, unknown.outcome) == (AckOutcome.SEQ_MISMATCH, AckOutcome.UNKNOWN_BATCH)
    assert buffer.stats().delivered == 0

    done = await buffer.ack_batch(bid(1), seq=a.seq, status="stored", reason=None, at=T0)
    again = await buffer.ack_batch(bid(1), seq=a.seq, status="duplicate", reason=None, at=T0)
    no = await buffer.ack_batch(bid(2), seq=b.seq, status="rejected", reason="bad", at=T0)
    assert (done.outcome, done.delivered) == (AckOutcome.DELIVERED, 3)
    assert again.outcome is AckOutcome.ALREADY_FINAL
    assert no.outcome is AckOutcome.REJECTED

    acked = buffer.outbox_batch(bid(1))
    assert acked is not None
    assert (acked.state, acked.sealed, acked.ack_status) == (OutboxState.ACKED, None, "stored")
    rejected = buffer.outbox_batch(bid(2))
    assert rejected is not None
    assert (rejected.state, rejected.ack_reason) == (OutboxState.REJECTED, "bad")
    status = buffer.uplink_status()
    assert (status.unsent, status.waiting, status.rejected_readings) == (3, 0, 3)
    assert (status.last_ack_status, status.next_seq, status.in_flight_batches) == ("rejected", 2, 0)
    with pytest.raises(ValueError, match="unknown ack status"):
        await buffer.ack_batch(bid(2), seq=1, status="maybe", reason=None, at=T0)


async def test_mark_sent_state_and_prune(buffer) -> None:
    await fill(buffer, 2)
    rows = buffer.unsent_page()
    a = await record(buffer, 1, rows)
    await buffer.mark_sent(bid(1), at=T0)
    await buffer.mark_sent(bid(1), at=T0 + timedelta(seconds=5))
    sent = buffer.outbox_batch(bid(1))
    assert sent is not None
    assert (sent.attempts, sent.last_sent_at) == (2, T0 + timedelta(seconds=5))

    await buffer.record_uplink_state(
        UplinkState(
            breaker="open", connected=False, updated_at=T0, last_error="down", last_error_at=T0
        )
    )
    state = buffer.uplink_status().state
    assert state is not None
    assert (state.breaker, state.last_error, state.last_error_at) == ("open", "down", T0)

    await buffer.ack_batch(bid(1), seq=a.seq, status="stored", reason=None, at=T0)
    await buffer.prune(now=T0 + timedelta(days=365))
    assert buffer.outbox_batch(bid(1)) is None
    assert buffer.uplink_status().next_seq == 1  # pruning never lets a seq be reused


async def test_seq_survives_reopening(db) -> None:
    async with Buffer.open(BufferConfig(path=db)) as buffer:
        await fill(buffer, 2)
        await record(buffer, 1, buffer.unsent_page()[:1])
    async with Buffer.open(BufferConfig(path=db)) as buffer:
        assert (await record(buffer, 2, buffer.unsent_page())).seq == 1


def test_serialized_body_matches_wire_body() -> None:
    rng = random.Random(5)
    readings = [
        sample_reading(rng, T0 + timedelta(seconds=i), device=i, patient=i) for i in range(40)
    ]
    assert (
        body_json([r.model_dump_json() for r in readings])
        == Body(readings=tuple(readings)).model_dump_json()
    )
    assert body_json([]) == Body().model_dump_json()
