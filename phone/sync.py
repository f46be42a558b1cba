"""One sync run: send the queue's pending revisions to a hub in chunks, store each answer.

The rules a mobile app must keep (docs/phone-client.md):
- chunks of at most 1,000 records and a body under the hub's 8 MiB cap (`SyncPolicy`);
- a record changes state only when the hub's answer for that record was read; the answers of a
  chunk are stored in one transaction;
- a network error, a 5xx or a 507 is retried with exponential backoff and jitter, the queue kept;
  after `attempts` tries the run stops and the records stay pending for the next run;
- 401 stops the run at once (a new token is needed: retrying cannot help); 403 is stored as the
  answer of every record of that request (`rejected`); a pin mismatch stops before anything is sent.
Because the hub is idempotent per (id, revision, content hash), sending a chunk again after an
interruption (a connection cut after the hub committed, the phone killed) yields `duplicate`
answers, which mark the records synced: nothing is lost and nothing doubles.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from phone.errors import (
    Forbidden,
    PhoneError,
    ProtocolError,
    Retryable,
    TooLarge,
)
from phone.queue import Answer, Queue, Queued, State

if TYPE_CHECKING:
    from collections.abc import Callable

    from phone.client import HubClient

MAX_RECORDS = 1000  # the hub's per-request cap (docs/phone-api.md)
MAX_BODY = 8 * 1024 * 1024  # the hub's body cap (docs/phone-api.md, 413 above it)
log = structlog.get_logger("phone.sync")

_STATES = {
    "accepted": State.SYNCED,
    "duplicate": State.SYNCED,
    "conflict": State.CONFLICT,
    "rejected": State.REJECTED,
}


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """How a run chunks and retries."""

    chunk_records: int = MAX_RECORDS
    max_body: int = MAX_BODY - 256 * 1024  # headroom for the envelope and rounding
    attempts: int = 6
    """Tries per chunk on retryable errors before the run stops (the queue is kept)."""
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Backoff before try `attempt + 1` (attempt >= 1): exponential, capped, half jittered."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass(slots=True)
class SyncReport:
    """What one run did."""

    hub_id: str
    sent: int = 0
    """Records sent (a record sent twice counts twice)."""
    answered: dict[State, int] = field(default_factory=lambda: dict.fromkeys(State, 0))
    """Answers stored by this run, per state."""
    requests: int = 0
    retries: int = 0
    pending_left: int = 0
    error: PhoneError | None = None
    """Why the run stopped early (None when the queue was drained)."""

    @property
    def complete(self) -> bool:
        """True when every pending record got its answer."""
        return self.error is None and self.pending_left == 0


def sync_queue(
    queue: Queue,
    client: HubClient,
    *,
    hub_id: str,
    policy: SyncPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_chunk: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Sync every pending revision to `client`'s hub; errors end the run and are in the report."""
    policy = policy or SyncPolicy()
    rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
    report = SyncReport(hub_id=hub_id)
    limit = policy.chunk_records
    while True:
        chunk = _fit(queue.pending(limit=limit), policy.max_body)
        if not chunk:
            break
        try:
            results = _send(client, chunk=chunk, policy=policy, sleep=sleep, rng=rng, report=report)
        except TooLarge as exc:
            if len(chunk) > 1:
                limit = max(1, len(chunk) // 2)
                log.warning("sync_chunk_too_large", records=len(chunk), next=limit)
                continue
            answer = {"outcome": "rejected", "status": 413, "reason": str(exc)}
            queue.record_answers(
                [Answer(chunk[0].seq, State.REJECTED, answer)], hub_id=hub_id, now=now()
            )
            report.answered[State.REJECTED] += 1
            continue
        except Forbidden as exc:
            answer = {"outcome": "rejected", "reason": str(exc), **exc.answer}
            queue.record_answers(
                [Answer(q.seq, State.REJECTED, answer) for q in chunk], hub_id=hub_id, now=now()
            )
            report.answered[State.REJECTED] += len(chunk)
            log.warning("sync_forbidden", records=len(chunk), reason=str(exc))
            continue
        except PhoneError as exc:
            report.error = exc
            log.warning("sync_stopped", error=type(exc).__name__, reason=str(exc))
            break
        try:
            answers = [Answer(q.seq, _state(r), r) for q, r in zip(chunk, results, strict=True)]
        except ProtocolError as exc:
            report.error = exc
            break
        queue.record_answers(answers, hub_id=hub_id, now=now())
        for a in answers:
            report.answered[a.state] += 1
        if on_chunk is not None:
            on_chunk(report)
    report.pending_left = queue.counts()[State.PENDING]
    log.info(
        "sync_done",
        hub_id=hub_id,
        sent=report.sent,
        requests=report.requests,
        retries=report.retries,
        pending_left=report.pending_left,
        **{state.value: n for state, n in report.answered.items() if state is not State.PENDING},
    )
    return report


def _send(
    client: HubClient,
    *,
    chunk: list[Queued],
    policy: SyncPolicy,
    sleep: Callable[[float], None],
    rng: random.Random,
    report: SyncReport,
) -> list[dict[str, Any]]:
    records = [q.record for q in chunk]
    attempt = 0
    while True:
        attempt += 1
        report.requests += 1
        report.sent += len(records)
        try:
            return client.bulk_sync(records)
        except Retryable as exc:
            if attempt >= policy.attempts:
                raise
            delay = policy.delay(attempt, rng)
            report.retries += 1
            log.info(
                "sync_retry", error=type(exc).__name__, attempt=attempt, delay_s=round(delay, 2)
            )
            sleep(delay)


def _fit(chunk: list[Queued], max_body: int) -> list[Queued]:
    """The longest prefix of `chunk` whose request body stays under `max_body` (at least one)."""
    size = len('{"records":[]}')
    for i, q in enumerate(chunk):
        size += len(json.dumps(q.record, separators=(",", ":")).encode()) + 1
        if size > max_body and i > 0:
            return chunk[:i]
    return chunk


def _state(result: dict[str, Any]) -> State:
    outcome = result.get("outcome")
    state = _STATES.get(outcome) if isinstance(outcome, str) else None
    if state is None:
        raise ProtocolError(f"unknown outcome {outcome!r} in the hub's answer")
    return state
