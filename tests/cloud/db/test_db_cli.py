"""`tecsa-cloud db` and `tecsa-cloud hubs`, run through typer's CliRunner on a real database."""

from __future__ import annotations

import json

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from cloud.db import connect, get_hub
from cloud.db.cli import db_app, hubs_app
from cloud.db.schema import migrations
from wire.keys import fingerprint, key_id, save_public_key

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/tecsa"

app = typer.Typer()
app.add_typer(db_app, name="db")
app.add_typer(hubs_app, name="hubs")


@pytest.fixture
def run(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("TECSA_CLOUD_"):
            monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def keys(tmp_path):
    identity = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    exchange = X25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
    save_public_key(identity, tmp_path / "identity.pub.pem")
    save_public_key(exchange, tmp_path / "exchange.pub.pem")
    return identity, tmp_path / "identity.pub.pem", tmp_path / "exchange.pub.pem"


def _clean(result):
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr


def test_db_upgrade_applies_migrations_and_creates_partitions_then_nothing(run, empty_db):
    first = run("db", "upgrade", "--database-url", empty_db, "--months-ahead", "2")
    assert first.exit_code == 0, first.output
    assert "applied 0001_initial" in first.stdout
    assert first.stdout.count("created partition readings_y") == 4  # last month .. 2 ahead
    second = run("db", "upgrade", "--database-url", empty_db, "--months-ahead", "2")
    assert second.exit_code == 0
    assert "applied" not in second.stdout
    assert "created partition" not in second.stdout
    assert f"schema version {len(migrations())}: up to date" in second.stdout


def test_db_status_exits_1_when_an_upgrade_is_needed(run, empty_db):
    pending = run("db", "status", "--database-url", empty_db)
    assert pending.exit_code == 1
    assert "pending  0001_initial" in pending.stdout
    assert "tecsa-cloud db upgrade" in pending.stderr
    run("db", "upgrade", "--database-url", empty_db)
    ok = run("db", "status", "--database-url", empty_db)
    assert ok.exit_code == 0
    assert "applied  0001_initial" in ok.stdout
    assert "up to date" in ok.stdout


def test_the_database_url_defaults_to_the_cloud_configuration(run, db, monkeypatch):
    monkeypatch.setenv("TECSA_CLOUD_DATABASE__URL", db)
    result = run("db", "status")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("db", "upgrade"),
        ("db", "status"),
        ("hubs", "list"),
        ("hubs", "revoke", "hub-a"),
    ],
)
def test_an_unreachable_database_is_one_clear_line_and_exit_2(run, args):
    result = run(*args, "--database-url", UNREACHABLE)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: PostgreSQL is unavailable")
    assert result.stderr.count("\n") == 1
    _clean(result)


def test_hubs_add_list_revoke(run, db, keys):
    identity, identity_pem, exchange_pem = keys
    added = run(
        "hubs", "add", "hub-kita-01", "--identity-key", str(identity_pem),
        "--exchange-key", str(exchange_pem), "--note", "Kita health post", "--database-url", db,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"added hub hub-kita-01 key id {key_id(identity)}" in added.stdout
    assert fingerprint(identity) in added.stdout

    again = run(
        "hubs", "add", "hub-kita-01", "--identity-key", str(identity_pem), "--database-url", db
    )
    assert again.exit_code == 0
    assert "already registered" in again.stdout

    listed = run("hubs", "list", "--database-url", db)
    assert listed.exit_code == 0
    assert "hub-kita-01" in listed.stdout
    assert "active" in listed.stdout
    assert "Kita health post" in listed.stdout

    revoked = run("hubs", "revoke", "hub-kita-01", "--reason", "stolen", "--database-url", db)
    assert revoked.exit_code == 0
    assert revoked.stdout.startswith("revoked hub hub-kita-01 at ")
    twice = run("hubs", "revoke", "hub-kita-01", "--database-url", db)
    assert "was revoked already" in twice.stdout

    as_json = json.loads(run("hubs", "list", "--json", "--database-url", db).stdout)
    assert len(as_json) == 1
    entry = as_json[0]
    assert entry["hub_id"] == "hub-kita-01"
    assert entry["status"] == "revoked"
    assert entry["revoke_reason"] == "stolen"
    assert entry["fingerprint"] == fingerprint(identity)
    assert entry["identity_key_id"] == key_id(identity)
    assert entry["exchange_key"] is not None


def test_hubs_list_of_an_empty_registry_says_how_to_add(run, db):
    result = run("hubs", "list", "--database-url", db)
    assert result.exit_code == 0
    assert "no hubs registered" in result.stdout
    assert json.loads(run("hubs", "list", "--json", "--database-url", db).stdout) == []


def test_hubs_revoke_of_an_unknown_hub_is_exit_2(run, db):
    result = run("hubs", "revoke", "hub-ghost", "--database-url", db)
    assert result.exit_code == 2
    assert "no hub 'hub-ghost' is registered" in result.stderr
    _clean(result)


def test_hubs_add_refuses_bad_key_files(run, db, keys, tmp_path):
    _, _, exchange_pem = keys
    wrong_kind = run(
        "hubs", "add", "hub-a", "--identity-key", str(exchange_pem), "--database-url", db
    )
    assert wrong_kind.exit_code == 2
    assert "expected Ed25519PublicKey" in wrong_kind.stderr
    missing = run(
        "hubs", "add", "hub-a", "--identity-key", str(tmp_path / "nope.pem"), "--database-url", db
    )
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    bad = run("hubs", "add", "hub-a", "--identity-key", str(garbage), "--database-url", db)
    assert bad.exit_code == 2
    assert "not a PEM public key" in bad.stderr
    for result in (wrong_kind, missing, bad):
        _clean(result)
    with connect(db) as conn:
        assert get_hub(conn, "hub-a") is None


def test_hubs_add_refuses_a_second_key_for_a_known_hub(run, db, keys, tmp_path):
    _, identity_pem, _ = keys
    other = tmp_path / "other.pub.pem"
    save_public_key(Ed25519PrivateKey.generate(), other)
    run("hubs", "add", "hub-a", "--identity-key", str(identity_pem), "--database-url", db)
    result = run("hubs", "add", "hub-a", "--identity-key", str(other), "--database-url", db)
    assert result.exit_code == 2
    assert "another identity key" in result.stderr
    bad_id = run("hubs", "add", "Hub_A", "--identity-key", str(other), "--database-url", db)
    assert bad_id.exit_code == 2
    _clean(bad_id)
