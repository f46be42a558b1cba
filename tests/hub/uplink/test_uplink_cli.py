from __future__ import annotations

import json

from typer.testing import CliRunner
from uplink_testkit import T0, fill

from hub.buffer import Buffer, BufferConfig, UplinkState
from hub.uplink.cli import uplink_app
from wire.ids import uuid7

runner = CliRunner()


async def test_status_shows_backlog_in_flight_last_ack_and_breaker(db) -> None:
    async with Buffer.open(BufferConfig(path=db)) as buffer:
        await fill(buffer, 5)
        rows = buffer.unsent_page()
        for n, part in enumerate((rows[:2], rows[2:3])):
            await buffer.record_batch(
                batch_id=uuid7(T0, bytes(9) + bytes([n])),
                priority=1,
                created_at=T0,
                readings=part,
                seal=lambda seq: b"x%d" % seq,
            )
        await buffer.ack_batch(uuid7(T0, bytes(10)), seq=0, status="stored", reason=None, at=T0)
        await buffer.record_uplink_state(
            UplinkState(breaker="open", connected=False, updated_at=T0, last_error="broker down")
        )

    result = runner.invoke(uplink_app, ["status", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["unsent"], data["waiting"], data["in_flight_batches"]) == (3, 2, 1)
    assert data["last_ack_status"] == "stored"
    assert data["state"]["breaker"] == "open"
    assert data["state"]["last_error"] == "broker down"
    assert data["oldest_unsent_age_s"] > 0

    table = runner.invoke(uplink_app, ["status", "--db", str(db)])
    assert table.exit_code == 0
    assert "open" in table.output
    assert "broker down" in table.output


def test_status_of_a_missing_file_says_so(tmp_path) -> None:
    result = runner.invoke(uplink_app, ["status", "--db", str(tmp_path / "nope.sqlite3")])
    assert result.exit_code == 1
    assert "no hub buffer" in result.output
