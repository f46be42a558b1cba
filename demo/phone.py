"""The demo's simulated phone: a health agent recording visits and syncing to the hub.

It is the reference client (`phone`) driven by a clock: every few seconds the agent records a
plausible visit for one of the virtual patients; every few seconds the phone looks for the hub by
zeroconf on 127.0.0.1 and syncs its queue. When the demo stops, the phone stops recording and
syncs until its queue is empty. The final check compares what the phone marked synced with what
the hub stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import structlog

from phone.client import HubClient
from phone.discovery import HubBrowser
from phone.queue import Queue, State, new_record
from phone.sync import SyncPolicy, sync_queue
from wire.tokens import Role, issue

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from phone.discovery import HubAd

log = structlog.get_logger("demo.phone")
AGENT_ID = "agent-demo-01"
DRAIN_S = 60.0
SHARE_BEHIND_ON_VACCINES, SHARE_WITHOUT_IRON, SHARE_REFERRED = 0.2, 0.3, 0.1  # plausible, made up
PATIENTS = (
    ("pat-000001", "adult", 34),
    ("pat-000002", "pregnant", 27),
    ("pat-000003", "child", 2),
    ("pat-000004", "adult", 61),
    ("pat-000005", "child", 4),
    ("pat-000006", "pregnant", 19),
)


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """The phone's side of the final accounting."""

    made: int
    pending: int
    synced: int
    on_hub: int
    in_cloud: int = 0
    """The phone's record versions found in the cloud's PostgreSQL, each once."""

    @property
    def ok(self) -> bool:
        """Every record the phone made is synced, and the hub and the cloud hold exactly those."""
        return self.pending == 0 and self.synced == self.made == self.on_hub == self.in_cloud

    def line(self) -> str:
        """The summary line the demo prints."""
        return (
            f"phone records: made={self.made} synced={self.synced} "
            f"on_hub={self.on_hub} in_cloud={self.in_cloud} pending={self.pending}"
        )


def visit(rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """A plausible visit: (patient id, record type, payload)."""
    patient, kind, age = rng.choice(PATIENTS)
    if kind == "child":
        return (
            patient,
            "child_growth",
            {
                "age_years": age,
                "weight_kg": round(rng.uniform(9.5, 17.0), 1),
                "muac_mm": rng.randint(118, 150),
                "vaccinations_up_to_date": rng.random() > SHARE_BEHIND_ON_VACCINES,
            },
        )
    if kind == "pregnant":
        return (
            patient,
            "antenatal_visit",
            {
                "age_years": age,
                "gestation_weeks": rng.randint(10, 38),
                "danger_signs": rng.choice([[], [], ["headache"], ["swelling"]]),
                "iron_folate_given": rng.random() > SHARE_WITHOUT_IRON,
            },
        )
    return (
        patient,
        "household_visit",
        {
            "age_years": age,
            "household_size": rng.randint(2, 9),
            "bed_nets": rng.randint(0, 4),
            "referred": rng.random() < SHARE_REFERRED,
        },
    )


class SimulatedPhone:
    """One agent's phone: its own queue under `workdir`, a token signed by the demo cloud."""

    def __init__(
        self,
        workdir: Path,
        *,
        cloud_signing_key: Ed25519PrivateKey,
        record_every_s: float = 2.0,
        sync_every_s: float = 3.0,
        interfaces: tuple[str, ...] = ("127.0.0.1",),
        rng: random.Random | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.queue_path = workdir / "queue.sqlite3"
        self._token = issue(
            cloud_signing_key,
            agent_id=AGENT_ID,
            role=Role.AGENT,
            now=datetime.now(UTC),
            lifetime=timedelta(days=1),
            token_id=f"demo-{os.urandom(4).hex()}",
        )
        self._record_every_s = record_every_s
        self._sync_every_s = sync_every_s
        self._interfaces = interfaces
        self._rng = rng or random.Random()  # noqa: S311 - simulated visits, not secrets
        with Queue.open(self.queue_path):
            pass  # created now, so that counts() works from the first tick

    async def run(self, stop: asyncio.Event) -> None:
        """Record and sync until `stop`; then sync until the queue is empty (or DRAIN_S)."""
        async with HubBrowser(interfaces=self._interfaces, probe_every_s=2.0) as browser:
            next_record = next_sync = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_record:
                    await asyncio.to_thread(self._record)
                    next_record = now + self._record_every_s
                if now >= next_sync:
                    await self._sync(browser)
                    next_sync = now + self._sync_every_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
            deadline = time.monotonic() + DRAIN_S
            while self.counts()[State.PENDING] and time.monotonic() < deadline:
                await self._sync(browser)
                if self.counts()[State.PENDING]:
                    await asyncio.sleep(0.5)

    def counts(self) -> dict[State, int]:
        """The queue's states now."""
        with Queue.open(self.queue_path) as queue:
            return queue.counts()

    def check(self, hub_db: Path, *, database_url: str, hub_id: str) -> PhoneCheck:
        """The phone's records against the hub's buffer and the cloud's PostgreSQL."""
        with Queue.open(self.queue_path) as queue:
            counts = queue.counts()
            mine = {(q.id, q.revision) for q in queue.records()}
        return PhoneCheck(
            made=sum(counts.values()),
            pending=counts[State.PENDING],
            synced=counts[State.SYNCED],
            on_hub=len(mine & _hub_records(hub_db)),
            in_cloud=len(mine & cloud_records(database_url, hub_id)),
        )

    def _record(self) -> None:
        patient, type_, payload = visit(self._rng)
        now = datetime.now(UTC)
        with Queue.open(self.queue_path) as queue:
            queue.add(
                new_record(
                    patient_id=patient,
                    agent_id=AGENT_ID,
                    type_=type_,
                    payload=payload,
                    now=now,
                    rand=os.urandom(10),
                ),
                now=now,
            )

    async def _sync(self, browser: HubBrowser) -> None:
        hubs = browser.hubs
        if not hubs:
            log.info("phone_no_hub_yet")
            return
        await asyncio.to_thread(self._sync_to, hubs[0])

    def _sync_to(self, hub: HubAd) -> None:
        policy = SyncPolicy(attempts=3, base_delay_s=0.2, max_delay_s=2.0)
        with (
            Queue.open(self.queue_path) as queue,
            HubClient(hub.host, hub.port, fingerprint=hub.fingerprint, token=self._token) as client,
        ):
            sync_queue(queue, client, hub_id=hub.hub_id, policy=policy)


def _hub_records(hub_db: Path) -> set[tuple[str, int]]:
    """(id, revision) of every record version in the hub's buffer (read-only)."""
    if not hub_db.exists():
        return set()
    try:
        with contextlib.closing(sqlite3.connect(f"file:{hub_db}?mode=ro", uri=True)) as conn:
            return {(str(i), int(r)) for i, r in conn.execute("SELECT id, revision FROM records")}
    except sqlite3.Error:
        return set()


def cloud_records(database_url: str, hub_id: str) -> set[tuple[str, int]]:
    """(id, revision) of every record version the cloud stored from `hub_id`.

    A revision stored twice would need two rows with the same primary key, which PostgreSQL
    refuses; a second, different content of a revision goes to `record_conflicts` and is not a
    new version of the phone's record, so the stored revisions are what the phone made.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, revision FROM medical_records WHERE hub_id = %s", (hub_id,)
        ).fetchall()
    return {(str(i), int(r)) for i, r in rows}
