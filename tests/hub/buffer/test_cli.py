from __future__ import annotations

import json
from typing import TYPE_CHECKING
from uuid import UUID

import pytest
from buffer_testkit import T0, new
from typer.testing import CliRunner

from hub.buffer import Buffer, Priority
from hub.buffer.cli import buffer_app, devices_app

if TYPE_CHECKING:
    import typer

runner = CliRunner()


@pytest.fixture
async def filled(config, make_reading):
    """A closed buffer file with 5 readings (one delivered, one alert) and two devices."""
    buf = Buffer.open(config)
    readings = [make_reading() for _ in range(5)]
    await buf.insert_many([new(r) for r in readings[:4]])
    await buf.insert(readings[4], dedupe_key="alert", priority=Priority.ALERT)
    await buf.assign_batch(UUID(int=1), [readings[0].id])
    await buf.mark_delivered(UUID(int=1), at=T0)
    await buf.device_seen("AA:BB:CC:DD:EE:01", profile="omron_bp", name="BP7000", at=T0)
    await buf.update_device("AA:BB:CC:DD:EE:01", battery_pct=77, clock_offset_s=2.5)
    await buf.device_seen("AA:BB:CC:DD:EE:02", profile="nipro_glucose", at=T0)
    await buf.aclose()
    return config.path, readings


def test_stats_json(filled) -> None:
    path, readings = filled

    result = runner.invoke(buffer_app, ["stats", "--db", str(path), "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total"] == 5
    assert data["unsent"] == 4
    assert data["delivered"] == 1
    assert data["at_capacity"] is False
    assert data["devices"] == 2
    assert data["oldest_unsent_received_at"] == readings[1].received_at.isoformat()
    assert sum(k["total"] for k in data["by_kind"].values()) == 5
    assert data["max_unsent_bytes"] == 1024 * 1024 * 1024


def test_stats_table(filled) -> None:
    path, _ = filled

    result = runner.invoke(buffer_app, ["stats", "--db", str(path)])

    assert result.exit_code == 0, result.output
    assert "unsent (waiting for the cloud)" in result.output
    assert "at capacity" in result.output


def test_stats_does_not_fight_a_running_daemon(config, make_reading) -> None:
    with Buffer.open(config) as buf:
        buf.sync.insert(make_reading(), dedupe_key="k")
        result = runner.invoke(buffer_app, ["stats", "--db", str(config.path), "--json"])
        buf.sync.insert(make_reading(), dedupe_key="k2")  # the writer still writes
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total"] == 1


def test_devices_json_and_table(filled) -> None:
    path, _ = filled

    as_json = runner.invoke(devices_app, ["--db", str(path), "--json"])
    table = runner.invoke(devices_app, ["--db", str(path)])

    assert as_json.exit_code == 0, as_json.output
    devices = json.loads(as_json.output)
    assert [d["address"] for d in devices] == ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02"]
    assert devices[0]["battery_pct"] == 77
    assert devices[0]["bond_state"] == "unknown"
    assert table.exit_code == 0, table.output
    assert "BP7000" in table.output
    assert "77%" in table.output


def test_no_devices_yet(config) -> None:
    with Buffer.open(config):
        pass
    result = runner.invoke(devices_app, ["--db", str(config.path)])
    assert result.exit_code == 0
    assert "No devices yet" in result.output


@pytest.mark.parametrize("app", [buffer_app, devices_app])
def test_missing_file_is_a_clear_error(tmp_path, app: typer.Typer) -> None:
    path = tmp_path / "nowhere.sqlite3"
    args = ["stats", "--db", str(path)] if app is buffer_app else ["--db", str(path)]

    result = runner.invoke(app, args)

    assert result.exit_code == 1
    assert "no hub buffer at" in result.output
    assert not path.exists()  # read-only: never created


def test_help_teaches() -> None:
    result = runner.invoke(buffer_app, ["stats", "--help"])
    assert result.exit_code == 0
    assert "--db" in result.output
    assert "--json" in result.output
    assert "507" in result.output
