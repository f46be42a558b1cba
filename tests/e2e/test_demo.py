"""`tecsa-demo`, the README's first command, as a user runs it: every reading stored once."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg

BIN = Path(sys.executable).parent
SUMMARY = re.compile(r"^captured=(\d+) stored=(\d+) missing=(\d+) duplicates=(\d+)$", re.MULTILINE)


def _demo(*args, timeout=240):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECSA_HUB_", "TECSA_CLOUD_"))}
    return subprocess.run(
        [str(BIN / "tecsa-demo"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _summary(result):
    match = SUMMARY.search(result.stdout)
    assert match, result.stdout + result.stderr[-3000:]
    return tuple(int(g) for g in match.groups())


def test_demo_on_embedded_services_stores_every_reading_once(tmp_path):
    result = _demo("--for", "6s", "--measure-every", "0.2", "--workdir", str(tmp_path))
    captured, stored, missing, duplicates = _summary(result)
    assert result.returncode == 0, result.stderr[-3000:]
    assert captured >= 10
    assert (stored, missing, duplicates) == (captured, 0, 0)
    assert "started here: postgresql, mqtt, s3" in result.stderr


def test_demo_on_given_services(tmp_path, db, mosquitto, s3_endpoint):
    result = _demo(
        "--for", "4s", "--measure-every", "0.2", "--workdir", str(tmp_path),
        "--database-url", db, "--mqtt-url", mosquitto.url, "--s3-url", s3_endpoint,
    )  # fmt: skip
    captured, stored, missing, duplicates = _summary(result)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (stored, missing, duplicates) == (captured, 0, 0)
    assert "started here: none" in result.stderr
    with psycopg.connect(db) as conn:
        (in_db,) = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert in_db == captured


def test_ctrl_c_stops_the_devices_drains_and_reports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECSA_HUB_", "TECSA_CLOUD_"))}
    proc = subprocess.Popen(
        [str(BIN / "tecsa-demo"), "--measure-every", "0.2", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    hub_db = tmp_path / "hub" / "buffer.sqlite3"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None and _captured(hub_db) < 5:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    captured, stored, missing, duplicates = _summary(subprocess.CompletedProcess([], 0, out, err))
    assert proc.returncode == 0, err[-3000:]
    assert captured >= 5
    assert (stored, missing, duplicates) == (captured, 0, 0)


def _captured(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    except sqlite3.Error:
        return 0
