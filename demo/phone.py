"""The demo's simulated phone: a health agent seeing patients one after another.

It is the reference client (`phone`) driven by a clock. For each visit the agent records the
visit with the observations a device cannot measure (respiration rate, ACVPU, oxygen, age:
docs/triage.md), syncs it to the hub, binds the health post's devices to the patient with
`POST /api/v1/encounters`, lets the devices measure for a few seconds, ends the encounters
(`DELETE /api/v1/encounters/{id}`) and moves on to the next patient. The hub finds by zeroconf on
127.0.0.1. When the demo stops, the phone ends its encounters and syncs until its queue is empty.
The final check compares what the phone marked synced with what the hub and the cloud stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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
from phone.errors import PhoneError
from phone.queue import Queue, State, new_record
from phone.sync import SyncPolicy, sync_queue
from wire.tokens import Role, issue

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from phone.discovery import HubAd

log = structlog.get_logger("demo.phone")
AGENT_ID = "agent-demo-01"
DRAIN_S = 60.0
SHARE_BEHIND_ON_VACCINES, SHARE_WITHOUT_IRON, SHARE_REFERRED = 0.2, 0.3, 0.1  # plausible, made up


@dataclass(frozen=True, slots=True)
class Patient:
    """A virtual patient and what the agent observes at each visit."""

    id: str
    kind: str
    """adult, pregnant or child: which record the agent fills in."""
    age_years: int
    resp_rate: int
    consciousness: str
    """ACVPU: A, C, V, P or U."""
    on_oxygen: bool = False


UNWELL = Patient("pat-000004", "adult", 61, resp_rate=26, consciousness="V", on_oxygen=True)
"""Clearly unwell: fast breathing (NEWS2 3), responds to voice only (3), on oxygen (2): NEWS2 >= 8,
high whatever the devices measure."""
PATIENTS = (
    UNWELL,
    Patient("pat-000001", "adult", 34, resp_rate=16, consciousness="A"),
    Patient("pat-000002", "pregnant", 27, resp_rate=18, consciousness="A"),
    Patient("pat-000003", "child", 2, resp_rate=20, consciousness="A"),
    Patient("pat-000005", "child", 4, resp_rate=22, consciousness="A"),
    Patient("pat-000006", "pregnant", 19, resp_rate=17, consciousness="A"),
)
"""The agent's round, in order; the first patient (`UNWELL`) is the one to send to the clinic."""


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


