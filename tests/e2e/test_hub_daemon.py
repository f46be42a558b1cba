"""`tecsa-hub run` as a process: virtual devices in, durable readings out, SIGTERM drains."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _kinds(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT kind, count(*) FROM readings GROUP BY kind").fetchall()
    except sqlite3.Error:
        return {}  # not created or migrated yet
    return {kind: int(n) for kind, n in rows}


def _enough(db: Path) -> bool:
    kinds = _kinds(db)
    return sum(kinds.values()) >= 10 and {"blood_pressure", "glucose"} <= kinds.keys()


def test_daemon_stores_virtual_readings_and_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "buffer.sqlite3"
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-daemon-t1"\nkey_dir = "{tmp_path}/keys"\n'
        f'[buffer]\npath = "{db}"\n[ble]\nidle_disconnect_s = 1.0\nshare_after_s = 2.0\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    proc = subprocess.Popen(
        [
            str(BIN / "tecsa-hub"),
            "run",
            "-c",
            str(config),
            "--virtual-devices",
            "--simulate-every",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _enough(db) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert _enough(db), proc.stderr.read() if proc.poll() is not None else _kinds(db)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-2000:]
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "hub_started" in events
    assert events[-1] == "hub_stopped"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
