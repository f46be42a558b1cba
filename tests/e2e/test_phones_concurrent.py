"""Twenty phones (processes, each with its own queue and token) sync to one hub daemon at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "phone"))
from hubproc import BIN, HubProcess

from phone.queue import Queue, State, new_record

PHONES = 20
RECORDS = 150

pytestmark = pytest.mark.slow


def test_twenty_phones_syncing_at_once_store_every_record_exactly_once(tmp_path):
    (tmp_path / "hub").mkdir()
    hub = HubProcess(tmp_path / "hub", "hub-twenty", synchronous="FULL").start()
    expected: set[tuple[str, int]] = set()
    phones = []
    try:
        now = datetime.now(UTC)
        for p in range(PHONES):
            agent = f"agent-{p:02d}"
            path = tmp_path / f"phone-{p:02d}.sqlite3"
            records = [
                new_record(
                    patient_id=f"pat-{p:02d}-{i % 12:02d}",
                    agent_id=agent,
                    type_="household_visit",
                    payload={"visit": i, "phone": p},
                    now=now,
                    rand=os.urandom(10),
                )
                for i in range(RECORDS)
            ]
            with Queue.open(path) as queue:
                queue.add_many(records)
            expected |= {(r["id"], 1) for r in records}
            env = os.environ | {
                "TECSA_PHONE_TOKEN": hub.token(agent),
                "TECSA_PHONE_QUEUE": str(path),
            }
            phones.append(
                (
                    path,
                    subprocess.Popen(
                        # --hub-id: another hub advertised on 127.0.0.1 (a test session
                        # running beside this one) must not take the sync
                        [
                            str(BIN / "tecsa-phone"),
                            *("sync", "--json", "--timeout", "60", "--hub-id", "hub-twenty"),
                        ],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        for path, proc in phones:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-2000:]
            summary = json.loads(out)
            assert summary["hub_id"] == "hub-twenty"
            assert summary["answered"]["synced"] == RECORDS
            with Queue.open(path) as queue:
                assert queue.counts()[State.SYNCED] == RECORDS
    finally:
        for _, proc in phones:
            if proc.poll() is None:
                proc.kill()
        hub.stop()
    stored = hub.stored()
    assert set(stored) == expected
    assert set(stored.values()) == {1}
