"""`tecsa-hub plans import|list` and `tecsa-hub phones` against a real buffer file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from hub.buffer import Buffer, BufferConfig
from hub.cli import app

runner = CliRunner()
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _plan(pid, **extra):
    return {
        "id": pid,
        "title": f"Plan {pid}",
        "kind": "campaign",
        "starts_at": "2026-12-01T00:00Z",
    } | extra


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "buffer.sqlite3"
    Buffer.open(BufferConfig(path=path)).close()
    return path


def _import(db, tmp_path, content, name="plans.json"):
    file = tmp_path / name
    file.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return runner.invoke(app, ["plans", "import", str(file), "--db", str(db)])


def _list(db):
    result = runner.invoke(app, ["plans", "list", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_import_then_list(db, tmp_path):
    snapshot = {
        "version": 4,
        "plans": [_plan("measles-dec"), _plan("visit-7", kind="visit", agent_ids=["agent-17"])],
    }
    result = _import(db, tmp_path, snapshot)
    assert result.exit_code == 0, result.output
    assert "imported 2 plans" in result.stdout
    listed = _list(db)
    assert (listed["version"], listed["source"]) == (4, "import")
    assert [p["id"] for p in listed["plans"]] == ["measles-dec", "visit-7"]
    assert listed["plans"][1]["agent_ids"] == ["agent-17"]
    table = runner.invoke(app, ["plans", "list", "--db", str(db)])
    assert "measles-dec" in table.stdout
    assert "version 4" in table.stdout


def test_a_bare_list_gets_the_next_version(db, tmp_path):
    assert _import(db, tmp_path, [_plan("a")]).exit_code == 0
    assert _import(db, tmp_path, [_plan("b")]).exit_code == 0
    listed = _list(db)
    assert (listed["version"], [p["id"] for p in listed["plans"]]) == (2, ["b"])


def test_every_bad_plan_is_named_with_its_field_and_nothing_is_imported(db, tmp_path):
    assert _import(db, tmp_path, {"version": 1, "plans": [_plan("kept")]}).exit_code == 0
    bad = {
        "version": 2,
        "plans": [
            _plan("fine"),
            _plan("no-tz", starts_at="2026-12-01T00:00"),
            _plan("twisted", ends_at="2026-11-01T00:00Z"),
            {"id": "no-title", "kind": "raid", "starts_at": "2026-12-01T00:00Z"},
            _plan("fine"),
        ],
    }
    result = _import(db, tmp_path, bad)
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())  # rich may wrap long lines
    assert "nothing imported" in err
    assert "plan #2 ('no-tz'): starts_at:" in err
    assert "plan #3 ('twisted'):" in err
    assert "ends_at is before starts_at" in err
    assert "plan #4 ('no-title'): title:" in err
    assert "plan #4 ('no-title'): kind:" in err
    assert "plan #5 ('fine'): id also used by plan #1" in err
    listed = _list(db)
    assert (listed["version"], [p["id"] for p in listed["plans"]]) == (1, ["kept"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ({"plans": {"a": 1}}, "expected a list"),
        ({"version": -1, "plans": []}, "version"),
        ({"version": 1, "plans": [], "extra": 1}, "expected"),
        ('"just a string"', "expected a list"),
    ],
)
def test_files_that_are_not_snapshots_are_refused_clearly(db, tmp_path, content, message):
    result = _import(db, tmp_path, content)
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())
    assert _list(db)["version"] is None


def test_an_older_snapshot_than_the_one_held_is_refused(db, tmp_path):
    assert _import(db, tmp_path, {"version": 5, "plans": [_plan("new")]}).exit_code == 0
    result = _import(db, tmp_path, {"version": 3, "plans": [_plan("old")]})
    assert result.exit_code == 1
    assert "newer than the file's 3" in " ".join(result.stderr.split())
    assert [p["id"] for p in _list(db)["plans"]] == ["new"]


def test_a_missing_buffer_is_a_clear_error(tmp_path):
    file = tmp_path / "p.json"
    file.write_text("[]", encoding="utf-8")
    result = runner.invoke(app, ["plans", "import", str(file), "--db", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    listed = runner.invoke(app, ["phones", "--db", str(tmp_path / "nope")])
    assert listed.exit_code == 1
    assert "error" in listed.stderr


async def test_phones_lists_what_the_buffer_recorded(db):
    buffer = Buffer.open(BufferConfig(path=db))
    await buffer.phone_seen("phone-a._tecsa-agent._tcp.local.", agent="agent-17", app="1.2", at=T0)
    await buffer.phone_seen(
        "phone-b._tecsa-agent._tcp.local.", agent=None, app=None, at=T0 + timedelta(minutes=1)
    )
    later = T0 + timedelta(minutes=5)
    await buffer.phone_seen(
        "phone-a._tecsa-agent._tcp.local.", agent=None, app=None, at=later, present=False
    )
    await buffer.aclose()

    result = runner.invoke(app, ["phones", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    phones = json.loads(result.stdout)
    assert [p["name"] for p in phones] == [
        "phone-a._tecsa-agent._tcp.local.", "phone-b._tecsa-agent._tcp.local.",
    ]  # fmt: skip
    a = phones[0]
    assert (a["agent"], a["app"], a["present"]) == ("agent-17", "1.2", False)  # kept on withdrawal
    assert (a["first_seen"], a["last_seen"]) == (T0.isoformat(), later.isoformat())
    table = runner.invoke(app, ["phones", "--db", str(db)])
    assert "agent-17" in table.stdout


async def test_at_daemon_start_every_phone_is_marked_gone_until_seen_again(db):
    buffer = Buffer.open(BufferConfig(path=db))
    await buffer.phone_seen("p1._tecsa-agent._tcp.local.", agent="a-1", app=None, at=T0)
    await buffer.phone_seen("p2._tecsa-agent._tcp.local.", agent="a-2", app=None, at=T0)
    assert await buffer.phones_absent() == 2
    await buffer.phone_seen("p2._tecsa-agent._tcp.local.", agent=None, app=None, at=T0)
    assert {p.name[:2]: (p.present, p.agent) for p in buffer.phones()} == {
        "p1": (False, "a-1"), "p2": (True, "a-2"),
    }  # fmt: skip
    await buffer.aclose()


def test_no_phones_yet_says_so(db):
    result = runner.invoke(app, ["phones", "--db", str(db)])
    assert result.exit_code == 0
    assert "No phones seen yet" in result.stdout
