"""`tecsa-demo`, the README's first command, as a user runs it: every reading stored once, the
agent's patients triaged on the hub, every triage result in the cloud once and scored there."""

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
TRIAGE = re.compile(
    r"^triage: on_hub=(\d+) in_cloud=(\d+) high=(\d+) agreement=(\d\.\d\d|n/a)$", re.MULTILINE
)
MODEL = re.compile(r"^  model (\S+): scored=(\d+) agreed=(\d+) agreement=", re.MULTILINE)
UNWELL = "pat-000004"  # the first patient of the simulated agent's round (demo/phone.py)


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


def _triage(result):
    match = TRIAGE.search(result.stdout)
    assert match, result.stdout + result.stderr[-3000:]
    on_hub, in_cloud, high = (int(g) for g in match.groups()[:3])
    return on_hub, in_cloud, high, match.group(4)


def test_demo_on_embedded_services_stores_every_reading_once(tmp_path):
    result = _demo(
        "--for", "8s", "--measure-every", "0.2", "--visit", "2", "--workdir", str(tmp_path)
    )  # fmt: skip
    captured, stored, missing, duplicates = _summary(result)
    assert result.returncode == 0, result.stderr[-3000:]
    assert captured >= 10
    assert (stored, missing, duplicates) == (captured, 0, 0)
    assert "started here: postgresql, mqtt, s3" in result.stderr
    # The agent's first patient is unwell by the observations alone: the hub says high.
    on_hub, in_cloud, high, agreement = _triage(result)
    assert on_hub > 0
    assert in_cloud == on_hub
    assert high >= 1
    assert agreement != "n/a"
    models = MODEL.findall(result.stdout)
    assert models, result.stdout
    assert sum(int(scored) for _, scored, _ in models) == on_hub
    hub = _hub_triage(tmp_path / "hub" / "buffer.sqlite3")
    assert len(hub) == on_hub
    assert "high" in {band for patient, band in hub if patient == UNWELL}


def test_demo_on_given_services(tmp_path, db, mosquitto, s3_endpoint):
    result = _demo(
        "--for", "6s", "--measure-every", "0.2", "--visit", "2", "--workdir", str(tmp_path),
        "--database-url", db, "--mqtt-url", mosquitto.url, "--s3-url", s3_endpoint,
    )  # fmt: skip
    captured, stored, missing, duplicates = _summary(result)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (stored, missing, duplicates) == (captured, 0, 0)
    assert "started here: none" in result.stderr
    on_hub, in_cloud, _, _ = _triage(result)
    with psycopg.connect(db) as conn:
        (in_db,) = conn.execute("SELECT count(*) FROM readings").fetchone()
        (results,) = conn.execute("SELECT count(*) FROM triage_results").fetchone()
        (judged,) = conn.execute("SELECT count(*) FROM cloud_predictions").fetchone()
    assert in_db == captured
    assert results == judged == in_cloud == on_hub > 0


def test_ctrl_c_stops_the_devices_drains_and_reports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECSA_HUB_", "TECSA_CLOUD_"))}
    proc = subprocess.Popen(
        [
            str(BIN / "tecsa-demo"),
            "--measure-every",
            "0.2",
            "--visit",
            "2",
            "--workdir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    hub_db = tmp_path / "hub" / "buffer.sqlite3"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None and not _hub_triage(hub_db):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    captured, stored, missing, duplicates = _summary(subprocess.CompletedProcess([], 0, out, err))
    assert proc.returncode == 0, err[-3000:]
    assert captured >= 1
    assert (stored, missing, duplicates) == (captured, 0, 0)
    on_hub, in_cloud, _, _ = _triage(subprocess.CompletedProcess([], 0, out, err))
    assert in_cloud == on_hub > 0


def _hub_triage(db: Path) -> list[tuple[str, str]]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return [
                (str(p), str(b)) for p, b in conn.execute("SELECT patient_id, band FROM triage")
            ]
    except sqlite3.Error:
        return []