def visit(patient: Patient, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A plausible visit record of `patient`: (record type, payload with the observations).

    `observations` and `patient.age_years` are what the hub's triage reads (docs/triage.md).
    """
    observed = {
        "observations": {
            "resp_rate": patient.resp_rate,
            "consciousness": patient.consciousness,
            "on_oxygen": patient.on_oxygen,
        },
        "patient": {"age_years": patient.age_years},
    }
    if patient.kind == "child":
        return "child_growth", {
            "weight_kg": round(rng.uniform(9.5, 17.0), 1),
            "muac_mm": rng.randint(118, 150),
            "vaccinations_up_to_date": rng.random() > SHARE_BEHIND_ON_VACCINES,
            **observed,
        }
    if patient.kind == "pregnant":
        return "antenatal_visit", {
            "gestation_weeks": rng.randint(10, 38),
            "danger_signs": rng.choice([[], [], ["headache"], ["swelling"]]),
            "iron_folate_given": rng.random() > SHARE_WITHOUT_IRON,
            **observed,
        }
    return "household_visit", {
        "household_size": rng.randint(2, 9),
        "bed_nets": rng.randint(0, 4),
        "referred": rng.random() < SHARE_REFERRED or patient.consciousness != "A",
        **observed,
    }


class SimulatedPhone:
    """One agent's phone: its own queue under `workdir`, a token signed by the demo cloud.

    `devices` are the health post's device addresses the agent binds to each patient.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        cloud_signing_key: Ed25519PrivateKey,
        devices: tuple[str, ...] = (),
        visit_s: float = 5.0,
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
        self._devices = devices
        self._visit_s = visit_s
        self._sync_every_s = sync_every_s
        self._interfaces = interfaces
        self._rng = rng or random.Random()  # noqa: S311 - simulated visits, not secrets
        self._open: list[str] = []
        self.visits = 0
        """Visits done (recorded, synced, devices bound)."""
        with Queue.open(self.queue_path):
            pass  # created now, so that counts() works from the first tick

    async def run(self, stop: asyncio.Event) -> None:
        """See patients until `stop`; then end the encounters and sync until the queue is empty."""
        async with HubBrowser(interfaces=self._interfaces, probe_every_s=2.0) as browser:
            patients: Iterator[Patient] = itertools.cycle(PATIENTS)
            patient = next(patients)
            next_sync = time.monotonic()
            while not stop.is_set():
                hub = browser.hubs[0] if browser.hubs else None
                if hub is None:
                    log.info("phone_no_hub_yet")
                elif await self._visit(hub, patient, stop):
                    patient = next(patients)
                    next_sync = time.monotonic() + self._sync_every_s
                if time.monotonic() >= next_sync:  # no hub, or a visit failed: keep trying
                    await self._sync(browser)
                    next_sync = time.monotonic() + self._sync_every_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
            if self._open and browser.hubs:
                await asyncio.to_thread(self._end_encounters, browser.hubs[0])
            deadline = time.monotonic() + DRAIN_S
            while self.counts()[State.PENDING] and time.monotonic() < deadline:
                await self._sync(browser)
                if self.counts()[State.PENDING]:
                    await asyncio.sleep(0.5)

    async def _visit(self, hub: HubAd, patient: Patient, stop: asyncio.Event) -> bool:
        """Record, sync, bind the devices, let them measure, end; False if the hub failed us."""
        try:
            await asyncio.to_thread(self._record, patient)
            await asyncio.to_thread(self._sync_to, hub)
            await asyncio.to_thread(self._start_encounters, hub, patient.id)
        except PhoneError as exc:
            log.warning("phone_visit_failed", patient_id=patient.id, error=str(exc))
            return False
        log.info("phone_visit", patient_id=patient.id, devices=len(self._open))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self._visit_s)
        try:
            await asyncio.to_thread(self._end_encounters, hub)
        except PhoneError as exc:
            log.warning("phone_end_encounters_failed", error=str(exc))
        self.visits += 1
        return True

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

    def _record(self, patient: Patient) -> None:
        type_, payload = visit(patient, self._rng)
        now = datetime.now(UTC)
        with Queue.open(self.queue_path) as queue:
            queue.add(
                new_record(
                    patient_id=patient.id,
                    agent_id=AGENT_ID,
                    type_=type_,
                    payload=payload,
                    now=now,
                    rand=os.urandom(10),
                ),
                now=now,
            )

    def _client(self, hub: HubAd) -> HubClient:
        return HubClient(hub.host, hub.port, fingerprint=hub.fingerprint, token=self._token)

    def _start_encounters(self, hub: HubAd, patient_id: str) -> None:
        with self._client(hub) as client:
            for address in self._devices:
                self._open.append(client.start_encounter(address, patient_id))

    def _end_encounters(self, hub: HubAd) -> None:
        with self._client(hub) as client:
            while self._open:
                client.end_encounter(self._open[-1])
                self._open.pop()

    async def _sync(self, browser: HubBrowser) -> None:
        hubs = browser.hubs
        if not hubs:
            log.info("phone_no_hub_yet")
            return
        try:
            await asyncio.to_thread(self._sync_to, hubs[0])
        except PhoneError as exc:
            log.warning("phone_sync_failed", error=str(exc))

    def _sync_to(self, hub: HubAd) -> None:
        policy = SyncPolicy(attempts=3, base_delay_s=0.2, max_delay_s=2.0)
        with Queue.open(self.queue_path) as queue, self._client(hub) as client:
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
